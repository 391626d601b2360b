//! `vigia-train export`: a checkpoint of either command to ONNX + model card, checked against
//! tract.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

use crate::common::parity::Parity;
use crate::detect::train::DetCheckpointState;

/// Arguments of `vigia-train export`.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// Checkpoint folder (RUN/checkpoint)
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Export the best-validation weights instead of the latest
    #[arg(long)]
    pub best: bool,
    /// ONNX to write; the model card and labels go next to it
    #[arg(long)]
    pub out: PathBuf,
    /// Class names, one per line (default: 0..N-1)
    #[arg(long)]
    pub labels: Option<PathBuf>,
}

/// Runs `vigia-train export` on a detector or, failing that, a classifier checkpoint.
pub fn export(args: &ExportArgs, command_line: &str) -> Result<Parity> {
    if let Ok(state) = DetCheckpointState::read(&args.checkpoint) {
        if args.labels.is_some() {
            bail!("--labels: a detector checkpoint carries its class names");
        }
        return crate::detect::export::export_checkpoint(
            &args.checkpoint,
            &state,
            args.best,
            &args.out,
            command_line,
        );
    }
    crate::classify::export::export_checkpoint(
        &args.checkpoint,
        args.best,
        args.labels.as_deref(),
        &args.out,
        command_line,
    )
}
