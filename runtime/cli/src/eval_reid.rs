//! `vigia eval-reid`: how well an appearance embedding tells the people of a video apart.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;

use vigia::mot::read_mot;
use vigia::reid::{colour_veto_scores, retrieval, ColourSample, ColourShares, CropWalk, Sample};

use super::track::ReidMode;

/// Arguments of `vigia eval-reid`.
#[derive(Args)]
pub struct EvalReidArgs {
    /// The video the tracks belong to
    pub video: String,
    /// Tracks of that video in MOTChallenge format (`vigia track VIDEO --reid off --save-mot FILE`)
    #[arg(long)]
    pub tracks: PathBuf,
    /// Embedding to score: hist or an embedding model (.onnx made by `vigia-train reid`)
    #[arg(long, default_value = "hist")]
    pub reid: ReidMode,
    /// First frame (1-based) to use; earlier frames are left out (for held-out scores)
    #[arg(long, default_value_t = 1)]
    pub from_frame: u64,
    /// Last frame (1-based) to use
    #[arg(long)]
    pub to_frame: Option<u64>,
    /// Use every Nth frame
    #[arg(long, default_value_t = 5)]
    pub every: u64,
    /// Crops overlapping another person's box above this IoU are left out
    #[arg(long, default_value_t = 0.2)]
    pub max_overlap: f32,
    /// Also count the tracklet pairs ruled out by this colour veto (see `vigia track
    /// --reid-colour-veto`); off: not counted
    #[arg(long, default_value = "0.15", value_parser = super::args::share_or_off)]
    pub reid_colour_veto: super::args::ShareOrOff,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

/// Embeds the tracked people's crops and prints retrieval mAP and rank-1 (first half of each
/// person's frames as queries against the second halves of everyone).
pub fn eval_reid(a: EvalReidArgs) -> anyhow::Result<ExitCode> {
    if a.every == 0 {
        bail!("--every must be at least 1");
    }
    let Some(mut embedder) = a.reid.embedder()? else {
        bail!("--reid off has no embedding to score");
    };
    let rows = read_mot(&a.tracks)?;
    let walk = CropWalk {
        from_frame: a.from_frame,
        to_frame: a.to_frame.unwrap_or(u64::MAX),
        every: a.every,
        max_overlap: a.max_overlap,
    };
    let mut samples = Vec::new();
    let mut colours = Vec::new();
    let mut out = Vec::new();
    let (mut embed_time, mut crops) = (std::time::Duration::ZERO, 0usize);
    walk.run(&a.video, &rows, |number, image, boxes, owners| {
        let t = std::time::Instant::now();
        embedder.embed(image, boxes, &mut out)?;
        embed_time += t.elapsed();
        crops += boxes.len();
        for ((person, v), b) in owners.iter().zip(out.drain(..)).zip(boxes) {
            if let Some(vector) = v {
                if let Some(shares) = ColourShares::of_box(image, b) {
                    colours.push(ColourSample {
                        person: *person,
                        frame: number,
                        shares,
                    });
                }
                samples.push(Sample {
                    person: *person,
                    frame: number,
                    vector,
                });
            }
        }
        Ok::<(), anyhow::Error>(())
    })
    .with_context(|| format!("reading {}", a.video))?;
    let Some(r) = retrieval(&samples) else {
        bail!(
            "{}: fewer than two people have crops in both halves of their frames",
            a.tracks.display()
        );
    };
    let us_per_crop = embed_time.as_secs_f64() * 1e6 / crops.max(1) as f64;
    let colour = a
        .reid_colour_veto
        .0
        .and_then(|veto| colour_veto_scores(&colours, veto));
    if a.json {
        let mut v = serde_json::to_value(r)?;
        v["embedder"] = embedder.name().into();
        v["colour_veto"] = serde_json::to_value(colour)?;
        v["us_per_crop"] = us_per_crop.into();
        println!("{v}");
    } else {
        println!(
            "embedding  {} ({us_per_crop:.1} µs per crop)",
            embedder.name()
        );
        println!(
            "people     {} ({} queries, {} gallery crops)",
            r.people, r.queries, r.gallery
        );
        println!("mAP        {:.3}", r.map);
        println!("rank-1     {:.3}", r.rank1);
        println!(
            "similarity {:.3} same person, {:.3} others",
            r.mean_same, r.mean_other
        );
        println!(
            "tracklets  rank-1 {:.3}, similarity {:.3} same person, at most {:.3} between two people",
            r.tracklet_rank1, r.tracklet_same, r.tracklet_other_max
        );
        if let Some(c) = colour {
            println!(
                "colours    veto {}: rules out {} of {} same-person tracklet pairs, {} of {} pairs of two people",
                c.veto, c.same_ruled_out, c.same_pairs, c.other_ruled_out, c.other_pairs
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
