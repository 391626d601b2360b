//! A classifier's fully connected layer (ONNX `Gemm` or `MatMul` on a flattened `[1, C]`
//! feature vector with constant `[O, C]` or `[C, O]` weights), which tract's declutter writes as
//! an `EinSum`: a 1x1 convolution over a map of one pixel. tract computes it as a matrix-vector
//! product on one thread; vigia's channel-lane product splits its output channels over the pool
//! (EfficientNet-Lite0's 1280 -> 1000, ResNet50's 2048 -> 1000: 5-8 MB of weights streamed once
//! a run).

use tract_onnx::prelude::*;

use super::constant_product::constant_product;

/// `y[o] = sum_c x[c] w[o][c]`, read from the graph.
pub(super) struct VectorProduct {
    /// The data input: `C` values (`[1, C]`, `[C, 1, 1]`).
    pub input: OutletId,
    pub channels: usize,
    pub out_channels: usize,
    /// The output's shape: `O` values (`[O]`, `[1, O]`).
    pub output_shape: TVec<usize>,
    /// The output axis of size `O`.
    pub channel_axis: usize,
    /// `[O][C]`, row-major.
    pub weights: Vec<f32>,
}

/// Node `id` as a [`VectorProduct`], else `None`: an f32 `EinSum` of data holding `C` values
/// and constant weights `[O, ...]` or `[..., O]` into an output of `O` values (`[O]`,
/// `[1, O]`). The axes summed over are the weights' other axes, in the same order in the data
/// (a flattened `[1, C]` vector, `[C, 1, 1]` from a pooled map with the flattening folded in,
/// or VGG's `[1, 512, 7, 7]` against `[4096, 512, 7, 7]`), so that both hold them as `C`
/// contiguous values; the data's remaining axes have size 1.
pub(super) fn vector_product(model: &TypedModel, id: usize) -> TractResult<Option<VectorProduct>> {
    let Some(product) = constant_product(model, id)? else {
        return Ok(None);
    };
    let k = product.constant;
    let (Some(shape), Some(out_shape)) = (
        product.data_fact.shape.as_concrete(),
        model.outlet_fact(OutletId::new(id, 0))?.shape.as_concrete(),
    ) else {
        return Ok(None);
    };
    let (xs, fs, os) = (
        &product.data_axes,
        &product.constant_axes,
        &product.output_axes,
    );
    // The output axis is the weights' one axis the data lacks, first or last.
    let o_first = !xs.contains(&fs[0]);
    let (o, summed) = match (o_first, fs.last()) {
        (true, _) => (fs[0], &fs[1..]),
        (false, Some(&last)) if !xs.contains(&last) => (last, &fs[..fs.len() - 1]),
        _ => return Ok(None),
    };
    if summed.is_empty() || summed.iter().any(|a| !xs.contains(a) || os.contains(a)) {
        return Ok(None);
    }
    // The data: the summed axes in the weights' order, every other axis of size 1.
    let kept: Vec<char> = xs
        .iter()
        .zip(shape)
        .filter(|&(a, &d)| summed.contains(a) || d != 1)
        .map(|(&a, _)| a)
        .collect();
    // The output: `o`, every other axis of size 1.
    let others_single = os.iter().zip(out_shape).all(|(&a, &d)| a == o || d == 1);
    if kept != summed || !os.contains(&o) || !others_single {
        return Ok(None);
    }
    let channels: usize = shape.iter().product();
    let out_channels = k.len() / channels.max(1);
    if out_channels * channels != k.len()
        || k.shape()[if o_first { 0 } else { k.rank() - 1 }] != out_channels
    {
        return Ok(None);
    }
    let weights: Vec<f32> = if o_first {
        k.to_plain_array_view::<f32>()?.iter().copied().collect()
    } else {
        let flat = (**k).clone().into_shape(&[channels, out_channels])?;
        let view = flat.to_plain_array_view::<f32>()?;
        view.t().iter().copied().collect()
    };
    Ok(Some(VectorProduct {
        input: product.data,
        channels,
        out_channels,
        output_shape: out_shape.into(),
        channel_axis: os.iter().position(|&a| a == o).expect("the output axis"),
        weights,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_classifier_head_is_the_one_vector_product() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../models/efficientnet-lite0-224.onnx"
        );
        let model = tract_onnx::onnx()
            .model_for_path(path)
            .unwrap()
            .into_typed()
            .unwrap()
            .into_decluttered()
            .unwrap();
        // The 1x1 convolutions are einsums too, over maps of many pixels: not taken.
        let heads: Vec<(usize, VectorProduct)> = model
            .nodes()
            .iter()
            .filter_map(|n| vector_product(&model, n.id).unwrap().map(|p| (n.id, p)))
            .collect();
        assert_eq!(heads.len(), 1);
        let (id, head) = &heads[0];
        assert_eq!((head.channels, head.out_channels), (1280, 1000));
        // The weights as `[O][C]`, whichever way the graph holds them.
        let node = model.node(*id);
        let k = node
            .inputs
            .iter()
            .find_map(|i| model.outlet_fact(*i).unwrap().konst.clone())
            .unwrap();
        let k = k.to_plain_array_view::<f32>().unwrap();
        let (o, c) = (7, 1234);
        let want = if k.shape() == [1000, 1280] {
            k[[o, c]]
        } else {
            k[[c, o]]
        };
        assert_eq!(head.weights[o * 1280 + c], want);
        assert_eq!(head.weights.len(), 1000 * 1280);
    }
}
