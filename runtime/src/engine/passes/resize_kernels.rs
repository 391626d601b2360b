//! Puts vigia's resampling kernel ([`Resize2d`]) in place of tract's `Resize` (linear, nearest
//! or cubic) in a decluttered model, where only the last two axes (height and width) change.
//!
//! The plans of both axes come from tract's own op ([`Resize::plan_axis`]): the same input
//! taps and weights, computed by a kernel that resamples whole rows and splits the planes over
//! the kernel threads. tract's general path resamples one axis at a time element by element,
//! which took 11 % of NanoDet-m's time and 18 % of CenterNet's. Integer nearest upsampling
//! (YOLO's) is already lowered by tract to a cheap copy and is left alone.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::nn::resize::Resize;

use crate::engine::ops::vigia_resize::VigiaResize;
use crate::kernels::resize::{AxisTaps, Resize2d};

/// Replaces every `Resize` of `model` the kernel supports; how many.
pub fn replace_resizes(model: &mut TypedModel) -> TractResult<usize> {
    super::replace_one_input_nodes(model, "vigia resize", vigia_resize)
}

/// Node `id` as a [`VigiaResize`]: f32, concrete shapes, leading axes unchanged, constant
/// scales (or sizes).
fn vigia_resize(model: &TypedModel, id: usize) -> TractResult<Option<VigiaResize>> {
    let node = model.node(id);
    let Some(op) = node.op_as::<Resize>() else {
        return Ok(None);
    };
    let input = model.outlet_fact(node.inputs[0])?;
    let output = &node.outputs[0].fact;
    let (Some(ins), Some(outs)) = (input.shape.as_concrete(), output.shape.as_concrete()) else {
        return Ok(None);
    };
    let rank = ins.len();
    if input.datum_type != f32::datum_type()
        || output.datum_type != f32::datum_type()
        || rank < 2
        || outs.len() != rank
        || ins.iter().chain(outs).any(|&d| d == 0)
    {
        return Ok(None);
    }
    // The scales as tract's evaluation takes them: the constant input when it has one per
    // axis, the ratio of the lengths otherwise.
    let given = match op.optional_scales_input.and_then(|ix| node.inputs.get(ix)) {
        Some(&outlet) => match &model.outlet_fact(outlet)?.konst {
            Some(k) => Some(
                k.cast_to::<f32>()?
                    .to_plain_array_view::<f32>()?
                    .iter()
                    .copied()
                    .collect::<Vec<f32>>(),
            ),
            None => return Ok(None),
        },
        None => None,
    };
    let scales: Vec<f32> = match given {
        Some(s) if s.len() == rank => s,
        _ => outs
            .iter()
            .zip(ins)
            .map(|(&o, &i)| o as f32 / i as f32)
            .collect(),
    };
    let unchanged = |a: usize| ins[a] == outs[a] && scales[a] == 1.0;
    if !(0..rank - 2).all(unchanged) {
        return Ok(None);
    }
    let plan = |a: usize| -> Option<AxisTaps> {
        let (len_in, len_out) = (ins[a], outs[a]);
        if unchanged(a) {
            // tract skips an axis that keeps its length at scale 1.
            return AxisTaps::new(len_in, 1, (0..len_in).collect(), vec![1.0; len_in]).ok();
        }
        let p = op.plan_axis(scales[a], len_in, len_out);
        if p.extrapolated.contains(&true) {
            return None;
        }
        AxisTaps::new(len_in, p.window, p.indices, p.weights).ok()
    };
    let (Some(rows), Some(cols)) = (plan(rank - 2), plan(rank - 1)) else {
        return Ok(None);
    };
    let planes = ins[..rank - 2].iter().product();
    Ok(Some(VigiaResize {
        resize: Arc::new(Resize2d::new(planes, rows, cols)),
        output_shape: outs.into(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::passes::test_run::run;
    use tract_onnx::tract_core::ops::nn::resize::{CoordTransformer, Interpolator, Nearest};

    /// A one-node model: `Resize` of a `[2, 3, h, w]` input by constant `scales` (or to
    /// constant `sizes`).
    fn model(op: Resize, h: usize, w: usize, aux: Tensor) -> TypedModel {
        let mut m = TypedModel::default();
        let x = m.add_source("x", f32::fact([2, 3, h, w])).unwrap();
        let aux = m.add_const("aux", aux).unwrap();
        let y = m.wire_node("resize", op, &[x, aux]).unwrap();
        m.select_output_outlets(&y).unwrap();
        m
    }

    #[test]
    fn every_mode_and_scale_gives_tracts_result() {
        let (h, w) = (7, 10);
        let input = Tensor::from_shape(
            &[2, 3, h, w],
            &(0..2 * 3 * h * w)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 9.0)
                .collect::<Vec<f32>>(),
        )
        .unwrap();
        let transforms = [
            CoordTransformer::HalfPixel,
            CoordTransformer::AlignCorners,
            CoordTransformer::Asymmetric,
            CoordTransformer::PytorchHalfPixel,
            CoordTransformer::HalfPixelSymmetric,
            CoordTransformer::TfHalfPixelForNn,
        ];
        let interpolators = [
            Interpolator::Linear,
            Interpolator::Nearest,
            Interpolator::Cubic,
        ];
        let mut checked = 0;
        for transform in transforms {
            for interpolator in &interpolators {
                for nearest in [Nearest::Floor, Nearest::RoundPreferCeil] {
                    for (sy, sx, by_sizes) in [
                        (2.0, 2.0, false),
                        (0.5, 0.5, false),
                        (1.5, 3.0, false),
                        (1.0, 0.75, false),
                        (3.0, 1.0, true),
                        (0.6, 1.7, true),
                    ] {
                        let aux = if by_sizes {
                            let (oh, ow) = ((h as f32 * sy) as i64, (w as f32 * sx) as i64);
                            tensor1(&[2i64, 3, oh, ow])
                        } else {
                            tensor1(&[1f32, 1.0, sy, sx])
                        };
                        let op = Resize {
                            coord_transformer: transform.clone(),
                            interpolator: interpolator.clone(),
                            nearest,
                            optional_scales_input: (!by_sizes).then_some(1),
                            optional_sizes_input: by_sizes.then_some(1),
                        };
                        let what = format!("{transform:?} {interpolator:?} {nearest:?} {sy}x{sx}");
                        let tract = model(op, h, w, aux);
                        let mut ours = tract.clone();
                        assert_eq!(replace_resizes(&mut ours).unwrap(), 1, "{what}");
                        let (want, got) = (run(tract, &input), run(ours, &input));
                        assert_eq!(got.len(), want.len(), "{what}");
                        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                            assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "{what} at {i}");
                        }
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(checked, 6 * 3 * 2 * 6);
    }

    #[test]
    fn resizing_the_channels_stays_tracts() {
        let op = Resize {
            coord_transformer: CoordTransformer::HalfPixel,
            interpolator: Interpolator::Linear,
            nearest: Nearest::Floor,
            optional_scales_input: Some(1),
            optional_sizes_input: None,
        };
        let mut m = model(op, 4, 4, tensor1(&[1f32, 2.0, 2.0, 2.0]));
        assert_eq!(replace_resizes(&mut m).unwrap(), 0);
    }
}
