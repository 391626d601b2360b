//! Prints criterion's saved results as Markdown tables in milliseconds and FPS.
//!
//! `cargo run -p vigia-benches --bin bench-report [CRITERION_DIR]` after `cargo bench`; the folder
//! defaults to `$CARGO_TARGET_DIR/criterion` (or `target/criterion`). Model groups
//! (`infer_<model>`, one row per model, a column per thread count) and stage groups
//! (`stages_<model>`, a column per stage) get their own tables; everything else is listed as is.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::Value;

/// One benchmark's result: ids and the median time of one iteration.
struct Result {
    group: String,
    function: String,
    value: Option<String>,
    median_ms: f64,
    /// Elements per iteration when the benchmark declared a throughput (e.g. frames).
    elements: Option<f64>,
}

impl Result {
    /// Milliseconds per element (per frame), or per iteration.
    fn ms(&self) -> f64 {
        self.median_ms / self.elements.unwrap_or(1.0)
    }
}

fn read_json(p: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok()
}

fn collect(dir: &Path, out: &mut Vec<Result>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if !p.is_dir() {
            continue;
        }
        if p.file_name().is_some_and(|n| n == "new") {
            if let (Some(b), Some(est)) = (
                read_json(&p.join("benchmark.json")),
                read_json(&p.join("estimates.json")),
            ) {
                let ns = |k: &str| est[k]["point_estimate"].as_f64().unwrap_or(f64::NAN);
                out.push(Result {
                    group: b["group_id"].as_str().unwrap_or("?").to_string(),
                    function: b["function_id"].as_str().unwrap_or("").to_string(),
                    value: b["value_str"].as_str().map(str::to_string),
                    median_ms: ns("median") / 1e6,
                    elements: b["throughput"]["Elements"].as_f64(),
                });
            }
        } else if p.file_name().is_none_or(|n| n != "report" && n != "base") {
            collect(&p, out);
        }
    }
}

fn fps(ms: f64) -> String {
    if ms > 0.0 {
        format!("{:.1}", 1e3 / ms)
    } else {
        "-".into()
    }
}

fn main() -> ExitCode {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")))
                .join("criterion")
        });
    let mut results = vec![];
    collect(&dir, &mut results);
    if results.is_empty() {
        eprintln!(
            "bench-report: no criterion results under {} (run `cargo bench` first, or pass the folder)",
            dir.display()
        );
        return ExitCode::FAILURE;
    }
    results
        .sort_by(|a, b| (&a.group, &a.function, &a.value).cmp(&(&b.group, &b.function, &b.value)));

    // Models: one row per model, columns per thread count.
    let mut models: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    let mut stages: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    let mut other = vec![];
    for r in &results {
        if let Some(m) = r.group.strip_prefix("infer_") {
            let t = r.value.clone().unwrap_or_else(|| r.function.clone());
            models.entry(m.to_string()).or_default().insert(t, r.ms());
        } else if let Some(m) = r.group.strip_prefix("stages_") {
            stages
                .entry(m.to_string())
                .or_default()
                .insert(r.function.clone(), r.ms());
        } else {
            other.push(r);
        }
    }
    println!(
        "Criterion results from {} (median per iteration)\n",
        dir.display()
    );
    if !models.is_empty() {
        println!("### Inference per model (one reused state)\n");
        println!("| model | 1 thread ms | FPS | 2 threads ms | FPS | speed-up |");
        println!("| --- | ---: | ---: | ---: | ---: | ---: |");
        for (m, t) in &models {
            let one = t.get("1").copied();
            let two = t.get("2").copied();
            let cell = |v: Option<f64>| v.map(|v| format!("{v:.2}")).unwrap_or("-".into());
            let f = |v: Option<f64>| v.map(fps).unwrap_or("-".into());
            let up = match (one, two) {
                (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
                _ => "-".into(),
            };
            println!(
                "| {m} | {} | {} | {} | {} | {up} |",
                cell(one),
                f(one),
                cell(two),
                f(two)
            );
        }
        println!();
    }
    if !stages.is_empty() {
        let cols = ["preprocess", "inference", "decode_nms", "track", "frame"];
        println!("### Per stage on vtest.avi frames, 1 thread (ms per frame)\n");
        println!(
            "| model | preprocess | inference | decode + NMS | track | whole frame | frame FPS | overhead vs inference |"
        );
        println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        for (m, s) in &stages {
            let cells: Vec<String> = cols
                .iter()
                .map(|c| s.get(*c).map(|v| format!("{v:.3}")).unwrap_or("-".into()))
                .collect();
            let overhead = match (s.get("frame"), s.get("inference")) {
                (Some(f), Some(i)) if *i > 0.0 => format!("{:+.1}%", 100.0 * (f / i - 1.0)),
                _ => "-".into(),
            };
            println!(
                "| {m} | {} | {} | {overhead} |",
                cells.join(" | "),
                s.get("frame").map(|v| fps(*v)).unwrap_or("-".into())
            );
        }
        println!();
    }
    if !other.is_empty() {
        println!("### Other benchmarks\n");
        println!("| group | benchmark | ms | per element ms | per second |");
        println!("| --- | --- | ---: | ---: | ---: |");
        for r in other {
            let name = match &r.value {
                Some(v) if !r.function.is_empty() => format!("{}/{v}", r.function),
                Some(v) => v.clone(),
                None => r.function.clone(),
            };
            println!(
                "| {} | {name} | {:.3} | {:.3} | {} |",
                r.group,
                r.median_ms,
                r.ms(),
                fps(r.ms())
            );
        }
    }
    ExitCode::SUCCESS
}
