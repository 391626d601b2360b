//! End-to-end cost on real video: NanoDet on vtest.avi frames, inference alone versus the whole
//! pipeline (ffmpeg decode, preprocess, inference, decode, annotated H.264 video and JSON lines).
//! Both report time per frame, so their ratio is the pipeline's overhead.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vigia::decode::DecodeParams;
use vigia::detector::Detector;
use vigia::model::Task;
use vigia::pipeline::{self, PipelineConfig};
use vigia::resolve::{load_model, LoadOptions};
use vigia::sink::{OutputOptions, Outputs};
use vigia::source::pool::FramePool;
use vigia::source::video::open_ffmpeg;
use vigia::source::FrameSource;

const FRAMES: u64 = 20;

fn detector() -> Detector {
    Detector::new(load_model(None, Some(Task::Detect), &LoadOptions::default()).expect("model"))
}

fn pipeline_vs_inference(c: &mut Criterion) {
    let Some(shared) = vigia_benches::shared() else {
        eprintln!("skipping: ../shared not found");
        return;
    };
    let video = shared.join("data/video/vtest.avi");
    let video = video.to_str().expect("path");
    // Decode the frames once for the inference-only measurement.
    let mut src = open_ffmpeg(video, 1, FramePool::new(2)).expect("ffmpeg");
    let frames: Vec<_> = (0..FRAMES)
        .map(|_| src.next_frame().expect("frame").expect("frame").image)
        .collect();
    drop(src);
    let mut group = c.benchmark_group("vtest_nanodet_416");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    group.throughput(Throughput::Elements(FRAMES));
    let mut det = detector();
    let params = DecodeParams::default();
    det.detect(&frames[0], &params).expect("detect");
    group.bench_function("inference_only_20_frames", |b| {
        b.iter(|| {
            for _ in 0..FRAMES {
                det.run_engine().expect("inference");
            }
        })
    });
    group.bench_function("detect_20_frames", |b| {
        b.iter(|| {
            let mut n = 0;
            for f in &frames {
                n += det.detect(f, &params).expect("detect").len();
            }
            n
        })
    });
    let out_dir = std::env::temp_dir().join("vigia-bench-pipeline");
    group.bench_function("full_pipeline_20_frames", |b| {
        b.iter(|| {
            let pool = FramePool::new(8);
            let source = open_ffmpeg(video, 1, pool.clone()).expect("ffmpeg");
            let outputs = Outputs::open(
                OutputOptions {
                    json: Some(out_dir.join("out.jsonl")),
                    video: Some(out_dir.join("out.mp4")),
                    fps: Some(10.0),
                    is_video: true,
                    ..OutputOptions::default()
                },
                det.labels().clone(),
            )
            .expect("outputs");
            let config = PipelineConfig {
                decode: DecodeParams::default(),
                max_frames: Some(FRAMES),
                ..PipelineConfig::default()
            };
            pipeline::run(
                Box::new(source),
                &mut det,
                None,
                None,
                Box::new(outputs),
                pool,
                &config,
                Arc::new(AtomicBool::new(false)),
            )
            .expect("pipeline")
            .frames
        })
    });
    group.finish();
}

criterion_group!(benches, pipeline_vs_inference);
criterion_main!(benches);
