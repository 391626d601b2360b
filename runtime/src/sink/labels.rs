//! Ultralytics-style YOLO txt labels: one file per image or frame, `class cx cy w h [conf]`,
//! coordinates normalised to 0..1.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::create_error;
use crate::detection::Detection;
use crate::error::{Error, Result};

/// Writes YOLO txt label files into a folder.
pub struct YoloTxtWriter {
    dir: PathBuf,
    with_conf: bool,
}

impl YoloTxtWriter {
    /// Creates `dir` if needed; `with_conf` appends the score to each line.
    pub fn create(dir: &Path, with_conf: bool) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| create_error("--save-txt", dir, "cannot create folder", e))?;
        Ok(YoloTxtWriter {
            dir: dir.to_path_buf(),
            with_conf,
        })
    }

    /// The label file name for a frame: `<stem>.txt` for images, `<stem>_<frame>.txt` for video.
    pub fn file_name(origin: &str, frame: Option<u64>) -> String {
        let stem = Path::new(origin)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "frame".into());
        match frame {
            Some(i) => format!("{stem}_{i}.txt"),
            None => format!("{stem}.txt"),
        }
    }

    /// Writes the detections of one frame of size `w` x `h`.
    pub fn write(&self, name: &str, dets: &[Detection], w: u32, h: u32) -> Result<()> {
        let path = self.dir.join(name);
        let mut text = String::with_capacity(dets.len() * 48);
        let (w, h) = (w.max(1) as f32, h.max(1) as f32);
        for d in dets {
            let (cx, cy) = d.bbox.center();
            text.push_str(&format!(
                "{} {:.6} {:.6} {:.6} {:.6}",
                d.class_id,
                cx / w,
                cy / h,
                d.bbox.width() / w,
                d.bbox.height() / h
            ));
            if self.with_conf {
                text.push_str(&format!(" {:.5}", d.score));
            }
            text.push('\n');
        }
        std::fs::File::create(&path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(|error| Error::Write { path, error })
    }
}

/// Parses one YOLO txt label line into (class, cx, cy, w, h, conf); errors say which field is bad.
pub fn parse_line(line: &str) -> std::result::Result<(usize, [f32; 4], Option<f32>), String> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() != 5 && fields.len() != 6 {
        return Err(format!("expected 5 or 6 fields, found {}", fields.len()));
    }
    let class = fields[0]
        .parse::<usize>()
        .map_err(|_| format!("class '{}' is not a non-negative integer", fields[0]))?;
    let mut xywh = [0f32; 4];
    for (i, v) in xywh.iter_mut().enumerate() {
        *v = fields[i + 1]
            .parse::<f32>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| format!("field {} '{}' is not a number", i + 2, fields[i + 1]))?;
    }
    let conf = fields
        .get(5)
        .map(|c| {
            c.parse::<f32>()
                .map_err(|_| format!("confidence '{c}' is not a number"))
        })
        .transpose()?;
    Ok((class, xywh, conf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BBox;

    #[test]
    fn writes_normalised_lines_that_parse_back() {
        let dir = std::env::temp_dir().join(format!("vigia-txt-{}", std::process::id()));
        let w = YoloTxtWriter::create(&dir, true).unwrap();
        let d = Detection {
            bbox: BBox::new(10.0, 20.0, 110.0, 70.0),
            score: 0.9,
            class_id: 3,
        };
        let name = YoloTxtWriter::file_name("/x/clip.mp4", Some(7));
        assert_eq!(name, "clip_7.txt");
        w.write(&name, &[d], 200, 100).unwrap();
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        let (c, xywh, conf) = parse_line(text.trim()).unwrap();
        assert_eq!(c, 3);
        assert!((xywh[0] - 0.3).abs() < 1e-6 && (xywh[1] - 0.45).abs() < 1e-6);
        assert!((xywh[2] - 0.5).abs() < 1e-6 && (xywh[3] - 0.5).abs() < 1e-6);
        assert_eq!(conf, Some(0.9));
        assert!(parse_line("1 0.5 x 0.1 0.1")
            .unwrap_err()
            .contains("field 3"));
        std::fs::remove_dir_all(&dir).ok();
    }
}
