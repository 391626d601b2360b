//! `vigia-train reid` on vtest.avi with the tracks `vigia track --reid off` made of it
//! (`tests/data/vtest.tracks.txt`): an embedding model that loads in vigia, agrees with burn,
//! separates people it never saw, and clear errors for bad options.

mod common;

use common::vtest;
use std::path::{Path, PathBuf};

use clap::Parser;
use vigia::reid::{Embedder, ModelEmbedder};
use vigia::resolve::LoadOptions;
use vigia::BBox;
use vigia_train::reid::run::{reid, ReidArgs};

fn tracks() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/vtest.tracks.txt")
        .to_string_lossy()
        .into_owned()
}

fn backbone() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../models/efficientnet-lite0-224.toml")
        .to_string_lossy()
        .into_owned()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vigia-train-reid-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[derive(Parser)]
struct Wrap {
    #[command(flatten)]
    args: ReidArgs,
}

fn args(video: &str, out: &Path, extra: &[&str]) -> ReidArgs {
    let (t, b, o) = (tracks(), backbone(), out.to_string_lossy().into_owned());
    let base = ["t", video, "--tracks", &t, "--backbone", &b, "--out", &o];
    Wrap::parse_from(base.into_iter().chain(extra.iter().copied())).args
}

#[test]
fn a_head_trained_on_early_frames_separates_people_of_later_frames() {
    let Some(video) = vtest() else { return };
    let out = tmp("train");
    let a = args(
        video.to_str().unwrap(),
        &out,
        &[
            "--train-to",
            "200",
            "--eval-to",
            "400",
            "--every",
            "3",
            "--eval-every",
            "4",
            "--steps",
            "400",
        ],
    );
    let r = reid(&a, "vigia-train reid (test)").unwrap();
    assert!(out.join("reid.onnx").is_file() && out.join("reid.toml").is_file());
    assert!(out.join("backbone.onnx").is_file() && out.join("report.json").is_file());
    assert!(r.train_crops > 200 && r.train_tracks >= 8, "{r:?}");
    assert!(r.loss_last < r.loss_first, "{r:?}");
    assert!(r.parity_rel_err < 1e-3, "{r:?}");
    let names: Vec<&str> = r.held_out.iter().map(|s| s.embedding.as_str()).collect();
    assert_eq!(
        names,
        ["histogram", "frozen backbone", "backbone + trained head"]
    );
    // Frames 201-400 were never trained on; with 10+ people, chance is below 0.1.
    let trained = &r.held_out[2].scores;
    assert!(trained.people >= 8, "{r:?}");
    assert!(trained.map > 0.3 && trained.rank1 > 0.3, "{r:?}");
    // The head spreads people apart: a wider same/other gap than the frozen features.
    let gap = |k: usize| r.held_out[k].scores.mean_same - r.held_out[k].scores.mean_other;
    assert!(gap(2) > gap(1) + 0.1, "{r:?}");

    // The exported model runs in vigia: unit vectors of the card's length, similar for one
    // person in two nearby frames of the same walk.
    let spec = out.join("reid.onnx");
    let mut e = ModelEmbedder::load(spec.to_str().unwrap(), &LoadOptions::default()).unwrap();
    assert_eq!(e.dim(), 128);
    assert!((e.match_threshold() - r.match_threshold).abs() < 1e-6);
    let frame = image::RgbImage::from_fn(320, 240, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
    });
    let mut v = vec![];
    let boxes = [
        BBox::new(10.0, 10.0, 60.0, 130.0),
        BBox::new(300.0, 230.0, 330.0, 300.0),
        BBox::new(-20.0, 100.0, 40.0, 239.0),
    ];
    e.embed(&frame, &boxes, &mut v).unwrap();
    assert_eq!(v.len(), 3);
    let first = v[0].as_ref().expect("a full crop gets a vector");
    let norm: f32 = first.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "{norm}");
    assert!(v[1].is_none(), "a box outside the frame gets no vector");
    assert!(v[2].is_some(), "a box cut by the border is clipped");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn bad_options_name_what_to_fix() {
    let out = tmp("errors");
    let video = vtest()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| "vtest.avi".into());
    let err = |extra: &[&str]| {
        let e = reid(&args(&video, &out, extra), "t").unwrap_err();
        format!("{e:#}")
    };
    let e = err(&["--crop", "64"]);
    assert!(e.contains("--crop 64"), "{e}");
    let e = err(&["--name", "../x"]);
    assert!(e.contains("--name"), "{e}");
    let e = err(&["--features", "input,/no/such/tensor"]);
    assert!(e.contains("/no/such/tensor"), "{e}");
    let e = err(&["--crop", "64x120", "--stripes", "7"]);
    assert!(e.contains("stripes"), "{e}");
    let e = err(&["--train-to", "900"]);
    assert!(e.contains("--train-to 900"), "{e}");
    let e = {
        let mut a = args(&video, &out, &[]);
        a.tracks = out.join("missing.txt");
        format!("{:#}", reid(&a, "t").unwrap_err())
    };
    assert!(e.contains("missing.txt"), "{e}");
    let _ = std::fs::remove_dir_all(&out);
}
