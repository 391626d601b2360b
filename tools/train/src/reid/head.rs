//! The projection head and its metric-learning loop: batch-hard triplet loss on pooled backbone
//! features, with positives from the same track and negatives only from tracks seen in the same
//! frame (two people at once are surely two people; no labels are needed).

use std::collections::{HashMap, HashSet};

use anyhow::{bail, Result};
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::GradientsParams;
use burn::tensor::activation::{relu, softplus};
use burn::tensor::{Device, Tensor, TensorData};

use super::graph::LinearHead;
use crate::common::fit::check_loss;
use crate::common::optim::OptimSettings;
use crate::common::rng::Rng;
use crate::common::tensor::host;

/// One mined crop: its track, frame and pooled backbone features.
#[derive(Debug, Clone)]
pub struct Crop {
    /// Track id (MOTChallenge).
    pub track: u64,
    /// Frame number (1-based).
    pub frame: u64,
    /// Pooled backbone features.
    pub features: Vec<f32>,
}

/// Scale of distance gaps in the soft-margin loss (cosine distances span 0..2).
const SOFT_MARGIN_SCALE: f32 = 10.0;

/// Settings of the head's training.
#[derive(Debug, Clone)]
pub struct HeadSettings {
    /// Output length.
    pub dim: usize,
    /// Training steps (batches).
    pub steps: usize,
    /// Tracks per batch.
    pub tracks_per_batch: usize,
    /// Crops per track in a batch.
    pub crops_per_track: usize,
    /// Triplet margin on cosine distance; 0 for the soft margin `log(1 + exp(k (d+ - d-)))`.
    pub margin: f32,
    /// Optimizer and learning rate.
    pub optim: OptimSettings,
    /// Seed of batch sampling and initialization.
    pub seed: u64,
}

/// A linear projection of standardized features.
#[derive(Module, Debug)]
pub struct ProjectionHead {
    proj: Linear,
}

impl ProjectionHead {
    /// Unnormalized embeddings of `[batch, features]` standardized features.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.proj.forward(x)
    }
}

/// Per-feature mean and standard deviation of the training crops.
#[derive(Debug, Clone)]
pub struct Standardizer {
    /// Means.
    pub mean: Vec<f32>,
    /// Standard deviations (at least 1e-6).
    pub std: Vec<f32>,
}

impl Standardizer {
    /// Fits means and deviations to `crops`.
    pub fn fit(crops: &[Crop]) -> Self {
        let f = crops.first().map(|c| c.features.len()).unwrap_or(0);
        let n = crops.len().max(1) as f64;
        let mut mean = vec![0f64; f];
        let mut sq = vec![0f64; f];
        for c in crops {
            for (i, &v) in c.features.iter().enumerate() {
                mean[i] += v as f64;
                sq[i] += (v as f64) * (v as f64);
            }
        }
        let mean: Vec<f64> = mean.iter().map(|m| m / n).collect();
        let std = sq
            .iter()
            .zip(&mean)
            .map(|(s, m)| ((s / n - m * m).max(0.0).sqrt() as f32).max(1e-6))
            .collect();
        Standardizer {
            mean: mean.into_iter().map(|m| m as f32).collect(),
            std,
        }
    }

    fn apply(&self, features: &[f32], out: &mut Vec<f32>) {
        out.extend(
            features
                .iter()
                .zip(self.mean.iter().zip(&self.std))
                .map(|(v, (m, s))| (v - m) / s),
        );
    }
}

/// What training produced.
pub struct TrainedHead {
    /// The head folded with the standardization: applies to raw pooled features.
    pub head: LinearHead,
    /// Mean batch loss over the first and the last tenth of the steps.
    pub loss_first: f64,
    /// See `loss_first`.
    pub loss_last: f64,
    /// Tracks that had at least two crops.
    pub tracks: usize,
    /// Pairs of tracks seen in the same frame (the negatives).
    pub negative_pairs: usize,
    model: ProjectionHead,
    standardizer: Standardizer,
    device: Device,
}

/// Trains the head on `crops` and folds the standardization into it.
pub fn train_head(crops: &[Crop], s: &HeadSettings, device: &Device) -> Result<TrainedHead> {
    s.optim.validate()?;
    if s.dim == 0 || s.tracks_per_batch < 2 || s.crops_per_track < 2 || s.steps == 0 {
        bail!("--dim, --steps must be at least 1; --tracks-per-batch and --crops-per-track at least 2");
    }
    let Some(features) = crops.first().map(|c| c.features.len()) else {
        bail!("no crops were mined: check --tracks and the frame range");
    };
    let mut by_track: HashMap<u64, Vec<usize>> = HashMap::new();
    let mut by_frame: HashMap<u64, Vec<u64>> = HashMap::new();
    for (i, c) in crops.iter().enumerate() {
        by_track.entry(c.track).or_default().push(i);
        by_frame.entry(c.frame).or_default().push(c.track);
    }
    let mut together: HashSet<(u64, u64)> = HashSet::new();
    for ids in by_frame.values() {
        for &a in ids {
            for &b in ids {
                if a != b {
                    together.insert((a, b));
                }
            }
        }
    }
    let mut tracks: Vec<u64> = by_track
        .iter()
        .filter(|(_, v)| v.len() >= 2)
        .map(|(t, _)| *t)
        .collect();
    tracks.sort_unstable();
    if tracks.len() < 2 || together.is_empty() {
        bail!(
            "training needs at least two tracks with two crops each, seen in the same frames; \
             found {} such tracks",
            tracks.len()
        );
    }
    let standardizer = Standardizer::fit(crops);
    let device = device.clone().autodiff();
    device.seed(s.seed);
    let mut head = ProjectionHead {
        proj: LinearConfig::new(features, s.dim).init(&device),
    };
    let mut optim = s.optim.optimizer();
    let mut rng = Rng::new(s.seed);
    let p = s.tracks_per_batch.min(tracks.len());
    let k = s.crops_per_track;
    let b = p * k;
    let mut losses = Vec::with_capacity(s.steps);
    let (mut x, mut labels) = (Vec::with_capacity(b * features), Vec::with_capacity(b));
    for step in 0..s.steps {
        let mut order = tracks.clone();
        rng.shuffle(&mut order);
        x.clear();
        labels.clear();
        for &t in &order[..p] {
            let members = &by_track[&t];
            for _ in 0..k {
                let i = members[rng.below(members.len())];
                standardizer.apply(&crops[i].features, &mut x);
                labels.push(t);
            }
        }
        let (mut pos, mut neg, mut weight) = (vec![0f32; b * b], vec![0f32; b * b], vec![0f32; b]);
        for i in 0..b {
            let (mut has_pos, mut has_neg) = (false, false);
            for j in 0..b {
                if i != j && labels[i] == labels[j] {
                    pos[i * b + j] = 1.0;
                    has_pos = true;
                } else if together.contains(&(labels[i], labels[j])) {
                    neg[i * b + j] = 1.0;
                    has_neg = true;
                }
            }
            weight[i] = (has_pos && has_neg) as u8 as f32;
        }
        let active: f32 = weight.iter().sum();
        if active == 0.0 {
            continue;
        }
        let input = Tensor::<2>::from_data(TensorData::new(x.clone(), [b, features]), &device);
        let pos = Tensor::<2>::from_data(TensorData::new(pos, [b, b]), &device);
        let neg = Tensor::<2>::from_data(TensorData::new(neg, [b, b]), &device);
        let weight = Tensor::<2>::from_data(TensorData::new(weight, [b, 1]), &device);
        let e = head.forward(input);
        let norm = e.clone().powf_scalar(2.0).sum_dim(1).sqrt().clamp_min(1e-6);
        let e = e / norm;
        let distance = e.clone().matmul(e.transpose()).neg().add_scalar(1.0);
        let hardest_pos = (distance.clone() * pos).max_dim(1);
        let hardest_neg = (distance + neg.neg().add_scalar(1.0).mul_scalar(4.0)).min_dim(1);
        let gap = hardest_pos - hardest_neg;
        let per_anchor = if s.margin > 0.0 {
            relu(gap + s.margin)
        } else {
            softplus(gap.mul_scalar(SOFT_MARGIN_SCALE), 1.0)
        };
        let loss = (per_anchor * weight).sum() / active;
        let value = loss.clone().into_scalar::<f32>() as f64;
        check_loss(value, 0)?;
        losses.push(value);
        let grads = GradientsParams::from_grads(loss.backward(), &head);
        head = optim.step(s.optim.lr_at(step, s.steps), head, grads);
    }
    if losses.is_empty() {
        bail!("no batch held both a positive and a negative pair; mine more frames");
    }
    let tenth = (losses.len() / 10).max(1);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    Ok(TrainedHead {
        head: fold(&head, &standardizer, features, s.dim),
        loss_first: mean(&losses[..tenth]),
        loss_last: mean(&losses[losses.len() - tenth..]),
        tracks: tracks.len(),
        negative_pairs: together.len() / 2,
        model: head,
        standardizer,
        device,
    })
}

/// Cosine similarities of the folded head's embeddings of every two crops of different tracks
/// in the same frame: the similarities a threshold must stay above.
pub fn same_frame_similarities(crops: &[Crop], head: &LinearHead) -> Vec<f32> {
    let embed = |f: &[f32]| {
        let mut e = head.bias.clone();
        for (i, &x) in f.iter().enumerate() {
            let row = &head.weight[i * head.dim..(i + 1) * head.dim];
            e.iter_mut().zip(row).for_each(|(o, w)| *o += x * w);
        }
        vigia::reid::l2_normalize(&mut e);
        e
    };
    let mut by_frame: HashMap<u64, Vec<(u64, Vec<f32>)>> = HashMap::new();
    for c in crops {
        by_frame
            .entry(c.frame)
            .or_default()
            .push((c.track, embed(&c.features)));
    }
    let mut out = vec![];
    for people in by_frame.values() {
        for (i, (ta, ea)) in people.iter().enumerate() {
            for (tb, eb) in &people[i + 1..] {
                if ta != tb {
                    out.push(vigia::reid::cosine(ea, eb));
                }
            }
        }
    }
    out
}

/// `y = ((x - mean) / std) W + b` as `y = x W' + b'`.
fn fold(head: &ProjectionHead, st: &Standardizer, features: usize, dim: usize) -> LinearHead {
    let w = host(head.proj.weight.val());
    let b = head
        .proj
        .bias
        .as_ref()
        .map(|p| host(p.val()))
        .unwrap_or_else(|| vec![0.0; dim]);
    let mut weight = vec![0f32; features * dim];
    let mut bias = b;
    for f in 0..features {
        for d in 0..dim {
            let wf = w[f * dim + d] / st.std[f];
            weight[f * dim + d] = wf;
            bias[d] -= st.mean[f] * wf;
        }
    }
    LinearHead { weight, bias, dim }
}

impl TrainedHead {
    /// The trained burn head on raw pooled features (standardized first), for the parity check.
    pub fn burn_forward(&self, features: &[f32]) -> Vec<f32> {
        let mut x = Vec::with_capacity(features.len());
        self.standardizer.apply(features, &mut x);
        let n = x.len();
        let input = Tensor::<2>::from_data(TensorData::new(x, [1, n]), &self.device);
        host(self.model.forward(input))
    }
}
