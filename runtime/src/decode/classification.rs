//! Classifier outputs: `[1, C]` or `[1, C, 1, 1]` logits or probabilities to the top-k classes.

use std::cmp::Ordering;

use tract_core::ndarray::ArrayViewD;

use super::{decode_error, fmt_shape};
use crate::error::Result;
use crate::model::OutputFamily;

/// The `k` most probable classes as `(index, probability)`, highest first (ties by lower index).
///
/// `softmax`: `Some(true)` always applies a numerically stable softmax, `Some(false)` never does,
/// `None` applies it unless the values already form a distribution (none negative, sum within 1e-3
/// of 1). NaN counts as negative infinity (probability 0 after softmax).
pub fn top_k(
    output: &ArrayViewD<'_, f32>,
    k: usize,
    softmax: Option<bool>,
) -> Result<Vec<(usize, f32)>> {
    let shape = output.shape();
    let non_unit = shape.iter().filter(|&&d| d != 1).count();
    let batch_ok = shape.len() < 2 || shape[0] == 1;
    if output.is_empty() || non_unit > 1 || !batch_ok {
        return Err(decode_error(
            OutputFamily::Classification,
            format!(
                "expected an output of shape [1,C] or [1,C,1,1], got {}",
                fmt_shape(shape)
            ),
        ));
    }
    let raw: Vec<f32> = output.iter().copied().collect();
    let apply = softmax.unwrap_or_else(|| !is_distribution(&raw));
    let probs: Vec<f32> = if apply {
        softmax_of(&raw)
    } else {
        raw.iter()
            .map(|&v| if v.is_nan() { f32::NEG_INFINITY } else { v })
            .collect()
    };
    let by_prob =
        |a: &usize, b: &usize| -> Ordering { probs[*b].total_cmp(&probs[*a]).then(a.cmp(b)) };
    let mut idx: Vec<usize> = (0..probs.len()).collect();
    let k = k.min(idx.len());
    if k == 0 {
        return Ok(Vec::new());
    }
    if k < idx.len() {
        idx.select_nth_unstable_by(k - 1, by_prob);
        idx.truncate(k);
    }
    idx.sort_unstable_by(by_prob);
    Ok(idx.into_iter().map(|i| (i, probs[i])).collect())
}

/// True when `v` already looks like probabilities: no NaN, none negative, sum within 1e-3 of 1.
fn is_distribution(v: &[f32]) -> bool {
    if v.iter().any(|x| x.is_nan() || *x < 0.0) {
        return false;
    }
    let sum: f64 = v.iter().map(|&x| x as f64).sum();
    (sum - 1.0).abs() <= 1e-3
}

/// Softmax with the maximum subtracted first; NaN is negative infinity. All -inf gives zeros, and
/// +inf entries share the whole mass.
fn softmax_of(v: &[f32]) -> Vec<f32> {
    let clean = |x: f32| if x.is_nan() { f32::NEG_INFINITY } else { x };
    let max = v
        .iter()
        .copied()
        .map(clean)
        .fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return vec![0.0; v.len()];
    }
    if max == f32::INFINITY {
        let n = v.iter().filter(|&&x| x == f32::INFINITY).count() as f32;
        return v
            .iter()
            .map(|&x| if x == f32::INFINITY { 1.0 / n } else { 0.0 })
            .collect();
    }
    let e: Vec<f32> = v.iter().map(|&x| (clean(x) - max).exp()).collect();
    let sum: f64 = e.iter().map(|&x| x as f64).sum();
    e.iter().map(|&x| (x as f64 / sum) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_core::ndarray::{Array, IxDyn};

    fn arr(shape: &[usize], v: &[f32]) -> Array<f32, IxDyn> {
        Array::from_shape_vec(IxDyn(shape), v.to_vec()).unwrap()
    }

    #[test]
    fn decode_classification_softmax_of_logits() {
        let a = arr(&[1, 4], &[1.0, 3.0, 2.0, -1.0]);
        let t = top_k(&a.view(), 2, None).unwrap();
        let e = [1.0f32, 3.0, 2.0, -1.0].map(|x| x.exp());
        let s: f32 = e.iter().sum();
        assert_eq!(t.iter().map(|p| p.0).collect::<Vec<_>>(), vec![1, 2]);
        assert!((t[0].1 - e[1] / s).abs() < 1e-6 && (t[1].1 - e[2] / s).abs() < 1e-6);
        // Large logits stay finite (stable softmax), and k larger than C is capped.
        let a = arr(&[1, 3, 1, 1], &[1000.0, 999.0, -1000.0]);
        let t = top_k(&a.view(), 10, Some(true)).unwrap();
        assert_eq!(t.len(), 3);
        assert!((t[0].1 + t[1].1 + t[2].1 - 1.0).abs() < 1e-6 && t[2].1 == 0.0);
    }

    #[test]
    fn decode_classification_keeps_distributions_and_respects_flag() {
        let a = arr(&[1, 3], &[0.2, 0.5, 0.3]);
        assert_eq!(top_k(&a.view(), 1, None).unwrap(), vec![(1, 0.5)]);
        let soft = top_k(&a.view(), 1, Some(true)).unwrap();
        assert!(soft[0].1 < 0.5);
        let b = arr(&[1, 3], &[2.0, 5.0, 3.0]);
        assert_eq!(top_k(&b.view(), 1, Some(false)).unwrap(), vec![(1, 5.0)]);
        assert_eq!(top_k(&b.view(), 0, None).unwrap(), vec![]);
    }

    #[test]
    fn decode_classification_nan_and_ties() {
        let a = arr(&[1, 4], &[f32::NAN, 1.0, 1.0, 0.0]);
        let t = top_k(&a.view(), 4, None).unwrap();
        assert_eq!(t.iter().map(|p| p.0).collect::<Vec<_>>(), vec![1, 2, 3, 0]);
        assert_eq!(t[3].1, 0.0);
        let t = top_k(&a.view(), 4, Some(false)).unwrap();
        assert_eq!(t[3], (0, f32::NEG_INFINITY));
        let all_nan = arr(&[1, 2], &[f32::NAN, f32::NAN]);
        assert_eq!(top_k(&all_nan.view(), 1, None).unwrap(), vec![(0, 0.0)]);
        let inf = arr(&[1, 3], &[f32::INFINITY, 0.0, f32::INFINITY]);
        assert_eq!(
            top_k(&inf.view(), 2, Some(true)).unwrap(),
            vec![(0, 0.5), (2, 0.5)]
        );
    }

    #[test]
    fn decode_classification_strided_and_bad_shapes() {
        let wide = arr(&[1, 6], &[0.0, 9.0, 5.0, 9.0, 1.0, 9.0]);
        let v = wide.slice_axis(
            tract_core::ndarray::Axis(1),
            tract_core::ndarray::Slice::new(0, None, 2),
        );
        assert_eq!(top_k(&v, 1, Some(false)).unwrap(), vec![(1, 5.0)]);
        for shape in [vec![2usize, 10], vec![1, 10, 7, 7], vec![1, 0]] {
            let a = Array::<f32, _>::zeros(IxDyn(&shape));
            let e = top_k(&a.view(), 5, None).unwrap_err().to_string();
            assert!(e.contains("classification"), "{e}");
        }
    }
}
