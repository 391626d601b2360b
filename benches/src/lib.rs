//! Shared helpers for the benchmarks: where the shared models and data are, and synthetic
//! detections for the tracker.

use std::path::PathBuf;

use vigia::{BBox, Detection};

/// `../shared` next to the checkout, if present.
pub fn shared() -> Option<PathBuf> {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared"));
    p.join("models").is_dir().then_some(p)
}

/// `n` detections of people walking in a grid, moved by `frame` steps (deterministic).
pub fn walking_people(n: usize, frame: u32) -> Vec<Detection> {
    (0..n)
        .map(|i| {
            let col = (i % 10) as f32;
            let row = (i / 10) as f32;
            let dx = frame as f32 * (1.0 + (i % 3) as f32 * 0.5);
            let x = 20.0 + col * 180.0 + dx;
            let y = 20.0 + row * 100.0 + (frame as f32 * 0.3);
            Detection {
                bbox: BBox::new(x, y, x + 40.0, y + 90.0),
                score: 0.5 + (i % 5) as f32 * 0.1,
                class_id: 0,
            }
        })
        .collect()
}
