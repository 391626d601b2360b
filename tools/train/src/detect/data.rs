//! Detection datasets: Ultralytics YOLO txt (`data.yaml`, `images/` + mirrored `labels/`, the
//! layout `vigia-train autolabel` writes) and COCO JSON (`annotations/instances_<split>.json`);
//! letterboxing into the fixed input (vigia's own preprocessing, so training sees the pixels the
//! runtime feeds) and seeded augmentation (horizontal flip, scale jitter, colour jitter).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use burn::tensor::{Device, Tensor, TensorData};
use serde::Deserialize;
use vigia::model::{ColorOrder, InputSpec, Layout, ResizeMode};
use vigia::preprocess::Preprocessor;
use vigia::BBox;

use super::loss::TargetBox;
use crate::common::card::SCALE;
use crate::common::onnx::INPUT_NAME;
use crate::common::rng::Rng;

/// Grey level of letterbox padding (Ultralytics' 114).
pub const PAD: u8 = 114;

/// One labelled box, normalised to the image (0..1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Label {
    /// Class index.
    pub class: usize,
    /// Centre x, centre y, width, height, all / image size.
    pub cxcywh: [f32; 4],
}

/// One image and its boxes.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Image file.
    pub image: PathBuf,
    /// Its boxes.
    pub labels: Vec<Label>,
}

/// A detection dataset: class names and the two splits.
#[derive(Debug, Clone)]
pub struct DetDataset {
    /// Class names, index order.
    pub names: Vec<String>,
    /// Training images.
    pub train: Vec<Sample>,
    /// Validation images.
    pub val: Vec<Sample>,
}

/// What to do with an image that has no label file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MissingLabels {
    /// Fail, naming the file (autolabel writes one per image, empty when there is no object).
    Error,
    /// Treat the image as background (no object), as Ultralytics does.
    Background,
}

const IMAGE_EXTS: [&str; 7] = ["jpg", "jpeg", "png", "bmp", "webp", "tif", "tiff"];

fn is_image(p: &Path) -> bool {
    p.extension()
        .map(|e| IMAGE_EXTS.contains(&e.to_string_lossy().to_lowercase().as_str()))
        .unwrap_or(false)
}

/// The small part of a `data.yaml` that matters here.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DataYaml {
    /// `path:` (dataset root), if given.
    pub path: Option<String>,
    /// `train:`.
    pub train: Option<String>,
    /// `val:`.
    pub val: Option<String>,
    /// `nc:`.
    pub nc: Option<usize>,
    /// `names:` (inline list, block list or `id: name` map).
    pub names: Vec<String>,
}

/// `line` without a trailing ` # comment` (a `#` inside quotes is kept).
fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    let mut prev = ' ';
    for (i, ch) in line.char_indices() {
        match (ch, quote) {
            ('\'' | '"', None) => quote = Some(ch),
            (c, Some(q)) if c == q => quote = None,
            ('#', None) if prev == ' ' || i == 0 => return &line[..i],
            _ => {}
        }
        prev = ch;
    }
    line
}

fn unquote(s: &str) -> String {
    let s = strip_comment(s).trim();
    if s.len() >= 2
        && ((s.starts_with('\'') && s.ends_with('\'')) || (s.starts_with('"') && s.ends_with('"')))
    {
        s[1..s.len() - 1].replace("''", "'")
    } else {
        s.to_string()
    }
}

/// Splits an inline YAML list `[a, 'b, c', "d"]` into its items.
fn inline_list(s: &str) -> Vec<String> {
    let inner = s.trim().trim_start_matches('[').trim_end_matches(']');
    let mut items = Vec::new();
    let (mut cur, mut quote) = (String::new(), None::<char>);
    for ch in inner.chars() {
        match (ch, quote) {
            ('\'' | '"', None) => {
                quote = Some(ch);
                cur.push(ch)
            }
            (c, Some(q)) if c == q => {
                quote = None;
                cur.push(ch)
            }
            (',', None) => items.push(std::mem::take(&mut cur)),
            _ => cur.push(ch),
        }
    }
    if !cur.trim().is_empty() {
        items.push(cur);
    }
    items.iter().map(|i| unquote(i)).collect()
}

impl DataYaml {
    /// Parses the keys `path`, `train`, `val`, `nc` and `names`; `file` names errors.
    pub fn parse(text: &str, file: &Path) -> Result<Self> {
        let mut y = DataYaml::default();
        let mut in_names = false;
        let mut map_names: Vec<(usize, String)> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = strip_comment(raw);
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let indented = line.starts_with(' ') || line.starts_with('\t');
            if in_names && indented {
                let item = line.trim();
                if let Some(rest) = item.strip_prefix("- ") {
                    y.names.push(unquote(rest));
                } else if let Some((k, v)) = item.split_once(':') {
                    let id = k.trim().parse::<usize>().map_err(|_| {
                        anyhow::anyhow!(
                            "{}:{}: `{}` is not a class id",
                            file.display(),
                            i + 1,
                            k.trim()
                        )
                    })?;
                    map_names.push((id, unquote(v)));
                } else {
                    bail!(
                        "{}:{}: cannot read names entry `{item}`",
                        file.display(),
                        i + 1
                    );
                }
                continue;
            }
            in_names = false;
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match key.trim() {
                "path" => y.path = Some(unquote(value)),
                "train" => y.train = Some(unquote(value)),
                "val" => y.val = Some(unquote(value)),
                "nc" => {
                    y.nc = Some(value.parse().map_err(|_| {
                        anyhow::anyhow!(
                            "{}:{}: nc `{value}` is not a number",
                            file.display(),
                            i + 1
                        )
                    })?)
                }
                "names" if value.is_empty() => in_names = true,
                "names" if value.starts_with('[') => y.names = inline_list(value),
                "names" => bail!(
                    "{}:{}: names must be a list or an id: name map",
                    file.display(),
                    i + 1
                ),
                _ => {}
            }
        }
        if !map_names.is_empty() {
            map_names.sort();
            for (k, (id, _)) in map_names.iter().enumerate() {
                if *id != k {
                    bail!("{}: names ids must be 0..N without gaps", file.display());
                }
            }
            y.names = map_names.into_iter().map(|(_, n)| n).collect();
        }
        if y.names.is_empty() {
            if let Some(nc) = y.nc {
                y.names = (0..nc).map(|c| c.to_string()).collect();
            }
        }
        if y.names.is_empty() {
            bail!("{}: no `names:` (and no `nc:`)", file.display());
        }
        if let Some(nc) = y.nc {
            if nc != y.names.len() {
                bail!(
                    "{}: nc is {nc} but names lists {} classes",
                    file.display(),
                    y.names.len()
                );
            }
        }
        Ok(y)
    }
}

/// The label file Ultralytics pairs with `image`: the last `images` folder becomes `labels`,
/// the extension `.txt`.
pub fn label_path_for(image: &Path) -> Option<PathBuf> {
    let comps: Vec<_> = image.components().collect();
    let pos = comps.iter().rposition(|c| c.as_os_str() == "images")?;
    let mut p = PathBuf::new();
    for (k, c) in comps.iter().enumerate() {
        if k == pos {
            p.push("labels");
        } else {
            p.push(c.as_os_str());
        }
    }
    Some(p.with_extension("txt"))
}

/// Reads one YOLO label file; errors name the file and line.
pub fn read_label_file(path: &Path, classes: usize) -> Result<Vec<Label>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{}:{}", path.display(), i + 1);
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() != 5 {
            bail!(
                "{}: expected `class cx cy w h`, found {} field(s): `{}`",
                at(),
                fields.len(),
                line.trim()
            );
        }
        let class: usize = fields[0].parse().map_err(|_| {
            anyhow::anyhow!(
                "{}: class `{}` is not a non-negative integer",
                at(),
                fields[0]
            )
        })?;
        if class >= classes {
            bail!(
                "{}: class {class} is out of range (the dataset has {classes} classes)",
                at()
            );
        }
        let mut v = [0f32; 4];
        for (k, slot) in v.iter_mut().enumerate() {
            *slot = fields[k + 1]
                .parse::<f32>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| anyhow::anyhow!("{}: `{}` is not a number", at(), fields[k + 1]))?;
        }
        let [cx, cy, w, h] = v;
        let tol = 1e-3;
        if !(w > 0.0 && h > 0.0)
            || cx - w / 2.0 < -tol
            || cy - h / 2.0 < -tol
            || cx + w / 2.0 > 1.0 + tol
            || cy + h / 2.0 > 1.0 + tol
        {
            bail!(
                "{}: box `{} {} {} {}` is not a normalised box inside the image",
                at(),
                cx,
                cy,
                w,
                h
            );
        }
        out.push(Label { class, cxcywh: v });
    }
    Ok(out)
}

fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("cannot read {}", d.display()))? {
            let p = e
                .with_context(|| format!("cannot read {}", d.display()))?
                .path();
            if p.is_dir() {
                stack.push(p);
            } else if is_image(&p) {
                v.push(p);
            }
        }
    }
    v.sort();
    Ok(v)
}

fn yolo_split(
    root: &Path,
    spec: &str,
    classes: usize,
    missing: MissingLabels,
    yaml: &Path,
) -> Result<Vec<Sample>> {
    let dir = root.join(spec);
    if !dir.is_dir() {
        bail!(
            "{}: image folder {} does not exist",
            yaml.display(),
            dir.display()
        );
    }
    let mut out = Vec::new();
    for image in list_images(&dir)? {
        let label = label_path_for(&image).with_context(|| {
            format!(
                "{}: no `images` folder in its path to mirror as `labels`",
                image.display()
            )
        })?;
        let labels = if label.is_file() {
            read_label_file(&label, classes)?
        } else {
            match missing {
                MissingLabels::Error => bail!(
                    "label file {} for {} is missing (--missing-labels background treats such images as empty)",
                    label.display(),
                    image.display()
                ),
                MissingLabels::Background => Vec::new(),
            }
        };
        out.push(Sample { image, labels });
    }
    Ok(out)
}

/// Reads an Ultralytics YOLO-txt dataset from its `data.yaml` (or the folder holding it).
pub fn read_yolo(path: &Path, missing: MissingLabels) -> Result<DetDataset> {
    let yaml = if path.is_dir() {
        path.join("data.yaml")
    } else {
        path.to_path_buf()
    };
    let text = std::fs::read_to_string(&yaml)
        .with_context(|| format!("cannot read {}", yaml.display()))?;
    let y = DataYaml::parse(&text, &yaml)?;
    let base = yaml.parent().unwrap_or(Path::new("."));
    let root = match &y.path {
        Some(p) if Path::new(p).is_absolute() => PathBuf::from(p),
        Some(p) => base.join(p),
        None => base.to_path_buf(),
    };
    let train = y
        .train
        .as_deref()
        .with_context(|| format!("{}: no `train:` folder", yaml.display()))?;
    let val = y
        .val
        .as_deref()
        .with_context(|| format!("{}: no `val:` folder", yaml.display()))?;
    let n = y.names.len();
    Ok(DetDataset {
        train: yolo_split(&root, train, n, missing, &yaml)?,
        val: yolo_split(&root, val, n, missing, &yaml)?,
        names: y.names,
    })
}

#[derive(Deserialize)]
struct CocoFile {
    images: Vec<CocoImage>,
    #[serde(default)]
    annotations: Vec<CocoAnnotation>,
    categories: Vec<CocoCategory>,
}

#[derive(Deserialize)]
struct CocoImage {
    id: u64,
    file_name: String,
    width: f64,
    height: f64,
}

#[derive(Deserialize)]
struct CocoAnnotation {
    #[serde(default)]
    id: u64,
    image_id: u64,
    category_id: u64,
    bbox: [f64; 4],
    #[serde(default)]
    iscrowd: u8,
}

#[derive(Deserialize)]
struct CocoCategory {
    id: u64,
    name: String,
}

/// Reads one COCO split: `root/annotations/instances_<split>.json`, images in `root/<split>/` or
/// `root/images/<split>/`. Classes are the categories sorted by id; crowd boxes are skipped.
fn coco_split(root: &Path, split: &str) -> Result<(Vec<String>, Vec<Sample>)> {
    let json = root
        .join("annotations")
        .join(format!("instances_{split}.json"));
    let text = std::fs::read_to_string(&json)
        .with_context(|| format!("cannot read {}", json.display()))?;
    let f: CocoFile = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a COCO instances file", json.display()))?;
    let mut cats: Vec<&CocoCategory> = f.categories.iter().collect();
    cats.sort_by_key(|c| c.id);
    let cat_index: HashMap<u64, usize> = cats.iter().enumerate().map(|(i, c)| (c.id, i)).collect();
    let names = cats.iter().map(|c| c.name.clone()).collect();
    let dir = [root.join(split), root.join("images").join(split)]
        .into_iter()
        .find(|d| d.is_dir())
        .with_context(|| {
            format!(
                "{}: no image folder {} or {}",
                json.display(),
                root.join(split).display(),
                root.join("images").join(split).display()
            )
        })?;
    let mut index: HashMap<u64, usize> = HashMap::new();
    let mut samples: Vec<Sample> = Vec::new();
    let mut sizes = Vec::new();
    for im in &f.images {
        if !(im.width > 0.0 && im.height > 0.0) {
            bail!(
                "{}: image {} ({}) has no size",
                json.display(),
                im.id,
                im.file_name
            );
        }
        index.insert(im.id, samples.len());
        samples.push(Sample {
            image: dir.join(&im.file_name),
            labels: Vec::new(),
        });
        sizes.push((im.width, im.height));
    }
    for (k, a) in f.annotations.iter().enumerate() {
        if a.iscrowd != 0 {
            continue;
        }
        let at = || format!("{}: annotation {} (id {})", json.display(), k, a.id);
        let &i = index
            .get(&a.image_id)
            .with_context(|| format!("{}: unknown image_id {}", at(), a.image_id))?;
        let &class = cat_index
            .get(&a.category_id)
            .with_context(|| format!("{}: unknown category_id {}", at(), a.category_id))?;
        let (w, h) = sizes[i];
        let [x, y, bw, bh] = a.bbox;
        let finite = [x, y, bw, bh].iter().all(|v| v.is_finite());
        if !finite || bw <= 0.0 || bh <= 0.0 {
            bail!("{}: bbox {:?} is empty or not finite", at(), a.bbox);
        }
        let x1 = x.clamp(0.0, w);
        let y1 = y.clamp(0.0, h);
        let x2 = (x + bw).clamp(0.0, w);
        let y2 = (y + bh).clamp(0.0, h);
        if x2 - x1 < 1e-6 || y2 - y1 < 1e-6 {
            continue;
        }
        samples[i].labels.push(Label {
            class,
            cxcywh: [
                ((x1 + x2) / 2.0 / w) as f32,
                ((y1 + y2) / 2.0 / h) as f32,
                ((x2 - x1) / w) as f32,
                ((y2 - y1) / h) as f32,
            ],
        });
    }
    Ok((names, samples))
}

/// Reads a COCO dataset folder with the `train` and `val` splits named (e.g. train2017, val2017).
pub fn read_coco(root: &Path, train: &str, val: &str) -> Result<DetDataset> {
    let (names, train_s) = coco_split(root, train)?;
    let (val_names, val_s) = coco_split(root, val)?;
    if names != val_names {
        bail!(
            "{}: the categories of instances_{train}.json and instances_{val}.json differ",
            root.display()
        );
    }
    Ok(DetDataset {
        names,
        train: train_s,
        val: val_s,
    })
}

/// An image letterboxed into the network input, as `u8` CHW RGB, with its boxes in input pixels.
#[derive(Debug, Clone)]
pub struct Letterboxed {
    /// `3 * H * W` pixels, CHW.
    pub pixels: Vec<u8>,
    /// Boxes in input pixels.
    pub boxes: Vec<TargetBox>,
}

/// Images of one split letterboxed into the input (cached in memory).
#[derive(Debug, Clone)]
pub struct DetSet {
    /// Input width.
    pub width: usize,
    /// Input height.
    pub height: usize,
    /// The images.
    pub items: Vec<Letterboxed>,
    /// Their files.
    pub files: Vec<PathBuf>,
    /// Images that could not be decoded (skipped).
    pub skipped: Vec<PathBuf>,
}

/// vigia's input spec for the detector's input: RGB, letterboxed with grey 114, pixel / 255.
pub fn input_spec(width: usize, height: usize) -> InputSpec {
    InputSpec {
        name: Some(INPUT_NAME.into()),
        layout: Layout::Nchw,
        width: width as u32,
        height: height as u32,
        color: ColorOrder::Rgb,
        scale: SCALE,
        mean: [0.0; 3],
        std: [1.0; 3],
        resize: ResizeMode::Letterbox,
        pad_value: PAD,
    }
}

impl DetSet {
    /// Decodes and letterboxes `samples` with vigia's preprocessing; undecodable images are skipped.
    pub fn build(samples: &[Sample], width: usize, height: usize) -> Result<DetSet> {
        let mut spec = input_spec(width, height);
        spec.scale = 1.0; // keep 0..255 to store bytes
        let mut pre = Preprocessor::new(&spec);
        let mut buf = vec![0f32; 3 * width * height];
        let mut set = DetSet {
            width,
            height,
            items: Vec::with_capacity(samples.len()),
            files: Vec::with_capacity(samples.len()),
            skipped: Vec::new(),
        };
        for s in samples {
            let img = match image::open(&s.image) {
                Ok(i) => i.to_rgb8(),
                Err(_) => {
                    set.skipped.push(s.image.clone());
                    continue;
                }
            };
            let (iw, ih) = (img.width() as f32, img.height() as f32);
            let t = pre
                .run(&img, &mut buf)
                .map_err(|e| anyhow::anyhow!("cannot preprocess {}: {e}", s.image.display()))?;
            let boxes = s
                .labels
                .iter()
                .map(|l| {
                    let [cx, cy, w, h] = l.cxcywh;
                    let b = t.to_input(&BBox::from_cxcywh(cx * iw, cy * ih, w * iw, h * ih));
                    let (cx, cy) = b.center();
                    TargetBox {
                        class: l.class,
                        cx,
                        cy,
                        w: b.width(),
                        h: b.height(),
                    }
                })
                .collect();
            set.items.push(Letterboxed {
                pixels: buf
                    .iter()
                    .map(|v| v.round().clamp(0.0, 255.0) as u8)
                    .collect(),
                boxes,
            });
            set.files.push(s.image.clone());
        }
        Ok(set)
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when no image was kept.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// Augmentation strengths (all off = the letterboxed image as is).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Augment {
    /// Probability of a horizontal flip.
    pub flip: f32,
    /// Scale jitter: zoom by a factor in `[1 - s, 1 + s]`, with a random shift of the image.
    pub scale: f32,
    /// Colour jitter: brightness, contrast and saturation factors in `[1 - c, 1 + c]`.
    pub color: f32,
}

impl Augment {
    /// No augmentation.
    pub const NONE: Augment = Augment {
        flip: 0.0,
        scale: 0.0,
        color: 0.0,
    };
}

/// Writes image `item` into `dst` (`3 * H * W`, pixel / 255) with augmentation drawn from `rng`,
/// and returns its boxes after the same transform (boxes mostly cut off are dropped).
pub fn augment_into(
    item: &Letterboxed,
    w: usize,
    h: usize,
    aug: &Augment,
    rng: &mut Rng,
    dst: &mut [f32],
) -> Vec<TargetBox> {
    let flip = rng.unit() < aug.flip;
    let s = 1.0 + aug.scale * (2.0 * rng.unit() - 1.0);
    // Shift so the zoomed image still covers a random part of the frame.
    let free_x = (w as f32 * (1.0 - s)).abs();
    let free_y = (h as f32 * (1.0 - s)).abs();
    let tx = if aug.scale > 0.0 {
        let lo = (w as f32 * (1.0 - s)).min(0.0);
        lo + rng.unit() * free_x
    } else {
        0.0
    };
    let ty = if aug.scale > 0.0 {
        let lo = (h as f32 * (1.0 - s)).min(0.0);
        lo + rng.unit() * free_y
    } else {
        0.0
    };
    let jitter = |rng: &mut Rng| 1.0 + aug.color * (2.0 * rng.unit() - 1.0);
    let (bright, contrast, sat) = (jitter(rng), jitter(rng), jitter(rng));
    let plane = w * h;
    let src = &item.pixels;
    let identity = !flip && aug.scale == 0.0;
    for y in 0..h {
        for x in 0..w {
            let xo = if flip { w - 1 - x } else { x } as f32;
            let mut rgb = [PAD as f32; 3];
            if identity {
                for (c, v) in rgb.iter_mut().enumerate() {
                    *v = src[c * plane + y * w + x] as f32;
                }
            } else {
                // Output pixel centre -> source coordinates, bilinear.
                let sx = (xo + 0.5 - tx) / s - 0.5;
                let sy = (y as f32 + 0.5 - ty) / s - 0.5;
                if sx > -1.0 && sy > -1.0 && sx < w as f32 && sy < h as f32 {
                    let (x0, y0) = (sx.floor(), sy.floor());
                    let (fx, fy) = (sx - x0, sy - y0);
                    let (x0, y0) = (x0 as i64, y0 as i64);
                    let at = |c: usize, xx: i64, yy: i64| -> f32 {
                        if xx < 0 || yy < 0 || xx >= w as i64 || yy >= h as i64 {
                            PAD as f32
                        } else {
                            src[c * plane + yy as usize * w + xx as usize] as f32
                        }
                    };
                    for (c, v) in rgb.iter_mut().enumerate() {
                        *v = at(c, x0, y0) * (1.0 - fx) * (1.0 - fy)
                            + at(c, x0 + 1, y0) * fx * (1.0 - fy)
                            + at(c, x0, y0 + 1) * (1.0 - fx) * fy
                            + at(c, x0 + 1, y0 + 1) * fx * fy;
                    }
                }
            }
            if aug.color > 0.0 {
                let grey = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2];
                for v in rgb.iter_mut() {
                    let sat_v = grey + (*v - grey) * sat;
                    *v = ((sat_v - 128.0) * contrast + 128.0) * bright;
                }
            }
            for (c, v) in rgb.iter().enumerate() {
                dst[c * plane + y * w + x] = v.clamp(0.0, 255.0) * SCALE;
            }
        }
    }
    item.boxes
        .iter()
        .filter_map(|b| {
            // As the pixels: zoom and shift, then mirror the output.
            let (mut x1, mut x2) = ((b.cx - b.w / 2.0) * s + tx, (b.cx + b.w / 2.0) * s + tx);
            let (y1, y2) = ((b.cy - b.h / 2.0) * s + ty, (b.cy + b.h / 2.0) * s + ty);
            if flip {
                (x1, x2) = (w as f32 - x2, w as f32 - x1);
            }
            let area = (x2 - x1) * (y2 - y1);
            let (cx1, cx2) = (x1.max(0.0), x2.min(w as f32));
            let (cy1, cy2) = (y1.max(0.0), y2.min(h as f32));
            let (cw, ch) = (cx2 - cx1, cy2 - cy1);
            (cw >= 2.0 && ch >= 2.0 && cw * ch >= 0.4 * area).then_some(TargetBox {
                class: b.class,
                cx: (cx1 + cx2) / 2.0,
                cy: (cy1 + cy2) / 2.0,
                w: cw,
                h: ch,
            })
        })
        .collect()
}

/// A batch `[B, 3, H, W]` of images `idx` of `set` and their boxes; augmented when `rng` is given.
pub fn batch(
    set: &DetSet,
    idx: &[usize],
    device: &Device,
    aug: Option<(&Augment, &mut Rng)>,
) -> (Tensor<4>, Vec<Vec<TargetBox>>) {
    let (w, h) = (set.width, set.height);
    let n = 3 * w * h;
    let mut x = vec![0f32; idx.len() * n];
    let mut targets = Vec::with_capacity(idx.len());
    let none = Augment::NONE;
    let mut scratch = Rng::new(0);
    let (a, rng) = match aug {
        Some((a, r)) => (a, r),
        None => (&none, &mut scratch),
    };
    for (k, &i) in idx.iter().enumerate() {
        targets.push(augment_into(
            &set.items[i],
            w,
            h,
            a,
            rng,
            &mut x[k * n..(k + 1) * n],
        ));
    }
    (
        Tensor::from_data(TensorData::new(x, [idx.len(), 3, h, w]), device),
        targets,
    )
}
