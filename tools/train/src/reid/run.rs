//! `vigia-train reid`: mine person crops from a tracked video, train a projection head on a frozen
//! backbone, export the embedding model and score it on held-out frames.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::tensor::Device;
use clap::Args;
use serde::Serialize;
use vigia::model::{
    ColorOrder, InputSpec, Layout, ModelCard, OutputFamily, OutputSpec, Provenance, ResizeMode,
    Task,
};
use vigia::mot::read_mot;
use vigia::reid::{
    retrieval, CropWalk, Embedder, HistogramEmbedder, ModelEmbedder, RetrievalScores, Sample,
};
use vigia::resolve::{load_model, locate, LoadOptions};

use super::graph::Backbone;
use super::head::{same_frame_similarities, train_head, Crop, HeadSettings};
use crate::common::card::sha256_hex;
use crate::common::optim::{OptimSettings, OptimizerKind, Schedule};

/// Arguments of `vigia-train reid`.
#[derive(Debug, Clone, Args)]
pub struct ReidArgs {
    /// The video to mine person crops from
    pub video: String,
    /// Its tracks in MOTChallenge format (`vigia track VIDEO --reid off --save-mot FILE`)
    #[arg(long)]
    pub tracks: PathBuf,
    /// Train on frames 1..=N and score on the frames after [default: the first half]
    #[arg(long)]
    pub train_to: Option<u64>,
    /// Mine every Nth training frame
    #[arg(long, default_value_t = 2)]
    pub every: u64,
    /// Score every Nth held-out frame
    #[arg(long, default_value_t = 3)]
    pub eval_every: u64,
    /// Last held-out frame to score [default: the last tracked frame]
    #[arg(long)]
    pub eval_to: Option<u64>,
    /// Frozen backbone: a bundled classifier name or an ONNX with its card
    #[arg(long, default_value = "efficientnet-lite0-224")]
    pub backbone: String,
    /// Backbone tensors pooled into features, comma-separated (`input` = the pixels)
    #[arg(
        long,
        default_value = "input,/_blocks.2/Add_output_0,/_blocks.4/Add_output_0"
    )]
    pub features: String,
    /// Crop size fed to the backbone, WIDTHxHEIGHT
    #[arg(long, default_value = "64x128")]
    pub crop: String,
    /// Horizontal body stripes each feature map is pooled into
    #[arg(long, default_value_t = 8)]
    pub stripes: usize,
    /// Embedding length
    #[arg(long, default_value_t = 128)]
    pub dim: usize,
    /// Training steps (batches)
    #[arg(long, default_value_t = 1500)]
    pub steps: usize,
    /// Learning rate (Adam, cosine decay)
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// L2 weight decay
    #[arg(long, default_value_t = 1e-4)]
    pub weight_decay: f64,
    /// Tracks per batch
    #[arg(long, default_value_t = 16)]
    pub tracks_per_batch: usize,
    /// Crops per track in a batch
    #[arg(long, default_value_t = 4)]
    pub crops_per_track: usize,
    /// Triplet margin on cosine distance; 0 = soft margin (never saturates)
    #[arg(long, default_value_t = 0.0)]
    pub margin: f32,
    /// Seed
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Crops overlapping another person's box above this IoU are left out
    #[arg(long, default_value_t = 0.2)]
    pub max_overlap: f32,
    /// Output folder: NAME.onnx + NAME.toml, backbone.onnx + backbone.toml, report.json
    #[arg(long, default_value = "runs/reid")]
    pub out: PathBuf,
    /// File name (stem) of the trained model
    #[arg(long, default_value = "reid")]
    pub name: String,
}

/// Held-out retrieval scores of one embedding.
#[derive(Debug, Clone, Serialize)]
pub struct Scored {
    /// Which embedding.
    pub embedding: String,
    /// Its scores.
    pub scores: RetrievalScores,
    /// Microseconds per crop.
    pub us_per_crop: f64,
}

/// What a run produced.
#[derive(Debug, Clone, Serialize)]
pub struct ReidReport {
    /// The trained embedding model.
    pub model: PathBuf,
    /// The frozen backbone with the same pooling, no head.
    pub backbone_model: PathBuf,
    /// Frames trained on (1..=train_to).
    pub train_to: u64,
    /// Crops mined for training.
    pub train_crops: usize,
    /// Tracks with at least two crops.
    pub train_tracks: usize,
    /// Pairs of tracks seen in the same frame.
    pub negative_pairs: usize,
    /// Mean loss over the first and the last tenth of the steps.
    pub loss_first: f64,
    /// See `loss_first`.
    pub loss_last: f64,
    /// Largest burn-vs-tract difference relative to the largest output value.
    pub parity_rel_err: f32,
    /// The card's same-person threshold.
    pub match_threshold: f32,
    /// Held-out scores: histogram, frozen backbone, backbone + head.
    pub held_out: Vec<Scored>,
    /// Seconds of training.
    pub train_seconds: f64,
}

/// Largest relative difference burn and tract may show on the exported head.
const PARITY_REL_TOLERANCE: f32 = 1e-3;

/// Runs `vigia-train reid`.
pub fn reid(a: &ReidArgs, line: &str) -> Result<ReidReport> {
    let (width, height) = parse_crop(&a.crop)?;
    if a.name.is_empty() || a.name.contains(['/', '\\']) || a.name == "backbone" {
        bail!(
            "--name {:?}: give a plain file stem other than backbone",
            a.name
        );
    }
    if a.every == 0 || a.eval_every == 0 {
        bail!("--every and --eval-every must be at least 1");
    }
    let rows = read_mot(&a.tracks)?;
    let last_frame = rows.iter().map(|r| r.frame).max().unwrap_or(0);
    if last_frame < 4 {
        bail!("{}: fewer than 4 tracked frames", a.tracks.display());
    }
    let train_to = a.train_to.unwrap_or(last_frame / 2);
    let eval_to = a.eval_to.unwrap_or(last_frame);
    if train_to >= eval_to {
        bail!("--train-to {train_to} leaves no held-out frames (tracks end at frame {eval_to})");
    }
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;

    // The frozen backbone, cut and pooled: the baseline model and the feature extractor.
    let (card, _, source) = locate(Some(&a.backbone), Task::Classify)
        .with_context(|| format!("--backbone {}", a.backbone))?;
    let bytes = source.read()?;
    let cuts: Vec<String> = a
        .features
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let backbone = Backbone::new(&bytes, &cuts, width, height, a.stripes)?;
    let base_input = card.map(|c| c.input).unwrap_or_else(|| InputSpec {
        name: None,
        layout: Layout::Nchw,
        width: 224,
        height: 224,
        color: ColorOrder::Rgb,
        scale: 1.0,
        mean: [127.0; 3],
        std: [128.0; 3],
        resize: ResizeMode::Stretch,
        pad_value: 0,
    });
    let input = InputSpec {
        name: Some(backbone.input_name().to_string()),
        width: width as u32,
        height: height as u32,
        resize: ResizeMode::Stretch,
        ..base_input
    };
    let notes = format!(
        "{} cut at {} ({} stripes each), crops {width}x{height}",
        a.backbone,
        cuts.join(", "),
        a.stripes
    );
    let backbone_path = a.out.join("backbone.onnx");
    write_model(
        &backbone_path,
        &backbone.graph(None, line)?,
        &input,
        None,
        line,
        &format!("frozen backbone: {notes}"),
    )?;
    eprintln!(
        "vigia-train: backbone {} -> {} features per crop ({})",
        a.backbone,
        backbone.feature_len(),
        backbone_path.display()
    );

    // Mine training crops: each crop's pooled features, its track and frame.
    let mut features =
        ModelEmbedder::load(&backbone_path.to_string_lossy(), &LoadOptions::default())
            .map_err(|e| anyhow::anyhow!("{}: {e}", backbone_path.display()))?;
    let mut crops = Vec::new();
    let mut parity_inputs: Vec<(Vec<f32>, Vec<f32>)> = Vec::new();
    let walk = CropWalk {
        from_frame: 1,
        to_frame: train_to,
        every: a.every,
        max_overlap: a.max_overlap,
    };
    let started = Instant::now();
    walk.run(&a.video, &rows, |frame, image, boxes, owners| {
        for (b, &track) in boxes.iter().zip(owners) {
            let Some(f) = features.raw_vector(image, b)? else {
                continue;
            };
            if parity_inputs.len() < 4 && crops.len() % 7 == 0 {
                parity_inputs.push((features.last_input().to_vec(), f.clone()));
            }
            crops.push(Crop {
                track,
                frame,
                features: f,
            });
        }
        Ok::<(), anyhow::Error>(())
    })
    .with_context(|| format!("mining crops from {}", a.video))?;
    eprintln!(
        "vigia-train: {} crops from frames 1-{train_to} of {} in {:.1}s",
        crops.len(),
        a.video,
        started.elapsed().as_secs_f64()
    );

    // Train the head.
    let settings = HeadSettings {
        dim: a.dim,
        steps: a.steps,
        tracks_per_batch: a.tracks_per_batch,
        crops_per_track: a.crops_per_track,
        margin: a.margin,
        optim: OptimSettings {
            optimizer: OptimizerKind::Adam,
            lr: a.lr,
            momentum: 0.0,
            weight_decay: a.weight_decay,
            schedule: Schedule::Cosine,
            lr_step: 1,
            lr_gamma: 1.0,
        },
        seed: a.seed,
    };
    let started = Instant::now();
    let trained = train_head(&crops, &settings, &Device::flex())?;
    let train_seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "vigia-train: head trained on {} tracks ({} pairs seen together): loss {:.4} -> {:.4} in {train_seconds:.1}s",
        trained.tracks, trained.negative_pairs, trained.loss_first, trained.loss_last
    );
    // The threshold: above every similarity of two people seen together in training (no
    // stranger accepted there), rounded up to a hundredth.
    let closest_strangers = same_frame_similarities(&crops, &trained.head)
        .into_iter()
        .fold(0.3f32, f32::max);
    let match_threshold = ((closest_strangers * 100.0).ceil() / 100.0).clamp(0.3, 0.95);

    let model_path = a.out.join(format!("{}.onnx", a.name));
    write_model(
        &model_path,
        &backbone.graph(Some(&trained.head), line)?,
        &input,
        Some(match_threshold),
        line,
        &format!(
            "triplet head ({} -> {}) on {notes}; trained on frames 1-{train_to} of {}",
            backbone.feature_len(),
            a.dim,
            a.video
        ),
    )?;

    // Parity: the exported graph in vigia's engine against burn's head on the same features.
    let mut full = load_model(
        Some(&model_path.to_string_lossy()),
        Some(Task::Embed),
        &LoadOptions::default(),
    )
    .map_err(|e| anyhow::anyhow!("{}: {e}", model_path.display()))?;
    let mut parity_rel_err = 0f32;
    for (pixels, f) in &parity_inputs {
        full.engine.input_mut().copy_from_slice(pixels);
        full.engine.run()?;
        let tract: Vec<f32> = full.engine.outputs()?[0].iter().copied().collect();
        let burn = trained.burn_forward(f);
        let scale = burn.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
        let err = crate::common::parity::max_abs_diff(&tract, &burn)?;
        parity_rel_err = parity_rel_err.max(err / scale);
    }
    if parity_rel_err > PARITY_REL_TOLERANCE || parity_rel_err.is_nan() {
        bail!(
            "{} disagrees with burn's head: relative error {parity_rel_err:.2e}",
            model_path.display()
        );
    }

    // Held-out scores.
    let held_out_walk = CropWalk {
        from_frame: train_to + 1,
        to_frame: eval_to,
        every: a.eval_every,
        max_overlap: a.max_overlap,
    };
    let mut embedders: Vec<(String, Box<dyn Embedder>)> = vec![
        ("histogram".into(), Box::new(HistogramEmbedder::new())),
        (
            "frozen backbone".into(),
            Box::new(ModelEmbedder::load(
                &backbone_path.to_string_lossy(),
                &LoadOptions::default(),
            )?),
        ),
        (
            "backbone + trained head".into(),
            Box::new(ModelEmbedder::load(
                &model_path.to_string_lossy(),
                &LoadOptions::default(),
            )?),
        ),
    ];
    let held_out = score_held_out(&a.video, &rows, &held_out_walk, &mut embedders)?;
    let report = ReidReport {
        model: model_path,
        backbone_model: backbone_path,
        train_to,
        train_crops: crops.len(),
        train_tracks: trained.tracks,
        negative_pairs: trained.negative_pairs,
        loss_first: trained.loss_first,
        loss_last: trained.loss_last,
        parity_rel_err,
        match_threshold,
        held_out,
        train_seconds,
    };
    let json = a.out.join("report.json");
    std::fs::write(&json, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("cannot write {}", json.display()))?;
    Ok(report)
}

/// Embeds the held-out crops with each embedder and scores retrieval.
fn score_held_out(
    video: &str,
    rows: &[vigia::mot::MotRow],
    walk: &CropWalk,
    embedders: &mut [(String, Box<dyn Embedder>)],
) -> Result<Vec<Scored>> {
    let mut samples: Vec<Vec<Sample>> = vec![vec![]; embedders.len()];
    let mut spent = vec![0f64; embedders.len()];
    let mut crops = 0usize;
    let mut out = Vec::new();
    walk.run(video, rows, |frame, image, boxes, owners| {
        crops += boxes.len();
        for (k, (_, e)) in embedders.iter_mut().enumerate() {
            let t = Instant::now();
            e.embed(image, boxes, &mut out)?;
            spent[k] += t.elapsed().as_secs_f64();
            for (person, v) in owners.iter().zip(out.drain(..)) {
                if let Some(vector) = v {
                    samples[k].push(Sample {
                        person: *person,
                        frame,
                        vector,
                    });
                }
            }
        }
        Ok::<(), anyhow::Error>(())
    })
    .with_context(|| format!("reading held-out frames of {video}"))?;
    embedders
        .iter()
        .zip(samples)
        .zip(spent)
        .map(|(((name, _), s), secs)| {
            let scores = retrieval(&s).with_context(|| {
                format!(
                    "frames {}-{}: fewer than two people have crops in both halves of their frames",
                    walk.from_frame, walk.to_frame
                )
            })?;
            Ok(Scored {
                embedding: name.clone(),
                scores,
                us_per_crop: secs * 1e6 / crops.max(1) as f64,
            })
        })
        .collect()
}

/// Writes `onnx` to `path` and its card beside it.
fn write_model(
    path: &Path,
    onnx: &[u8],
    input: &InputSpec,
    match_threshold: Option<f32>,
    line: &str,
    notes: &str,
) -> Result<()> {
    std::fs::write(path, onnx).with_context(|| format!("cannot write {}", path.display()))?;
    let stem = path
        .file_stem()
        .context("the model path has no file name")?
        .to_string_lossy()
        .to_string();
    let card = ModelCard {
        name: stem.clone(),
        task: Task::Embed,
        model: Some(format!("{stem}.onnx")),
        input: input.clone(),
        output: OutputSpec {
            family: OutputFamily::Embedding,
            labels: None,
            softmax: None,
            num_classes: None,
            match_threshold,
        },
        provenance: Provenance {
            license: Some("Apache-2.0".into()),
            source: Some(line.into()),
            notes: Some(notes.into()),
            sha256: Some(sha256_hex(onnx)),
        },
    };
    let card_path = path.with_extension("toml");
    let text = format!(
        "# Person appearance embedding for `vigia track --reid {stem}.onnx`, made by vigia-train reid.\n{}",
        card.to_toml()
    );
    ModelCard::from_toml(&text, &card_path).context("the written model card does not parse")?;
    std::fs::write(&card_path, text)
        .with_context(|| format!("cannot write {}", card_path.display()))
}

/// `64x128` -> (64, 128).
fn parse_crop(s: &str) -> Result<(usize, usize)> {
    let parsed = s
        .split_once(['x', 'X'])
        .and_then(|(w, h)| Some((w.trim().parse().ok()?, h.trim().parse().ok()?)));
    match parsed {
        Some((w, h)) if (8..=1024).contains(&w) && (8..=1024).contains(&h) => Ok((w, h)),
        _ => bail!("--crop {s}: expected WIDTHxHEIGHT, each 8 to 1024 pixels"),
    }
}
