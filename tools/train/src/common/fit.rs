//! The pieces of the epoch loop both trainers run: run options, batch and epoch checks, per-epoch
//! seeding and shuffling, the progress bar and the divergence check.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Result};
use burn::tensor::Device;
use indicatif::{ProgressBar, ProgressStyle};

use super::rng::Rng;

/// Options of one run that are not part of the recipe.
pub struct RunOptions<'a> {
    /// Training device (autodiff is added here).
    pub device: Device,
    /// Checkpoint folder (written after each epoch), if any.
    pub checkpoint: Option<&'a Path>,
    /// Resume from this checkpoint folder.
    pub resume: Option<&'a Path>,
    /// Show a progress bar.
    pub progress: bool,
}

impl RunOptions<'_> {
    /// The training device (with autodiff, seeded with `seed`) and the evaluation device.
    pub fn devices(&self, seed: u64) -> (Device, Device) {
        let device = self.device.clone().autodiff();
        device.seed(seed);
        (device, self.device.clone())
    }
}

/// Checks a recipe's `--batch-size` and `--epochs`.
pub fn check_batches(batch_size: usize, epochs: usize) -> Result<()> {
    if batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    if epochs == 0 {
        bail!("--epochs must be at least 1");
    }
    Ok(())
}

/// One epoch under way: its seeded generator, shuffled sample order and progress bar.
pub struct Epoch {
    /// Generator of the epoch's shuffling and augmentation.
    pub rng: Rng,
    /// Sample indices in training order.
    pub order: Vec<usize>,
    /// Progress bar over the batches (hidden with `--quiet`).
    pub bar: ProgressBar,
    started: Instant,
}

impl Epoch {
    /// Starts epoch `epoch` (0-based), seeded per epoch: a resumed run repeats an unbroken one.
    pub fn start(
        device: &Device,
        seed: u64,
        epoch: usize,
        epochs: usize,
        len: usize,
        batch_size: usize,
        progress: bool,
    ) -> Epoch {
        device.seed(seed.wrapping_mul(1_000_003).wrapping_add(epoch as u64));
        let mut rng = Rng::new(seed.wrapping_add(0x9E37 * (epoch as u64 + 1)));
        let mut order: Vec<usize> = (0..len).collect();
        rng.shuffle(&mut order);
        Epoch {
            rng,
            order,
            bar: epoch_bar(len.div_ceil(batch_size), epoch, epochs, progress),
            started: Instant::now(),
        }
    }

    /// Clears the progress bar and returns the seconds the epoch took.
    pub fn finish(&self) -> f64 {
        let seconds = self.started.elapsed().as_secs_f64();
        self.bar.finish_and_clear();
        seconds
    }
}

/// The per-epoch progress bar (hidden unless `show`).
fn epoch_bar(steps: usize, epoch: usize, epochs: usize, show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(steps as u64);
    b.set_style(
        ProgressStyle::with_template(
            "epoch {prefix} [{bar:30}] {pos}/{len} batches {msg} ({elapsed})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    b.set_prefix(format!("{}/{}", epoch + 1, epochs));
    b
}

/// Fails when the loss of a batch of epoch `epoch` (0-based) is not finite.
pub fn check_loss(loss: f64, epoch: usize) -> Result<()> {
    if !loss.is_finite() {
        bail!(
            "training diverged at epoch {} (loss {loss}); lower --lr",
            epoch + 1
        );
    }
    Ok(())
}
