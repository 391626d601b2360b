//! A product over a `Concat` that other nodes read too reaches vigia's pass as tract's declutter
//! leaves it: one product per part, each over a `Slice` of the `Concat`'s output (NanoDet-m's
//! PAN). When the pass puts the parts back together, slices that cover one tensor in order are
//! that tensor: reading it saves the slices' copies and the concatenation's.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::array::Slice;

/// The tensor `parts` (in order) slice along `axis` end to end, one after the other; `None`
/// when they are not all such slices of one tensor.
pub(super) fn sliced_whole(
    model: &TypedModel,
    parts: &[OutletId],
    axis: usize,
) -> TractResult<Option<OutletId>> {
    if parts.len() < 2 {
        return Ok(None);
    }
    let mut source = None;
    let mut next = 0;
    for part in parts {
        let node = model.node(part.node);
        let Some(slice) = node.op_as::<Slice>() else {
            return Ok(None);
        };
        let from = node.inputs[0];
        let (Ok(start), Ok(end)) = (slice.start.to_i64(), slice.end.to_i64()) else {
            return Ok(None);
        };
        if slice.axis != axis || *source.get_or_insert(from) != from || start != next {
            return Ok(None);
        }
        next = end;
    }
    let Some(source) = source else {
        return Ok(None);
    };
    let whole = model.outlet_fact(source)?.shape[axis].to_i64().ok();
    Ok((whole == Some(next)).then_some(source))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_covering_a_tensor_in_order_are_the_tensor() {
        let mut m = TypedModel::default();
        let x = m.add_source("x", f32::fact([1, 128, 4, 4])).unwrap();
        let mut slice = |name: &str, axis: usize, start: usize, end: usize| {
            m.wire_node(name, Slice::new(axis, start, end), &[x])
                .unwrap()[0]
        };
        let (low, high) = (slice("low", 1, 0, 64), slice("high", 1, 64, 128));
        let (quarter, short) = (slice("quarter", 1, 0, 32), slice("short", 1, 64, 120));
        let rows = (slice("top", 2, 0, 2), slice("bottom", 2, 2, 4));
        assert_eq!(sliced_whole(&m, &[low, high], 1).unwrap(), Some(x));
        assert_eq!(sliced_whole(&m, &[rows.0, rows.1], 2).unwrap(), Some(x));
        // Out of order, a gap, short of the end, a single part, another axis, not a slice.
        for (parts, axis) in [
            (vec![high, low], 1),
            (vec![quarter, high], 1),
            (vec![low, short], 1),
            (vec![low], 1),
            (vec![rows.0, rows.1], 1),
            (vec![x, low], 1),
        ] {
            assert_eq!(sliced_whole(&m, &parts, axis).unwrap(), None, "{parts:?}");
        }
    }
}
