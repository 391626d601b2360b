//! The detector network: a strided conv backbone, a small FPN neck over strides 8/16/32 and one
//! prediction head per stride; the decode into `[B, 4 + C, N]` (the runtime's `yolov8` family)
//! is part of the forward pass, so that it is exported with the graph.
//!
//! Per cell and stride `s` the head predicts `tx, ty, tw, th, obj, cls_0..cls_C` (raw logits).
//! With `g` the cell index and `a = ANCHOR_CELLS * s` the level's reference size:
//! `cx = (2 sigmoid(tx) - 0.5 + gx) * s`, `w = (2 sigmoid(tw))^2 * a` (YOLOv5-style, no exp),
//! `score_k = sigmoid(obj) * sigmoid(cls_k)`. Constants hold the per-cell grid, so the exported
//! graph uses only Conv, BatchNormalization, Sigmoid, Mul, Add, Resize, Concat, Reshape and Slice.

use std::path::Path;

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::interpolate::{Interpolate2d, Interpolate2dConfig, InterpolateMode};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::common::checkpoint::load_module;

/// Output strides of the three prediction levels.
pub const STRIDES: [usize; 3] = [8, 16, 32];
/// Reference box size of a level in cells of its stride (`w = (2 sigmoid(tw))^2 * a`, so a level
/// predicts sizes up to four times this).
pub const ANCHOR_CELLS: f32 = 4.0;
/// Initial objectness bias (sigmoid = 1.8 %): most cells hold no object.
const OBJ_BIAS: f32 = -4.0;

/// Everything needed to rebuild the detector with the same parameter shapes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetNetConfig {
    /// Input width in pixels (multiple of 32).
    pub width: usize,
    /// Input height in pixels (multiple of 32).
    pub height: usize,
    /// Number of classes.
    pub classes: usize,
    /// Channel multiplier: stages have b, 2b, 4b, 8b, 8b channels.
    pub base: usize,
}

impl DetNetConfig {
    /// Checks that the network can be built.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.width >= 64
                && self.height >= 64
                && self.width.is_multiple_of(32)
                && self.height.is_multiple_of(32),
            "--imgsz must be at least 64x64 and a multiple of 32 on both sides (got {}x{})",
            self.width,
            self.height
        );
        anyhow::ensure!(self.classes >= 1, "the dataset names no class");
        anyhow::ensure!(
            (4..=128).contains(&self.base) && self.base.is_multiple_of(2),
            "--width must be an even number in 4..=128 (got {})",
            self.base
        );
        Ok(())
    }

    /// Values per prediction before decoding: 4 box, 1 objectness, C classes.
    pub fn raw_channels(&self) -> usize {
        5 + self.classes
    }

    /// Grid size (columns, rows) of each level.
    pub fn grids(&self) -> [(usize, usize); 3] {
        STRIDES.map(|s| (self.width / s, self.height / s))
    }

    /// Number of predictions `N` (cells over all levels).
    pub fn cells(&self) -> usize {
        self.grids().iter().map(|(w, h)| w * h).sum()
    }

    /// Per cell, in output order: (level, grid x, grid y).
    pub fn cell_table(&self) -> Vec<(usize, usize, usize)> {
        let mut out = Vec::with_capacity(self.cells());
        for (l, (gw, gh)) in self.grids().into_iter().enumerate() {
            for y in 0..gh {
                for x in 0..gw {
                    out.push((l, x, y));
                }
            }
        }
        out
    }

    /// Offset of each level's first cell in the flattened output.
    pub fn level_offsets(&self) -> [usize; 3] {
        let g = self.grids();
        [0, g[0].0 * g[0].1, g[0].0 * g[0].1 + g[1].0 * g[1].1]
    }

    /// Decoding constants `[2, N]` each, row-major: xy multiplier (2 s), xy offset ((g - 0.5) s),
    /// wh multiplier (4 a).
    pub fn decode_constants(&self) -> [Vec<f32>; 3] {
        let cells = self.cell_table();
        let n = cells.len();
        let mut mul_xy = vec![0f32; 2 * n];
        let mut add_xy = vec![0f32; 2 * n];
        let mut mul_wh = vec![0f32; 2 * n];
        for (j, &(l, gx, gy)) in cells.iter().enumerate() {
            let s = STRIDES[l] as f32;
            mul_xy[j] = 2.0 * s;
            mul_xy[n + j] = 2.0 * s;
            add_xy[j] = (gx as f32 - 0.5) * s;
            add_xy[n + j] = (gy as f32 - 0.5) * s;
            mul_wh[j] = 4.0 * ANCHOR_CELLS * s;
            mul_wh[n + j] = 4.0 * ANCHOR_CELLS * s;
        }
        [mul_xy, add_xy, mul_wh]
    }

    /// Builds the network with freshly initialised weights on `device`.
    pub fn init(&self, device: &Device) -> YoloNet {
        YoloNet::new(self, device)
    }
}

/// `x * sigmoid(x)`: SiLU in the two operators burn-onnx exports.
pub fn silu(x: Tensor<4>) -> Tensor<4> {
    x.clone() * sigmoid(x)
}

/// Convolution (no bias) + BatchNorm + SiLU.
#[derive(Module, Debug)]
pub struct ConvBn {
    conv: Conv2d,
    bn: BatchNorm,
}

impl ConvBn {
    fn new(cin: usize, cout: usize, kernel: usize, stride: usize, device: &Device) -> Self {
        let pad = kernel / 2;
        ConvBn {
            conv: Conv2dConfig::new([cin, cout], [kernel, kernel])
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
                .with_bias(false)
                .init(device),
            bn: BatchNormConfig::new(cout).with_momentum(0.1).init(device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        silu(self.bn.forward(self.conv.forward(x)))
    }
}

/// Residual bottleneck: `x + conv3x3(conv1x1(x))`, the inner width halved.
#[derive(Module, Debug)]
pub struct Bottleneck {
    reduce: ConvBn,
    expand: ConvBn,
}

impl Bottleneck {
    fn new(c: usize, device: &Device) -> Self {
        Bottleneck {
            reduce: ConvBn::new(c, c / 2, 1, 1, device),
            expand: ConvBn::new(c / 2, c, 3, 1, device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        x.clone() + self.expand.forward(self.reduce.forward(x))
    }
}

/// One level's head: a 3x3 ConvBn, then a 1x1 convolution to `5 + C` raw values per cell.
#[derive(Module, Debug)]
pub struct Head {
    conv: ConvBn,
    pred: Conv2d,
}

impl Head {
    fn new(c: usize, classes: usize, device: &Device) -> Self {
        let mut pred = Conv2dConfig::new([c, 5 + classes], [1, 1]).init(device);
        // Start with few confident cells: objectness bias -4, the others 0.
        let mut bias = vec![0f32; 5 + classes];
        bias[4] = OBJ_BIAS;
        pred.bias = Some(Param::from_tensor(Tensor::from_data(
            TensorData::new(bias, [5 + classes]),
            device,
        )));
        Head {
            conv: ConvBn::new(c, c, 3, 1, device),
            pred,
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.pred.forward(self.conv.forward(x))
    }
}

/// The detector.
#[derive(Module, Debug)]
pub struct YoloNet {
    stem: ConvBn,
    down2: ConvBn,
    down3: ConvBn,
    block3: Bottleneck,
    down4: ConvBn,
    block4: Bottleneck,
    down5: ConvBn,
    block5: Bottleneck,
    lat5: ConvBn,
    fuse4: ConvBn,
    lat4: ConvBn,
    fuse3: ConvBn,
    head3: Head,
    head4: Head,
    head5: Head,
    up: Interpolate2d,
}

impl YoloNet {
    fn new(c: &DetNetConfig, device: &Device) -> Self {
        let b = c.base;
        YoloNet {
            stem: ConvBn::new(3, b, 3, 2, device),
            down2: ConvBn::new(b, 2 * b, 3, 2, device),
            down3: ConvBn::new(2 * b, 4 * b, 3, 2, device),
            block3: Bottleneck::new(4 * b, device),
            down4: ConvBn::new(4 * b, 8 * b, 3, 2, device),
            block4: Bottleneck::new(8 * b, device),
            down5: ConvBn::new(8 * b, 8 * b, 3, 2, device),
            block5: Bottleneck::new(8 * b, device),
            lat5: ConvBn::new(8 * b, 4 * b, 1, 1, device),
            fuse4: ConvBn::new(4 * b + 8 * b, 4 * b, 1, 1, device),
            lat4: ConvBn::new(4 * b, 2 * b, 1, 1, device),
            fuse3: ConvBn::new(2 * b + 4 * b, 2 * b, 1, 1, device),
            head3: Head::new(2 * b, c.classes, device),
            head4: Head::new(4 * b, c.classes, device),
            head5: Head::new(4 * b, c.classes, device),
            up: Interpolate2dConfig::new()
                .with_scale_factor(Some([2.0, 2.0]))
                .with_mode(InterpolateMode::Nearest)
                .init(),
        }
    }

    /// Raw predictions of the three levels, `[B, 5 + C, H / s, W / s]` for s = 8, 16, 32.
    pub fn forward_levels(&self, x: Tensor<4>) -> [Tensor<4>; 3] {
        let x = self.down2.forward(self.stem.forward(x));
        let p3 = self.block3.forward(self.down3.forward(x));
        let p4 = self.block4.forward(self.down4.forward(p3.clone()));
        let p5 = self.block5.forward(self.down5.forward(p4.clone()));
        let n5 = self.lat5.forward(p5);
        let n4 = self
            .fuse4
            .forward(Tensor::cat(vec![self.up.forward(n5.clone()), p4], 1));
        let l4 = self.lat4.forward(n4.clone());
        let n3 = self
            .fuse3
            .forward(Tensor::cat(vec![self.up.forward(l4), p3], 1));
        [
            self.head3.forward(n3),
            self.head4.forward(n4),
            self.head5.forward(n5),
        ]
    }

    /// Raw predictions of all cells, `[B, 5 + C, N]` (levels in stride order, cells row-major).
    pub fn forward_raw(&self, x: Tensor<4>) -> Tensor<3> {
        let levels = self.forward_levels(x);
        let flat = levels
            .into_iter()
            .map(|t| {
                let [b, c, h, w] = t.dims();
                t.reshape([b, c, h * w])
            })
            .collect();
        Tensor::cat(flat, 2)
    }

    /// Decoded predictions `[B, 4 + C, N]`: cx, cy, w, h in input pixels, then per-class scores
    /// `sigmoid(obj) * sigmoid(cls)`. This is the exported graph's output.
    pub fn forward(&self, x: Tensor<4>, net: &DetNetConfig) -> Tensor<3> {
        decode(self.forward_raw(x), net)
    }
}

/// Decodes raw predictions `[B, 5 + C, N]` into `[B, 4 + C, N]` (see the module notes).
pub fn decode(raw: Tensor<3>, net: &DetNetConfig) -> Tensor<3> {
    let [b, _, n] = raw.dims();
    let c = net.classes;
    let device = raw.device();
    let [mul_xy, add_xy, mul_wh] = net
        .decode_constants()
        .map(|v| Tensor::<3>::from_data(TensorData::new(v, [1, 2, n]), &device));
    // The exported graph has batch 1 and needs no broadcast; training batches expand the constants.
    let fit = |t: Tensor<3>| if b == 1 { t } else { t.expand([b, 2, n]) };
    let xy = sigmoid(raw.clone().slice([0..b, 0..2, 0..n])) * fit(mul_xy) + fit(add_xy);
    let swh = sigmoid(raw.clone().slice([0..b, 2..4, 0..n]));
    let wh = swh.clone() * swh * fit(mul_wh);
    let obj = sigmoid(raw.clone().slice([0..b, 4..5, 0..n]));
    let cls = sigmoid(raw.slice([0..b, 5..5 + c, 0..n]));
    let obj = if c == 1 {
        obj
    } else {
        Tensor::cat(vec![obj; c], 1)
    };
    Tensor::cat(vec![xy, wh, obj * cls], 1)
}

/// Loads trained weights (`.bpk`) into a fresh detector on `device`.
pub fn load_detector(net: &DetNetConfig, path: &Path, device: &Device) -> anyhow::Result<YoloNet> {
    load_module(net.init(device), path)
}
