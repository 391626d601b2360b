//! Startup cost of NanoDet-m 416, from the ONNX file on disk to a ready plan: without the cache
//! (read, parse the protobuf, type, declutter, optimize) versus from the cached pre-decluttered
//! `.nnef.tar` (read and hash the ONNX bytes, read the entry, optimize), in f32 and in f16 (the
//! rpi5 / jetson-orin profiles; on x86-64 f16 only measures the load path, not fast kernels).

use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use vigia::engine::tract::load_cached;
use vigia::engine::{BuildOptions, ModelSource, OnnxGraph, TractEngine};

const SHAPE: [usize; 4] = [1, 3, 416, 416];

fn startup(c: &mut Criterion) {
    let onnx = vigia_benches::models_dir().join("nanodet-m-416.onnx");
    let source = ModelSource::File(onnx.clone());
    let cache_dir: PathBuf =
        std::env::temp_dir().join(format!("vigia-bench-startup-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache_dir);

    let mut group = c.benchmark_group("startup_nanodet_416");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    for half in [false, true] {
        let precision = if half { "f16" } else { "f32" };
        let uncached = BuildOptions {
            half,
            cache_dir: None,
            ..BuildOptions::default()
        };
        let cached = BuildOptions {
            half,
            cache_dir: Some(cache_dir.clone()),
            ..BuildOptions::default()
        };
        // Write the entry once, outside the measurement.
        let graph = OnnxGraph::open(source.clone()).expect("nanodet-m-416.onnx");
        TractEngine::build_with(&graph, &SHAPE, &cached).expect("cache entry");
        drop(graph);
        group.bench_function(format!("cold_onnx_file_to_plan_{precision}"), |b| {
            b.iter(|| {
                let graph = OnnxGraph::open(source.clone()).expect("parse");
                TractEngine::build_with(&graph, &SHAPE, &uncached).expect("build")
            })
        });
        group.bench_function(format!("cached_file_to_plan_{precision}"), |b| {
            b.iter(|| {
                let bytes = std::fs::read(&onnx).expect("read");
                load_cached(&source, &bytes, &SHAPE, &cached).expect("cache hit")
            })
        });
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&cache_dir);
}

criterion_group!(benches, startup);
criterion_main!(benches);
