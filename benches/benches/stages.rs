//! Cost per stage on real pedestrian frames (vtest.avi, 768x576), one thread, time per frame:
//! preprocess (letterbox + normalize into the input tensor), inference, decode + NMS, ByteTrack
//! update with the model's own detections, and the whole per-frame path (detect + track) on
//! frames already in memory. `frame` versus `inference` is vigia's overhead around the model.
//!
//! Models: the bundled NanoDet-m 416 (real weights) and, with ../shared, the YOLOv8n-640 graph
//! whose weights give confident, image-dependent boxes (a real decode + NMS load).

use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use image::RgbImage;
use tract_core::ndarray::ArrayViewD;
use vigia::decode::{DecodeParams, DetectorDecoder};
use vigia::detector::Detector;
use vigia::preprocess::Preprocessor;
use vigia::track::bytetrack::{ByteTrackConfig, ByteTracker};
use vigia::track::Tracker;
use vigia::Detection;
use vigia_benches::{load, models_dir, shared, use_threads, vtest_frames};

/// A frame's raw model outputs: shape and values of each.
type Outputs = Vec<(Vec<usize>, Vec<f32>)>;

const FRAMES: usize = 20;
/// vtest.avi is 10 frames per second.
const FPS: f64 = 10.0;

fn stage_benches(c: &mut Criterion) {
    let Some(frames) = vtest_frames(FRAMES) else {
        eprintln!("skipping stage benchmarks: ../shared (vtest.avi) not found");
        return;
    };
    use_threads(1);
    let mut models: Vec<(&str, PathBuf)> =
        vec![("nanodet-m-416", models_dir().join("nanodet-m-416.onnx"))];
    if let Some(s) = shared() {
        models.push((
            "yolov8n-640-hot",
            s.join("models/yolo/yolov8n-640-hot.onnx"),
        ));
    }
    for (label, path) in models {
        if !path.is_file() {
            eprintln!("skipping {label}: {} not found", path.display());
            continue;
        }
        stages(c, label, &path, &frames);
    }
}

fn stages(c: &mut Criterion, label: &str, path: &std::path::Path, frames: &[RgbImage]) {
    let mut m = load(path, None).expect("model");
    let card = m.card.clone();
    let params = DecodeParams::default();
    let mut group = c.benchmark_group(format!("stages_{label}"));
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));
    group.throughput(Throughput::Elements(1));

    let mut pre = Preprocessor::new(&card.input);
    let mut buf = vec![0f32; card.input.len()];
    let mut i = 0usize;
    group.bench_function("preprocess", |b| {
        b.iter(|| {
            i += 1;
            pre.run(&frames[i % frames.len()], &mut buf)
                .expect("preprocess")
        })
    });

    // Inference on a real frame's tensor.
    m.engine.input_mut().copy_from_slice(&buf);
    group.bench_function("inference", |b| {
        b.iter(|| m.engine.run().expect("inference"))
    });

    // Decode + NMS on each frame's real outputs (computed once, outside the timing).
    let mut decoder = DetectorDecoder::new(
        card.output.family,
        card.input.width,
        card.input.height,
        card.output.num_classes,
    );
    let outputs: Vec<Outputs> = frames
        .iter()
        .take(5)
        .map(|f| {
            pre.run(f, m.engine.input_mut()).expect("preprocess");
            m.engine.run().expect("inference");
            m.engine
                .outputs()
                .expect("outputs")
                .iter()
                .map(|o| (o.shape().to_vec(), o.iter().copied().collect()))
                .collect()
        })
        .collect();
    let views: Vec<Vec<_>> = outputs
        .iter()
        .map(|outs| {
            outs.iter()
                .map(|(shape, data)| ArrayViewD::from_shape(&shape[..], &data[..]).expect("shape"))
                .collect()
        })
        .collect();
    let mut dets: Vec<Detection> = Vec::with_capacity(300);
    let mut k = 0usize;
    group.bench_function("decode_nms", |b| {
        b.iter(|| {
            k += 1;
            decoder
                .decode(&views[k % views.len()], &params, &mut dets)
                .expect("decode");
            dets.len()
        })
    });

    // The model's own detections on every frame, for the tracker and for the report.
    let mut detector = Detector::new(m);
    let per_frame: Vec<Vec<Detection>> = frames
        .iter()
        .map(|f| detector.detect(f, &params).expect("detect").to_vec())
        .collect();
    let mean_dets = per_frame.iter().map(Vec::len).sum::<usize>() as f64 / frames.len() as f64;
    eprintln!("{label}: {mean_dets:.1} detections per frame on vtest.avi");
    let mut tracker = ByteTracker::new(ByteTrackConfig::default()).expect("tracker");
    let mut j = 0usize;
    group.bench_function("track", |b| {
        b.iter(|| {
            let n = tracker.update(&per_frame[j % FRAMES], j as f64 / FPS).len();
            j += 1;
            if j.is_multiple_of(FRAMES) {
                tracker.reset();
            }
            n
        })
    });

    let mut tracker = ByteTracker::new(ByteTrackConfig::default()).expect("tracker");
    let mut j = 0usize;
    group.bench_function("frame", |b| {
        b.iter(|| {
            let dets = detector
                .detect(&frames[j % FRAMES], &params)
                .expect("detect");
            let n = tracker.update(dets, j as f64 / FPS).len();
            j += 1;
            if j.is_multiple_of(FRAMES) {
                tracker.reset();
            }
            n
        })
    });
    group.finish();
}

criterion_group!(benches, stage_benches);
criterion_main!(benches);
