//! MOTChallenge text (`vigia track --detections`, `vigia eval-mot`): parse, write back, track
//! the rows with ByteTrack and score them against themselves.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use vigia::mot::{evaluate, parse_mot, write_mot_row};
use vigia::track::bytetrack::ByteTracker;
use vigia::track::Tracker;
use vigia::{BBox, Detection};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(rows) = parse_mot(text, "fuzz.txt") else {
        return;
    };
    let mut written = Vec::new();
    for r in &rows {
        write_mot_row(&mut written, r).unwrap();
    }
    let again = parse_mot(std::str::from_utf8(&written).unwrap(), "again.txt")
        .expect("written rows parse again");
    assert_eq!(again.len(), rows.len());
    if rows.len() > 300 {
        return;
    }
    let mut by_frame: BTreeMap<u64, Vec<Detection>> = BTreeMap::new();
    for r in &rows {
        by_frame.entry(r.frame).or_default().push(Detection {
            bbox: BBox::new(
                r.x as f32,
                r.y as f32,
                (r.x + r.w) as f32,
                (r.y + r.h) as f32,
            ),
            score: r.conf as f32,
            class_id: 0,
        });
    }
    let mut tracker = ByteTracker::default();
    for (frame, dets) in &by_frame {
        let _ = tracker.update(dets, *frame as f64 / 30.0);
    }
    let m = evaluate(&rows, &again, 0.5);
    assert!(m.num_gt <= rows.len() as u64);
});
