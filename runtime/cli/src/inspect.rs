//! `vigia inspect`: graph facts and the model card vigia would use.

use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use vigia::engine::{self, OnnxGraph};
use vigia::model::Task;
use vigia::resolve::{self, LoadOptions};

/// Arguments of `vigia inspect`.
#[derive(Args)]
pub struct InspectArgs {
    /// Model: an .onnx file, a model card (.toml) or a bundled name
    model: String,
    /// Input size to try when the graph's is dynamic
    #[arg(long)]
    imgsz: Option<u32>,
    /// Print JSON instead of text
    #[arg(long)]
    json: bool,
}

pub fn inspect(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let (_, _, source) = resolve::locate(Some(&args.model), Task::Detect)?;
    let graph = OnnxGraph::open(source)?;
    let summary = graph.summary();
    let loaded = resolve::load_model(
        Some(&args.model),
        None,
        &LoadOptions {
            imgsz: args.imgsz,
            ..LoadOptions::default()
        },
    );
    if args.json {
        let card = loaded
            .as_ref()
            .ok()
            .map(|m| json!({"card": m.card, "assumptions": m.assumptions, "load_ms": m.report}));
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
        println!(
            "params    {} ({:.2} M)",
            summary.parameters,
            summary.parameters as f64 / 1e6
        );
        let ops: Vec<String> = {
            let mut v: Vec<_> = summary.op_histogram.iter().collect();
            v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            v.iter().map(|(k, n)| format!("{k} {n}")).collect()
        };
        println!("ops       {}", ops.join(", "));
        if !summary.unsupported_ops.is_empty() {
            println!(
                "missing   {} (not in tract {})",
                summary.unsupported_ops.join(", "),
                engine::tract_version()
            );
        }
        match &loaded {
            Ok(m) => {
                println!(
                    "loaded    in {:.0} ms (optimize {:.0} ms)",
                    m.report.total_ms(),
                    m.report.optimize_ms
                );
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
