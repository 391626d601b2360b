//! The classifier networks: the classic small CNN and an MLP baseline.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

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
}
