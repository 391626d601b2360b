//! ByteTrack update cost: 10 and 100 detections per frame.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use vigia::track::bytetrack::{ByteTrackConfig, ByteTracker};
use vigia::track::Tracker;
use vigia_benches::walking_people;

fn tracker_update(c: &mut Criterion) {
    let mut group = c.benchmark_group("bytetrack_update");
    for n in [10usize, 100] {
        // 60 frames of motion, replayed in a loop after warm-up.
        let frames: Vec<_> = (0..60).map(|f| walking_people(n, f)).collect();
        group.bench_with_input(BenchmarkId::from_parameter(n), &frames, |b, frames| {
            let mut tracker = ByteTracker::new(ByteTrackConfig::default()).expect("config");
            let mut i = 0usize;
            let mut t = 0.0;
            b.iter(|| {
                let out = tracker.update(&frames[i % frames.len()], t).len();
                i += 1;
                t += 1.0 / 30.0;
                if i.is_multiple_of(frames.len()) {
                    tracker.reset();
                }
                out
            })
        });
    }
    group.finish();
}

criterion_group!(benches, tracker_update);
criterion_main!(benches);
