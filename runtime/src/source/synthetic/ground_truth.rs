//! Ground-truth writers of a synthetic scene: MOTChallenge rows and `gt.txt` files.

use std::io::Write;
use std::path::Path;

use super::scene::{intersect, SyntheticScene};
use crate::error::{Error, Result};
use crate::mot::MotRow;

impl SyntheticScene {
    /// Ground truth of frames `0..frames` as MOTChallenge rows (`frame` 1-based, class 1,
    /// visibility in column 9) for every person whose box overlaps the image, including people
    /// fully hidden behind an occluder (visibility 0), as MOT17 annotates them.
    pub fn mot_gt_rows(&self, frames: u64) -> Vec<MotRow> {
        let image = self.image_box();
        let mut rows = Vec::new();
        for f in 0..frames {
            for g in self.ground_truth(f) {
                if intersect(&g.bbox, &image).is_none() {
                    continue;
                }
                rows.push(MotRow {
                    frame: f + 1,
                    id: g.id as i64,
                    x: g.bbox.x1 as f64,
                    y: g.bbox.y1 as f64,
                    w: g.bbox.width() as f64,
                    h: g.bbox.height() as f64,
                    conf: 1.0,
                    class: 1.0,
                    visibility: g.visibility as f64,
                });
            }
        }
        rows
    }

    /// Writes [`mot_gt_rows`](Self::mot_gt_rows) as a MOTChallenge `gt.txt`
    /// (`frame,id,x,y,w,h,1,1,visibility`).
    pub fn write_mot_gt(&self, path: impl AsRef<Path>, frames: u64) -> Result<()> {
        let path = path.as_ref();
        let io = |e| Error::Io {
            path: path.to_path_buf(),
            source: e,
        };
        let mut w = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
        for r in self.mot_gt_rows(frames) {
            writeln!(
                w,
                "{},{},{:.2},{:.2},{:.2},{:.2},1,1,{:.3}",
                r.frame, r.id, r.x, r.y, r.w, r.h, r.visibility
            )
            .map_err(io)?;
        }
        w.flush().map_err(io)
    }
}
