//! `vigia bench` on the bundled models: sane JSON, FLOP counts in the known ranges, tensor dumps
//! another runtime can read, interleaving over stdin, and clear errors for bad options.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use vigia::engine::ModelSource;

fn bench(args: &[&str]) -> Output {
    Command::new(common::vigia_bin())
        .arg("bench")
        .args(args)
        .current_dir(common::repo_root())
        .output()
        .expect("run vigia")
}

fn bench_json(args: &[&str]) -> Value {
    let mut all = vec!["--runs", "2", "--warmup", "1", "--json"];
    all.extend_from_slice(args);
    let out = bench(&all);
    assert!(
        out.status.success(),
        "vigia bench {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// Checks the fields every report has and returns the FLOP count.
fn check_report(v: &Value, shape: &[u64]) -> f64 {
    let shape_got: Vec<u64> = v["input_shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap())
        .collect();
    assert_eq!(shape_got, shape, "{v}");
    let l = &v["latency_ms"];
    let get = |k: &str| {
        l[k].as_f64()
            .unwrap_or_else(|| panic!("latency_ms.{k} in {v}"))
    };
    assert!(get("min") > 0.0, "{v}");
    assert!(
        get("min") <= get("p50")
            && get("p50") <= get("p90")
            && get("p90") <= get("p99")
            && get("p99") <= get("max"),
        "percentiles out of order: {l}"
    );
    assert!(
        get("min") <= get("mean") && get("mean") <= get("max"),
        "{l}"
    );
    assert_eq!(v["times_ms"].as_array().unwrap().len(), 2);
    let fps = v["fps"].as_f64().unwrap();
    assert!((fps - 1e3 / get("mean")).abs() < 1e-6 * fps, "{v}");
    assert!(v["load_ms"]["total"].as_f64().unwrap() > 0.0);
    let peak = v["peak_gflops"].as_f64().unwrap();
    assert!(peak > 0.1, "{v}");
    let pct = v["peak_percent"].as_f64().unwrap();
    assert!(
        pct > 0.0 && pct < 100.0,
        "share of peak {pct}% is not plausible: {v}"
    );
    v["flops"]["flops"].as_f64().expect("flops counted")
}

#[test]
fn bench_runs_the_embedded_detector_and_counts_its_flops() {
    let v = bench_json(&[]);
    assert_eq!(v["threads"], 1);
    assert!(v["input"].as_str().unwrap().contains("person.jpg"), "{v}");
    let flops = check_report(&v, &[1, 3, 416, 416]);
    // NanoDet-m at 416: 4.18 GFLOP (2 x MACs of its convolutions).
    assert!(
        (3.9e9..4.5e9).contains(&flops),
        "NanoDet-m-416 flops {flops}"
    );
}

#[test]
fn bench_runs_the_bundled_classifier_with_two_threads() {
    let v = bench_json(&["--model", "efficientnet-lite0-224", "--threads", "2"]);
    assert_eq!(v["threads"], 2);
    let flops = check_report(&v, &[1, 3, 224, 224]);
    // EfficientNet-Lite0: about 0.39 GMACs.
    assert!(
        (0.7e9..0.85e9).contains(&flops),
        "EfficientNet-Lite0 flops {flops}"
    );
}

#[test]
fn bench_runs_every_bundled_onnx_model() {
    let dir = common::models_dir();
    let mut models: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
        .collect();
    models.sort();
    assert!(models.len() >= 2, "bundled models: {models:?}");
    for m in models {
        let v = bench_json(&["--model", m.to_str().unwrap()]);
        let flops = v["flops"]["flops"].as_f64().unwrap_or(0.0);
        assert!(flops > 1e5, "{}: flops {flops}", m.display());
        assert!(v["latency_ms"]["mean"].as_f64().unwrap() > 0.0);
    }
}

#[test]
fn imgsz_changes_the_input_and_the_flops() {
    let v = bench_json(&["--imgsz", "320"]);
    let flops = check_report(&v, &[1, 3, 320, 320]);
    // Convolution cost scales with the pixel count: 4.18 G x (320/416)^2 = 2.47 G.
    assert!(
        (2.3e9..2.7e9).contains(&flops),
        "NanoDet-m at 320 flops {flops}"
    );
}

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[test]
fn dumps_are_raw_f32_with_their_shapes() {
    let dir = common::temp_dir("bench-dump");
    let input = dir.join("input.f32");
    let outputs = dir.join("out");
    bench_json(&[
        "--model",
        "efficientnet-lite0-224",
        "--dump-input",
        input.to_str().unwrap(),
        "--dump-output",
        outputs.to_str().unwrap(),
    ]);
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("input.f32.json")).unwrap())
            .unwrap();
    assert_eq!(meta["shape"], serde_json::json!([1, 3, 224, 224]));
    let x = read_f32(&input);
    assert_eq!(x.len(), 3 * 224 * 224);
    // (pixel - 127) / 128: a real photo spans most of -1..1 and is not constant.
    let (lo, hi) = x
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), v| (a.min(*v), b.max(*v)));
    assert!(
        lo >= -1.0 && hi <= 1.0 && hi - lo > 1.0,
        "input range {lo}..{hi}"
    );
    let list: Value =
        serde_json::from_str(&std::fs::read_to_string(outputs.join("outputs.json")).unwrap())
            .unwrap();
    let first = &list[0];
    assert_eq!(first["shape"], serde_json::json!([1, 1000]));
    let logits = read_f32(&outputs.join(first["file"].as_str().unwrap()));
    assert_eq!(logits.len(), 1000);
    assert!(logits.iter().all(|v| v.is_finite()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn stdin_rounds_keep_the_model_loaded() {
    let mut child = Command::new(common::vigia_bin())
        .args([
            "bench",
            "--model",
            "efficientnet-lite0-224",
            "--runs",
            "1",
            "--warmup",
            "0",
            "--stdin-rounds",
        ])
        .current_dir(common::repo_root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let report: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert!(report["flops"]["flops"].as_f64().unwrap() > 0.0);
    for n in [2, 1] {
        writeln!(stdin, "{n}").unwrap();
        let round: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        let times = round["times_ms"].as_array().unwrap();
        assert_eq!(times.len(), n);
        assert!(times.iter().all(|t| t.as_f64().unwrap() > 0.0));
    }
    writeln!(stdin, "zero").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a positive run count"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn profile_lists_the_costliest_operators() {
    let v = bench_json(&["--model", "efficientnet-lite0-224", "--profile"]);
    let by_op = v["profile"]["by_op"].as_array().expect("profile.by_op");
    assert!(!by_op.is_empty());
    let total: f64 = by_op.iter().map(|o| o["percent"].as_f64().unwrap()).sum();
    assert!((total - 100.0).abs() < 0.5, "percentages sum to {total}");
    // Sorted by time, and the depthwise/pointwise convolutions dominate a classifier.
    let ms: Vec<f64> = by_op.iter().map(|o| o["ms"].as_f64().unwrap()).collect();
    assert!(ms.windows(2).all(|w| w[0] >= w[1]), "{ms:?}");
    assert!(!v["profile"]["top_nodes"].as_array().unwrap().is_empty());
}

#[test]
fn the_text_report_names_latency_fps_and_peak() {
    let out = bench(&["--runs", "2", "--warmup", "0", "--peak-gflops", "50"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for key in [
        "latency",
        "p50",
        "p99",
        "fps",
        "GFLOP",
        "% of 50.0 GFLOP/s peak",
    ] {
        assert!(text.contains(key), "missing {key:?} in:\n{text}");
    }
}

fn assert_clear_error(args: &[&str], needle: &str) {
    let out = bench(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(
        err.contains(needle),
        "{args:?}: expected {needle:?} in: {err}"
    );
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
}

#[test]
fn bad_options_give_clear_errors() {
    assert_clear_error(&["--model", "no/such/model.onnx"], "no/such/model.onnx");
    assert_clear_error(&["--runs", "0"], "--runs");
    assert_clear_error(&["--threads", "0"], "--threads");
    assert_clear_error(&["--threads", "many"], "--threads");
    assert_clear_error(&["--imgsz", "0"], "--imgsz");
    assert_clear_error(&["--peak-gflops=-3"], "--peak-gflops");
    assert_clear_error(
        &["--input", "no/such/photo.jpg", "--runs", "1"],
        "no/such/photo.jpg",
    );
}

#[test]
fn flop_counts_match_published_numbers() {
    let Some(shared) = common::shared() else {
        return;
    };
    let count = |rel: &str, shape: &[usize]| {
        vigia::engine::flops::count(&ModelSource::File(shared.join(rel)), shape)
            .unwrap_or_else(|e| panic!("{rel}: {e}"))
    };
    // ResNet-50 at 224: 4.1 GMACs (torchvision/ptflops), most of it in convolutions.
    let r = count("models/onnx-light/light_resnet50.onnx", &[1, 3, 224, 224]);
    assert!((3.9e9..4.2e9).contains(&(r.macs as f64)), "ResNet50 {r:?}");
    assert!(r.macs_by_op.contains_key("Conv"), "{r:?}");
    // EfficientNet-Lite0: 0.39 GMACs (TF model zoo: 407 M).
    let e = count("models/efficientnet-lite0-224.onnx", &[1, 3, 224, 224]);
    assert!(
        (0.37e9..0.42e9).contains(&(e.macs as f64)),
        "EfficientNet-Lite0 {e:?}"
    );
    // The MNIST reference CNN: two small convolutions and a linear layer, about 0.5 M MACs.
    let m = count("models/mnist-cnn-reference.onnx", &[1, 1, 28, 28]);
    assert!((0.2e6..2.0e6).contains(&(m.macs as f64)), "MNIST {m:?}");
}
