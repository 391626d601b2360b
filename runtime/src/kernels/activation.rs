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

    /// Applies the activation to every value of `xs` (a loop the compiler vectorizes for the
    /// piecewise-linear ones).
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
            a => xs.iter_mut().for_each(|x| *x = a.apply_one(*x)),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_and_scalar_forms_agree() {
        let xs: Vec<f32> = (-40..=40).map(|i| i as f32 * 0.25).collect();
        for act in [
            Activation::None,
            Activation::RELU,
            Activation::Clip { min: 0.0, max: 6.0 },
            Activation::LeakyRelu { alpha: 0.1 },
            Activation::HardSwish,
            Activation::Sigmoid,
            Activation::Silu,
        ] {
            let mut ys = xs.clone();
            act.apply(&mut ys);
            for (x, y) in xs.iter().zip(&ys) {
                assert_eq!(*y, act.apply_one(*x), "{act:?} at {x}");
            }
        }
        assert_eq!(Activation::HardSwish.apply_one(-3.0), 0.0);
        assert_eq!(Activation::HardSwish.apply_one(3.0), 3.0);
        assert_eq!(Activation::Clip { min: 0.0, max: 6.0 }.apply_one(7.0), 6.0);
    }
}
