//! What the kernels' tests share: a seeded generator, every activation, a tolerance check.

use super::Activation;

/// A small deterministic generator (SplitMix64).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value below `n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// A value in [-2, 2).
    pub fn value(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 4.0 - 2.0
    }

    /// `n` values in [-2, 2).
    pub fn values(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.value()).collect()
    }
}

/// Every activation the kernels fuse.
pub const ACTIVATIONS: [Activation; 8] = [
    Activation::None,
    Activation::RELU,
    Activation::Clip { min: 0.0, max: 6.0 },
    Activation::LeakyRelu { alpha: 0.1 },
    Activation::HardSwish,
    Activation::ScaledHardSwish { scale: 0.16662598 },
    Activation::Sigmoid,
    Activation::Silu,
];

/// Panics at the first value of `got` further than `tolerance * max(1, |want|)` from `want`.
pub fn assert_close(got: &[f32], want: &[f32], tolerance: f32, what: impl std::fmt::Display) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= tolerance * b.abs().max(1.0),
            "{what} at {i}: {a} vs {b}"
        );
    }
}
