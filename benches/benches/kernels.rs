//! Convolutions per layer shape, one thread: tract's own path against vigia's kernels (through
//! the graph, as models run them, and the bare kernel per instruction set this CPU has).
//! Throughput is in FLOPs (2 per multiply-add), so criterion's `elem/s` reads as FLOP/s.
//!
//! Depthwise: the layers of MobileNetV2 / EfficientNet-Lite0 at 224x224 and of
//! CenterNet-MobileNetV3 at 512x512, where the channels come in whole blocks of 16 also on
//! channel-blocked maps (`vigia_blocked_maps`). Dense (1x1 and KxK, group 1): layers of
//! NanoDet-m at 416x416, YOLOv8n at 640x640, ResNet50 and EfficientNet-Lite0 at 224x224, each
//! 3x3 stride-1 one also by Winograd's F(4x4, 3x3), each 1x1 stride-1 one also with a skip
//! connection summed in (`vigia_residual`); where the channels come in whole blocks of 16
//! (AVX-512), also on channel-blocked maps (`vigia_blocked`, `vigia_blocked_residual`). Each is
//! followed by ReLU6. EfficientNet-Lite0's large expansions and the depthwise layers that read
//! them, apart and joined (`expand_*`). Max pools (`pool_*`, in bytes read and written per
//! second): NanoDet-m's and ResNet50's 3x3 stride-2 pools after their stems, VGG19's first 2x2
//! and YOLOv8n's SPPF 5x5.

use std::time::Duration;

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use tract_onnx::pb;
use tract_onnx::prelude::*;
use vigia::engine::passes::conv_kernels::replace_convs;
use vigia::kernels::blocked_conv::BlockedConv;
use vigia::kernels::dense_conv::{DenseConv, Lanes};
use vigia::kernels::depthwise::{DepthwiseConv, DepthwisePath};
use vigia::kernels::expand_depthwise::ExpandDepthwise;
use vigia::kernels::planes::PlaneGeometry;
use vigia::kernels::winograd::WinogradConv;
use vigia::kernels::{Activation, Isa};
use vigia_benches::use_threads;

/// Dense layers: (input channels, output channels, input side, kernel, stride), "same" padding.
const DENSE_SHAPES: [(usize, usize, usize, usize, usize); 33] = [
    (3, 24, 416, 3, 2),
    (24, 58, 104, 1, 1),
    (116, 116, 26, 1, 1),
    (232, 232, 13, 1, 1),
    (96, 96, 52, 3, 1),
    (3, 16, 640, 3, 2),
    (32, 64, 160, 3, 2),
    (64, 64, 80, 3, 1),
    (256, 64, 56, 1, 1),
    (256, 256, 14, 3, 1),
    (16, 96, 112, 1, 1),
    (3, 32, 224, 3, 2),
    (16, 16, 160, 3, 1),
    (32, 32, 80, 3, 1),
    (64, 64, 40, 3, 1),
    (128, 128, 20, 3, 1),
    (64, 64, 56, 3, 1),
    (512, 512, 7, 3, 1),
    (32, 32, 160, 1, 1),
    (48, 32, 160, 1, 1),
    (16, 32, 320, 3, 2),
    (512, 512, 14, 3, 2),
    (2048, 512, 7, 1, 1),
    (512, 2048, 7, 1, 1),
    (1024, 256, 14, 1, 1),
    (320, 1280, 7, 1, 1),
    (64, 64, 104, 3, 2),
    (128, 128, 52, 3, 2),
    (64, 256, 56, 1, 1),
    (32, 16, 112, 1, 1),
    (96, 24, 56, 1, 1),
    (144, 24, 56, 1, 1),
    (672, 112, 14, 1, 1),
];

/// Depthwise layers: (channels, input side, kernel, stride) with "same" padding.
const SHAPES: [(usize, usize, usize, usize); 12] = [
    (32, 112, 3, 1),
    (96, 112, 3, 2),
    (144, 56, 3, 1),
    (144, 56, 5, 2),
    (240, 28, 5, 1),
    (240, 28, 3, 2),
    (480, 14, 3, 1),
    (672, 14, 5, 1),
    (672, 14, 5, 2),
    (1152, 7, 5, 1),
    (72, 128, 3, 2),
    (120, 64, 5, 1),
];

fn dense_benches(c: &mut Criterion) {
    use_threads(1);
    for (channels, outs, side, k, stride) in DENSE_SHAPES {
        let g = same_padded(channels, side, k, stride);
        let flops = 2 * (outs * g.out_h * g.out_w * channels * k * k) as u64;
        let label = format!("conv{k}x{k}s{stride}_{channels}to{outs}x{side}x{side}");
        let mut group = layer_group(c, &label, flops);

        let weights = ramp(outs * channels * k * k, 0.37);
        let bias = ramp(outs, 0.11);
        let input = ramp(g.input_len(), 0.013);
        let relu6 = Activation::Clip { min: 0.0, max: 6.0 };

        let (tract_plan, vigia_plan) = plans(&g, outs, 1, &weights, &bias);
        let x: TValue = Tensor::from_shape(&[1, channels, side, side], &input)
            .expect("input tensor")
            .into_tvalue();
        group.bench_function("tract", |b| {
            b.iter(|| tract_plan.run(tvec!(x.clone())).expect("tract run"))
        });
        if let Some(vigia_plan) = vigia_plan {
            group.bench_function("vigia_graph", |b| {
                b.iter(|| vigia_plan.run(tvec!(x.clone())).expect("vigia run"))
            });
        } else {
            eprintln!("{label}: the pass leaves this layer to tract (no vigia_graph line)");
        }
        let mut out = vec![0f32; outs * g.out_h * g.out_w];
        for isa in Isa::all_supported() {
            let conv = DenseConv::new(isa, g, outs, &weights, &bias, relu6).expect("conv");
            group.bench_with_input(BenchmarkId::new("vigia", isa.name()), &isa, |b, _| {
                b.iter(|| conv.run(&input, &mut out))
            });
            if k == 1 && stride == 1 {
                // A skip connection summed in the kernels (ResNet's, EfficientNet's).
                let skip = ramp(out.len(), 0.021);
                let id = BenchmarkId::new("vigia_residual", isa.name());
                group.bench_with_input(id, &isa, |b, _| {
                    b.iter(|| conv.run_with_residual(&input, Some(&skip), &mut out))
                });
            }
            if conv.lanes() == Lanes::Channels {
                // The product it replaces, vectors along the pixels.
                let pixels =
                    DenseConv::with_lanes(isa, g, outs, &weights, &bias, relu6, Lanes::Pixels)
                        .expect("conv");
                let id = BenchmarkId::new("vigia_pixel_lanes", isa.name());
                group.bench_with_input(id, &isa, |b, _| b.iter(|| pixels.run(&input, &mut out)));
            }
            if let Ok(conv) = WinogradConv::new(isa, g, outs, &weights, &bias, relu6) {
                let id = BenchmarkId::new("winograd", isa.name());
                group.bench_with_input(id, &isa, |b, _| b.iter(|| conv.run(&input, &mut out)));
            }
            if let Ok(conv) = BlockedConv::new(isa, g, outs, &weights, &bias, relu6) {
                // Blocked maps in and out (the layout between chained convolutions).
                let blocked_in = ramp(conv.input_len(), 0.013);
                let id = BenchmarkId::new("vigia_blocked", isa.name());
                group.bench_with_input(id, &isa, |b, _| {
                    b.iter(|| conv.run(&blocked_in, None, &mut out))
                });
                if k == 1 && stride == 1 {
                    let skip = ramp(out.len(), 0.021);
                    let id = BenchmarkId::new("vigia_blocked_residual", isa.name());
                    group.bench_with_input(id, &isa, |b, _| {
                        b.iter(|| conv.run(&blocked_in, Some(&skip), &mut out))
                    });
                }
            }
        }
        group.finish();
    }
}

fn kernel_benches(c: &mut Criterion) {
    use_threads(1);
    for (channels, side, k, stride) in SHAPES {
        let g = same_padded(channels, side, k, stride);
        let label = format!("dw{k}x{k}s{stride}_{channels}x{side}x{side}");
        let mut group = layer_group(c, &label, g.flops());

        let weights = ramp(channels * k * k, 0.37);
        let bias = ramp(channels, 0.11);
        let input = ramp(g.input_len(), 0.013);
        let relu6 = Activation::Clip { min: 0.0, max: 6.0 };

        let (tract_plan, vigia_plan) = plans(&g, channels, channels, &weights, &bias);
        let x: TValue = Tensor::from_shape(&[1, channels, side, side], &input)
            .expect("input tensor")
            .into_tvalue();
        group.bench_function("tract", |b| {
            b.iter(|| tract_plan.run(tvec!(x.clone())).expect("tract run"))
        });
        if let Some(vigia_plan) = vigia_plan {
            group.bench_function("vigia_graph", |b| {
                b.iter(|| vigia_plan.run(tvec!(x.clone())).expect("vigia run"))
            });
        } else {
            eprintln!("{label}: the pass leaves this layer to tract (no vigia_graph line)");
        }

        let conv = DepthwiseConv::new(g, weights.clone(), bias.clone(), relu6).expect("conv");
        let mut out = vec![0f32; g.output_len()];
        for isa in Isa::all_supported() {
            group.bench_with_input(BenchmarkId::new("vigia", isa.name()), &isa, |b, &isa| {
                b.iter(|| conv.run(isa, &input, &mut out))
            });
            for (path, name) in [
                (DepthwisePath::Planes, "vigia_planes"),
                (DepthwisePath::Rows, "vigia_rows"),
                (DepthwisePath::Blocked, "vigia_blocked"),
            ] {
                if !conv.has_path(path, isa) {
                    continue;
                }
                group.bench_with_input(BenchmarkId::new(name, isa.name()), &isa, |b, &isa| {
                    b.iter(|| conv.run_on(path, isa, &input, &mut out))
                });
            }
            // On channel-blocked maps, as chains of blocked convolutions run it (the input's
            // layout does not change what is computed, so the planar ramp serves).
            if channels.is_multiple_of(16) {
                let id = BenchmarkId::new("vigia_blocked_maps", isa.name());
                group.bench_with_input(id, &isa, |b, &isa| {
                    b.iter(|| conv.run_on_blocks(isa, &input, &mut out))
                });
            }
        }
        // The same kernel on two threads (the pool splits the channels).
        let isa = Isa::detect();
        use_threads(2);
        group.bench_with_input(BenchmarkId::new("vigia_2t", isa.name()), &isa, |b, &isa| {
            b.iter(|| conv.run(isa, &input, &mut out))
        });
        use_threads(1);
        group.finish();
    }
}

/// Expansions and the depthwise layers that read them: (input channels, expanded channels,
/// side, depthwise kernel, stride), EfficientNet-Lite0's blocks 1 to 4 at 224x224.
const EXPANSIONS: [(usize, usize, usize, usize, usize); 4] = [
    (16, 96, 112, 3, 2),
    (24, 144, 56, 3, 1),
    (24, 144, 56, 5, 2),
    (40, 240, 28, 5, 1),
];

/// The two layers one after the other (`vigia_apart`) and joined, a group of channels at a
/// time (`vigia_joined`), one thread, ReLU6 after each.
fn expand_depthwise_benches(c: &mut Criterion) {
    use_threads(1);
    let isa = Isa::detect();
    let relu6 = Activation::Clip { min: 0.0, max: 6.0 };
    for (cin, cexp, side, k, stride) in EXPANSIONS {
        let e = same_padded(cin, side, 1, 1);
        let d = same_padded(cexp, side, k, stride);
        let expand = DenseConv::new(
            isa,
            e,
            cexp,
            &ramp(cexp * cin, 0.37),
            &ramp(cexp, 0.11),
            relu6,
        )
        .expect("expansion");
        let weights = ramp(cexp * k * k, 0.29);
        let dw = DepthwiseConv::new(d, weights, ramp(cexp, 0.07), relu6).expect("depthwise");
        let dw = std::sync::Arc::new(dw);
        let Ok(joined) = ExpandDepthwise::new(&expand, dw.clone(), isa) else {
            eprintln!("{cin}->{cexp} at {side}: not joined on {}", isa.name());
            continue;
        };
        let label = format!("expand_{cin}to{cexp}x{side}_dw{k}x{k}s{stride}");
        let mut group = layer_group(c, &label, 2 * joined.macs());
        let input = ramp(e.input_len(), 0.013);
        let mut mid = vec![0f32; expand.output_len()];
        let mut out = vec![0f32; d.output_len()];
        group.bench_with_input(
            BenchmarkId::new("vigia_apart", isa.name()),
            &isa,
            |b, &isa| {
                b.iter(|| {
                    expand.run(&input, &mut mid);
                    dw.run(isa, &mid, &mut out)
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("vigia_joined", isa.name()),
            &isa,
            |b, _| b.iter(|| joined.run(&input, &mut out)),
        );
        group.finish();
    }
}

/// A `side x side` map of `channels`, a `k x k` kernel with `stride` and "same" padding.
fn same_padded(channels: usize, side: usize, k: usize, stride: usize) -> PlaneGeometry {
    let pad = k / 2;
    PlaneGeometry::new(
        channels,
        (side, side),
        (k, k),
        (stride, stride),
        (pad, pad),
        (pad, pad),
    )
    .expect("valid geometry")
}

/// A criterion group for one layer shape, its throughput in FLOPs.
fn layer_group<'a>(
    c: &'a mut Criterion,
    label: &str,
    flops: u64,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group(format!("kernels_{label}"));
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(20);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    group.throughput(Throughput::Elements(flops));
    group
}

/// `n` values cycling through [-1, 1) with step `step`.
fn ramp(n: usize, step: f32) -> Vec<f32> {
    (0..n).map(|i| (i as f32 * step) % 2.0 - 1.0).collect()
}

type Plan = std::sync::Arc<TypedSimplePlan>;

/// The one-layer ONNX graph (Conv with `group`, then Clip 0..6) optimized by tract as it is, and
/// with vigia's kernels put in (`None` where the pass leaves the layer to tract, as it does for
/// 3-channel stems with few outputs).
fn plans(
    g: &PlaneGeometry,
    outs: usize,
    group: usize,
    weights: &[f32],
    bias: &[f32],
) -> (Plan, Option<Plan>) {
    let proto = conv_proto(g, outs, group, weights, bias);
    let decluttered = tract_onnx::onnx()
        .model_for_proto_model(&proto)
        .and_then(|m| m.into_typed())
        .and_then(|m| m.into_decluttered())
        .expect("one-layer model");
    let tract = decluttered
        .clone()
        .into_optimized()
        .and_then(|m| m.into_runnable())
        .expect("tract plan");
    let mut with_vigia = decluttered;
    let report = replace_convs(&mut with_vigia, Isa::detect()).expect("replace");
    let vigia = (report.replaced() == 1).then(|| {
        with_vigia
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .expect("vigia plan")
    });
    (tract, vigia)
}

fn conv_proto(
    g: &PlaneGeometry,
    outs: usize,
    group: usize,
    weights: &[f32],
    bias: &[f32],
) -> pb::ModelProto {
    let c = g.channels as i64;
    let (o, per_group) = (outs as i64, (g.channels / group) as i64);
    let (k, s) = (g.kernel_h as i64, g.stride_h as i64);
    let pad = g.pad_top as i64;
    let ints = |name: &str, v: Vec<i64>| pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: v,
        ..Default::default()
    };
    let int = |name: &str, v: i64| pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: v,
        ..Default::default()
    };
    let tensor = |name: &str, dims: Vec<i64>, data: Vec<f32>| pb::TensorProto {
        name: name.into(),
        dims,
        data_type: pb::tensor_proto::DataType::Float as i32,
        float_data: data,
        ..Default::default()
    };
    let value = |name: &str, dims: &[i64]| pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: pb::tensor_proto::DataType::Float as i32,
                shape: Some(pb::TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|&d| pb::tensor_shape_proto::Dimension {
                            value: Some(pb::tensor_shape_proto::dimension::Value::DimValue(d)),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    };
    let node = |op: &str, inputs: &[&str], output: &str, attribute| pb::NodeProto {
        op_type: op.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        attribute,
        ..Default::default()
    };
    let graph = pb::GraphProto {
        node: vec![
            node(
                "Conv",
                &["x", "w", "b"],
                "conv",
                vec![
                    int("group", group as i64),
                    ints("kernel_shape", vec![k, k]),
                    ints("strides", vec![s, s]),
                    ints("pads", vec![pad, pad, pad, pad]),
                ],
            ),
            node("Clip", &["conv", "lo", "hi"], "y", vec![]),
        ],
        initializer: vec![
            tensor("w", vec![o, per_group, k, k], weights.to_vec()),
            tensor("b", vec![o], bias.to_vec()),
            tensor("lo", vec![], vec![0.0]),
            tensor("hi", vec![], vec![6.0]),
        ],
        input: vec![value("x", &[1, c, g.in_h as i64, g.in_w as i64])],
        output: vec![value("y", &[1, o, g.out_h as i64, g.out_w as i64])],
        ..Default::default()
    };
    pb::ModelProto {
        ir_version: 7,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        graph: Some(graph),
        ..Default::default()
    }
}

/// The matrix product's cost around its micro-kernel: the packed filters of `M` rows against
/// one `B` panel already packed (the micro-kernel alone, its panel in L1: the ceiling) and the
/// whole product over `N` columns read from a `K x N` matrix (each panel packed from `K` rows
/// `N` apart, output stored, ReLU6 in registers). `K = 256`, `M = 72` (six full row panels on
/// AVX-512) and `M = 12` (one row panel: the packing's share at its largest).
fn gemm_benches(c: &mut Criterion) {
    use vigia::kernels::gemm::{gemm, panel_product, tile, Columns, PackedWeights};
    use_threads(1);
    let isa = Isa::detect();
    let (mr, nr) = tile(isa);
    let k = 256;
    for m in [12, 72] {
        let weights = ramp(m * k, 0.37);
        let a = PackedWeights::new(isa, &weights, &vec![0.0; m], m, k).expect("filters");
        let mut group = c.benchmark_group(format!("gemm_m{m}_k{k}"));
        group.sampling_mode(SamplingMode::Flat);
        group.sample_size(20);
        group.warm_up_time(Duration::from_millis(500));
        group.measurement_time(Duration::from_secs(2));
        let panel = ramp(k * nr, 0.01);
        let mut tiles = vec![0f32; m.div_ceil(mr) * mr * nr];
        group.throughput(Throughput::Elements((2 * m * k * nr) as u64));
        group.bench_function(BenchmarkId::new("packed_panel", isa.name()), |bench| {
            bench.iter(|| panel_product(&a, 0..m.div_ceil(mr), &panel, &mut tiles))
        });
        for n in [1024, 3136] {
            let data = ramp(k * n, 0.01);
            let offsets: Vec<usize> = (0..k).map(|r| r * n).collect();
            let b = Columns::new(&data, &offsets, n).expect("B rows");
            let mut out = vec![0f32; m * n];
            let relu6 = Activation::Clip { min: 0.0, max: 6.0 };
            group.throughput(Throughput::Elements((2 * m * k * n) as u64));
            let id = BenchmarkId::new(format!("product_n{n}"), isa.name());
            group.bench_function(id, |bench| {
                bench.iter(|| gemm(&a, &b, None, &mut out, n, relu6))
            });
        }
        group.finish();
    }
}

/// Max pools: (planes, input side, kernel, stride, left/top padding, output side).
const POOL_SHAPES: [(usize, usize, usize, usize, usize, usize); 4] = [
    (32, 208, 3, 2, 0, 104),
    (64, 112, 3, 2, 1, 56),
    (64, 224, 2, 2, 0, 112),
    (128, 20, 5, 1, 2, 20),
];

fn pool_benches(c: &mut Criterion) {
    use vigia::kernels::max_pool::MaxPool2d;
    use_threads(1);
    for (planes, side, k, stride, pad, out_side) in POOL_SHAPES {
        let pool = MaxPool2d::new(
            planes,
            (side, side),
            (k, k),
            (stride, stride),
            (pad, pad),
            (out_side, out_side),
        )
        .expect("pool geometry");
        let mut group =
            c.benchmark_group(format!("pool_max{k}x{k}s{stride}_{planes}x{side}x{side}"));
        group.sampling_mode(SamplingMode::Flat);
        group.sample_size(20);
        group.warm_up_time(Duration::from_millis(500));
        group.measurement_time(Duration::from_secs(2));
        let bytes = size_of::<f32>() * (pool.input_len() + pool.output_len());
        group.throughput(Throughput::Bytes(bytes as u64));
        let input = ramp(pool.input_len(), 0.013);
        let mut out = vec![0f32; pool.output_len()];
        for isa in Isa::all_supported() {
            group.bench_with_input(BenchmarkId::new("vigia", isa.name()), &isa, |b, &isa| {
                b.iter(|| pool.run_on(isa, &input, &mut out))
            });
        }
        group.finish();
    }
}

/// Softmax over the last axis of YOLO11's attention weights at 640x640 (2 heads x 400 x 400),
/// per instruction set, in bytes read and written per second.
fn softmax_benches(c: &mut Criterion) {
    use vigia::kernels::softmax::softmax_rows;
    use_threads(1);
    let (rows, row_len) = (2 * 400, 400);
    let mut group = c.benchmark_group(format!("softmax_{rows}x{row_len}"));
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(20);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    group.throughput(Throughput::Bytes(
        (2 * size_of::<f32>() * rows * row_len) as u64,
    ));
    let input = ramp(rows * row_len, 0.013);
    let mut out = vec![0f32; rows * row_len];
    for isa in Isa::all_supported() {
        group.bench_with_input(BenchmarkId::new("vigia", isa.name()), &isa, |b, &isa| {
            b.iter(|| softmax_rows(isa, &input, &mut out, row_len))
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    dense_benches,
    kernel_benches,
    expand_depthwise_benches,
    gemm_benches,
    pool_benches,
    softmax_benches
);
criterion_main!(benches);
