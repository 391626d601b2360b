//! Evaluation of a classifier: logits in inference mode, loss, accuracy and confusion matrix.

use burn::module::Module;
use burn::tensor::Device;

use super::data::{batch, Dataset};
use super::model::Net;
use crate::common::tensor::host;

/// Index of the largest value (the first on ties).
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = i;
        }
    }
    best
}

/// Logits of every sample of `ds`, computed in inference mode, row-major `[N, classes]`.
pub fn predict_logits(model: &Net, ds: &Dataset, device: &Device, batch_size: usize) -> Vec<f32> {
    let m = model.valid();
    let idx: Vec<usize> = (0..ds.len()).collect();
    let mut out = Vec::with_capacity(ds.len() * ds.classes.len());
    for chunk in idx.chunks(batch_size.max(1)) {
        let (x, _) = batch(ds, chunk, device, None);
        out.extend(host(m.forward(x)));
    }
    out
}

/// Evaluation of a model on a dataset.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Fraction of correct predictions.
    pub accuracy: f64,
    /// Predicted class per sample.
    pub predictions: Vec<usize>,
    /// Counts, rows = true class, columns = predicted.
    pub confusion: Vec<Vec<usize>>,
}

/// Loss, accuracy and confusion matrix from logits.
pub fn evaluate_logits(logits: &[f32], labels: &[u32], classes: usize) -> Evaluation {
    let mut loss = 0.0f64;
    let mut correct = 0;
    let mut confusion = vec![vec![0usize; classes]; classes];
    let mut predictions = Vec::with_capacity(labels.len());
    for (row, &y) in logits.chunks_exact(classes).zip(labels) {
        let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let lse = m + row.iter().map(|v| (*v as f64 - m).exp()).sum::<f64>().ln();
        loss += lse - row[y as usize] as f64;
        let p = argmax(row);
        correct += (p == y as usize) as usize;
        confusion[y as usize][p] += 1;
        predictions.push(p);
    }
    let n = labels.len().max(1) as f64;
    Evaluation {
        loss: loss / n,
        accuracy: correct as f64 / n,
        predictions,
        confusion,
    }
}
