//! Parity of burn with vigia's tract engine: the exported ONNX, loaded with its model card as
//! `vigia` loads it, must reproduce burn's outputs.

use std::path::Path;

use anyhow::{bail, Context, Result};
use vigia::model::Task;
use vigia::resolve::{load_model, LoadOptions};

/// Largest difference between burn and tract that an export accepts.
pub const PARITY_TOLERANCE: f32 = 1e-4;

/// Result of comparing burn's and tract's outputs.
#[derive(Debug, Clone, Copy)]
pub struct Parity {
    /// Inputs compared.
    pub inputs: usize,
    /// Largest absolute difference of any output value.
    pub max_abs_err: f32,
}

/// Largest absolute difference of two outputs of equal length (infinite where one holds NaN).
pub fn max_abs_diff(tract: &[f32], burn: &[f32]) -> Result<f32> {
    if tract.len() != burn.len() {
        bail!(
            "tract gives {} output values, burn {}",
            tract.len(),
            burn.len()
        );
    }
    Ok(tract.iter().zip(burn).fold(0f32, |m, (a, b)| {
        let d = (a - b).abs();
        if d.is_nan() {
            f32::INFINITY
        } else {
            m.max(d)
        }
    }))
}

/// Runs each of `inputs` through `burn` and through the ONNX in vigia's engine (loaded for `task`
/// with its model card, as `vigia` loads it) and returns the largest absolute output difference.
pub fn engine_parity(
    onnx: &Path,
    task: Task,
    inputs: &[Vec<f32>],
    mut burn: impl FnMut(&[f32]) -> Result<Vec<f32>>,
) -> Result<Parity> {
    let tract = engine_outputs(onnx, task, inputs)?;
    let mut max_abs_err = 0f32;
    for (input, tract_out) in inputs.iter().zip(&tract) {
        max_abs_err = max_abs_err.max(max_abs_diff(tract_out, &burn(input)?)?);
    }
    Ok(Parity {
        inputs: inputs.len(),
        max_abs_err,
    })
}

/// The first output of the ONNX, run by vigia's engine (loaded for `task` with its model card, as
/// `vigia` loads it), for each of `inputs`.
pub fn engine_outputs(onnx: &Path, task: Task, inputs: &[Vec<f32>]) -> Result<Vec<Vec<f32>>> {
    let spec = onnx.to_string_lossy();
    let mut loaded = load_model(Some(&spec), Some(task), &LoadOptions::default())
        .map_err(|e| anyhow::anyhow!("vigia cannot load {}: {e}", onnx.display()))?;
    let mut out = Vec::with_capacity(inputs.len());
    for (k, input) in inputs.iter().enumerate() {
        let engine = &mut loaded.engine;
        let n = engine.input_mut().len();
        if input.len() != n {
            bail!(
                "parity input {k} holds {} values, {} takes {n}",
                input.len(),
                onnx.display()
            );
        }
        engine.input_mut().copy_from_slice(input);
        engine
            .run()
            .map_err(|e| anyhow::anyhow!("tract run of {} failed: {e}", onnx.display()))?;
        let outs = engine
            .outputs()
            .map_err(|e| anyhow::anyhow!("reading outputs of {}: {e}", onnx.display()))?;
        out.push(
            outs.first()
                .context("the ONNX produced no output")?
                .iter()
                .copied()
                .collect(),
        );
    }
    Ok(out)
}
