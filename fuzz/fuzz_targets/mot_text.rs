//! MOTChallenge text (`vigia track --detections`, `vigia eval-mot`): parse, write back, track
//! the rows with ByteTrack and score them against themselves.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigia::mot::{detections_by_frame, evaluate, parse_mot, write_mot_row};
use vigia::track::bytetrack::ByteTracker;
use vigia::track::Tracker;

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
    let by_frame = detections_by_frame(&rows);
    let mut tracker = ByteTracker::default();
    for (frame, dets) in &by_frame {
        let _ = tracker.update(dets, *frame as f64 / 30.0);
    }
    let m = evaluate(&rows, &again, 0.5);
    assert!(m.num_gt <= rows.len() as u64);
});
