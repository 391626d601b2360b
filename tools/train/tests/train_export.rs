//! End-to-end: train a few steps on small real datasets, export ONNX, check it in vigia's tract
//! path; bad inputs fail with clear errors.

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Parser;
use vigia_train::classify::data::{ColorMode, Dataset, Format, LoadSpec};
use vigia_train::classify::run::{classify, ClassifyArgs};
use vigia_train::common::parity::PARITY_TOLERANCE;

/// `../shared` relative to the workspace root, when present.
fn shared() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared");
    p.join("data").is_dir().then_some(p)
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vigia-train-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[derive(Parser)]
struct Wrap {
    #[command(flatten)]
    args: ClassifyArgs,
}

fn args(list: &[&str]) -> ClassifyArgs {
    Wrap::parse_from(std::iter::once("t").chain(list.iter().copied())).args
}

/// Three 16x16 grey pattern classes (horizontal bar, vertical bar, diagonal) with a per-image
/// offset and noise, written as PNG class folders, plus one file that is not an image.
fn pattern_folder(dir: &Path, per_class: usize) {
    let mut state = 12345u64;
    let mut rnd = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as u32
    };
    for (c, name) in ["horizontal", "vertical", "diagonal"].iter().enumerate() {
        let sub = dir.join(name);
        std::fs::create_dir_all(&sub).unwrap();
        for i in 0..per_class {
            let off = 3 + (rnd() % 10) as i32;
            let img = image::GrayImage::from_fn(16, 16, |x, y| {
                let (x, y) = (x as i32, y as i32);
                let on = match c {
                    0 => (y - off).abs() <= 1,
                    1 => (x - off).abs() <= 1,
                    _ => (x - y + off - 8).abs() <= 1,
                };
                let noise = (rnd() % 60) as u8;
                image::Luma([if on { 195 + noise } else { noise }])
            });
            img.save(sub.join(format!("{i:03}.png"))).unwrap();
        }
    }
    std::fs::write(dir.join("vertical").join("broken.png"), b"not a png at all").unwrap();
}

#[test]
fn cnn_trains_exports_and_matches_tract_and_vigia_on_image_folders() {
    let dir = tmp("folder");
    let data = dir.join("data");
    pattern_folder(&data, 24);
    let ds = Dataset::load(&LoadSpec {
        path: data.clone(),
        format: Format::Auto,
        classes: 10,
        size: (16, 16),
        color: ColorMode::Gray,
    })
    .unwrap();
    assert_eq!(ds.skipped, 1, "the undecodable file is skipped and counted");
    assert_eq!(ds.len(), 72);
    assert_eq!(ds.classes, ["diagonal", "horizontal", "vertical"]);

    let out = dir.join("run");
    let a = args(&[
        "--data",
        data.to_str().unwrap(),
        "--image-size",
        "16x16",
        "--conv-channels",
        "4,8",
        "--hidden",
        "16",
        "--epochs",
        "4",
        "--batch-size",
        "8",
        "--lr",
        "0.01",
        "--val-split",
        "0.25",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    let r = classify(&a, "test").unwrap();
    let (first, last) = r.first_last_loss;
    assert!(last < first, "training loss must fall: {first} -> {last}");
    assert!(r.parity.max_abs_err < PARITY_TOLERANCE, "{:?}", r.parity);
    let ag = r.agreement.unwrap();
    assert_eq!(ag.images, 18);
    assert_eq!(ag.agree, ag.images, "vigia and burn disagree: {ag:?}");
    for f in [
        "model.onnx",
        "model.toml",
        "model.labels.txt",
        "curves.png",
        "confusion.png",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    for f in ["model.bpk", "optim.bpk", "state.toml", "best.bpk"] {
        assert!(
            out.join("checkpoint").join(f).is_file(),
            "checkpoint {f} missing"
        );
    }
    let card = std::fs::read_to_string(out.join("model.toml")).unwrap();
    assert!(
        card.contains("color = \"gray\"") && card.contains("softmax = true"),
        "{card}"
    );
    let labels = std::fs::read_to_string(out.join("model.labels.txt")).unwrap();
    assert_eq!(labels, "diagonal\nhorizontal\nvertical\n");

    // Resume continues from the checkpoint; a checkpoint of another network is refused.
    let mut more = a.clone();
    more.epochs = 5;
    more.run.resume = Some(out.join("checkpoint"));
    more.run.out = dir.join("run2");
    more.no_agreement = true;
    let r2 = classify(&more, "test").unwrap();
    assert!(r2.parity.max_abs_err < PARITY_TOLERANCE);
    let mut other = more.clone();
    other.arch = vigia_train::classify::model::Arch::Mlp;
    let e = format!("{:#}", classify(&other, "test").unwrap_err());
    assert!(e.contains("another network"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn mlp_and_cnn_learn_mnist_subset() {
    let Some(shared) = shared() else {
        eprintln!("skipping: ../shared is absent (mnist_5k.csv.gz)");
        return;
    };
    let csv = shared.join("data/mnist/mnist_5k.csv.gz");
    let dir = tmp("mnist");
    for (arch, opt) in [("mlp", "sgd"), ("cnn", "rmsprop")] {
        let out = dir.join(arch);
        let a = args(&[
            "--data",
            csv.to_str().unwrap(),
            "--arch",
            arch,
            "--optimizer",
            opt,
            "--lr",
            if opt == "sgd" { "0.05" } else { "0.001" },
            "--conv-channels",
            "6,12",
            "--hidden",
            "32",
            "--epochs",
            "2",
            "--weight-decay",
            "0.0001",
            "--schedule",
            "step",
            "--lr-step",
            "1",
            "--val-split",
            "0.9",
            "--quiet",
            "--no-agreement",
            "--out",
            out.to_str().unwrap(),
        ]);
        let r = classify(&a, "test").unwrap();
        let (first, last) = r.first_last_loss;
        assert!(last < first, "{arch}: loss must fall: {first} -> {last}");
        // Two short epochs on 500 digits: far above chance (0.1); measured 0.56 (MLP), 0.51 (CNN).
        assert!(
            r.eval.accuracy > 0.4,
            "{arch}: held-out accuracy {}",
            r.eval.accuracy
        );
        assert!(
            r.parity.max_abs_err < PARITY_TOLERANCE,
            "{arch}: {:?}",
            r.parity
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn committed_mnist_model_classifies_held_out_digits_in_vigia() {
    let Some(shared) = shared() else {
        eprintln!("skipping: ../shared is absent (mnist_5k.csv.gz)");
        return;
    };
    let onnx = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/mnist-cnn.onnx");
    let ds = Dataset::load(&LoadSpec {
        path: shared.join("data/mnist/mnist_5k.csv.gz"),
        format: Format::Csv,
        classes: 10,
        size: (28, 28),
        color: ColorMode::Gray,
    })
    .unwrap();
    // The split of the documented training command (seed 42, 20 % held out).
    let (_, held) = ds.split(0.2, 42).unwrap();
    assert_eq!(held.len(), 1000);
    let dir = tmp("committed");
    // Compare against the labels: vigia's accuracy on digits the model never saw.
    let preds: Vec<usize> = held.labels.iter().map(|l| *l as usize).collect();
    let a = vigia_train::classify::export::vigia_agreement(&onnx, &held, &preds, &dir).unwrap();
    assert!(
        a.vigia_accuracy >= 0.975,
        "held-out accuracy {}",
        a.vigia_accuracy
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_inputs_fail_with_clear_errors() {
    let exe = env!("CARGO_BIN_EXE_vigia-train");
    let dir = tmp("bad");
    let run = |extra: &[&str]| {
        let o = Command::new(exe)
            .args([
                "classify",
                "--quiet",
                "--out",
                dir.join("run").to_str().unwrap(),
            ])
            .args(extra)
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };
    let missing = dir.join("nope.csv");
    let (code, err) = run(&["--data", missing.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("nope.csv") && err.contains("does not exist"),
        "{err}"
    );

    let bad = dir.join("bad.csv");
    let row = |label: &str| format!("{}{label}\n", "0,".repeat(784));
    std::fs::write(&bad, row("1") + &row("3") + "1,2,3\n").unwrap();
    let (code, err) = run(&["--data", bad.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("bad.csv: line 3"), "{err}");

    std::fs::write(&bad, row("1") + &row("10")).unwrap();
    let (code, err) = run(&["--data", bad.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("line 2") && err.contains("out of range"),
        "{err}"
    );

    std::fs::write(&bad, row("1") + &row("2")).unwrap();
    let (code, err) = run(&["--data", bad.to_str().unwrap(), "--dropout", "1.5"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("--dropout"), "{err}");
    let (code, err) = run(&["--data", bad.to_str().unwrap(), "--image-size", "28"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("WxH"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
