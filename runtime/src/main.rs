//! The `vigia` command line.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use serde_json::json;

use vigia::annotate::draw_detections;
use vigia::classifier::Classifier;
use vigia::decode::DecodeParams;
use vigia::detector::Detector;
use vigia::engine::{self, OnnxGraph};
use vigia::model::{Labels, Task};
use vigia::resolve::{self, LoadOptions, LoadedModel};
use vigia::source::images::{list_images, load_rgb};

/// Edge vision runtime: detect, classify and inspect ONNX models with tract.
#[derive(Parser)]
#[command(name = "vigia", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Detect objects (people by default) in images; one JSON line per image on stdout.
    Detect(DetectArgs),
    /// Classify images; one JSON line with the top-k classes per image on stdout.
    Classify(ClassifyArgs),
    /// Show a model's inputs, outputs, operators, parameters and the card vigia would use.
    Inspect(InspectArgs),
}

#[derive(Args)]
struct ModelArgs {
    /// Model: an .onnx file, a model card (.toml) or a bundled name [default: the bundled model]
    #[arg(long, short)]
    model: Option<String>,
    /// Input size (square) to fix the graph to, overriding the card
    #[arg(long)]
    imgsz: Option<u32>,
    /// Threads for tract's matrix kernels
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    threads: u32,
    /// Print nothing but results on stderr-free runs (errors still go to stderr)
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Args)]
struct DetectArgs {
    /// Image, folder or glob (same as --source)
    #[arg(value_name = "SOURCE", conflicts_with = "source")]
    positional: Option<String>,
    /// Image, folder or glob ('imgs/*.jpg')
    #[arg(long, short)]
    source: Option<String>,
    #[command(flatten)]
    model: ModelArgs,
    /// Minimum confidence
    #[arg(long, default_value_t = 0.25, value_parser = unit_interval)]
    conf: f32,
    /// IoU threshold of non-maximum suppression
    #[arg(long, default_value_t = 0.45, value_parser = unit_interval)]
    iou: f32,
    /// Keep only these classes: names or ids, comma separated (person,car or 0,2)
    #[arg(long)]
    classes: Option<String>,
    /// Maximum detections per image
    #[arg(long, default_value_t = 300)]
    max_det: usize,
    /// NMS across classes instead of per class
    #[arg(long)]
    agnostic_nms: bool,
    /// Write annotated images into this folder
    #[arg(long, value_name = "DIR")]
    save: Option<PathBuf>,
}

#[derive(Args)]
struct ClassifyArgs {
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

#[derive(Args)]
struct InspectArgs {
    /// Model: an .onnx file, a model card (.toml) or a bundled name
    model: String,
    /// Input size to try when the graph's is dynamic
    #[arg(long)]
    imgsz: Option<u32>,
    /// Print JSON instead of text
    #[arg(long)]
    json: bool,
}

fn unit_interval(s: &str) -> Result<f32, String> {
    let v: f32 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is outside 0..1"))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Detect(a) => detect(a),
        Command::Classify(a) => classify(a),
        Command::Inspect(a) => inspect(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn source_arg(positional: Option<String>, source: Option<String>) -> anyhow::Result<String> {
    positional
        .or(source)
        .context("no input given: pass an image, folder or glob as SOURCE or --source")
}

fn load(args: &ModelArgs, task: Task) -> anyhow::Result<LoadedModel> {
    engine::set_threads(args.threads as usize);
    let model = resolve::load_model(
        args.model.as_deref(),
        Some(task),
        &LoadOptions { imgsz: args.imgsz },
    )?;
    if !args.quiet {
        let c = &model.card;
        let r = &model.report;
        eprintln!(
            "vigia: {} [{:?}, {}x{} {:?}] on tract {} with {} thread(s): loaded in {:.0} ms \
             (graph {:.0}, typing {:.0}, optimize {:.0}, plan {:.0})",
            model.source.display_name(),
            c.output.family,
            c.input.width,
            c.input.height,
            c.input.layout,
            engine::tract_version(),
            args.threads,
            r.total_ms(),
            r.parse_ms,
            r.typing_ms,
            r.optimize_ms,
            r.plan_ms
        );
        for a in &model.assumptions {
            eprintln!("vigia: assumed {a}");
        }
    }
    Ok(model)
}

/// Parses `--classes` (names or ids) against the model's labels.
fn parse_classes(spec: &str, labels: &Labels) -> anyhow::Result<Vec<usize>> {
    let mut ids = vec![];
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if let Ok(id) = item.parse::<usize>() {
            if !labels.is_empty() && id >= labels.len() {
                bail!(
                    "--classes: id {id} is out of range (the model has {} classes)",
                    labels.len()
                );
            }
            ids.push(id);
        } else if let Some(id) = labels.find(item) {
            ids.push(id);
        } else {
            let some: Vec<&str> = labels.0.iter().take(8).map(String::as_str).collect();
            bail!(
                "--classes: unknown class name '{item}' (this model knows e.g. {})",
                some.join(", ")
            );
        }
    }
    if ids.is_empty() {
        bail!("--classes: no class given");
    }
    Ok(ids)
}

/// Opens stdout for JSON lines, flushing each one.
struct JsonLines(std::io::StdoutLock<'static>);

impl JsonLines {
    fn new() -> Self {
        JsonLines(std::io::stdout().lock())
    }
    fn write(&mut self, v: &serde_json::Value) -> anyhow::Result<()> {
        serde_json::to_writer(&mut self.0, v)?;
        self.0.write_all(b"\n")?;
        self.0.flush().context("writing results to stdout")
    }
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

fn detect(args: DetectArgs) -> anyhow::Result<ExitCode> {
    let source = source_arg(args.positional, args.source)?;
    let images = list_images(&source)?;
    if let Some(dir) = &args.save {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("--save: cannot create folder {}", dir.display()))?;
    }
    let mut detector = Detector::new(load(&args.model, Task::Detect)?);
    let classes = args
        .classes
        .as_deref()
        .map(|c| parse_classes(c, detector.labels()))
        .transpose()?;
    let params = DecodeParams {
        conf: args.conf,
        iou: args.iou,
        classes,
        max_det: args.max_det,
        agnostic: args.agnostic_nms,
    };
    let mut out = JsonLines::new();
    let (mut done, mut failed) = (0, 0);
    for path in &images {
        let result = detect_one(&mut detector, path, &params, args.save.as_deref());
        match result {
            Ok(line) => {
                out.write(&line)?;
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

fn detect_one(
    detector: &mut Detector,
    path: &Path,
    params: &DecodeParams,
    save: Option<&Path>,
) -> anyhow::Result<serde_json::Value> {
    let mut img = load_rgb(path)?;
    let dets = detector.detect(&img, params)?.to_vec();
    let t = detector.last_times();
    let labels = detector.labels();
    let items: Vec<_> = dets
        .iter()
        .map(|d| {
            json!({
                "class_id": d.class_id,
                "label": labels.name(d.class_id),
                "score": round(d.score, 4),
                "box": [round(d.bbox.x1, 1), round(d.bbox.y1, 1), round(d.bbox.x2, 1), round(d.bbox.y2, 1)],
            })
        })
        .collect();
    if let Some(dir) = save {
        draw_detections(&mut img, &dets, &|c| labels.name(c), None);
        let name = path.file_name().context("image path has no file name")?;
        let target = dir.join(name);
        img.save(&target)
            .with_context(|| format!("--save: cannot write {}", target.display()))?;
    }
    Ok(json!({
        "source": path,
        "width": img.width(),
        "height": img.height(),
        "detections": items,
        "time_ms": {
            "preprocess": round(t.preprocess_ms as f32, 2),
            "inference": round(t.inference_ms as f32, 2),
            "decode": round(t.decode_ms as f32, 2),
        },
    }))
}

fn classify(args: ClassifyArgs) -> anyhow::Result<ExitCode> {
    let source = source_arg(args.positional, args.source)?;
    let images = list_images(&source)?;
    if args.top_k == 0 {
        bail!("--top-k must be at least 1");
    }
    let mut classifier = Classifier::new(load(&args.model, Task::Classify)?);
    let mut out = JsonLines::new();
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

fn inspect(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let (_, _, source) = resolve::locate(Some(&args.model), Task::Detect)?;
    let graph = OnnxGraph::open(source)?;
    let summary = graph.summary();
    let loaded = resolve::load_model(
        Some(&args.model),
        None,
        &LoadOptions { imgsz: args.imgsz },
    );
    if args.json {
        let card = loaded.as_ref().ok().map(|m| {
            json!({"card": m.card, "assumptions": m.assumptions, "load_ms": m.report})
        });
        let error = loaded.as_ref().err().map(|e| e.to_string());
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "model": graph.source().display_name(),
                "graph": summary,
                "resolved": card,
                "error": error,
            }))?
        );
    } else {
        println!("model     {}", graph.source().display_name());
        println!("producer  {}", summary.producer);
        if let Some(o) = summary.opset {
            println!("opset     {o}");
        }
        for (name, dims) in &summary.inputs {
            println!("input     {name} [{}]", dims.join(","));
        }
        for (name, dims) in &summary.outputs {
            println!("output    {name} [{}]", dims.join(","));
        }
        println!("params    {} ({:.2} M)", summary.parameters, summary.parameters as f64 / 1e6);
        let ops: Vec<String> = {
            let mut v: Vec<_> = summary.op_histogram.iter().collect();
            v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            v.iter().map(|(k, n)| format!("{k} {n}")).collect()
        };
        println!("ops       {}", ops.join(", "));
        if !summary.unsupported_ops.is_empty() {
            println!("missing   {} (not in tract {})", summary.unsupported_ops.join(", "), engine::tract_version());
        }
        match &loaded {
            Ok(m) => {
                println!("loaded    in {:.0} ms (optimize {:.0} ms)", m.report.total_ms(), m.report.optimize_ms);
                for a in &m.assumptions {
                    println!("assumed   {a}");
                }
                println!("\n# model card vigia uses\n{}", m.card.to_toml());
            }
            Err(e) => println!("load      FAILED: {e}"),
        }
    }
    Ok(if loaded.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
