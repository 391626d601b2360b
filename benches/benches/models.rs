//! Inference latency per model with 1 and 2 threads, one reused engine state, input = the sample
//! photo preprocessed as the model expects. Models are loaded only when their benchmark is
//! selected (`cargo bench --bench models -- yolov8n`).
//!
//! The YOLO graphs carry random weights (speed does not depend on the values), ResNet50 and VGG19
//! are the onnx model-zoo architectures with constant weights.

use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode};
use vigia::engine::Engine;
use vigia_benches::{engine_with_input, models_dir, shared, use_threads};

/// Label, path (bundled `models/` or `../shared`), and the expected seconds per run at one thread
/// on a small x86 core (to size the measurement).
fn models() -> Vec<(&'static str, Option<PathBuf>, f64)> {
    let bundled = |f: &str| Some(models_dir().join(f));
    let sh = |f: &str| shared().map(|s| s.join("models").join(f));
    vec![
        ("nanodet-m-416", bundled("nanodet-m-416.onnx"), 0.25),
        (
            "efficientnet-lite0-224",
            bundled("efficientnet-lite0-224.onnx"),
            0.06,
        ),
        ("mnist-cnn", sh("mnist-cnn-reference.onnx"), 0.001),
        ("yolov8n-320", sh("yolo/yolov8n-320.onnx"), 0.16),
        ("yolov8n-640", sh("yolo/yolov8n-640.onnx"), 0.65),
        ("yolo11n-320", sh("yolo/yolo11n-320.onnx"), 0.15),
        ("yolo11n-640", sh("yolo/yolo11n-640.onnx"), 0.6),
        ("resnet50", sh("onnx-light/light_resnet50.onnx"), 0.6),
        ("vgg19", sh("onnx-light/light_vgg19.onnx"), 2.5),
    ]
}

fn inference(c: &mut Criterion) {
    for (label, path, secs) in models() {
        let Some(path) = path.filter(|p| p.is_file()) else {
            eprintln!("skipping {label}: model not found (../shared absent?)");
            continue;
        };
        let mut group = c.benchmark_group(format!("infer_{label}"));
        // Ten samples of equal size: enough for a stable mean on these millisecond-scale runs,
        // and keeps VGG19 (about 40 GFLOP) to well under a minute.
        group.sampling_mode(SamplingMode::Flat);
        group.sample_size(10);
        group.warm_up_time(Duration::from_secs_f64((2.0 * secs).clamp(0.5, 3.0)));
        group.measurement_time(Duration::from_secs_f64((10.0 * secs).clamp(2.0, 30.0)));
        let mut engine: Option<Box<dyn Engine>> = None;
        for threads in [1usize, 2] {
            group.bench_function(BenchmarkId::new("threads", threads), |b| {
                use_threads(threads);
                let e = engine.get_or_insert_with(|| engine_with_input(&path, None));
                b.iter(|| e.run().expect("inference"))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, inference);
criterion_main!(benches);
