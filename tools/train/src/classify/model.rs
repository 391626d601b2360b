//! The classifier networks: the classic small CNN and an MLP baseline.

use std::path::Path;

use burn::module::Module;
use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::common::checkpoint::load_module;
use crate::common::tensor::host;

/// Which network to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// Conv-ReLU-MaxPool x2 -> Linear-ReLU -> Dropout -> Linear.
    Cnn,
    /// Flatten -> Linear-ReLU -> Dropout -> Linear.
    Mlp,
}

/// Everything needed to rebuild a network with the same parameter shapes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetConfig {
    /// Network family.
    pub arch: Arch,
    /// Input channels (1 grey, 3 RGB).
    pub channels: usize,
    /// Input height in pixels.
    pub height: usize,
    /// Input width in pixels.
    pub width: usize,
    /// Number of classes.
    pub classes: usize,
    /// Output channels of the two convolutions (CNN only).
    pub conv: [usize; 2],
    /// Width of the hidden fully connected layer.
    pub hidden: usize,
    /// Dropout probability before the last layer.
    pub dropout: f64,
}

impl NetConfig {
    /// Checks that the network can be built for this input size.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.classes >= 2, "at least 2 classes are needed");
        anyhow::ensure!(
            (0.0..1.0).contains(&self.dropout),
            "--dropout must be in [0, 1), got {}",
            self.dropout
        );
        anyhow::ensure!(self.hidden > 0, "--hidden must be at least 1");
        if self.arch == Arch::Cnn {
            anyhow::ensure!(
                self.conv.iter().all(|c| *c > 0),
                "--conv-channels must be positive"
            );
            anyhow::ensure!(
                self.height >= 16 && self.width >= 16,
                "the CNN needs inputs of at least 16x16 pixels (got {}x{})",
                self.width,
                self.height
            );
        }
        Ok(())
    }

    /// Side of the feature map after the two conv (5x5, valid) + pool (2x2) stages.
    fn feature_hw(&self) -> (usize, usize) {
        let stage = |v: usize| (v - 4) / 2;
        (stage(stage(self.height)), stage(stage(self.width)))
    }

    /// Shapes of the CNN's transferable parameters, by name (`conv1.weight`, ..., `fc1.bias`),
    /// in burn's layout: conv `[out, in, kh, kw]`, linear `[in, out]`.
    pub fn backbone_shapes(&self) -> Vec<(&'static str, Vec<usize>)> {
        let (fh, fw) = self.feature_hw();
        vec![
            ("conv1.weight", vec![self.conv[0], self.channels, 5, 5]),
            ("conv1.bias", vec![self.conv[0]]),
            ("conv2.weight", vec![self.conv[1], self.conv[0], 5, 5]),
            ("conv2.bias", vec![self.conv[1]]),
            ("fc1.weight", vec![self.conv[1] * fh * fw, self.hidden]),
            ("fc1.bias", vec![self.hidden]),
        ]
    }

    /// Builds the network with freshly initialised weights on `device`.
    pub fn init(&self, device: &Device) -> Net {
        match self.arch {
            Arch::Cnn => Net::Cnn(Cnn::new(self, device)),
            Arch::Mlp => Net::Mlp(Mlp::new(self, device)),
        }
    }
}

/// The classic small CNN.
#[derive(Module, Debug)]
pub struct Cnn {
    conv1: Conv2d,
    conv2: Conv2d,
    pool: MaxPool2d,
    fc1: Linear,
    dropout: Dropout,
    fc2: Linear,
}

impl Cnn {
    fn new(c: &NetConfig, device: &Device) -> Self {
        let (fh, fw) = c.feature_hw();
        Cnn {
            conv1: Conv2dConfig::new([c.channels, c.conv[0]], [5, 5]).init(device),
            conv2: Conv2dConfig::new([c.conv[0], c.conv[1]], [5, 5]).init(device),
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            fc1: LinearConfig::new(c.conv[1] * fh * fw, c.hidden).init(device),
            dropout: DropoutConfig::new(c.dropout).init(),
            fc2: LinearConfig::new(c.hidden, c.classes).init(device),
        }
    }

    /// Logits `[B, classes]` for images `[B, C, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.pool.forward(relu(self.conv1.forward(x)));
        let x = self.pool.forward(relu(self.conv2.forward(x)));
        let [b, c, h, w] = x.dims();
        let x = x.reshape([b, c * h * w]);
        let x = relu(self.fc1.forward(x));
        self.fc2.forward(self.dropout.forward(x))
    }
}

/// The CNN's layers in freezing order: `--freeze N` freezes the first N of them.
pub const CNN_LAYERS: [&str; 3] = ["conv1", "conv2", "fc1"];

impl Cnn {
    /// Host copies of the transferable parameters (`conv1.weight` .. `fc1.bias`) with shapes.
    pub fn backbone_tensors(&self) -> Vec<(&'static str, Vec<usize>, Vec<f32>)> {
        fn shaped<const D: usize>(t: Tensor<D>) -> (Vec<usize>, Vec<f32>) {
            (t.dims().to_vec(), host(t))
        }
        fn bias(b: &Option<Param<Tensor<1>>>) -> (Vec<usize>, Vec<f32>) {
            b.as_ref().map(|p| shaped(p.val())).unwrap_or_default()
        }
        let mut out = Vec::new();
        let (s, v) = shaped(self.conv1.weight.val());
        out.push(("conv1.weight", s, v));
        let (s, v) = bias(&self.conv1.bias);
        out.push(("conv1.bias", s, v));
        let (s, v) = shaped(self.conv2.weight.val());
        out.push(("conv2.weight", s, v));
        let (s, v) = bias(&self.conv2.bias);
        out.push(("conv2.bias", s, v));
        let (s, v) = shaped(self.fc1.weight.val());
        out.push(("fc1.weight", s, v));
        let (s, v) = bias(&self.fc1.bias);
        out.push(("fc1.bias", s, v));
        out
    }

    /// Replaces the parameters named in `tensors` (`conv1.weight`, ..., shapes already checked
    /// against [`NetConfig::backbone_shapes`]) with the given values on `device`.
    pub fn with_tensors(
        mut self,
        tensors: &[(&str, Vec<usize>, Vec<f32>)],
        device: &Device,
    ) -> Self {
        fn p<const D: usize>(shape: &[usize], v: &[f32], device: &Device) -> Param<Tensor<D>> {
            let mut s = [0usize; D];
            s.copy_from_slice(shape);
            Param::from_tensor(Tensor::from_data(TensorData::new(v.to_vec(), s), device))
        }
        for (name, shape, v) in tensors {
            match *name {
                "conv1.weight" => self.conv1.weight = p(shape, v, device),
                "conv1.bias" => self.conv1.bias = Some(p(shape, v, device)),
                "conv2.weight" => self.conv2.weight = p(shape, v, device),
                "conv2.bias" => self.conv2.bias = Some(p(shape, v, device)),
                "fc1.weight" => self.fc1.weight = p(shape, v, device),
                "fc1.bias" => self.fc1.bias = Some(p(shape, v, device)),
                _ => {}
            }
        }
        self
    }

    /// Stops gradients of the first `n` layers of [`CNN_LAYERS`] (burn's `Module::no_grad`), so
    /// the optimizer leaves them unchanged.
    pub fn freeze(mut self, n: usize) -> Self {
        if n >= 1 {
            self.conv1 = self.conv1.no_grad();
        }
        if n >= 2 {
            self.conv2 = self.conv2.no_grad();
        }
        if n >= 3 {
            self.fc1 = self.fc1.no_grad();
        }
        self
    }
}

/// A one-hidden-layer perceptron on the flattened pixels.
#[derive(Module, Debug)]
pub struct Mlp {
    fc1: Linear,
    dropout: Dropout,
    fc2: Linear,
}

impl Mlp {
    fn new(c: &NetConfig, device: &Device) -> Self {
        Mlp {
            fc1: LinearConfig::new(c.channels * c.height * c.width, c.hidden).init(device),
            dropout: DropoutConfig::new(c.dropout).init(),
            fc2: LinearConfig::new(c.hidden, c.classes).init(device),
        }
    }

    /// Logits `[B, classes]` for images `[B, C, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let [b, c, h, w] = x.dims();
        let x = relu(self.fc1.forward(x.reshape([b, c * h * w])));
        self.fc2.forward(self.dropout.forward(x))
    }
}

/// One of the classifier networks.
// One network lives per run; the size difference between the variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Net {
    /// The small CNN.
    Cnn(Cnn),
    /// The MLP baseline.
    Mlp(Mlp),
}

impl Net {
    /// Logits `[B, classes]` for images `[B, C, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        match self {
            Net::Cnn(m) => m.forward(x),
            Net::Mlp(m) => m.forward(x),
        }
    }

    /// Freezes the first `n` CNN layers (no gradients, so no updates); the MLP is unchanged.
    pub fn freeze(self, n: usize) -> Net {
        match self {
            Net::Cnn(c) if n > 0 => Net::Cnn(c.freeze(n)),
            m => m,
        }
    }
}

/// Loads trained weights (`.bpk`) into a fresh network on `device`.
pub fn load_weights(net: &NetConfig, path: &Path, device: &Device) -> anyhow::Result<Net> {
    load_module(net.init(device), path)
}
