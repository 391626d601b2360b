//! Still images: a file, a folder of images, or a glob pattern.

use std::path::{Path, PathBuf};

use image::RgbImage;

use super::{Frame, FrameSource, SourceHealth, SourceInfo};
use crate::error::{Error, Result};

/// Images of a file, folder or glob, one frame each; undecodable images are skipped and counted.
pub struct ImageSource {
    paths: Vec<PathBuf>,
    next: usize,
    info: SourceInfo,
    skipped: u64,
}

impl ImageSource {
    /// Lists the images of `spec`; `fps` sets frame timestamps for image sequences.
    pub fn open(spec: &str, fps: Option<f64>) -> Result<Self> {
        let paths = list_images(spec)?;
        Ok(ImageSource {
            info: SourceInfo {
                name: spec.to_string(),
                width: 0,
                height: 0,
                fps,
                frames: Some(paths.len() as u64),
                live: false,
            },
            paths,
            next: 0,
            skipped: 0,
        })
    }
}

impl FrameSource for ImageSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn next_frame(&mut self) -> Result<Option<Frame>> {
        while let Some(path) = self.paths.get(self.next) {
            let index = self.next as u64;
            self.next += 1;
            match load_rgb(path) {
                Ok(image) => {
                    return Ok(Some(Frame {
                        index,
                        timestamp: index as f64 / self.info.fps.unwrap_or(1.0),
                        image,
                        origin: path.display().to_string(),
                    }))
                }
                Err(e) => {
                    eprintln!("vigia: skipping {e}");
                    self.skipped += 1;
                }
            }
        }
        Ok(None)
    }

    fn health(&self) -> SourceHealth {
        SourceHealth {
            corrupt_frames: self.skipped,
            reconnects: 0,
        }
    }
}

/// File extensions read as images.
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "bmp", "webp"];

/// True when `p` has an image extension.
pub fn is_image_path(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// Expands `--source` into image paths: a file, a folder (its images, sorted, not recursive) or a glob.
pub fn list_images(spec: &str) -> Result<Vec<PathBuf>> {
    let path = Path::new(spec);
    let not_found = |reason: String| Error::SourceOpen {
        source_name: spec.to_string(),
        reason,
    };
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    if path.is_dir() {
        let entries = std::fs::read_dir(path).map_err(|e| Error::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && is_image_path(p))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(not_found(format!(
                "the folder holds no images ({})",
                IMAGE_EXTENSIONS.join(", ")
            )));
        }
        return Ok(files);
    }
    if spec.contains(['*', '?', '[']) {
        let pattern = glob::glob(spec).map_err(|e| not_found(format!("bad glob pattern: {e}")))?;
        let mut files: Vec<PathBuf> = pattern
            .filter_map(|p| p.ok())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(not_found("the pattern matches no files".into()));
        }
        return Ok(files);
    }
    Err(not_found("no such file or folder".into()))
}

/// Decodes an image file into RGB8; errors name the file.
pub fn load_rgb(path: &Path) -> Result<RgbImage> {
    let bad = |reason: String| Error::Image {
        path: path.to_path_buf(),
        reason,
    };
    let reader = image::ImageReader::open(path)
        .map_err(|e| Error::Io {
            path: path.to_path_buf(),
            source: e,
        })?
        .with_guessed_format()
        .map_err(|e| bad(e.to_string()))?;
    if reader.format().is_none() {
        return Err(bad(
            "unrecognised image format (supported: JPEG, PNG, BMP, WebP)".into(),
        ));
    }
    let img = reader
        .decode()
        .map_err(|e| bad(format!("cannot decode: {e}")))?;
    if img.width() == 0 || img.height() == 0 {
        return Err(bad("image has zero size".into()));
    }
    Ok(img.into_rgb8())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_source_is_a_clear_error() {
        let e = list_images("/nonexistent/x.jpg").unwrap_err().to_string();
        assert!(
            e.contains("cannot open source") && e.contains("/nonexistent/x.jpg"),
            "{e}"
        );
        let e = list_images("/nonexistent/*.jpg").unwrap_err().to_string();
        assert!(e.contains("matches no files"), "{e}");
    }

    #[test]
    fn folder_listing_is_sorted_and_filtered() {
        let dir = std::env::temp_dir().join(format!("vigia-list-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for f in ["b.jpg", "a.PNG", "notes.txt"] {
            std::fs::write(dir.join(f), b"x").unwrap();
        }
        let files = list_images(dir.to_str().unwrap()).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(names, ["a.PNG", "b.jpg"]);
        let e = load_rgb(&dir.join("b.jpg")).unwrap_err().to_string();
        assert!(e.contains("b.jpg"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
