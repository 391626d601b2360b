//! The GPU lowering (pools, downsamples and resizes in terms of operators tract-cuda runs)
//! computes what tract's own operators compute: on single-operator graphs over awkward shapes
//! (odd sizes, padding, ceil mode, strides that do not divide), against a naive max pool, and on
//! real models, end to end, on the CPU where every build can check it.

mod common;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::cnn::{MaxPool, PaddingSpec, PoolSpec, SumPool};
use tract_onnx::tract_core::ops::nn::resize::{CoordTransformer, Interpolator, Nearest, Resize};
use tract_onnx::tract_core::ops::nn::DataFormat;
use tract_onnx::tract_core::ops::Downsample;
use vigia::engine::passes::gpu_lowering::{lower_for_gpu, LoweringReport};

/// A fixed pseudo-random tensor in [-1, 1).
fn noise(shape: &[usize]) -> Tensor {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect();
    tract_ndarray::ArrayD::from_shape_vec(shape, v)
        .unwrap()
        .into_tensor()
}

/// Runs `model` optimized by tract on `input`; its outputs, flattened.
fn outputs(model: TypedModel, input: &Tensor) -> Vec<Vec<f32>> {
    let plan = model.into_optimized().unwrap().into_runnable().unwrap();
    plan.run(tvec![input.clone().into_tvalue()])
        .unwrap()
        .iter()
        .map(|t| {
            t.to_plain_array_view::<f32>()
                .unwrap()
                .iter()
                .copied()
                .collect()
        })
        .collect()
}

/// Lowers `model`, checks nothing it covers is left and the outputs match tract's operators
/// within `tol` of the largest magnitude; returns the report and the lowered outputs.
fn lowered_matches(
    model: &TypedModel,
    input: &Tensor,
    tol: f32,
) -> (LoweringReport, Vec<Vec<f32>>) {
    let mut lowered = model.clone();
    let report = lower_for_gpu(&mut lowered).unwrap();
    for node in lowered.nodes() {
        let op = node.op.name();
        assert!(
            !["MaxPool", "SumPool", "Downsample", "Resize"].contains(&&*op),
            "{} ({op}) is still there",
            node.name
        );
    }
    let (want, got) = (outputs(model.clone(), input), outputs(lowered, input));
    assert_eq!(want.len(), got.len());
    for (w, g) in want.iter().zip(&got) {
        assert_eq!(w.len(), g.len());
        let scale = w.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
        let diff = w.iter().zip(g).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(diff <= tol * scale, "differs by {diff} (scale {scale})");
    }
    (report, got)
}

/// A graph of one operator on an f32 input of `shape` (and constant extra inputs).
fn one_op(shape: &[usize], op: impl Into<Box<dyn TypedOp>>, consts: Vec<Tensor>) -> TypedModel {
    let mut model = TypedModel::default();
    let x = model.add_source("x", f32::fact(shape)).unwrap();
    let mut inputs = vec![x];
    for (i, c) in consts.into_iter().enumerate() {
        inputs.push(model.add_const(format!("c{i}"), c).unwrap());
    }
    let y = model.wire_node("op", op.into(), &inputs).unwrap();
    model.select_output_outlets(&y).unwrap();
    model
}

fn tv(v: [usize; 2]) -> TVec<usize> {
    v.iter().copied().collect()
}

fn pool_spec(kernel: [usize; 2], strides: [usize; 2], padding: PaddingSpec) -> PoolSpec {
    PoolSpec::new(
        DataFormat::NCHW,
        kernel.iter().copied().collect(),
        padding,
        None,
        Some(strides.iter().copied().collect()),
        3,
        3,
    )
}

#[test]
fn max_pools_match_tract_and_a_naive_pool() {
    let explicit = |b: [usize; 2], a: [usize; 2]| PaddingSpec::Explicit(tv(b), tv(a));
    let ceil = |b: [usize; 2], a: [usize; 2]| PaddingSpec::ExplicitOnnxPool(tv(b), tv(a), true);
    let cases = [
        ([3, 3], [2, 2], explicit([1, 1], [1, 1])), // ResNet's and ShuffleNet's stems
        ([5, 5], [1, 1], explicit([2, 2], [2, 2])), // YOLOv8's SPPF
        ([2, 2], [2, 2], PaddingSpec::Valid),       // odd sizes: the last row is dropped
        ([3, 2], [2, 3], ceil([0, 1], [0, 0])),     // ceil mode, uneven strides
        ([3, 3], [3, 3], PaddingSpec::SameUpper),
    ];
    for (kernel, strides, padding) in cases {
        let spec = pool_spec(kernel, strides, padding.clone());
        let model = one_op(
            &[1, 3, 11, 8],
            MaxPool {
                pool_spec: spec.clone(),
                with_index_outputs: None,
            },
            vec![],
        );
        let input = noise(&[1, 3, 11, 8]);
        let (report, got) = lowered_matches(&model, &input, 0.0);
        assert_eq!(report.pools, 1);
        // A naive pool: every window's maximum over the input positions it covers.
        let computed = spec.computed_padding(&[11usize, 8]);
        let (oh, ow) = (computed[0].convoluted, computed[1].convoluted);
        let x = input.to_plain_array_view::<f32>().unwrap();
        let mut naive = vec![];
        for c in 0..3 {
            for i in 0..oh {
                for j in 0..ow {
                    let mut m = f32::NEG_INFINITY;
                    for di in 0..kernel[0] {
                        for dj in 0..kernel[1] {
                            let y =
                                (i * strides[0] + di) as isize - computed[0].pad_before as isize;
                            let z =
                                (j * strides[1] + dj) as isize - computed[1].pad_before as isize;
                            if (0..11).contains(&y) && (0..8).contains(&z) {
                                m = m.max(x[[0, c, y as usize, z as usize]]);
                            }
                        }
                    }
                    naive.push(m);
                }
            }
        }
        assert_eq!(got[0], naive, "{kernel:?} {strides:?} {padding:?}");
    }
}

#[test]
fn average_pools_and_downsamples_match_tract() {
    for (kernel, strides, padding, include_pad) in [
        ([7, 7], [1, 1], PaddingSpec::Valid, false), // ResNet's global average
        (
            [3, 3],
            [2, 2],
            PaddingSpec::Explicit(tv([1, 1]), tv([1, 1])),
            true,
        ),
    ] {
        let model = one_op(
            &[1, 3, 9, 7],
            SumPool {
                pool_spec: pool_spec(kernel, strides, padding),
                count_include_pad: include_pad,
                normalize: true,
            },
            vec![],
        );
        let (report, _) = lowered_matches(&model, &noise(&[1, 3, 9, 7]), 1e-6);
        assert_eq!(report.pools, 1);
    }
    // Average pools that leave the padding out of the divisor stay tract's.
    let mut model = one_op(
        &[1, 3, 9, 7],
        SumPool {
            pool_spec: pool_spec([3, 3], [1, 1], PaddingSpec::SameUpper),
            count_include_pad: false,
            normalize: true,
        },
        vec![],
    );
    assert_eq!(lower_for_gpu(&mut model).unwrap().pools, 0);
    for (axis, stride, modulo) in [(2, 2, 0), (3, 2, 1), (2, 3, 2), (3, 4, 0)] {
        let model = one_op(&[1, 3, 9, 7], Downsample::new(axis, stride, modulo), vec![]);
        let (report, _) = lowered_matches(&model, &noise(&[1, 3, 9, 7]), 0.0);
        assert_eq!(report.downsamples, 1, "{axis} {stride} {modulo}");
    }
}

#[test]
fn resizes_match_tract() {
    use CoordTransformer::*;
    let cases = [
        (HalfPixel, Interpolator::Linear, [1.0f32, 1.0, 2.0, 2.0]), // NanoDet's PAN
        (PytorchHalfPixel, Interpolator::Linear, [1.0, 1.0, 1.5, 0.5]),
        (AlignCorners, Interpolator::Linear, [1.0, 1.0, 3.0, 2.0]),
        (Asymmetric, Interpolator::Nearest, [1.0, 1.0, 2.0, 3.0]),
        (HalfPixel, Interpolator::Cubic, [1.0, 1.0, 2.0, 2.0]),
    ];
    for (transform, interpolator, scales) in cases {
        let op = Resize {
            coord_transformer: transform.clone(),
            interpolator: interpolator.clone(),
            nearest: Nearest::Floor,
            optional_scales_input: Some(1),
            optional_sizes_input: None,
        };
        let model = one_op(&[1, 2, 5, 6], op, vec![tensor1(&scales)]);
        let (report, _) = lowered_matches(&model, &noise(&[1, 2, 5, 6]), 1e-6);
        assert_eq!(report.resizes, 1, "{transform:?} {interpolator:?}");
    }
}

/// Parses `path` for a fixed input `shape` and declutters it, as the cuda engine does.
fn decluttered(path: &std::path::Path, shape: &[usize]) -> TypedModel {
    tract_onnx::onnx()
        .model_for_path(path)
        .unwrap()
        .with_input_fact(0, f32::fact(shape).into())
        .unwrap()
        .into_typed()
        .unwrap()
        .into_decluttered()
        .unwrap()
}

#[test]
fn real_models_keep_their_outputs_with_everything_lowered() {
    let mut models = vec![(
        common::models_dir().join("nanodet-m-416.onnx"),
        [1, 3, 416, 416],
        LoweringReport {
            pools: 1,
            downsamples: 0,
            resizes: 4,
        },
    )];
    if let Some(shared) = common::shared() {
        models.push((
            shared.join("models/yolo/yolov8n-640-hot.onnx"),
            [1, 3, 640, 640],
            // Its nearest 2x upsamples are tract-cuda's already (as broadcasts).
            LoweringReport {
                pools: 3,
                downsamples: 0,
                resizes: 0,
            },
        ));
        models.push((
            shared.join("models/onnx-light/light_resnet50.onnx"),
            [1, 3, 224, 224],
            LoweringReport {
                pools: 2,
                downsamples: 6,
                resizes: 0,
            },
        ));
    }
    for (path, shape, expected) in models {
        let model = decluttered(&path, &shape);
        let (report, _) = lowered_matches(&model, &noise(&shape), 1e-5);
        assert_eq!(report, expected, "{}", path.display());
    }
}
