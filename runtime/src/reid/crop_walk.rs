//! [`CropWalk`]: the frames of a video with its tracked people's boxes (MOTChallenge tracks),
//! for mining and scoring appearance embeddings.

use image::RgbImage;

use crate::detection::BBox;
use crate::error::Error;
use crate::mot::MotRow;
use crate::source::{open_source, SourceOptions};

/// Which frames of a video to visit and which boxes to keep.
#[derive(Debug, Clone, Copy)]
pub struct CropWalk {
    /// First frame (1-based, as MOTChallenge numbers them).
    pub from_frame: u64,
    /// Last frame (1-based, inclusive).
    pub to_frame: u64,
    /// Visit every Nth frame from `from_frame` (at least 1).
    pub every: u64,
    /// A box overlapping another person's above this IoU is left out (its crop shows two people).
    pub max_overlap: f32,
}

impl Default for CropWalk {
    fn default() -> Self {
        CropWalk {
            from_frame: 1,
            to_frame: u64::MAX,
            every: 1,
            max_overlap: 0.2,
        }
    }
}

impl CropWalk {
    /// Decodes `video` and calls `visit(frame_number, image, boxes, track_ids)` for each visited
    /// frame that has a kept box; returns the number of frames visited.
    pub fn run<E: From<Error>>(
        &self,
        video: &str,
        tracks: &[MotRow],
        mut visit: impl FnMut(u64, &RgbImage, &[BBox], &[u64]) -> Result<(), E>,
    ) -> Result<usize, E> {
        let every = self.every.max(1);
        let mut source = open_source(video, &SourceOptions::default())?;
        let (mut boxes, mut owners, mut visited) = (Vec::new(), Vec::new(), 0);
        while let Some(frame) = source.next_frame()? {
            let number = frame.index + 1;
            if number > self.to_frame {
                break;
            }
            if number < self.from_frame || !(number - self.from_frame).is_multiple_of(every) {
                continue;
            }
            let here: Vec<(i64, BBox)> = tracks
                .iter()
                .filter(|r| r.frame == number && r.id >= 0)
                .map(|r| (r.id, r.bbox()))
                .collect();
            boxes.clear();
            owners.clear();
            for (id, b) in &here {
                let overlapped = here
                    .iter()
                    .any(|(o, ob)| o != id && ob.iou(b) > self.max_overlap);
                if !overlapped {
                    boxes.push(*b);
                    owners.push(*id as u64);
                }
            }
            if !boxes.is_empty() {
                visited += 1;
                visit(number, &frame.image, &boxes, &owners)?;
            }
        }
        Ok(visited)
    }
}
