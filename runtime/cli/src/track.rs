//! `vigia track` (detect + ByteTrack, or MOTChallenge detections in, tracks out) and
//! `vigia eval-mot` (CLEAR-MOT and identity metrics).

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;

use vigia::model::Task;
use vigia::mot::{detections_by_frame, evaluate, read_mot, write_mot_line};
use vigia::reid::{
    Embedder, HistogramEmbedder, ModelEmbedder, DEFAULT_MODEL_THRESHOLD, HISTOGRAM_THRESHOLD,
};
use vigia::resolve::{locate, LoadOptions, DEFAULT_EMBEDDER};
use vigia::track::bytetrack::{ByteTrackConfig, ByteTracker};
use vigia::track::reid::{ReidConfig, ReidTracker};
use vigia::track::Tracker;

/// How people who leave and come back are recognised (`--reid`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ReidMode {
    /// Motion only: an absence longer than the track buffer ends the identity.
    Off,
    /// Colour histograms per body third (no model).
    #[default]
    Hist,
    /// An embedding model (`.onnx` with its card, or the `.toml` card) made by `vigia-train reid`.
    Model(String),
}

impl std::str::FromStr for ReidMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let is_model_file = [".onnx", ".toml"]
            .iter()
            .any(|e| s.to_ascii_lowercase().ends_with(e));
        match s {
            "off" | "none" => Ok(ReidMode::Off),
            "hist" | "histogram" => Ok(ReidMode::Hist),
            DEFAULT_EMBEDDER => Ok(ReidMode::Model(s.into())),
            _ if is_model_file && std::path::Path::new(s).is_file() => {
                Ok(ReidMode::Model(s.into()))
            }
            _ if is_model_file => Err(format!("embedding model {s}: no such file")),
            _ => Err(format!(
                "'{s}' is not a re-identification mode: use hist, off, {DEFAULT_EMBEDDER} (the \
                 bundled embedding model) or an embedding model (.onnx made by vigia-train reid)"
            )),
        }
    }
}

impl ReidMode {
    /// `vigia follow`'s default: the bundled embedding model where this build or a models
    /// folder has it, else colour histograms.
    pub fn follow_default() -> ReidMode {
        match locate(None, Task::Embed) {
            Ok(_) => ReidMode::Model(DEFAULT_EMBEDDER.into()),
            Err(_) => ReidMode::Hist,
        }
    }

    /// The embedder this mode uses (`None` for `off`).
    pub fn embedder(&self) -> anyhow::Result<Option<Box<dyn Embedder>>> {
        Ok(match self {
            ReidMode::Off => None,
            ReidMode::Hist => Some(Box::new(HistogramEmbedder::new())),
            ReidMode::Model(spec) => Some(Box::new(
                ModelEmbedder::load(spec, &LoadOptions::default())
                    .with_context(|| format!("--reid {spec}"))?,
            )),
        })
    }

    /// The same-person similarity this mode's embedding uses unless `--reid-threshold` says.
    pub fn default_threshold(&self) -> anyhow::Result<f32> {
        Ok(match self {
            ReidMode::Off | ReidMode::Hist => HISTOGRAM_THRESHOLD,
            ReidMode::Model(spec) => locate(Some(spec), Task::Embed)
                .with_context(|| format!("--reid {spec}"))?
                .0
                .and_then(|card| card.output.match_threshold)
                .unwrap_or(DEFAULT_MODEL_THRESHOLD),
        })
    }
}

/// ByteTrack settings.
#[derive(Args, Clone)]
pub struct TrackerArgs {
    /// Detections above this score join the first association
    #[arg(long, default_value_t = 0.5, value_parser = super::args::unit_interval)]
    pub track_high: f32,
    /// Detections above this score (and below --track-high) join the second association
    #[arg(long, default_value_t = 0.1, value_parser = super::args::unit_interval)]
    pub track_low: f32,
    /// Unmatched detections scoring at least this start a new track
    #[arg(long, default_value_t = 0.6, value_parser = super::args::unit_interval)]
    pub new_track: f32,
    /// Largest 1-IoU cost of the first association
    #[arg(long, default_value_t = 0.8, value_parser = super::args::unit_interval)]
    pub match_thresh: f32,
    /// Frames (at 30 fps; scaled by the source rate) a lost track is kept
    #[arg(long, default_value_t = 30)]
    pub track_buffer: u32,
    /// Re-identify people who leave and come back by their look: hist (colour histograms per
    /// body third), off (motion only), reid-vtest-64x128 (the bundled embedding model) or an
    /// embedding model (.onnx made by `vigia-train reid`) [default: hist for track, the bundled
    /// model for follow]
    #[arg(long)]
    pub reid: Option<ReidMode>,
    /// The command's `--reid` when none is given.
    #[arg(skip)]
    pub reid_default: ReidMode,
    /// How long a person out of view is remembered for re-identification (seconds; 30 or 30s)
    #[arg(long, default_value = "30", value_parser = super::args::seconds)]
    pub reid_memory: f64,
    /// Least appearance similarity (cosine) for a returning person, and for the follower's target
    /// [default: 0.93 with hist, the model card's match_threshold with a model]
    #[arg(long)]
    pub reid_threshold: Option<f32>,
    /// Least lead of the best-matching person over the next best
    #[arg(long, default_value_t = 0.05)]
    pub reid_margin: f32,
    /// Two people are never taken for one when a strong colour covers shares of their upper
    /// body that differ by at least this much (0-1), whatever their similarity; off: colours
    /// not compared
    #[arg(long, default_value = "0.15", value_parser = super::args::share_or_off)]
    pub reid_colour_veto: super::args::ShareOrOff,
    /// Also report lost tracks (with their predicted boxes)
    #[arg(skip)]
    pub report_lost: bool,
}

/// Tracker settings one camera of a cameras file sets instead of the run's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrackerOverrides {
    pub track_buffer: Option<u32>,
    pub track_high: Option<f32>,
    pub track_low: Option<f32>,
    pub new_track: Option<f32>,
    pub match_thresh: Option<f32>,
    pub reid: Option<ReidMode>,
    pub reid_memory: Option<f64>,
}

impl TrackerOverrides {
    /// Whether the camera sets anything.
    pub fn is_empty(&self) -> bool {
        *self == TrackerOverrides::default()
    }

    /// The run's settings `base` with this camera's in their place.
    pub fn apply(&self, base: &TrackerArgs) -> TrackerArgs {
        let mut t = base.clone();
        if let Some(v) = self.track_buffer {
            t.track_buffer = v;
        }
        if let Some(v) = self.track_high {
            t.track_high = v;
        }
        if let Some(v) = self.track_low {
            t.track_low = v;
        }
        if let Some(v) = self.new_track {
            t.new_track = v;
        }
        if let Some(v) = self.match_thresh {
            t.match_thresh = v;
        }
        if let Some(v) = &self.reid {
            t.reid = Some(v.clone());
        }
        if let Some(v) = self.reid_memory {
            t.reid_memory = v;
        }
        t
    }
}

impl TrackerArgs {
    /// The tracker for frames of a source running at `fps`: ByteTrack, with re-identification
    /// unless `--reid off`.
    pub fn build_for_frames(&self, fps: f64) -> anyhow::Result<Box<dyn Tracker>> {
        let Some(embedder) = self.reid().embedder()? else {
            return Ok(Box::new(self.build(fps)?));
        };
        let inner = ByteTracker::new(ByteTrackConfig {
            report_lost: true,
            ..*self.build(fps)?.config()
        })?;
        let config = ReidConfig {
            memory: self.reid_memory,
            threshold: self
                .reid_threshold
                .unwrap_or_else(|| embedder.match_threshold()),
            margin: self.reid_margin,
            colour_veto: self.reid_colour_veto.0,
            report_lost: self.report_lost,
            ..ReidConfig::default()
        };
        Ok(Box::new(ReidTracker::new(inner, embedder, config)?))
    }

    /// One line saying how identities are kept, for the run's log.
    pub fn describe_reid(&self) -> String {
        let threshold = match (self.reid_threshold, self.reid().default_threshold()) {
            (Some(t), _) | (None, Ok(t)) => t.to_string(),
            (None, Err(_)) => "?".into(),
        };
        let colour = match self.reid_colour_veto.0 {
            Some(v) => format!(", colour veto {v}"),
            None => ", colours not compared".into(),
        };
        match self.reid() {
            ReidMode::Off => "re-identification off (motion only)".into(),
            ReidMode::Hist => format!(
                "re-identification by colour histograms, memory {} s, threshold {threshold}{colour}",
                self.reid_memory
            ),
            ReidMode::Model(spec) => format!(
                "re-identification by the embedding model {spec}, memory {} s, threshold {threshold}{colour}",
                self.reid_memory
            ),
        }
    }

    /// The re-identification mode in force: `--reid`, else the command's default.
    pub fn reid(&self) -> &ReidMode {
        self.reid.as_ref().unwrap_or(&self.reid_default)
    }

    /// The same-person similarity in force: `--reid-threshold`, else the embedding's default.
    pub fn reid_threshold(&self) -> anyhow::Result<f32> {
        match self.reid_threshold {
            Some(t) => Ok(t),
            None => self.reid().default_threshold(),
        }
    }

    /// A motion-only tracker for a source running at `fps`.
    pub fn build(&self, fps: f64) -> anyhow::Result<ByteTracker> {
        let config = ByteTrackConfig {
            track_high_thresh: self.track_high,
            track_low_thresh: self.track_low,
            new_track_thresh: self.new_track,
            match_thresh: self.match_thresh,
            track_buffer: self.track_buffer,
            frame_rate: if fps.is_finite() && fps > 0.0 {
                fps
            } else {
                30.0
            },
            ..ByteTrackConfig::default()
        };
        Ok(ByteTracker::new(config)?)
    }
}

/// Tracks MOTChallenge detections (`frame,-1,x,y,w,h,conf,...`) into a MOTChallenge tracks file.
pub fn track_mot_file(
    detections: &PathBuf,
    out: Option<&PathBuf>,
    fps: f64,
    tracker: &TrackerArgs,
) -> anyhow::Result<ExitCode> {
    let out = out.context("--detections needs --save-mot FILE for the tracks")?;
    let rows = read_mot(detections)?;
    let by_frame = detections_by_frame(&rows);
    let mut tracker = tracker.build(fps)?;
    let file = std::fs::File::create(out)
        .with_context(|| format!("--save-mot: cannot write {}", out.display()))?;
    let mut w = BufWriter::new(file);
    let last = by_frame.keys().next_back().copied().unwrap_or(0);
    let mut lines = 0u64;
    let empty = vec![];
    // Every frame up to the last, also those without detections, so lost tracks age correctly;
    // while no track is alive such frames change nothing and are skipped (frame numbers in a
    // file may be far apart).
    let mut frame = 1;
    while frame <= last {
        let dets = by_frame.get(&frame).unwrap_or(&empty);
        let tracks = tracker.update(dets, (frame - 1) as f64 / fps);
        for t in tracks {
            write_mot_line(&mut w, frame, t)
                .with_context(|| format!("writing {}", out.display()))?;
            lines += 1;
        }
        frame += 1;
        if tracker.live_tracks() == 0 {
            match by_frame.range(frame..).next() {
                Some((&next, _)) => frame = next,
                None => break,
            }
        }
    }
    w.flush()
        .with_context(|| format!("writing {}", out.display()))?;
    eprintln!(
        "vigia: {} detections in {} frames -> {lines} track boxes, {} ids in {}",
        rows.len(),
        last,
        tracker.next_id().saturating_sub(1),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `vigia eval-mot`.
#[derive(Args)]
pub struct EvalMotArgs {
    /// Ground truth in MOTChallenge format (frame,id,x,y,w,h,consider,class,visibility)
    #[arg(long)]
    pub gt: PathBuf,
    /// Tracker output in MOTChallenge format (frame,id,x,y,w,h,conf,-1,-1,-1)
    #[arg(long)]
    pub tracks: PathBuf,
    /// IoU a match needs
    #[arg(long, default_value_t = 0.5, value_parser = super::args::unit_interval)]
    pub iou: f32,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

/// Prints MOTA, MOTP, IDF1 and the counts behind them.
pub fn eval_mot(args: EvalMotArgs) -> anyhow::Result<ExitCode> {
    let gt = read_mot(&args.gt)?;
    let hyp = read_mot(&args.tracks)?;
    if gt.is_empty() {
        bail!("--gt {}: no ground-truth rows", args.gt.display());
    }
    let m = evaluate(&gt, &hyp, args.iou);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&m)?);
    } else {
        println!("MOTA   {:.3}", m.mota);
        println!("MOTP   {:.3}  (mean 1-IoU of matches)", m.motp);
        println!("IDF1   {:.3}  (IDP {:.3}, IDR {:.3})", m.idf1, m.idp, m.idr);
        println!("IDsw   {}", m.id_switches);
        println!("FP     {}", m.fp);
        println!("FN     {}", m.fn_);
        println!("GT     {} boxes, {} matched", m.num_gt, m.num_matches);
        println!("MT/ML  {} / {}", m.mostly_tracked, m.mostly_lost);
        println!("Frag   {}", m.fragmentations);
        println!("Prec   {:.3}  Rec {:.3}", m.precision, m.recall);
    }
    Ok(ExitCode::SUCCESS)
}
