//! Startup cost of NanoDet-m 416: building the plan from ONNX (parse, type, declutter, optimize)
//! versus from the cached pre-decluttered `.nnef.tar` (read, optimize). The ONNX file is read and
//! parsed by both; only the engine build differs.

use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use vigia::engine::{BuildOptions, ModelSource, OnnxGraph, TractEngine};

const SHAPE: [usize; 4] = [1, 3, 416, 416];

fn startup(c: &mut Criterion) {
    let onnx = vigia_benches::models_dir().join("nanodet-m-416.onnx");
    let graph = OnnxGraph::open(ModelSource::File(onnx)).expect("nanodet-m-416.onnx");
    let cache_dir: PathBuf =
        std::env::temp_dir().join(format!("vigia-bench-startup-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache_dir);
    let cached = BuildOptions {
        half: false,
        cache_dir: Some(cache_dir.clone()),
    };
    // Write the entry once, outside the measurement.
    TractEngine::build_with(&graph, &SHAPE, &cached).expect("cache entry");

    let mut group = c.benchmark_group("startup_nanodet_416");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("cold_onnx_to_plan", |b| {
        b.iter(|| TractEngine::build(&graph, &SHAPE).expect("build"))
    });
    group.bench_function("cached_nnef_to_plan", |b| {
        b.iter(|| TractEngine::build_with(&graph, &SHAPE, &cached).expect("build"))
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&cache_dir);
}

criterion_group!(benches, startup);
criterion_main!(benches);
