//! Transfer learning: `--init` from an exported ONNX or a checkpoint, `--freeze`, class selection;
//! frozen layers stay bit-identical, the head is replaced, and export parity still holds.

use std::path::{Path, PathBuf};

use clap::Parser;
use vigia_train::classify::run::{classify, ClassifyArgs};
use vigia_train::classify::transfer::Pretrained;
use vigia_train::common::parity::PARITY_TOLERANCE;

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

/// Four 16x16 grey pattern classes (horizontal bar, vertical bar, two diagonals) as PNG folders.
fn pattern_folder(dir: &Path, per_class: usize) {
    let mut state = 777u64;
    let mut rnd = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as u32
    };
    for (c, name) in ["a_horizontal", "b_vertical", "c_diagonal", "d_antidiagonal"]
        .iter()
        .enumerate()
    {
        let sub = dir.join(name);
        std::fs::create_dir_all(&sub).unwrap();
        for i in 0..per_class {
            let off = 3 + (rnd() % 10) as i32;
            let img = image::GrayImage::from_fn(16, 16, |x, y| {
                let (x, y) = (x as i32, y as i32);
                let on = match c {
                    0 => (y - off).abs() <= 1,
                    1 => (x - off).abs() <= 1,
                    2 => (x - y + off - 8).abs() <= 1,
                    _ => (x + y - off - 10).abs() <= 1,
                };
                let noise = (rnd() % 60) as u8;
                image::Luma([if on { 195 + noise } else { noise }])
            });
            img.save(sub.join(format!("{i:03}.png"))).unwrap();
        }
    }
}

fn tensor<'a>(p: &'a Pretrained, name: &str) -> &'a [f32] {
    &p.tensors
        .iter()
        .find(|(n, _, _)| n == name)
        .unwrap_or_else(|| panic!("{name} missing in {}", p.source.display()))
        .2
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn common<'a>(data: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "--data",
        data,
        "--image-size",
        "16x16",
        "--conv-channels",
        "4,8",
        "--hidden",
        "16",
        "--batch-size",
        "8",
        "--lr",
        "0.01",
        "--val-split",
        "0.25",
        "--no-agreement",
        "--quiet",
        "--out",
        out,
    ]
}

#[test]
fn init_freeze_keeps_frozen_layers_replaces_head_and_exports() {
    let dir = tmp("transfer");
    let data = dir.join("data");
    pattern_folder(&data, 16);
    let data_s = data.to_str().unwrap();

    // Pretrain on the first two classes.
    let pre_out = dir.join("pre");
    let mut a = common(data_s, pre_out.to_str().unwrap());
    a.extend(["--only-classes", "0,1", "--epochs", "2"]);
    let pre = classify(&args(&a), "test").unwrap();
    assert!(pre.parity.max_abs_err < PARITY_TOLERANCE);
    let labels = std::fs::read_to_string(pre_out.join("model.labels.txt")).unwrap();
    assert_eq!(labels, "a_horizontal\nb_vertical\n");

    // The ONNX initializers are the checkpoint's weights.
    let from_onnx = Pretrained::load(&pre.onnx).unwrap();
    let from_ckpt = Pretrained::load(&pre_out.join("checkpoint")).unwrap();
    let from_bpk = Pretrained::load(&pre_out.join("final.bpk")).unwrap();
    assert_eq!(from_onnx.tensors.len(), 6);
    for (name, shape, v) in &from_onnx.tensors {
        let (_, s2, v2) = from_ckpt
            .tensors
            .iter()
            .find(|(n, _, _)| n == name)
            .unwrap();
        assert_eq!(shape, s2, "{name}");
        assert_eq!(
            bits(v),
            bits(v2),
            "{name} differs between ONNX and checkpoint"
        );
        assert_eq!(bits(v), bits(tensor(&from_bpk, name)), "{name} (final.bpk)");
    }

    // Fine-tune on the other two classes, three samples each, conv1 + conv2 frozen.
    let run = |freeze: &str, name: &str| {
        let out = dir.join(name);
        let mut a = common(data_s, out.to_str().unwrap());
        a.extend([
            "--only-classes",
            "2,3",
            "--per-class-limit",
            "3",
            "--epochs",
            "2",
            "--init",
            pre.onnx.to_str().unwrap(),
            "--freeze",
            freeze,
        ]);
        let r = classify(&args(&a), "test").unwrap();
        assert!(r.parity.max_abs_err < PARITY_TOLERANCE, "{:?}", r.parity);
        (r, out)
    };
    let (frozen, frozen_out) = run("2", "frozen");
    assert_eq!(
        frozen.eval.confusion.len(),
        2,
        "the head has the new class count"
    );
    let labels = std::fs::read_to_string(frozen_out.join("model.labels.txt")).unwrap();
    assert_eq!(labels, "c_diagonal\nd_antidiagonal\n");
    let after = Pretrained::load(&frozen.onnx).unwrap();
    for name in ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias"] {
        assert_eq!(
            bits(tensor(&after, name)),
            bits(tensor(&from_onnx, name)),
            "frozen {name} changed"
        );
    }
    for name in ["fc1.weight", "fc1.bias"] {
        assert_ne!(
            bits(tensor(&after, name)),
            bits(tensor(&from_onnx, name)),
            "trainable {name} did not change"
        );
    }
    // Six training samples (3 per class) at batch 8: one step per epoch.
    let hist = std::fs::read_to_string(frozen_out.join("history.csv")).unwrap();
    assert_eq!(hist.lines().count(), 3, "{hist}");
    // The exported head is sized for two classes.
    let onnx = vigia_train::common::parity::engine_outputs(
        &frozen.onnx,
        vigia::model::Task::Classify,
        &[vec![0.5; 256]],
    )
    .unwrap();
    assert_eq!(onnx[0].len(), 2);

    // Without freezing, the convolutions move too.
    let (free, _) = run("0", "free");
    let after = Pretrained::load(&free.onnx).unwrap();
    assert_ne!(
        bits(tensor(&after, "conv1.weight")),
        bits(tensor(&from_onnx, "conv1.weight"))
    );

    // Bad inputs name the file or option.
    let bad = |extra: &[&str], wider: bool| {
        let out = dir.join("bad");
        let mut a = common(data_s, out.to_str().unwrap());
        a.extend(["--epochs", "1"]);
        a.extend(extra);
        let mut a = args(&a);
        if wider {
            a.conv_channels = [6, 8];
        }
        format!("{:#}", classify(&a, "test").unwrap_err())
    };
    let onnx_s = pre.onnx.to_str().unwrap();
    let e = bad(&["--init", onnx_s], true);
    assert!(
        e.contains(onnx_s) && e.contains("conv1.weight") && e.contains("does not match"),
        "{e}"
    );
    let e = bad(&["--init", "/nonexistent/model.onnx"], false);
    assert!(e.contains("/nonexistent/model.onnx"), "{e}");
    let e = bad(&["--freeze", "4"], false);
    assert!(e.contains("--freeze"), "{e}");
    let e = bad(&["--arch", "mlp", "--init", onnx_s], false);
    assert!(e.contains(onnx_s) && e.contains("CNN"), "{e}");
    let e = bad(&["--only-classes", "1,9"], false);
    assert!(e.contains("--only-classes") && e.contains('9'), "{e}");
    let e = bad(&["--init", data_s], false);
    assert!(e.contains(data_s) && e.contains("state.toml"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
