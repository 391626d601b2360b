//! The classifier training loop: cross-entropy, seeded batches, validation after every epoch,
//! checkpoints and early stopping.

use anyhow::{bail, Result};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::GradientsParams;

use super::checkpoint::{CheckpointState, EpochStats};
use super::config::TrainConfig;
use super::data::{batch, Dataset};
use super::eval::{argmax, evaluate_logits, predict_logits};
use super::model::Net;
use super::transfer::{initial_model, Pretrained};
use crate::common::checkpoint::{resume, save_checkpoint};
use crate::common::fit::{check_loss, Epoch, RunOptions};
use crate::common::tensor::host;

/// The result of a training run.
pub struct Trained {
    /// The model after the last epoch.
    pub model: Net,
    /// Per-epoch metrics, including resumed epochs.
    pub history: Vec<EpochStats>,
    /// Why the run ended.
    pub stopped_early: bool,
}

/// Trains `cfg.net` on `train`, validating on `val` each epoch; `init` gives pretrained CNN layers.
pub fn train(
    cfg: &TrainConfig,
    train: &Dataset,
    val: &Dataset,
    opts: RunOptions,
    init: Option<&Pretrained>,
) -> Result<Trained> {
    cfg.validate()?;
    if train.is_empty() {
        bail!("the training set is empty");
    }
    let (device, eval_device) = opts.devices(cfg.seed);
    let (mut model, mut optim, mut state) = match opts.resume {
        Some(dir) => {
            resume::<CheckpointState, _>(dir, &cfg.net, cfg.net.init(&device), cfg.optimizer())?
        }
        None => (
            initial_model(cfg, init, &device)?,
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
    if opts.resume.is_some() && init.is_some() {
        bail!("--init and --resume cannot be combined: a resumed run already holds its weights");
    }
    state.config = cfg.clone();
    model = model.freeze(cfg.freeze);
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let classes = cfg.net.classes;
    let mut stopped_early = false;
    for epoch in state.epochs_done..cfg.epochs {
        let mut ep = Epoch::start(
            &device,
            cfg.seed,
            epoch,
            cfg.epochs,
            train.len(),
            cfg.batch_size,
            opts.progress,
        );
        let lr = cfg.lr_at(epoch);
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
        for chunk in ep.order.chunks(cfg.batch_size) {
            let (x, y) = batch(train, chunk, &device, Some((&mut ep.rng, cfg.shift)));
            let logits = model.forward(x);
            let loss = loss_fn.forward(logits.clone(), y);
            let lv = loss.clone().into_scalar::<f32>() as f64;
            check_loss(lv, epoch)?;
            let host_logits = host(logits.inner());
            for (row, &i) in host_logits.chunks_exact(classes).zip(chunk) {
                correct += (argmax(row) == train.labels[i] as usize) as usize;
            }
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(lr, model, grads);
            loss_sum += lv * chunk.len() as f64;
            seen += chunk.len();
            ep.bar.inc(1);
            ep.bar
                .set_message(format!("loss {:.4}", loss_sum / seen as f64));
        }
        let seconds = ep.finish();
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
