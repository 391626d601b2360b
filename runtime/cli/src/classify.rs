//! `vigia classify`: top-k classes per image.

use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;
use serde_json::json;

use super::args::ModelArgs;
use super::run::load;
use vigia::classifier::Classifier;
use vigia::model::Task;
use vigia::sink::jsonl::JsonLinesWriter;
use vigia::source::images::{list_images, load_rgb};

/// Arguments of `vigia classify`.
#[derive(Args)]
pub struct ClassifyArgs {
    /// Image, folder or glob (same as --source)
    #[arg(value_name = "SOURCE", conflicts_with = "source")]
    positional: Option<String>,
    /// Image, folder or glob
    #[arg(long, short)]
    source: Option<String>,
    #[command(flatten)]
    model: ModelArgs,
    /// Number of classes to report
    #[arg(long, default_value_t = 5)]
    top_k: usize,
}

fn round(v: f32, places: i32) -> f64 {
    let p = 10f64.powi(places);
    (v as f64 * p).round() / p
}

/// Reports the outcome of a run over several images and picks the exit code.
fn finish(done: usize, failed: usize, quiet: bool) -> ExitCode {
    if !quiet || failed > 0 {
        eprintln!("vigia: {done} image(s) processed, {failed} skipped");
    }
    if done == 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

pub fn classify(args: ClassifyArgs) -> anyhow::Result<ExitCode> {
    let source = args
        .positional
        .or(args.source)
        .context("no input given: pass an image, folder or glob as SOURCE or --source")?;
    let images = list_images(&source)?;
    if args.top_k == 0 {
        bail!("--top-k must be at least 1");
    }
    let mut classifier = Classifier::new(load(&args.model, Task::Classify)?);
    let mut out = JsonLinesWriter::stdout();
    let (mut done, mut failed) = (0, 0);
    for path in &images {
        let result = load_rgb(path)
            .map_err(anyhow::Error::from)
            .and_then(|img| Ok(classifier.classify(&img, args.top_k)?));
        match result {
            Ok(top) => {
                let t = classifier.last_times();
                let top: Vec<_> = top
                    .iter()
                    .map(|c| json!({"class_id": c.class_id, "label": c.label, "score": round(c.score, 5)}))
                    .collect();
                out.write(&json!({
                    "source": path,
                    "top": top,
                    "time_ms": {"preprocess": round(t.preprocess_ms as f32, 2), "inference": round(t.inference_ms as f32, 2)},
                }))?;
                done += 1;
            }
            Err(e) => {
                eprintln!("vigia: skipping {}: {e:#}", path.display());
                out.write(&json!({"source": path, "error": format!("{e:#}")}))?;
                failed += 1;
            }
        }
    }
    Ok(finish(done, failed, args.model.quiet))
}
