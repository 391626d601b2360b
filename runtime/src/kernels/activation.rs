//! Activations fused into a kernel's epilogue, applied while the output is still in cache.

/// An element-wise activation a kernel applies to its output.
#[derive(Debug, Clone, Copy)]
pub enum Activation {
    /// The identity.
    None,
    /// `min(max(x, min), max)`: ReLU is `Clip { min: 0, max: inf }`, ReLU6 `max: 6`.
    Clip { min: f32, max: f32 },
    /// `x` when positive, `alpha * x` otherwise.
    LeakyRelu { alpha: f32 },
    /// `x * clamp(x / 6 + 1/2, 0, 1)` (ONNX HardSwish).
    HardSwish,
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
    /// `x * sigmoid(x)` (SiLU, Swish).
    Silu,
}

impl PartialEq for Activation {
    fn eq(&self, other: &Self) -> bool {
        use Activation::*;
        match (self, other) {
            (None, None) | (HardSwish, HardSwish) | (Sigmoid, Sigmoid) | (Silu, Silu) => true,
            (Clip { min: a, max: b }, Clip { min: c, max: d }) => {
                a.to_bits() == c.to_bits() && b.to_bits() == d.to_bits()
            }
            (LeakyRelu { alpha: a }, LeakyRelu { alpha: b }) => a.to_bits() == b.to_bits(),
            _ => false,
        }
    }
}

impl Eq for Activation {}

impl std::hash::Hash for Activation {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self).hash(state);
        match self {
            Activation::Clip { min, max } => (min.to_bits(), max.to_bits()).hash(state),
            Activation::LeakyRelu { alpha } => alpha.to_bits().hash(state),
            _ => {}
        }
    }
}

impl Activation {
    /// ReLU.
    pub const RELU: Activation = Activation::Clip {
        min: 0.0,
        max: f32::INFINITY,
    };

    /// The activation of one value.
    #[inline(always)]
    pub fn apply_one(self, x: f32) -> f32 {
        match self {
            Activation::None => x,
            Activation::Clip { min, max } => x.max(min).min(max),
            Activation::LeakyRelu { alpha } => {
                if x < 0.0 {
                    alpha * x
                } else {
                    x
                }
            }
            Activation::HardSwish => x * (x * (1.0 / 6.0) + 0.5).clamp(0.0, 1.0),
            Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Activation::Silu => x / (1.0 + (-x).exp()),
        }
    }

    /// Applies the activation to every value of `xs`, in loops the compiler vectorizes (the
    /// exponential of Sigmoid and SiLU through [`exp_vectorizable`], within 3e-7 of `exp`).
    #[inline]
    pub fn apply(self, xs: &mut [f32]) {
        match self {
            Activation::None => {}
            Activation::Clip { min, max } => xs.iter_mut().for_each(|x| *x = x.max(min).min(max)),
            Activation::LeakyRelu { alpha } => xs
                .iter_mut()
                .for_each(|x| *x = if *x < 0.0 { alpha * *x } else { *x }),
            Activation::HardSwish => xs
                .iter_mut()
                .for_each(|x| *x *= (*x * (1.0 / 6.0) + 0.5).clamp(0.0, 1.0)),
            Activation::Sigmoid => xs
                .iter_mut()
                .for_each(|x| *x = 1.0 / (1.0 + exp_vectorizable(-*x))),
            Activation::Silu => xs
                .iter_mut()
                .for_each(|x| *x /= 1.0 + exp_vectorizable(-*x)),
        }
    }

    /// Short name for reports.
    pub fn name(self) -> String {
        match self {
            Activation::None => "none".into(),
            Activation::Clip { min, max } if min == 0.0 && max == f32::INFINITY => "relu".into(),
            Activation::Clip { min, max } if min == 0.0 && max == 6.0 => "relu6".into(),
            Activation::Clip { min, max } => format!("clip({min},{max})"),
            Activation::LeakyRelu { alpha } => format!("leaky-relu({alpha})"),
            Activation::HardSwish => "hard-swish".into(),
            Activation::Sigmoid => "sigmoid".into(),
            Activation::Silu => "silu".into(),
        }
    }
}

/// `e^x` in f32 from plain arithmetic, so that loops over it vectorize: `x = n ln 2 + r` with
/// `|r| <= ln 2 / 2`, a degree-6 polynomial for `e^r` (the Cephes coefficients) and `2^n` built
/// from its exponent bits. Inputs are clamped to `[-87, 88]` (the normal range); relative error
/// about 2e-7.
#[inline(always)]
pub fn exp_vectorizable(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split so that `n * LN2_HI` is exact.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding then subtracting 1.5 * 2^23 rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_2e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    e * f32::from_bits(((n as i32 + 127) << 23) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_and_scalar_forms_agree() {
        let xs: Vec<f32> = (-40..=40).map(|i| i as f32 * 0.25).collect();
        for act in crate::kernels::test_support::ACTIVATIONS {
            let mut ys = xs.clone();
            act.apply(&mut ys);
            for (x, y) in xs.iter().zip(&ys) {
                let want = act.apply_one(*x);
                assert!(
                    (y - want).abs() <= 1e-6 * want.abs().max(1e-3),
                    "{act:?} at {x}: {y} vs {want}"
                );
            }
        }
        for i in -8700..=8800 {
            let x = i as f32 * 0.01;
            let (got, want) = (exp_vectorizable(x), (x as f64).exp());
            assert!(
                ((got as f64 - want) / want).abs() < 5e-7,
                "exp({x}): {got} vs {want}"
            );
        }
        assert_eq!(Activation::HardSwish.apply_one(-3.0), 0.0);
        assert_eq!(Activation::HardSwish.apply_one(3.0), 3.0);
        assert_eq!(Activation::Clip { min: 0.0, max: 6.0 }.apply_one(7.0), 6.0);
    }
}
