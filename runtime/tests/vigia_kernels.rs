//! vigia's kernels (convolutions, resampling) give the outputs of tract's own path on real
//! models, at 1 and 2 threads, and really replace the nodes they support.

mod common;

use std::path::Path;

use vigia::engine::passes::conv_kernels::{KernelReport, Kernels};
use vigia::engine::{set_threads, BuildOptions, Engine, ModelSource, OnnxGraph, TractEngine};
use vigia::kernels::Isa;

/// Runs `path` with `kernels` on a fixed pseudo-random input; the outputs and what vigia's
/// kernels took.
fn run(path: &Path, kernels: Kernels) -> (Vec<Vec<f32>>, KernelReport) {
    let graph = OnnxGraph::open(ModelSource::File(path.to_path_buf())).unwrap();
    let shape: Vec<usize> = graph.input_dims().iter().map(|d| d.unwrap_or(1)).collect();
    let opts = BuildOptions {
        kernels,
        ..BuildOptions::default()
    };
    let (mut engine, report) = TractEngine::build_with(&graph, &shape, &opts)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for v in engine.input_mut() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *v = (state >> 40) as f32 / (1u64 << 24) as f32;
    }
    engine.run().unwrap();
    let outputs = engine
        .outputs()
        .unwrap()
        .iter()
        .map(|o| o.iter().copied().collect())
        .collect();
    (outputs, report.kernels)
}

#[test]
fn vigia_kernels_match_tract_on_real_models_at_one_and_two_threads() {
    let Some(shared) = common::shared() else {
        return;
    };
    // (model, whether it has depthwise convolutions)
    let mut models = vec![
        (common::models_dir().join("nanodet-m-416.onnx"), false),
        (
            common::models_dir().join("efficientnet-lite0-224.onnx"),
            true,
        ),
        (common::models_dir().join("mnist-cnn.onnx"), false),
        (shared.join("models/mnist-cnn-reference.onnx"), false),
        (shared.join("models/centernet-mbv3-512.onnx"), true),
        (shared.join("models/yolo/yolo11n-320.onnx"), true),
        (shared.join("models/yolo/yolov8n-320.onnx"), false),
    ];
    for light in [
        "bvlc_alexnet",
        "densenet121",
        "inception_v1",
        "inception_v2",
        "resnet50",
        "shufflenet",
        "squeezenet",
        "vgg19",
        "zfnet512",
    ] {
        let path = shared.join(format!("models/onnx-light/light_{light}.onnx"));
        models.push((path, light == "shufflenet"));
    }
    for threads in [1, 2] {
        set_threads(threads);
        for (path, has_depthwise) in &models {
            if !path.is_file() {
                common::skip(format!("skipping {}: not found", path.display()));
                continue;
            }
            let (want, none) = run(path, Kernels::Tract);
            let (got, replaced) = run(path, Kernels::Vigia);
            assert_eq!(
                none.replaced(),
                0,
                "{}: --kernels tract replaced convolutions",
                path.display()
            );
            assert_eq!(
                replaced.depthwise > 0,
                *has_depthwise,
                "{}: {replaced:?}",
                path.display()
            );
            // Every one of these models has dense convolutions (1x1 or KxK, group 1), and
            // NanoDet's largest 3x3 stride-1 one (128 channels at 52x52) goes by Winograd on
            // every core, its 32-channel ones at 104x104 too on cores with one FMA pipe (see
            // `winograd_pays`).
            assert!(replaced.dense > 0, "{}: {replaced:?}", path.display());
            if path.ends_with("nanodet-m-416.onnx") {
                assert!(replaced.winograd >= 1, "{}: {replaced:?}", path.display());
            }
            // YOLOv8's last box and class layers, 1x1 einsums that add the batch axis
            // (`IHW,OI->NOHW`), are taken too: 71 layers, with the stem and the first 1x1 of
            // each C2f in the neck (over a concatenation, its output split in two) as two
            // products. The two halves of each of its eight C2f blocks' first 1x1 run as one
            // product again, whose halves the next layers read in place, as they read the
            // parts of every concatenation a 1x1 takes. Its SPPF's three 5x5 max pools go on
            // vigia's pooling kernel.
            if path.ends_with("yolov8n-320.onnx") {
                assert!(replaced.dense >= 71, "{replaced:?}");
                assert!(replaced.merged >= 8, "{replaced:?}");
                assert!(replaced.slices_in_place >= 16, "{replaced:?}");
                assert_eq!(replaced.max_pools, 3, "{replaced:?}");
            }
            // YOLO11's attention block: its softmax (last axis) on vigia's kernel.
            if path.ends_with("yolo11n-320.onnx") {
                assert_eq!(replaced.softmaxes, 1, "{replaced:?}");
            }
            // ResNet50's three strided 1x1 convolutions (the projection shortcuts of stages 3 to
            // 5), which tract's declutter splits into `Downsample`s and a product, run whole,
            // and its 16 skip connections are summed in the last convolution of each block.
            if path.ends_with("light_resnet50.onnx") {
                assert_eq!(replaced.strided_pointwise, 3, "{replaced:?}");
                assert_eq!(replaced.residual_adds, 16, "{replaced:?}");
                // On AVX-512 its convolutions on maps of 14x14 and up (every one but the stem
                // and stage 5's) run chained on channel-blocked maps.
                if Isa::detect() == Isa::Avx512 {
                    assert!(replaced.blocked >= 40, "{replaced:?}");
                }
            }
            // EfficientNet-Lite0's nine skip connections, after linear 1x1 projections. On
            // AVX-512 its 14x14 stages (80 and 112 channels) run on channel-blocked maps, their
            // depthwise layers included: 19 convolutions from block 5's depthwise to block 11's;
            // and the expansions of blocks 1 to 4 (96-240 channels at 112x112 to 28x28) run
            // joined to the depthwise layers that read them.
            if path.ends_with("efficientnet-lite0-224.onnx") {
                assert_eq!(replaced.residual_adds, 9, "{replaced:?}");
                if Isa::detect() == Isa::Avx512 {
                    assert!(replaced.blocked >= 19, "{replaced:?}");
                    assert_eq!(replaced.expansions_joined, 4, "{replaced:?}");
                }
            }
            // The classifiers' fully connected layers (1280 -> 1000, 2048 -> 1000) go on the
            // channel-lane product where there is one (AVX-512); VGG19's three (16-411 MB of
            // weights) stay on tract's multithreaded matrix-vector product.
            let fully_connected = [
                ("efficientnet-lite0-224.onnx", 1),
                ("light_resnet50.onnx", 1),
                ("light_vgg19.onnx", 0),
            ];
            for (name, count) in fully_connected {
                if path.ends_with(name) && Isa::detect() == Isa::Avx512 {
                    assert_eq!(replaced.fully_connected, count, "{name}: {replaced:?}");
                }
            }
            // Their linear Resize nodes (feature pyramids) go on vigia's resampling kernel.
            let resampled = ["nanodet-m-416.onnx", "centernet-mbv3-512.onnx"];
            if resampled.iter().any(|name| path.ends_with(name)) {
                assert!(replaced.resizes > 0, "{}: {replaced:?}", path.display());
            }
            // CenterNet (fed NHWC): its channels-last first block is taken too (all 26
            // depthwise layers), and the hard swishes TensorFlow wrote out are fused (34 of its
            // convolutions end in an activation; 15 without that fusion).
            if path.ends_with("centernet-mbv3-512.onnx") {
                assert_eq!(replaced.depthwise, 26, "{replaced:?}");
                assert!(replaced.fused_activations >= 30, "{replaced:?}");
            }
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(g.len(), w.len());
                let worst = g
                    .iter()
                    .zip(w)
                    .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
                    .fold(0.0f32, f32::max);
                eprintln!(
                    "{} at {threads} thread(s): worst relative difference {worst:.2e} ({} by Winograd, {} resize)",
                    path.display(),
                    replaced.winograd,
                    replaced.resizes
                );
                // Two f32 summation orders drift apart through a deep network: about 1e-4 after
                // CenterNet's ~60 layers, depending on which instruction set runs. A wrong kernel
                // (tap, stride, padding, activation) is off by 1e-2 or more.
                assert!(
                    worst <= 1e-3,
                    "{} at {threads} thread(s): worst relative difference {worst}",
                    path.display()
                );
            }
        }
    }
    set_threads(1);
}
