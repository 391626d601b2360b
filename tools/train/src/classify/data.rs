//! Image classification datasets: MNIST idx files, pixel CSV files and image folders, and their
//! batches as tensors.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use burn::tensor::{Device, Int, Tensor, TensorData};
use image::imageops::FilterType;

use crate::common::card::SCALE;
use crate::common::rng::Rng;

/// Colour mode of the decoded images.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ColorMode {
    /// One luma channel.
    Gray,
    /// Three channels, R, G, B.
    Rgb,
}

impl ColorMode {
    /// Number of channels.
    pub fn channels(self) -> usize {
        match self {
            ColorMode::Gray => 1,
            ColorMode::Rgb => 3,
        }
    }
}

/// On-disk dataset layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Decide from the path.
    Auto,
    /// MNIST idx files (`*-images-idx3-ubyte` and `*-labels-idx1-ubyte`, optionally gzipped).
    Idx,
    /// One image per row: `channels*height*width` pixel values (0..255) then the label.
    Csv,
    /// One sub-folder per class holding image files.
    Folder,
}

/// Images (u8, CHW per sample) and labels held in memory.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Image width.
    pub width: usize,
    /// Image height.
    pub height: usize,
    /// Channels per pixel.
    pub channels: usize,
    /// Pixels of all samples, `len() * channels * height * width` bytes, CHW order per sample.
    pub pixels: Vec<u8>,
    /// Class index per sample.
    pub labels: Vec<u32>,
    /// Class names, index order.
    pub classes: Vec<String>,
    /// Files that failed to decode and were left out.
    pub skipped: usize,
}

/// How to read a dataset.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// File or folder.
    pub path: PathBuf,
    /// Layout on disk.
    pub format: Format,
    /// Number of classes for idx/CSV labels (labels must be below it).
    pub classes: usize,
    /// Image size for CSV rows and for resizing folder images (width, height).
    pub size: (usize, usize),
    /// Colour mode for CSV rows and folder images.
    pub color: ColorMode,
}

impl Dataset {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Values per sample.
    pub fn sample_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Pixels of sample `i` (CHW).
    pub fn sample(&self, i: usize) -> &[u8] {
        let n = self.sample_len();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// The samples at `idx`, in that order.
    pub fn subset(&self, idx: &[usize]) -> Dataset {
        let mut pixels = Vec::with_capacity(idx.len() * self.sample_len());
        for &i in idx {
            pixels.extend_from_slice(self.sample(i));
        }
        Dataset {
            pixels,
            labels: idx.iter().map(|&i| self.labels[i]).collect(),
            skipped: 0,
            classes: self.classes.clone(),
            ..*self
        }
    }

    /// Keeps only the samples of `keep` (class indices, in the new order) and re-indexes their
    /// labels `0..keep.len()`; class names stay the original ones (e.g. keeping 5..9 of MNIST
    /// gives classes "5".."9" with labels 0..4).
    pub fn select_classes(&self, keep: &[usize]) -> Result<Dataset> {
        if keep.len() < 2 {
            bail!(
                "--only-classes needs at least 2 classes, got {}",
                keep.len()
            );
        }
        let mut map = vec![None; self.classes.len()];
        for (new, &old) in keep.iter().enumerate() {
            if old >= self.classes.len() {
                bail!(
                    "--only-classes: class {old} does not exist (the dataset has {} classes)",
                    self.classes.len()
                );
            }
            if map[old].is_some() {
                bail!("--only-classes: class {old} is listed twice");
            }
            map[old] = Some(new as u32);
        }
        let idx: Vec<usize> = (0..self.len())
            .filter(|&i| map[self.labels[i] as usize].is_some())
            .collect();
        let mut out = self.subset(&idx);
        for l in &mut out.labels {
            *l = map[*l as usize].unwrap_or(0);
        }
        out.classes = keep.iter().map(|&c| self.classes[c].clone()).collect();
        out.skipped = self.skipped;
        Ok(out)
    }

    /// The first `k` samples of each class, in dataset order.
    pub fn limit_per_class(&self, k: usize) -> Dataset {
        let mut seen = vec![0usize; self.classes.len()];
        let idx: Vec<usize> = (0..self.len())
            .filter(|&i| {
                let c = &mut seen[self.labels[i] as usize];
                *c += 1;
                *c <= k
            })
            .collect();
        self.subset(&idx)
    }

    /// Seeded shuffle, then the last `round(len * val_fraction)` samples become the validation set.
    pub fn split(&self, val_fraction: f64, seed: u64) -> Result<(Dataset, Dataset)> {
        if !(0.0..1.0).contains(&val_fraction) {
            bail!("--val-split must be in [0, 1), got {val_fraction}");
        }
        let mut idx: Vec<usize> = (0..self.len()).collect();
        Rng::new(seed ^ 0x5EED_5E11).shuffle(&mut idx);
        let n_val = (self.len() as f64 * val_fraction).round() as usize;
        let n_train = self.len() - n_val;
        if n_train == 0 {
            bail!("no training samples left after the validation split");
        }
        Ok((self.subset(&idx[..n_train]), self.subset(&idx[n_train..])))
    }

    /// Reads a dataset as `spec` says.
    pub fn load(spec: &LoadSpec) -> Result<Dataset> {
        let path = &spec.path;
        if !path.exists() {
            bail!("dataset {} does not exist", path.display());
        }
        let format = match spec.format {
            Format::Auto => detect_format(path)?,
            f => f,
        };
        let ds = match format {
            Format::Idx => load_idx(path, spec.classes)?,
            Format::Csv => load_csv(path, spec)?,
            Format::Folder => load_folder(path, spec)?,
            Format::Auto => unreachable_format(path)?,
        };
        if ds.is_empty() {
            bail!("dataset {} holds no samples", path.display());
        }
        Ok(ds)
    }
}

fn unreachable_format(path: &Path) -> Result<Dataset> {
    bail!("cannot tell the format of {}", path.display())
}

fn detect_format(path: &Path) -> Result<Format> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    if path.is_dir() {
        if find_idx_pair(path).is_some() {
            return Ok(Format::Idx);
        }
        return Ok(Format::Folder);
    }
    if name.contains("idx3-ubyte") || name.contains("idx1-ubyte") {
        return Ok(Format::Idx);
    }
    if name.ends_with(".csv") || name.ends_with(".csv.gz") {
        return Ok(Format::Csv);
    }
    bail!(
        "cannot tell the format of {} (expected a .csv/.csv.gz file, an idx file or folder, or a \
         folder of class folders); pass --format",
        path.display()
    )
}

/// Opens a file, transparently decompressing gzip (detected by its magic bytes).
fn open_maybe_gz(path: &Path) -> Result<Box<dyn Read>> {
    let mut f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut magic = [0u8; 2];
    let n = f
        .read(&mut magic)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    if n == 2 && magic == [0x1f, 0x8b] {
        Ok(Box::new(flate2::read::GzDecoder::new(BufReader::new(f))))
    } else {
        Ok(Box::new(BufReader::new(f)))
    }
}

fn read_all(path: &Path) -> Result<Vec<u8>> {
    let mut buf = vec![];
    open_maybe_gz(path)?
        .read_to_end(&mut buf)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(buf)
}

/// In a folder: the `train-images-idx3-ubyte[.gz]` / `train-labels-idx1-ubyte[.gz]` pair (or any
/// `*-images-idx3-ubyte` with its labels file).
fn find_idx_pair(dir: &Path) -> Option<(PathBuf, PathBuf)> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    names.sort();
    // Prefer the training files when the test files sit beside them.
    names.sort_by_key(|p| !p.to_string_lossy().contains("train"));
    names
        .iter()
        .filter(|p| p.to_string_lossy().contains("idx3-ubyte"))
        .find_map(|img| labels_for(img).map(|l| (img.clone(), l)))
}

/// The labels file that belongs to an images idx file.
fn labels_for(images: &Path) -> Option<PathBuf> {
    let name = images.file_name()?.to_string_lossy().to_string();
    let base = name.replace("images", "labels").replace("idx3", "idx1");
    let dir = images.parent()?;
    [
        base.clone(),
        base.trim_end_matches(".gz").to_string(),
        format!("{}.gz", base.trim_end_matches(".gz")),
    ]
    .into_iter()
    .map(|n| dir.join(n))
    .find(|p| p.is_file())
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn load_idx(path: &Path, classes: usize) -> Result<Dataset> {
    let (images, labels) = if path.is_dir() {
        find_idx_pair(path).with_context(|| {
            format!(
                "{} holds no `*-images-idx3-ubyte[.gz]` file with its `*-labels-idx1-ubyte[.gz]`",
                path.display()
            )
        })?
    } else {
        let name = path.to_string_lossy();
        let images = if name.contains("idx1-ubyte") {
            let n = path.file_name().unwrap_or_default().to_string_lossy();
            path.with_file_name(n.replace("labels", "images").replace("idx1", "idx3"))
        } else {
            path.to_path_buf()
        };
        let labels = labels_for(&images)
            .with_context(|| format!("no labels idx file found next to {}", images.display()))?;
        (images, labels)
    };
    let ib = read_all(&images)?;
    let lb = read_all(&labels)?;
    if ib.len() < 16 || be_u32(&ib, 0) != 0x0803 {
        bail!(
            "{} is not an idx3 images file (bad magic or header)",
            images.display()
        );
    }
    if lb.len() < 8 || be_u32(&lb, 0) != 0x0801 {
        bail!(
            "{} is not an idx1 labels file (bad magic or header)",
            labels.display()
        );
    }
    let (n, h, w) = (
        be_u32(&ib, 4) as usize,
        be_u32(&ib, 8) as usize,
        be_u32(&ib, 12) as usize,
    );
    let nl = be_u32(&lb, 4) as usize;
    if n != nl {
        bail!(
            "{} holds {n} images but {} holds {nl} labels",
            images.display(),
            labels.display()
        );
    }
    if ib.len() != 16 + n * h * w {
        bail!(
            "{} is truncated or padded: header says {n} images of {w}x{h} ({} bytes), file has {}",
            images.display(),
            16 + n * h * w,
            ib.len()
        );
    }
    if lb.len() != 8 + n {
        bail!(
            "{} is truncated or padded: header says {n} labels, file has {} bytes",
            labels.display(),
            lb.len()
        );
    }
    let lab: Vec<u32> = lb[8..].iter().map(|&v| v as u32).collect();
    if let Some((i, l)) = lab
        .iter()
        .enumerate()
        .find(|(_, l)| **l as usize >= classes)
    {
        bail!(
            "{}: label {l} of item {i} is out of range for {classes} classes (--classes)",
            labels.display()
        );
    }
    Ok(Dataset {
        width: w,
        height: h,
        channels: 1,
        pixels: ib[16..].to_vec(),
        labels: lab,
        classes: (0..classes).map(|c| c.to_string()).collect(),
        skipped: 0,
    })
}

fn load_csv(path: &Path, spec: &LoadSpec) -> Result<Dataset> {
    let (w, h) = spec.size;
    let c = spec.color.channels();
    let n = c * w * h;
    let reader = BufReader::new(open_maybe_gz(path)?);
    let mut pixels = vec![];
    let mut labels = vec![];
    for (i, line) in reader.lines().enumerate() {
        let lineno = i + 1;
        let line =
            line.with_context(|| format!("{}: line {lineno}: cannot read", path.display()))?;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != n + 1 {
            // A header row (non-numeric first field) is skipped.
            if lineno == 1 && fields[0].parse::<f64>().is_err() {
                continue;
            }
            bail!(
                "{}: line {lineno}: {} values, expected {} ({} pixels of a {w}x{h}x{c} image, then the label; \
                 set --image-size/--color)",
                path.display(),
                fields.len(),
                n + 1,
                n
            );
        }
        for (k, f) in fields[..n].iter().enumerate() {
            let v: f64 = f.parse().map_err(|_| {
                anyhow::anyhow!(
                    "{}: line {lineno}: pixel {} is `{f}`, not a number",
                    path.display(),
                    k + 1
                )
            })?;
            if !(0.0..=255.0).contains(&v) {
                bail!(
                    "{}: line {lineno}: pixel {} is {v}, outside 0..255",
                    path.display(),
                    k + 1
                );
            }
            pixels.push(v.round() as u8);
        }
        let lab = fields[n];
        let label: u32 = lab.parse().map_err(|_| {
            anyhow::anyhow!(
                "{}: line {lineno}: label `{lab}` is not a class index",
                path.display()
            )
        })?;
        if label as usize >= spec.classes {
            bail!(
                "{}: line {lineno}: label {label} is out of range for {} classes (--classes)",
                path.display(),
                spec.classes
            );
        }
        labels.push(label);
    }
    // CSV rows are HWC when there are several channels; store CHW.
    if c > 1 {
        pixels = hwc_to_chw_all(&pixels, c, h, w);
    }
    Ok(Dataset {
        width: w,
        height: h,
        channels: c,
        pixels,
        labels,
        classes: (0..spec.classes).map(|c| c.to_string()).collect(),
        skipped: 0,
    })
}

fn hwc_to_chw_all(src: &[u8], c: usize, h: usize, w: usize) -> Vec<u8> {
    let n = c * h * w;
    let mut out = vec![0u8; src.len()];
    for (s, d) in src.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
        for p in 0..h * w {
            for k in 0..c {
                d[k * h * w + p] = s[p * c + k];
            }
        }
    }
    out
}

const IMAGE_EXTS: &[&str] = &["png", "jpg", "jpeg", "bmp", "webp"];

fn load_folder(dir: &Path, spec: &LoadSpec) -> Result<Dataset> {
    let mut classes: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| (e.file_name().to_string_lossy().to_string(), e.path()))
        .collect();
    classes.sort();
    if classes.len() < 2 {
        bail!(
            "{} needs one sub-folder per class (at least 2), found {}",
            dir.display(),
            classes.len()
        );
    }
    let (w, h) = spec.size;
    let c = spec.color.channels();
    let mut pixels = vec![];
    let mut labels = vec![];
    let mut skipped = 0;
    for (ci, (name, sub)) in classes.iter().enumerate() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(sub)
            .with_context(|| format!("cannot list {}", sub.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .map(|e| IMAGE_EXTS.contains(&e.to_string_lossy().to_lowercase().as_str()))
                    .unwrap_or(false)
            })
            .collect();
        files.sort();
        if files.is_empty() {
            eprintln!(
                "vigia-train: class folder {} ({name}) holds no images",
                sub.display()
            );
        }
        for f in files {
            let img = match image::open(&f) {
                Ok(i) => i,
                Err(e) => {
                    eprintln!("vigia-train: skipping {}: {e}", f.display());
                    skipped += 1;
                    continue;
                }
            };
            let img = if img.width() as usize != w || img.height() as usize != h {
                img.resize_exact(w as u32, h as u32, FilterType::Triangle)
            } else {
                img
            };
            match spec.color {
                ColorMode::Gray => pixels.extend_from_slice(img.to_luma8().as_raw()),
                ColorMode::Rgb => {
                    let rgb = img.to_rgb8();
                    pixels.extend(hwc_to_chw_all(rgb.as_raw(), 3, h, w));
                }
            }
            labels.push(ci as u32);
        }
    }
    if skipped > 0 {
        eprintln!("vigia-train: {skipped} image(s) failed to decode and were skipped");
    }
    Ok(Dataset {
        width: w,
        height: h,
        channels: c,
        pixels,
        labels,
        classes: classes.into_iter().map(|(n, _)| n).collect(),
        skipped,
    })
}

/// Converts samples `idx` of `ds` to a normalised `[B, C, H, W]` tensor and their labels,
/// translating each image by up to `shift` pixels when `rng` is given.
pub fn batch(
    ds: &Dataset,
    idx: &[usize],
    device: &Device,
    mut aug: Option<(&mut Rng, usize)>,
) -> (Tensor<4>, Tensor<1, Int>) {
    let (c, h, w) = (ds.channels, ds.height, ds.width);
    let n = ds.sample_len();
    let mut x = vec![0f32; idx.len() * n];
    for (b, &i) in idx.iter().enumerate() {
        let src = ds.sample(i);
        let dst = &mut x[b * n..(b + 1) * n];
        match aug.as_mut() {
            Some((rng, s)) if *s > 0 => {
                let s = *s as i64;
                let dx = rng.below(2 * s as usize + 1) as i64 - s;
                let dy = rng.below(2 * s as usize + 1) as i64 - s;
                for k in 0..c {
                    for y in 0..h as i64 {
                        let sy = y - dy;
                        if sy < 0 || sy >= h as i64 {
                            continue;
                        }
                        for xx in 0..w as i64 {
                            let sx = xx - dx;
                            if sx < 0 || sx >= w as i64 {
                                continue;
                            }
                            dst[k * h * w + y as usize * w + xx as usize] =
                                src[k * h * w + sy as usize * w + sx as usize] as f32 * SCALE;
                        }
                    }
                }
            }
            _ => {
                for (d, s) in dst.iter_mut().zip(src) {
                    *d = *s as f32 * SCALE;
                }
            }
        }
    }
    let labels: Vec<i64> = idx.iter().map(|&i| ds.labels[i] as i64).collect();
    (
        Tensor::from_data(TensorData::new(x, [idx.len(), c, h, w]), device),
        Tensor::from_data(TensorData::new(labels, [idx.len()]), device),
    )
}

/// Writes each sample as a PNG (`DIR/00042_label7.png`), grey or RGB.
pub fn write_pngs(ds: &Dataset, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (w, h) = (ds.width as u32, ds.height as u32);
    let mut out = vec![];
    for i in 0..ds.len() {
        let p = dir.join(format!("{i:05}_label{}.png", ds.labels[i]));
        let s = ds.sample(i);
        let res = if ds.channels == 1 {
            image::GrayImage::from_raw(w, h, s.to_vec()).map(|g| g.save(&p))
        } else {
            let plane = (w * h) as usize;
            let hwc: Vec<u8> = (0..plane)
                .flat_map(|k| (0..ds.channels).map(move |c| s[c * plane + k]))
                .collect();
            image::RgbImage::from_raw(w, h, hwc).map(|g| g.save(&p))
        };
        res.context("image buffer size mismatch")?
            .with_context(|| format!("cannot write {}", p.display()))?;
        out.push(p);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(path: &Path, format: Format) -> LoadSpec {
        LoadSpec {
            path: path.to_path_buf(),
            format,
            classes: 10,
            size: (2, 2),
            color: ColorMode::Gray,
        }
    }

    #[test]
    fn csv_errors_name_file_and_line() {
        let dir = std::env::temp_dir().join(format!("vt-csv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("d.csv");
        std::fs::write(&p, "0,1,2,3,4\n0,1,2,3\n").unwrap();
        let e = Dataset::load(&spec(&p, Format::Auto))
            .unwrap_err()
            .to_string();
        assert!(e.contains("d.csv") && e.contains("line 2"), "{e}");
        std::fs::write(&p, "0,1,2,3,4\n0,1,2,3,12\n").unwrap();
        let e = Dataset::load(&spec(&p, Format::Csv))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && e.contains("out of range"), "{e}");
        std::fs::write(&p, "0,1,x,3,4\n").unwrap();
        let e = Dataset::load(&spec(&p, Format::Csv))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 1") && e.contains("`x`"), "{e}");
        std::fs::write(&p, "0,1,2,3,4\n9,8,7,6,5\n").unwrap();
        let d = Dataset::load(&spec(&p, Format::Csv)).unwrap();
        assert_eq!((d.len(), d.labels.clone()), (2, vec![4, 5]));
        assert_eq!(d.sample(1), &[9, 8, 7, 6]);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn idx_round_trip_and_truncation() {
        let dir = std::env::temp_dir().join(format!("vt-idx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut img = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2];
        img.extend([1, 2, 3, 4, 5, 6, 7, 8]);
        std::fs::write(dir.join("train-images-idx3-ubyte"), &img).unwrap();
        // Gzipped labels.
        let mut gz = flate2::write::GzEncoder::new(vec![], flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &[0, 0, 8, 1, 0, 0, 0, 2, 3, 9]).unwrap();
        std::fs::write(dir.join("train-labels-idx1-ubyte.gz"), gz.finish().unwrap()).unwrap();
        let d = Dataset::load(&spec(&dir, Format::Auto)).unwrap();
        assert_eq!((d.width, d.height, d.len()), (2, 2, 2));
        assert_eq!(d.labels, vec![3, 9]);
        assert_eq!(d.sample(1), &[5, 6, 7, 8]);
        img.pop();
        std::fs::write(dir.join("train-images-idx3-ubyte"), &img).unwrap();
        let e = Dataset::load(&spec(&dir, Format::Idx))
            .unwrap_err()
            .to_string();
        assert!(e.contains("truncated"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn split_is_seeded_and_complete() {
        let d = Dataset {
            width: 1,
            height: 1,
            channels: 1,
            pixels: (0..100).collect(),
            labels: (0..100).collect(),
            classes: vec![],
            skipped: 0,
        };
        let (a, b) = d.split(0.2, 7).unwrap();
        let (a2, _) = d.split(0.2, 7).unwrap();
        assert_eq!((a.len(), b.len()), (80, 20));
        assert_eq!(a.labels, a2.labels);
        let mut all: Vec<u32> = a.labels.iter().chain(&b.labels).copied().collect();
        all.sort();
        assert_eq!(all, (0..100).collect::<Vec<u32>>());
        assert_eq!(
            a.pixels[..5],
            a.labels[..5].iter().map(|&v| v as u8).collect::<Vec<_>>()[..]
        );
    }
}
