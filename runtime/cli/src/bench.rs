//! `vigia bench`: inference latency, FPS, FLOPs and the share of the CPU's f32 peak for one model.
//!
//! The input is a real preprocessed image (the bundled sample by default), the engine state is
//! reused across runs exactly as in the pipeline. `--dump-input`/`--dump-output` write the tensors
//! as raw little-endian f32 with a JSON shape file so another runtime can be fed the identical
//! input and compared; `--stdin-rounds` keeps the model loaded and times rounds on request, so a
//! driver can interleave vigia with another runtime in one invocation.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use serde_json::json;

use vigia::engine::flops::{self, CpuPeak, FlopCount};
use vigia::engine::passes::conv_kernels::Kernels;
use vigia::engine::{self, BuildOptions, Engine, LoadReport, ModelSource, OnnxGraph, TractEngine};
use vigia::preprocess::Preprocessor;
use vigia::resolve::{self, EngineKind, LoadOptions};
use vigia::source::images::load_rgb;

/// The bundled sample, compiled in so `vigia bench` works from any directory.
const SAMPLE_JPG: &[u8] = include_bytes!("../../../models/samples/person.jpg");

/// Arguments of `vigia bench`.
#[derive(Args)]
pub struct BenchArgs {
    /// Model: an .onnx file, a model card (.toml) or a bundled name [default: the embedded detector]
    #[arg(long, short)]
    model: Option<String>,
    /// Threads for the convolution and matrix kernels (vigia's and tract's)
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    threads: u32,
    /// Input size (square) to fix the graph to, overriding the card
    #[arg(long)]
    imgsz: Option<u32>,
    /// Convolution kernels: vigia's where they apply (the default) or tract's throughout
    #[arg(long, default_value = "vigia", value_name = "vigia|tract")]
    kernels: Kernels,
    /// Engine to time: tract on the CPU (the default here, so figures say what they measure),
    /// cuda on an NVIDIA GPU (host to host: upload, run, download), auto, or ort
    #[arg(long, default_value = "tract", value_name = "tract|cuda|auto|ort")]
    engine: EngineKind,
    /// Run the graph in f16 (tract on CPUs with FP16 arithmetic, or the GPU)
    #[arg(long)]
    half: bool,
    /// Timed runs
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    runs: u32,
    /// Untimed runs before timing
    #[arg(long, default_value_t = 3)]
    warmup: u32,
    /// Image to preprocess into the input [default: the bundled sample photo]
    #[arg(long, value_name = "IMAGE")]
    input: Option<PathBuf>,
    /// Peak f32 GFLOP/s of one core, instead of the detected one
    #[arg(long, value_name = "X")]
    peak_gflops: Option<f64>,
    /// Write the input tensor as raw little-endian f32 to FILE, its shape to FILE.json
    #[arg(long, value_name = "FILE")]
    dump_input: Option<PathBuf>,
    /// Write each output as raw little-endian f32 into DIR, with DIR/outputs.json
    #[arg(long, value_name = "DIR")]
    dump_output: Option<PathBuf>,
    /// Also time every node with tract's evaluation hook and print the costliest operators
    #[arg(long)]
    profile: bool,
    /// After the report, read a run count per stdin line and answer each with one JSON line of
    /// latencies (keeps the model loaded for interleaved comparisons)
    #[arg(long)]
    stdin_rounds: bool,
    /// Print JSON instead of text
    #[arg(long)]
    json: bool,
}

/// Latency statistics in milliseconds.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Latency {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub min: f64,
    pub max: f64,
    pub stdev: f64,
}

impl Latency {
    /// Statistics of `times` (at least one value).
    pub fn of(times: &[f64]) -> Latency {
        let mut sorted = times.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        // Nearest-rank percentile.
        let pct = |p: f64| sorted[((p / 100.0 * n as f64).ceil() as usize).clamp(1, n) - 1];
        let mean = sorted.iter().sum::<f64>() / n as f64;
        let var = sorted.iter().map(|t| (t - mean).powi(2)).sum::<f64>() / n as f64;
        Latency {
            mean,
            p50: pct(50.0),
            p90: pct(90.0),
            p99: pct(99.0),
            min: sorted[0],
            max: sorted[n - 1],
            stdev: var.sqrt(),
        }
    }
}

/// A model ready to time: the engine plus what the report says about it.
struct Prepared {
    engine: Box<dyn Engine>,
    source: ModelSource,
    name: String,
    report: LoadReport,
    input_note: String,
    /// Why `--engine auto` chose the engine.
    engine_why: Option<String>,
}

pub fn bench(args: BenchArgs) -> anyhow::Result<ExitCode> {
    if let Some(p) = args.peak_gflops {
        if !(p.is_finite() && p > 0.0) {
            bail!("--peak-gflops must be a positive number of GFLOP/s per core, got {p}");
        }
    }
    if let Some(s) = args.imgsz {
        if s == 0 || s > 8192 {
            bail!("invalid value for --imgsz: {s} is not a usable input size (1..=8192)");
        }
    }
    engine::set_threads(args.threads as usize);
    let mut prepared = prepare(&args)?;
    let shape = prepared.engine.input_shape().to_vec();

    if let Some(path) = &args.dump_input {
        dump_tensor(path, prepared.engine.input_mut(), &shape, "input")?;
    }
    for _ in 0..args.warmup {
        prepared.engine.run()?;
    }
    if let Some(dir) = &args.dump_output {
        if args.warmup == 0 {
            prepared.engine.run()?;
        }
        dump_outputs(dir, prepared.engine.as_ref())?;
    }
    let times = time_runs(prepared.engine.as_mut(), args.runs)?;
    let latency = Latency::of(&times);

    let t = Instant::now();
    let count = flops::count(&prepared.source, &shape);
    let count_ms = t.elapsed().as_secs_f64() * 1e3;
    let mut peak = CpuPeak::detect();
    if let Some(p) = args.peak_gflops {
        peak.per_core_gflops = p;
        peak.freq_source = "--peak-gflops".into();
    }
    let peak_total = peak.gflops(args.threads as usize);
    let (flops_json, achieved) = match &count {
        Ok(c) => {
            let gflops_s = c.flops() as f64 / (latency.mean * 1e-3) / 1e9;
            (
                json!({
                    "macs": c.macs,
                    "flops": c.flops(),
                    "other_flops": c.other_flops,
                    "macs_by_op": c.macs_by_op,
                    "uncounted_ops": c.uncounted_ops,
                    "count_ms": round(count_ms, 1),
                }),
                Some(gflops_s),
            )
        }
        Err(e) => (json!({"error": e.to_string()}), None),
    };

    let on_cpu = prepared.report.gpu.is_none();
    let profile = if args.profile && on_cpu {
        Some(profile_nodes(
            &prepared.source,
            &shape,
            prepared.engine.input_mut(),
            args.warmup.max(1),
            args.runs,
            args.kernels,
        )?)
    } else {
        None
    };

    if args.json || args.stdin_rounds {
        let out = json!({
            "model": prepared.name,
            "engine": prepared.engine.name(),
            "engine_why": prepared.engine_why,
            "tract_version": engine::tract_version(),
            "input_shape": shape,
            "input": prepared.input_note,
            "threads": args.threads,
            "load_ms": {
                "total": round(prepared.report.total_ms(), 2),
                "parse": round(prepared.report.parse_ms, 2),
                "typing": round(prepared.report.typing_ms, 2),
                "optimize": round(prepared.report.optimize_ms, 2),
                "plan": round(prepared.report.plan_ms, 2),
            },
            "kernels": prepared.report.kernels,
            "gpu": prepared.report.gpu,
            "half": args.half,
            "runs": args.runs,
            "warmup": args.warmup,
            "latency_ms": latency,
            "fps": 1e3 / latency.mean,
            "times_ms": times,
            "flops": flops_json,
            "gflops_per_s": achieved,
            "peak": on_cpu.then_some(&peak),
            "peak_gflops": on_cpu.then_some(peak_total),
            "peak_percent": achieved.filter(|_| on_cpu).map(|a| 100.0 * a / peak_total),
            "profile": profile.as_ref().map(|p| p.to_json()),
        });
        println!("{}", serde_json::to_string(&out)?);
    } else {
        print_text(
            &args,
            &prepared,
            &shape,
            &times,
            &latency,
            count.as_ref().ok(),
            &peak,
        );
        if let Err(e) = &count {
            println!("flops      not counted: {e}");
        }
        if let Some(p) = &profile {
            p.print();
        }
    }
    std::io::stdout().flush()?;
    if args.stdin_rounds {
        serve_rounds(prepared.engine.as_mut())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Loads the model through the normal resolve path and fills its input from an image; models
/// the resolver cannot describe (non-RGB inputs) are built from their declared input shape.
fn prepare(args: &BenchArgs) -> anyhow::Result<Prepared> {
    let image = match &args.input {
        Some(p) => Some(load_rgb(p)?),
        None => None,
    };
    let image_name = args
        .input
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "models/samples/person.jpg (bundled)".into());
    let sample = || {
        image::load_from_memory(SAMPLE_JPG)
            .map(|i| i.to_rgb8())
            .context("decoding the bundled sample image")
    };
    match resolve::load_model(
        args.model.as_deref(),
        None,
        &LoadOptions {
            imgsz: args.imgsz,
            kernels: args.kernels,
            engine: args.engine,
            threads: args.threads as usize,
            half: args.half,
            ..LoadOptions::default()
        },
    ) {
        Ok(mut m) => {
            let rgb = match image {
                Some(i) => i,
                None => sample()?,
            };
            let mut pre = Preprocessor::new(&m.card.input);
            pre.run(&rgb, m.engine.input_mut())
                .with_context(|| format!("preprocessing {image_name}"))?;
            Ok(Prepared {
                name: m.source.display_name(),
                input_note: format!(
                    "{image_name}, {:?} to {}x{}",
                    m.card.input.resize, m.card.input.width, m.card.input.height
                ),
                engine: m.engine,
                source: m.source,
                report: m.report,
                engine_why: m.engine_why,
            })
        }
        Err(load_error) => {
            // A bare .onnx with a non-image input (e.g. one grey channel): build it from the
            // declared shape, fill it with a deterministic ramp.
            let Some(spec) = args.model.as_deref().filter(|s| {
                Path::new(s)
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
                    && Path::new(s).is_file()
            }) else {
                return Err(load_error.into());
            };
            if args.engine != EngineKind::Tract {
                return Err(load_error.into());
            }
            let source = ModelSource::File(PathBuf::from(spec));
            let graph = OnnxGraph::open(source.clone())?;
            let dims = graph.input_dims();
            if dims.is_empty() {
                return Err(load_error.into());
            }
            let last = dims.len();
            let shape: Vec<usize> = dims
                .iter()
                .enumerate()
                .map(|(i, d)| match (d, args.imgsz) {
                    (Some(d), _) => *d,
                    (None, Some(s)) if i + 2 >= last && last >= 3 => s as usize,
                    _ => 1,
                })
                .collect();
            let build = BuildOptions {
                kernels: args.kernels,
                half: args.half,
                ..BuildOptions::default()
            };
            let Ok((engine, report)) = TractEngine::build_with(&graph, &shape, &build) else {
                return Err(load_error.into());
            };
            let mut engine: Box<dyn Engine> = Box::new(engine);
            let input = engine.input_mut();
            let n = input.len();
            if image.is_some() {
                eprintln!(
                    "vigia: warning: input {shape:?} is not an RGB image; --input ignored ({load_error})"
                );
            }
            for (i, v) in input.iter_mut().enumerate() {
                *v = i as f32 / n as f32;
            }
            Ok(Prepared {
                name: source.display_name(),
                input_note: format!("ramp i/n (declared input {shape:?} is not an RGB image)"),
                engine,
                source,
                report,
                engine_why: None,
            })
        }
    }
}

fn time_runs(engine: &mut dyn Engine, runs: u32) -> anyhow::Result<Vec<f64>> {
    let mut times = Vec::with_capacity(runs as usize);
    for _ in 0..runs {
        let t = Instant::now();
        engine.run()?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(times)
}

/// Answers each stdin line (a run count) with `{"times_ms":[...]}` until end of input.
fn serve_rounds(engine: &mut dyn Engine) -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let line = line.context("reading stdin")?;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let n: u32 = line
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .with_context(|| format!("stdin: '{line}' is not a positive run count"))?;
        let times = time_runs(engine, n)?;
        writeln!(out, "{}", json!({ "times_ms": times }))?;
        out.flush()?;
    }
    Ok(())
}

fn round(v: f64, places: i32) -> f64 {
    let p = 10f64.powi(places);
    (v * p).round() / p
}

fn write_f32(path: &Path, data: &[f32]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut bytes = Vec::with_capacity(data.len() * 4);
    for v in data {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

fn dump_tensor(path: &Path, data: &[f32], shape: &[usize], name: &str) -> anyhow::Result<()> {
    write_f32(path, data)?;
    let mut meta = path.as_os_str().to_owned();
    meta.push(".json");
    let meta = PathBuf::from(meta);
    std::fs::write(
        &meta,
        json!({"name": name, "dtype": "float32", "byte_order": "little", "shape": shape})
            .to_string(),
    )
    .with_context(|| format!("writing {}", meta.display()))
}

fn dump_outputs(dir: &Path, engine: &dyn Engine) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let outputs = engine.outputs()?;
    let mut list = vec![];
    for (i, (view, name)) in outputs.iter().zip(engine.output_names()).enumerate() {
        let file = format!("output_{i}.f32");
        let data: Vec<f32> = view.iter().copied().collect();
        write_f32(&dir.join(&file), &data)?;
        list.push(json!({"index": i, "name": name, "shape": view.shape(), "dtype": "float32", "file": file}));
    }
    let meta = dir.join("outputs.json");
    std::fs::write(&meta, serde_json::to_string_pretty(&list)?)
        .with_context(|| format!("writing {}", meta.display()))
}

fn print_text(
    args: &BenchArgs,
    p: &Prepared,
    shape: &[usize],
    times: &[f64],
    l: &Latency,
    count: Option<&FlopCount>,
    peak: &CpuPeak,
) {
    let r = &p.report;
    println!(
        "model      {}  input {:?}  {} {}",
        p.name,
        shape,
        p.engine.name(),
        engine::tract_version()
    );
    if let Some(why) = &p.engine_why {
        println!("engine     {why}");
    }
    println!("input      {}", p.input_note);
    println!("threads    {}", args.threads);
    println!(
        "load       {:.0} ms (parse {:.0}, typing {:.0}, optimize {:.0}, plan {:.0})",
        r.total_ms(),
        r.parse_ms,
        r.typing_ms,
        r.optimize_ms,
        r.plan_ms
    );
    match &r.gpu {
        Some(gpu) => {
            println!("gpu        {}", gpu.summary());
            if args.profile {
                println!("profile    per-operator times are measured on the CPU engines only");
            }
        }
        None => println!("kernels    vigia: {}", r.kernels.summary()),
    }
    println!("runs       {} after {} warm-up", times.len(), args.warmup);
    println!(
        "latency    mean {:.2} ms  p50 {:.2}  p90 {:.2}  p99 {:.2}  min {:.2}  max {:.2}  (sd {:.2})",
        l.mean, l.p50, l.p90, l.p99, l.min, l.max, l.stdev
    );
    println!(
        "fps        {:.1} (mean)  {:.1} (best)",
        1e3 / l.mean,
        1e3 / l.min
    );
    if let Some(c) = count {
        let achieved = c.flops() as f64 / (l.mean * 1e-3) / 1e9;
        let total = peak.gflops(args.threads as usize);
        println!(
            "flops      {:.3} GFLOP per inference ({:.3} GMACs in conv/matmul; {:.3} G other ops)",
            c.flops() as f64 / 1e9,
            c.macs as f64 / 1e9,
            c.other_flops as f64 / 1e9
        );
        if r.gpu.is_some() {
            println!("achieved   {achieved:.1} GFLOP/s on the GPU, host to host");
        } else {
            println!(
                "achieved   {:.1} GFLOP/s = {:.1}% of {:.1} GFLOP/s peak ({} thread(s))",
                achieved,
                100.0 * achieved / total,
                total,
                args.threads
            );
        }
        if !c.uncounted_ops.is_empty() {
            println!("uncounted  {}", c.uncounted_ops.join(", "));
        }
    }
    if r.gpu.is_none() {
        println!("peak       {}", peak.describe());
    }
}

/// Time per node of an optimized plan, summed over runs.
struct Profile {
    runs: u32,
    total_ms: f64,
    /// op name -> (ms, node count)
    by_op: Vec<(String, f64, usize)>,
    /// node name, op name, ms, GFLOP/s of that node where tract knows its cost
    by_node: Vec<(String, String, f64, Option<f64>)>,
}

impl Profile {
    fn to_json(&self) -> serde_json::Value {
        json!({
            "runs": self.runs,
            "ms_per_run": self.total_ms / self.runs as f64,
            "by_op": self.by_op.iter().map(|(op, ms, n)| json!({
                "op": op, "ms": ms / self.runs as f64, "nodes": n,
                "percent": 100.0 * ms / self.total_ms,
            })).collect::<Vec<_>>(),
            "top_nodes": self.by_node.iter().take(15).map(|row| self.node_json(row)).collect::<Vec<_>>(),
            "nodes": self.by_node.iter().map(|row| self.node_json(row)).collect::<Vec<_>>(),
        })
    }

    /// One node's row: name, operator, ms per run, share and GFLOP/s.
    fn node_json(
        &self,
        (node, op, ms, g): &(String, String, f64, Option<f64>),
    ) -> serde_json::Value {
        json!({
            "node": node, "op": op, "ms": ms / self.runs as f64,
            "percent": 100.0 * ms / self.total_ms, "gflops_per_s": g,
        })
    }

    fn print(&self) {
        let per = |ms: f64| ms / self.runs as f64;
        println!(
            "\nprofile    {:.2} ms per run summed over nodes ({} runs, one thread timing each node of the plan the engine runs)",
            per(self.total_ms),
            self.runs
        );
        println!("  by operator:");
        for (op, ms, n) in self.by_op.iter().take(12) {
            println!(
                "  {:>6.1}%  {:>9.3} ms  {:>4} nodes  {op}",
                100.0 * ms / self.total_ms,
                per(*ms),
                n
            );
        }
        println!("  costliest nodes:");
        for (node, op, ms, g) in self.by_node.iter().take(12) {
            let g = g.map(|g| format!("{g:7.1} GFLOP/s")).unwrap_or_default();
            println!(
                "  {:>6.1}%  {:>9.3} ms  {g:>15}  {op}  {node}",
                100.0 * ms / self.total_ms,
                per(*ms)
            );
        }
    }
}

/// Builds the engine again (the same graph rewrites and kernels) and times each node of its
/// plan through tract's evaluation hook.
fn profile_nodes(
    source: &ModelSource,
    shape: &[usize],
    input: &[f32],
    warmup: u32,
    runs: u32,
    kernels: Kernels,
) -> anyhow::Result<Profile> {
    use tract_onnx::prelude::*;
    let graph = OnnxGraph::open(source.clone())?;
    let opts = BuildOptions {
        kernels,
        ..BuildOptions::default()
    };
    let (engine, _) = TractEngine::build_with(&graph, shape, &opts)?;
    let plan = engine.plan().clone();
    let mut state = plan.spawn()?;
    let tensor: Tensor =
        tract_onnx::tract_core::ndarray::ArrayD::from_shape_vec(shape, input.to_vec())
            .context("profile input")?
            .into();
    let input = tensor.into_tvalue();
    let mut per_node: HashMap<usize, f64> = HashMap::new();
    for i in 0..warmup + runs {
        let timed = i >= warmup;
        state.run_plan_with_eval(tvec![input.clone()], |ctx, op_state, node, inputs| {
            let t = Instant::now();
            let r = tract_onnx::tract_core::plan::eval(ctx, op_state, node, inputs);
            if timed {
                *per_node.entry(node.id).or_default() += t.elapsed().as_secs_f64() * 1e3;
            }
            r
        })?;
    }
    let model = plan.model();
    let total_ms: f64 = per_node.values().sum();
    let mut by_op: HashMap<String, (f64, usize)> = HashMap::new();
    let mut by_node = vec![];
    for (&id, &ms) in &per_node {
        let node = model.node(id);
        let op = node.op.name().to_string();
        let e = by_op.entry(op.clone()).or_default();
        e.0 += ms;
        e.1 += 1;
        let gflops = model
            .node_input_facts(id)
            .ok()
            .and_then(|f| node.op.cost(&f).ok())
            .map(|costs| {
                costs
                    .iter()
                    .filter(|(c, _)| matches!(c, tract_onnx::tract_core::ops::Cost::FMA(_)))
                    .filter_map(|(_, n)| n.to_i64().ok())
                    .sum::<i64>()
            })
            .filter(|fma| *fma > 0 && ms > 0.0)
            .map(|fma| 2.0 * fma as f64 / (ms / runs as f64 * 1e-3) / 1e9);
        by_node.push((node.name.clone(), op, ms, gflops));
    }
    let mut by_op: Vec<(String, f64, usize)> =
        by_op.into_iter().map(|(k, (ms, n))| (k, ms, n)).collect();
    by_op.sort_by(|a, b| b.1.total_cmp(&a.1));
    by_node.sort_by(|a, b| b.2.total_cmp(&a.2));
    Ok(Profile {
        runs,
        total_ms,
        by_op,
        by_node,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank_and_ordered() {
        let times: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let l = Latency::of(&times);
        assert_eq!(
            (l.min, l.p50, l.p90, l.p99, l.max),
            (1.0, 50.0, 90.0, 99.0, 100.0)
        );
        assert!((l.mean - 50.5).abs() < 1e-9);
        let one = Latency::of(&[3.0]);
        assert_eq!((one.p50, one.p99, one.stdev), (3.0, 3.0, 0.0));
    }
}
