//! The classifier training loop: batches, optimizers, schedules, checkpoints, early stopping.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{
    AdaGradConfig, AdamConfig, GradientsParams, ModuleOptimizer, RmsPropConfig, SgdConfig,
};
use burn::tensor::{Device, Int, Tensor, TensorData};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::data::{Dataset, Rng};
use crate::model::{Net, NetConfig};

/// Pixel scale applied before the network (and written to the model card): `x = pixel * SCALE`.
pub const SCALE: f32 = 1.0 / 255.0;

/// Optimizer family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Stochastic gradient descent (with `--momentum`).
    Sgd,
    /// Adam.
    Adam,
    /// RMSProp.
    Rmsprop,
    /// Adagrad.
    Adagrad,
}

/// Learning-rate schedule over epochs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// The same rate every epoch.
    Constant,
    /// Multiply by `--lr-gamma` every `--lr-step` epochs.
    Step,
    /// Cosine decay from the base rate to zero over the run.
    Cosine,
}

/// A full training recipe (saved with every checkpoint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// The network.
    pub net: NetConfig,
    /// Optimizer family.
    pub optimizer: OptimizerKind,
    /// Base learning rate.
    pub lr: f64,
    /// SGD momentum (0 = none) and RMSProp momentum.
    pub momentum: f64,
    /// L2 weight decay.
    pub weight_decay: f64,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Epochs between step decays.
    pub lr_step: usize,
    /// Step-decay factor.
    pub lr_gamma: f64,
    /// Samples per batch.
    pub batch_size: usize,
    /// Epochs to run in total.
    pub epochs: usize,
    /// Seed of initialisation, shuffling, dropout and augmentation.
    pub seed: u64,
    /// Stop when the validation loss has not improved for this many epochs (0 = never).
    pub patience: usize,
    /// Random translation of training images by up to this many pixels (0 = none).
    pub shift: usize,
    /// Layers of the CNN kept fixed, in the order conv1, conv2, fc1 (0 = train all).
    #[serde(default)]
    pub freeze: usize,
}

impl TrainConfig {
    /// Checks the numbers that would otherwise fail deep inside burn.
    pub fn validate(&self) -> Result<()> {
        self.net.validate()?;
        self.optim_settings().validate()?;
        if self.batch_size == 0 {
            bail!("--batch-size must be at least 1");
        }
        if self.epochs == 0 {
            bail!("--epochs must be at least 1");
        }
        if self.freeze > 0 && self.net.arch != crate::model::Arch::Cnn {
            bail!("--freeze applies to the CNN only (--arch cnn)");
        }
        if self.freeze > crate::model::CNN_LAYERS.len() {
            bail!(
                "--freeze must be at most {} (conv1, conv2, fc1), got {}",
                crate::model::CNN_LAYERS.len(),
                self.freeze
            );
        }
        Ok(())
    }

    /// The optimizer and learning-rate settings of this recipe.
    pub fn optim_settings(&self) -> OptimSettings {
        OptimSettings {
            optimizer: self.optimizer,
            lr: self.lr,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            schedule: self.schedule,
            lr_step: self.lr_step,
            lr_gamma: self.lr_gamma,
        }
    }

    /// Learning rate of `epoch` (0-based).
    pub fn lr_at(&self, epoch: usize) -> f64 {
        self.optim_settings().lr_at(epoch, self.epochs)
    }

    /// The configured optimizer.
    pub fn optimizer(&self) -> ModuleOptimizer {
        self.optim_settings().optimizer()
    }
}

/// Optimizer and learning-rate schedule, shared by every training command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimSettings {
    /// Optimizer family.
    pub optimizer: OptimizerKind,
    /// Base learning rate.
    pub lr: f64,
    /// SGD momentum (0 = none) and RMSProp momentum.
    pub momentum: f64,
    /// L2 weight decay.
    pub weight_decay: f64,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Epochs between step decays.
    pub lr_step: usize,
    /// Step-decay factor.
    pub lr_gamma: f64,
}

impl OptimSettings {
    /// Checks the numbers, naming the option at fault.
    pub fn validate(&self) -> Result<()> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            bail!("--lr must be a positive number, got {}", self.lr);
        }
        if !(0.0..1.0).contains(&self.momentum) {
            bail!("--momentum must be in [0, 1), got {}", self.momentum);
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            bail!("--weight-decay must be >= 0, got {}", self.weight_decay);
        }
        if self.schedule == Schedule::Step && self.lr_step == 0 {
            bail!("--lr-step must be at least 1");
        }
        if !(self.lr_gamma.is_finite() && self.lr_gamma > 0.0) {
            bail!("--lr-gamma must be positive, got {}", self.lr_gamma);
        }
        Ok(())
    }

    /// Learning rate of `epoch` (0-based) in a run of `epochs` epochs.
    pub fn lr_at(&self, epoch: usize, epochs: usize) -> f64 {
        match self.schedule {
            Schedule::Constant => self.lr,
            Schedule::Step => self.lr * self.lr_gamma.powi((epoch / self.lr_step.max(1)) as i32),
            Schedule::Cosine => {
                let t = epoch as f64 / epochs.max(1) as f64;
                self.lr * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
        }
    }

    /// The configured optimizer.
    pub fn optimizer(&self) -> ModuleOptimizer {
        let wd =
            (self.weight_decay > 0.0).then(|| WeightDecayConfig::new(self.weight_decay as f32));
        match self.optimizer {
            OptimizerKind::Sgd => SgdConfig::new()
                .with_momentum((self.momentum > 0.0).then(|| {
                    MomentumConfig::new()
                        .with_momentum(self.momentum)
                        .with_dampening(0.0)
                }))
                .with_weight_decay(wd)
                .init(),
            OptimizerKind::Adam => AdamConfig::new().with_weight_decay(wd).init(),
            OptimizerKind::Rmsprop => RmsPropConfig::new()
                .with_momentum(self.momentum as f32)
                .with_weight_decay(wd)
                .init(),
            OptimizerKind::Adagrad => AdaGradConfig::new().with_weight_decay(wd).init(),
        }
    }
}

/// Metrics of one epoch.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Learning rate used.
    pub lr: f64,
    /// Mean training loss.
    pub train_loss: f64,
    /// Training accuracy (with dropout and augmentation active).
    pub train_acc: f64,
    /// Validation loss.
    pub val_loss: f64,
    /// Validation accuracy.
    pub val_acc: f64,
    /// Seconds spent training this epoch.
    pub seconds: f64,
}

/// What a checkpoint folder holds besides the weights.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointState {
    /// The recipe.
    pub config: TrainConfig,
    /// Epochs completed.
    pub epochs_done: usize,
    /// Per-epoch history.
    pub history: Vec<EpochStats>,
    /// Best validation loss so far and its epoch.
    pub best_val_loss: f64,
    /// Epoch (1-based) of the best validation loss.
    pub best_epoch: usize,
}

impl CheckpointState {
    /// Reads `state.toml` of a checkpoint folder, naming the file when it is missing or foreign.
    pub fn read(path: &Path) -> Result<Self> {
        read_state(path)
    }
}

/// Paths inside a checkpoint folder.
pub struct CheckpointPaths {
    /// Latest weights.
    pub model: PathBuf,
    /// Latest optimizer state.
    pub optim: PathBuf,
    /// Recipe and history.
    pub state: PathBuf,
    /// Weights of the epoch with the lowest validation loss.
    pub best: PathBuf,
}

impl CheckpointPaths {
    /// The files of checkpoint folder `dir`.
    pub fn new(dir: &Path) -> Self {
        CheckpointPaths {
            model: dir.join("model.bpk"),
            optim: dir.join("optim.bpk"),
            state: dir.join("state.toml"),
            best: dir.join("best.bpk"),
        }
    }
}

/// Converts samples `idx` of `ds` to a normalised `[B, C, H, W]` tensor and their labels,
/// translating each image by up to `shift` pixels when `rng` is given.
pub fn batch(
    ds: &Dataset,
    idx: &[usize],
    device: &Device,
    mut aug: Option<(&mut Rng, usize)>,
) -> (Tensor<4>, Tensor<1, Int>) {
    let (c, h, w) = (ds.channels, ds.height, ds.width);
    let n = ds.sample_len();
    let mut x = vec![0f32; idx.len() * n];
    for (b, &i) in idx.iter().enumerate() {
        let src = ds.sample(i);
        let dst = &mut x[b * n..(b + 1) * n];
        match aug.as_mut() {
            Some((rng, s)) if *s > 0 => {
                let s = *s as i64;
                let dx = rng.below(2 * s as usize + 1) as i64 - s;
                let dy = rng.below(2 * s as usize + 1) as i64 - s;
                for k in 0..c {
                    for y in 0..h as i64 {
                        let sy = y - dy;
                        if sy < 0 || sy >= h as i64 {
                            continue;
                        }
                        for xx in 0..w as i64 {
                            let sx = xx - dx;
                            if sx < 0 || sx >= w as i64 {
                                continue;
                            }
                            dst[k * h * w + y as usize * w + xx as usize] =
                                src[k * h * w + sy as usize * w + sx as usize] as f32 * SCALE;
                        }
                    }
                }
            }
            _ => {
                for (d, s) in dst.iter_mut().zip(src) {
                    *d = *s as f32 * SCALE;
                }
            }
        }
    }
    let labels: Vec<i64> = idx.iter().map(|&i| ds.labels[i] as i64).collect();
    (
        Tensor::from_data(TensorData::new(x, [idx.len(), c, h, w]), device),
        Tensor::from_data(TensorData::new(labels, [idx.len()]), device),
    )
}

/// Host copy of a float tensor.
pub fn to_vec(t: Tensor<2>) -> Vec<f32> {
    t.into_data_as::<f32>()
        .as_slice::<f32>()
        .map(|s| s.to_vec())
        .unwrap_or_default()
}

fn argmax(row: &[f32]) -> usize {
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
        out.extend(to_vec(m.forward(x)));
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

/// The result of a training run.
pub struct Trained {
    /// The model after the last epoch.
    pub model: Net,
    /// Per-epoch metrics, including resumed epochs.
    pub history: Vec<EpochStats>,
    /// Why the run ended.
    pub stopped_early: bool,
}

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
    /// Start from these pretrained CNN layers (`--init`); the head stays fresh.
    pub init: Option<&'a crate::transfer::Pretrained>,
}

fn record_err(what: &str, path: &Path, e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("{what} {}: {e}", path.display())
}

/// Loads checkpoint `dir` for `cfg`, refusing one made for another network.
pub fn load_checkpoint(
    dir: &Path,
    cfg: &TrainConfig,
    device: &Device,
) -> Result<(Net, ModuleOptimizer, CheckpointState)> {
    let p = CheckpointPaths::new(dir);
    let state = CheckpointState::read(&p.state)?;
    if state.config.net != cfg.net {
        bail!(
            "checkpoint {} was made for another network: it holds {:?}, this run builds {:?}",
            dir.display(),
            state.config.net,
            cfg.net
        );
    }
    let model = cfg
        .net
        .init(device)
        .try_load_file(&p.model)
        .map_err(|e| record_err("cannot load checkpoint weights", &p.model, e))?;
    let optim = load_optimizer(cfg.optimizer(), dir)?;
    Ok((model, optim, state))
}

/// Loads trained weights (`.bpk`) into a fresh network on `device`.
pub fn load_weights(net: &NetConfig, path: &Path, device: &Device) -> Result<Net> {
    net.init(device)
        .try_load_file(path)
        .map_err(|e| record_err("cannot load weights", path, e))
}

/// Loads module weights (`.bpk`) into `fresh`, naming the file on failure.
pub fn load_module<M: Module>(fresh: M, path: &Path) -> Result<M> {
    fresh
        .try_load_file(path)
        .map_err(|e| record_err("cannot load weights", path, e))
}

/// Writes a checkpoint folder: latest weights (and `best.bpk` when `best`), optimizer state and
/// `state.toml` (any serialisable recipe + history).
pub fn save_checkpoint_files<M: Module, S: Serialize>(
    dir: &Path,
    model: &M,
    optim: &ModuleOptimizer,
    state: &S,
    best: bool,
) -> Result<()> {
    let p = CheckpointPaths::new(dir);
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    model
        .clone()
        .save_file(&p.model)
        .map_err(|e| record_err("cannot write", &p.model, e))?;
    if best {
        model
            .clone()
            .save_file(&p.best)
            .map_err(|e| record_err("cannot write", &p.best, e))?;
    }
    optim
        .save(&p.optim)
        .map_err(|e| record_err("cannot write", &p.optim, e))?;
    let text = toml::to_string_pretty(state).context("cannot serialise checkpoint state")?;
    std::fs::write(&p.state, text).with_context(|| format!("cannot write {}", p.state.display()))
}

/// Loads the optimizer state of checkpoint folder `dir` into `fresh`.
pub fn load_optimizer(fresh: ModuleOptimizer, dir: &Path) -> Result<ModuleOptimizer> {
    let p = CheckpointPaths::new(dir);
    fresh
        .load(&p.optim)
        .map_err(|e| record_err("cannot load optimizer state", &p.optim, e))
}

/// Reads a checkpoint's `state.toml` as `S`, naming the file when it is missing or foreign.
pub fn read_state<S: serde::de::DeserializeOwned>(path: &Path) -> Result<S> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read checkpoint state {}", path.display()))?;
    toml::from_str(&text)
        .with_context(|| format!("{} is not a vigia-train checkpoint state", path.display()))
}

/// The per-epoch progress bar (hidden unless `show`).
pub fn epoch_bar(steps: usize, epoch: usize, epochs: usize, show: bool) -> ProgressBar {
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

fn save_checkpoint(
    dir: &Path,
    model: &Net,
    optim: &ModuleOptimizer,
    state: &CheckpointState,
    best: bool,
) -> Result<()> {
    save_checkpoint_files(dir, model, optim, state, best)
}

/// The network a fresh run starts from: `init`'s pretrained layers when given.
fn initial_model(
    cfg: &TrainConfig,
    init: Option<&crate::transfer::Pretrained>,
    device: &Device,
) -> Result<Net> {
    let fresh = cfg.net.init(device);
    let Some(pre) = init else {
        return Ok(fresh);
    };
    let Net::Cnn(cnn) = fresh else {
        bail!(
            "--init {}: only the CNN (--arch cnn) can start from pretrained weights",
            pre.source.display()
        );
    };
    let (cnn, loaded) = pre.apply(cnn, &cfg.net, device)?;
    if cfg.freeze > loaded.len() {
        bail!(
            "--freeze {} needs {} pretrained layers, {} provides {}",
            cfg.freeze,
            cfg.freeze,
            pre.source.display(),
            loaded.join(", ")
        );
    }
    eprintln!(
        "vigia-train: started from {} ({}; new {}-class head)",
        pre.source.display(),
        loaded.join(", "),
        cfg.net.classes
    );
    Ok(Net::Cnn(cnn))
}

/// Freezes the first `n` CNN layers (no gradients, so no updates).
fn freeze(model: Net, n: usize) -> Net {
    match model {
        Net::Cnn(c) if n > 0 => Net::Cnn(c.freeze(n)),
        m => m,
    }
}

/// Trains `cfg.net` on `train`, validating on `val` after every epoch.
pub fn train(
    cfg: &TrainConfig,
    train: &Dataset,
    val: &Dataset,
    opts: RunOptions,
) -> Result<Trained> {
    cfg.validate()?;
    if train.is_empty() {
        bail!("the training set is empty");
    }
    let device = opts.device.clone().autodiff();
    let eval_device = opts.device.clone();
    device.seed(cfg.seed);
    let (mut model, mut optim, mut state) = match opts.resume {
        Some(dir) => {
            let (m, o, s) = load_checkpoint(dir, cfg, &device)?;
            eprintln!(
                "vigia-train: resumed {} after epoch {}",
                dir.display(),
                s.epochs_done
            );
            (m, o, s)
        }
        None => (
            initial_model(cfg, opts.init, &device)?,
            cfg.optimizer(),
            CheckpointState {
                config: cfg.clone(),
                epochs_done: 0,
                history: vec![],
                best_val_loss: f64::INFINITY,
                best_epoch: 0,
            },
        ),
    };
    if opts.resume.is_some() && opts.init.is_some() {
        bail!("--init and --resume cannot be combined: a resumed run already holds its weights");
    }
    state.config = cfg.clone();
    model = freeze(model, cfg.freeze);
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let classes = cfg.net.classes;
    let steps = train.len().div_ceil(cfg.batch_size);
    let mut stopped_early = false;
    for epoch in state.epochs_done..cfg.epochs {
        // Every epoch has its own seeded streams, so a resumed run continues as an uninterrupted one.
        device.seed(cfg.seed.wrapping_mul(1_000_003).wrapping_add(epoch as u64));
        let mut rng = Rng::new(cfg.seed.wrapping_add(0x9E37 * (epoch as u64 + 1)));
        let mut order: Vec<usize> = (0..train.len()).collect();
        rng.shuffle(&mut order);
        let lr = cfg.lr_at(epoch);
        let bar = epoch_bar(steps, epoch, cfg.epochs, opts.progress);
        let t0 = Instant::now();
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
        for chunk in order.chunks(cfg.batch_size) {
            let (x, y) = batch(train, chunk, &device, Some((&mut rng, cfg.shift)));
            let logits = model.forward(x);
            let loss = loss_fn.forward(logits.clone(), y);
            let lv = loss.clone().into_scalar::<f32>() as f64;
            if !lv.is_finite() {
                bail!(
                    "training diverged at epoch {} (loss {lv}); lower --lr",
                    epoch + 1
                );
            }
            let host = to_vec(logits.inner());
            for (row, &i) in host.chunks_exact(classes).zip(chunk) {
                correct += (argmax(row) == train.labels[i] as usize) as usize;
            }
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(lr, model, grads);
            loss_sum += lv * chunk.len() as f64;
            seen += chunk.len();
            bar.inc(1);
            bar.set_message(format!("loss {:.4}", loss_sum / seen as f64));
        }
        let seconds = t0.elapsed().as_secs_f64();
        bar.finish_and_clear();
        let ev = if val.is_empty() {
            None
        } else {
            let logits = predict_logits(&model, val, &eval_device, 256);
            Some(evaluate_logits(&logits, &val.labels, classes))
        };
        let stats = EpochStats {
            epoch: epoch + 1,
            lr,
            train_loss: loss_sum / seen.max(1) as f64,
            train_acc: correct as f64 / seen.max(1) as f64,
            val_loss: ev.as_ref().map(|e| e.loss).unwrap_or(f64::NAN),
            val_acc: ev.as_ref().map(|e| e.accuracy).unwrap_or(f64::NAN),
            seconds,
        };
        eprintln!(
            "epoch {:>3}/{}  lr {:.2e}  train loss {:.4} acc {:.2}%  val loss {:.4} acc {:.2}%  {:.1}s",
            stats.epoch,
            cfg.epochs,
            lr,
            stats.train_loss,
            stats.train_acc * 100.0,
            stats.val_loss,
            stats.val_acc * 100.0,
            seconds
        );
        state.history.push(stats);
        state.epochs_done = epoch + 1;
        let improved = stats.val_loss < state.best_val_loss;
        if improved {
            state.best_val_loss = stats.val_loss;
            state.best_epoch = epoch + 1;
        }
        if let Some(dir) = opts.checkpoint {
            save_checkpoint(dir, &model, &optim, &state, improved)?;
        }
        if cfg.patience > 0 && epoch + 1 - state.best_epoch >= cfg.patience {
            eprintln!(
                "vigia-train: early stop: validation loss has not improved for {} epochs (best {:.4} at epoch {})",
                cfg.patience, state.best_val_loss, state.best_epoch
            );
            stopped_early = true;
            break;
        }
    }
    Ok(Trained {
        model,
        history: state.history,
        stopped_early,
    })
}
