//! Activations fused into a kernel's epilogue, applied while the output is still in cache, in
//! loops compiled for the kernels' instruction set.

use super::Isa;

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
    /// `(x * scale) * clamp(x + 3, 0, 6)`: hard swish as TensorFlow's MobileNetV3 writes it out
    /// in elementary operators, with its own scale (1/6, or that rounded to f16: 0.16662598).
    ScaledHardSwish { scale: f32 },
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
            (LeakyRelu { alpha: a }, LeakyRelu { alpha: b })
            | (ScaledHardSwish { scale: a }, ScaledHardSwish { scale: b }) => {
                a.to_bits() == b.to_bits()
            }
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
            Activation::ScaledHardSwish { scale } => scale.to_bits().hash(state),
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
            Activation::Clip { min, max } => clip(x, min, max),
            Activation::LeakyRelu { alpha } => {
                if x < 0.0 {
                    alpha * x
                } else {
                    x
                }
            }
            Activation::HardSwish => x * (x * (1.0 / 6.0) + 0.5).clamp(0.0, 1.0),
            Activation::ScaledHardSwish { scale } => x * scale * clip(x + 3.0, 0.0, 6.0),
            Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Activation::Silu => x / (1.0 + (-x).exp()),
        }
    }

    /// Applies the activation to every value of `xs`, compiled for `isa`'s vectors.
    pub fn apply_for(self, isa: Isa, xs: &mut [f32]) {
        match isa {
            // SAFETY: the branch runs only where the CPU has the instruction set.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 if isa.is_supported() => unsafe { x86::apply_avx512(self, xs) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma if isa.is_supported() => unsafe { x86::apply_avx2(self, xs) },
            _ => self.apply(xs),
        }
    }

    /// Applies the activation to `rows` rows of `width` values `pitch` apart from `first` (a
    /// tile of a matrix), compiled for `isa`'s vectors, with one dispatch for the whole tile.
    ///
    /// # Safety
    /// `first` must point to `rows` rows of `width` writable values, `pitch` values apart, that
    /// nothing else accesses during the call.
    pub unsafe fn apply_rows_for(
        self,
        isa: Isa,
        first: *mut f32,
        rows: usize,
        width: usize,
        pitch: usize,
    ) {
        match isa {
            // SAFETY: the branch runs only where the CPU has the instruction set; the rows are
            // the caller's promise.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 if isa.is_supported() => unsafe {
                x86::apply_rows_avx512(self, first, rows, width, pitch)
            },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma if isa.is_supported() => unsafe {
                x86::apply_rows_avx2(self, first, rows, width, pitch)
            },
            // SAFETY: as above.
            _ => unsafe { apply_rows(self, first, rows, width, pitch) },
        }
    }

    /// Writes the activation of `src` into `dst` (the same length), compiled for `isa`'s
    /// vectors: a kernel's copy-out and activation in one pass.
    pub fn apply_into_for(self, isa: Isa, src: &[f32], dst: &mut [f32]) {
        match isa {
            // SAFETY: the branch runs only where the CPU has the instruction set.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 if isa.is_supported() => unsafe { x86::apply_into_avx512(self, src, dst) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma if isa.is_supported() => unsafe { x86::apply_into_avx2(self, src, dst) },
            _ => self.apply_into(src, dst),
        }
    }

    /// [`Activation::apply_into`] on `xs` in place.
    #[inline(always)]
    pub fn apply(self, xs: &mut [f32]) {
        match self {
            Activation::None => {}
            Activation::Clip { min, max } => xs.iter_mut().for_each(|x| *x = clip(*x, min, max)),
            Activation::LeakyRelu { alpha } => xs
                .iter_mut()
                .for_each(|x| *x = if *x < 0.0 { alpha * *x } else { *x }),
            Activation::HardSwish => xs
                .iter_mut()
                .for_each(|x| *x *= (*x * (1.0 / 6.0) + 0.5).clamp(0.0, 1.0)),
            Activation::ScaledHardSwish { scale } => xs
                .iter_mut()
                .for_each(|x| *x = *x * scale * clip(*x + 3.0, 0.0, 6.0)),
            Activation::Sigmoid => xs
                .iter_mut()
                .for_each(|x| *x = 1.0 / (1.0 + exp_vectorizable(-*x))),
            Activation::Silu => xs
                .iter_mut()
                .for_each(|x| *x /= 1.0 + exp_vectorizable(-*x)),
        }
    }

    /// Writes the activation of each value of `src` into `dst`, in loops the compiler vectorizes
    /// (the exponential of Sigmoid and SiLU through [`exp_vectorizable`], within 3e-7 of `exp`).
    #[inline(always)]
    pub fn apply_into(self, src: &[f32], dst: &mut [f32]) {
        assert_eq!(src.len(), dst.len(), "activation lengths");
        let pairs = dst.iter_mut().zip(src);
        match self {
            Activation::None => dst.copy_from_slice(src),
            Activation::Clip { min, max } => pairs.for_each(|(y, &x)| *y = clip(x, min, max)),
            Activation::LeakyRelu { alpha } => {
                pairs.for_each(|(y, &x)| *y = if x < 0.0 { alpha * x } else { x })
            }
            Activation::HardSwish => {
                pairs.for_each(|(y, &x)| *y = x * (x * (1.0 / 6.0) + 0.5).clamp(0.0, 1.0))
            }
            Activation::ScaledHardSwish { scale } => {
                pairs.for_each(|(y, &x)| *y = x * scale * clip(x + 3.0, 0.0, 6.0))
            }
            Activation::Sigmoid => {
                pairs.for_each(|(y, &x)| *y = 1.0 / (1.0 + exp_vectorizable(-x)))
            }
            Activation::Silu => pairs.for_each(|(y, &x)| *y = x / (1.0 + exp_vectorizable(-x))),
        }
    }

    /// `(min, max)` when the activation is a clamp (ReLU, ReLU6, Clip), which a kernel applies
    /// to its accumulators in registers, before it stores them, instead of in a pass over the
    /// stored output.
    pub fn clamp_bounds(self) -> Option<(f32, f32)> {
        match self {
            Activation::Clip { min, max } => Some((min, max)),
            _ => None,
        }
    }

    /// The activation as `isa`'s micro-kernels apply it to their accumulators in registers:
    /// clamps and LeakyReLU (one or two instructions a vector) everywhere, Sigmoid and SiLU
    /// where they are written in vector intrinsics (x86-64), so that their pass over the stored
    /// tile, a load and a store a vector, goes away.
    pub fn in_registers(self, isa: Isa) -> Option<InRegisters> {
        let vector_logistic = matches!(isa, Isa::Avx512 | Isa::Avx2Fma);
        match self {
            Activation::Clip { min, max } => Some(InRegisters::Clamp(min, max)),
            Activation::LeakyRelu { alpha } => Some(InRegisters::Leaky(alpha)),
            Activation::Sigmoid if vector_logistic => Some(InRegisters::Sigmoid),
            Activation::Silu if vector_logistic => Some(InRegisters::Silu),
            _ => None,
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
            Activation::ScaledHardSwish { scale } => format!("hard-swish(x*{scale})"),
            Activation::Sigmoid => "sigmoid".into(),
            Activation::Silu => "silu".into(),
        }
    }
}

/// An activation a micro-kernel applies to its accumulators before it stores them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum InRegisters {
    /// `x` clamped to `[min, max]` (ReLU, ReLU6, Clip): a max and a min.
    Clamp(f32, f32),
    /// `alpha x` where `x < 0`, else `x` (LeakyReLU): a compare and a masked multiply.
    Leaky(f32),
    /// `1 / (1 + e^-x)`: an exponential's polynomial and a refined reciprocal.
    Sigmoid,
    /// `x / (1 + e^-x)`: the sigmoid and a multiply.
    Silu,
}

impl InRegisters {
    /// The activation of one value.
    #[inline(always)]
    pub fn apply_one(self, x: f32) -> f32 {
        match self {
            InRegisters::Clamp(min, max) => clip(x, min, max),
            InRegisters::Leaky(alpha) => {
                if x < 0.0 {
                    alpha * x
                } else {
                    x
                }
            }
            InRegisters::Sigmoid => Activation::Sigmoid.apply_one(x),
            InRegisters::Silu => Activation::Silu.apply_one(x),
        }
    }
}

/// `x` clamped to `[min, max]` as two compares and selects, which compile to one max and one
/// min instruction (`f32::max` adds NaN fix-ups that triple the instructions).
#[inline(always)]
fn clip(x: f32, min: f32, max: f32) -> f32 {
    let y = if x > min { x } else { min };
    if y < max {
        y
    } else {
        max
    }
}

/// [`Activation::apply`] on each row of a tile.
///
/// # Safety
/// As [`Activation::apply_rows_for`].
#[inline(always)]
unsafe fn apply_rows(
    activation: Activation,
    first: *mut f32,
    rows: usize,
    width: usize,
    pitch: usize,
) {
    for r in 0..rows {
        // SAFETY: the caller promises `rows` rows of `width` values `pitch` apart.
        activation.apply(unsafe { std::slice::from_raw_parts_mut(first.add(r * pitch), width) });
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86;

/// `e^x` in f32 from plain arithmetic, so that loops over it vectorize: `x = n ln 2 + r` with
/// `|r| <= ln 2 / 2`, a degree-6 polynomial for `e^r` (the Cephes coefficients) and `2^n` built
/// from its exponent bits. Inputs are clamped to `[-87, 88]` (the normal range); relative error
/// about 2e-7.
///
/// `n` never goes through a float-to-integer cast: Rust's `as i32` saturates and maps NaN to 0,
/// which the compiler turns into one scalar conversion per vector lane (it made SiLU 13 % of
/// YOLOv8n's time). The rounding sum `x log2(e) + 1.5 * 2^23` already holds `n` in its low
/// mantissa bits, so the exponent of `2^n` is taken from there with integer adds and a shift.
#[inline(always)]
pub fn exp_vectorizable(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let rounded = x * std::f32::consts::LOG2_E + ROUND;
    let n = rounded - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = EXP_POLY[0];
    for c in &EXP_POLY[1..] {
        p = p * r + c;
    }
    let e = p * r * r + r + 1.0;
    // `n + 127` is in 1..=254 (x clamped above): a normal exponent.
    let exponent = rounded.to_bits().wrapping_sub(ROUND_BITS).wrapping_add(127);
    e * f32::from_bits(exponent << 23)
}

/// `ln 2` split so that `n * LN2_HI` is exact for the `n` of [`exp_vectorizable`].
const LN2_HI: f32 = 0.693_359_4;
/// `ln 2 - LN2_HI`.
const LN2_LO: f32 = -2.121_944_4e-4;
/// Adding then subtracting `1.5 * 2^23` rounds to the nearest integer.
const ROUND: f32 = 12_582_912.0;
/// The bits of `ROUND + n` for an integer `n` of small magnitude: `ROUND_BITS + n`.
const ROUND_BITS: u32 = 0x4B40_0000;
/// The polynomial of `(e^r - 1 - r) / r^2` on `|r| <= ln 2 / 2`, highest degree first (Cephes).
const EXP_POLY: [f32; 6] = [
    1.987_569_2e-4,
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    1.666_666_5e-1,
    0.5,
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Panics at the first value of `got` more than `ulps` units in the last place from `want`.
    fn assert_within_ulps(got: &[f32], want: &[f32], ulps: u32, what: String) {
        assert_eq!(got.len(), want.len(), "{what}: lengths");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            let apart = (g.to_bits() as i64 - w.to_bits() as i64).unsigned_abs();
            let same_sign = g.is_sign_negative() == w.is_sign_negative();
            let close = g == w || (same_sign && apart <= ulps as u64);
            assert!(close, "{what} at {i}: {g} vs {w}");
        }
    }

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
        for isa in Isa::all_supported() {
            for act in crate::kernels::test_support::ACTIVATIONS {
                let mut want = xs.clone();
                act.apply(&mut want);
                // Sigmoid and SiLU take the reciprocal from a refined estimate where the
                // portable loop divides: a few ulp apart; the others are the same arithmetic.
                let ulps = if matches!(act, Activation::Sigmoid | Activation::Silu) {
                    8
                } else {
                    0
                };
                let mut got = xs.clone();
                act.apply_for(isa, &mut got);
                assert_within_ulps(&got, &want, ulps, format!("{isa:?} {act:?} in place"));
                let mut got = vec![f32::NAN; xs.len()];
                act.apply_into_for(isa, &xs, &mut got);
                assert_within_ulps(&got, &want, ulps, format!("{isa:?} {act:?} into"));
                // As a tile: 3 rows of 20 values, 27 apart; the gaps stay as they were.
                let mut got = xs.clone();
                unsafe { act.apply_rows_for(isa, got.as_mut_ptr(), 3, 20, 27) };
                let want: Vec<f32> = (0..xs.len())
                    .map(|i| match i < 3 * 27 && i % 27 < 20 {
                        true => want[i],
                        false => xs[i],
                    })
                    .collect();
                assert_within_ulps(&got, &want, ulps, format!("{isa:?} {act:?} tile"));
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
        // The exponent taken from the rounding sum's bits is the one a cast of `n` gives: the
        // results are the very bits of the cast-based formula, across the clamp and beyond.
        let by_cast = |x: f32| {
            let x = x.clamp(-87.0, 88.0);
            let n = (x * std::f32::consts::LOG2_E + 12_582_912.0) - 12_582_912.0;
            let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
            let mut p = 1.987_569_2e-4f32;
            for c in [
                1.398_199_9e-3,
                8.333_452e-3,
                4.166_579_6e-2,
                1.666_666_5e-1,
                0.5,
            ] {
                p = p * r + c;
            }
            (p * r * r + r + 1.0) * f32::from_bits(((n as i32 + 127) << 23) as u32)
        };
        for i in -10_000..=10_000 {
            let x = i as f32 * 0.0123;
            assert_eq!(
                exp_vectorizable(x).to_bits(),
                by_cast(x).to_bits(),
                "exp({x})"
            );
        }
        for x in [f32::INFINITY, f32::NEG_INFINITY, 1e30, -1e30] {
            let e = exp_vectorizable(x);
            assert!(e.is_finite() && e > 0.0, "exp({x}) = {e}");
        }
        assert!(exp_vectorizable(f32::NAN).is_nan());
        // The vector forms over the exponential's range and beyond, NaN included; on inputs
        // no network produces, never NaN and never the wrong sign.
        let wide: Vec<f32> = (-1200..=1200)
            .map(|i| i as f32 * 0.1)
            .chain([1e4, -1e4, f32::NAN])
            .collect();
        let extreme = [f32::INFINITY, f32::NEG_INFINITY, 1e30, -1e30];
        for isa in Isa::all_supported() {
            for act in [Activation::Sigmoid, Activation::Silu] {
                let mut want = wide.clone();
                act.apply(&mut want);
                let mut got = wide.clone();
                act.apply_for(isa, &mut got);
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    let close = g == w || (g - w).abs() <= 1e-6 * w.abs() + 1e-30;
                    assert!(
                        close || (g.is_nan() && w.is_nan()),
                        "{isa:?} {act:?} at {}: {g} vs {w}",
                        wide[i]
                    );
                }
                let mut got = extreme;
                act.apply_for(isa, &mut got);
                for (x, y) in extreme.iter().zip(got) {
                    let fits = match act {
                        Activation::Sigmoid => (0.0..=1.0).contains(&y),
                        _ => x * y >= 0.0,
                    };
                    assert!(fits, "{isa:?} {act:?} at {x}: {y}");
                }
            }
        }
        assert_eq!(Activation::HardSwish.apply_one(-3.0), 0.0);
        assert_eq!(Activation::HardSwish.apply_one(3.0), 3.0);
        let tf = Activation::ScaledHardSwish { scale: 1.0 / 6.0 };
        assert_eq!(tf.apply_one(-3.0), 0.0);
        assert_eq!(tf.apply_one(3.0), 3.0);
        assert_eq!(tf.apply_one(1.0), 1.0 / 6.0 * 4.0);
        assert_eq!(Activation::Clip { min: 0.0, max: 6.0 }.apply_one(7.0), 6.0);
    }
}
