//! ByteTrack update cost (10 and 100 detections per frame), and the same with appearance
//! re-identification (colour histograms) on a 1920x1080 frame.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use image::{Rgb, RgbImage};
use vigia::reid::{ColourShares, Embedder, HistogramEmbedder};
use vigia::track::bytetrack::{ByteTrackConfig, ByteTracker};
use vigia::track::reid::{ReidConfig, ReidTracker};
use vigia::track::Tracker;
use vigia_benches::walking_people;

/// A colourful 1920x1080 frame (every pixel different, so histograms have work to do).
fn frame() -> RgbImage {
    RgbImage::from_fn(1920, 1080, |x, y| {
        Rgb([
            (x * 7 % 256) as u8,
            (y * 5 % 256) as u8,
            ((x + y) * 3 % 256) as u8,
        ])
    })
}

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

fn reid(c: &mut Criterion) {
    let image = frame();
    let people = walking_people(10, 0);
    let boxes: Vec<_> = people.iter().map(|d| d.bbox).collect();
    let mut out = Vec::new();
    let mut embedder = HistogramEmbedder::new();
    c.bench_function("hist_embed/10_people", |b| {
        b.iter(|| {
            embedder.embed(&image, &boxes, &mut out).expect("embed");
            out.len()
        })
    });
    c.bench_function("colour_shares/10_people", |b| {
        b.iter(|| {
            boxes
                .iter()
                .filter_map(|bb| ColourShares::of_box(&image, bb))
                .count()
        })
    });
    let frames: Vec<_> = (0..60).map(|f| walking_people(10, f)).collect();
    c.bench_function("reid_update/10", |b| {
        let inner = ByteTracker::new(ByteTrackConfig {
            report_lost: true,
            ..ByteTrackConfig::default()
        })
        .expect("config");
        let mut tracker = ReidTracker::new(
            inner,
            Box::new(HistogramEmbedder::new()),
            ReidConfig::default(),
        )
        .expect("config");
        let mut i = 0usize;
        let mut t = 0.0;
        b.iter(|| {
            let out = tracker
                .update_frame(&image, &frames[i % frames.len()], t)
                .expect("update")
                .len();
            i += 1;
            t += 1.0 / 30.0;
            if i.is_multiple_of(frames.len()) {
                tracker.reset();
            }
            out
        })
    });
}

criterion_group!(benches, tracker_update, reid);
criterion_main!(benches);
