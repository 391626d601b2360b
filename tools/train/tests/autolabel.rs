//! `vigia-train autolabel` on real frames of vtest.avi with the bundled NanoDet teacher: a YOLO-txt
//! dataset with people on every frame, validation frames from the end, clear errors.

mod common;

use common::vtest;
use std::path::{Path, PathBuf};

use clap::Parser;
use vigia::sink::labels::parse_line;
use vigia_train::autolabel::{autolabel, AutolabelArgs};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vigia-autolabel-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[derive(Parser)]
struct Wrap {
    #[command(flatten)]
    args: AutolabelArgs,
}

/// The bundled NanoDet-m card of this checkout.
fn teacher() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../models/nanodet-m-416.toml")
        .to_string_lossy()
        .into_owned()
}

fn args(list: &[&str]) -> AutolabelArgs {
    let t = teacher();
    let with_teacher = ["t", "--teacher", &t];
    Wrap::parse_from(with_teacher.into_iter().chain(list.iter().copied())).args
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

#[test]
fn vtest_frames_become_a_yolo_dataset_with_people() {
    let Some(video) = vtest() else {
        return;
    };
    let out = tmp("vtest");
    let a = args(&[
        "--source",
        video.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--every",
        "10",
        "--max-frames",
        "50",
        "--quiet",
    ]);
    let s = autolabel(&a).expect("autolabel");
    // Frames 0, 10, 20, 30, 40: the last one (20 % of 5) is held out.
    assert_eq!(s.frames_read, 50);
    assert_eq!((s.train_images, s.val_images), (4, 1));
    assert_eq!(s.names, vec!["person".to_string()]);
    let train = files(&out.join("images/train"), "jpg");
    let names: Vec<String> = train
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "vtest_000000",
            "vtest_000010",
            "vtest_000020",
            "vtest_000030"
        ]
    );
    assert!(out.join("images/val/vtest_000040.jpg").is_file());
    let img = image::open(&train[0]).expect("a readable JPEG");
    assert_eq!((img.width(), img.height()), (768, 576));

    // vtest shows several walking people in every frame: each label file has some, all class 0,
    // normalised, and at a person's proportions (taller than wide).
    let mut boxes = 0;
    for split in ["train", "val"] {
        for f in files(&out.join("labels").join(split), "txt") {
            let text = std::fs::read_to_string(&f).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            assert!(lines.len() >= 2, "{}: {} people", f.display(), lines.len());
            for l in lines {
                let (class, [cx, cy, w, h], conf) = parse_line(l).expect("a YOLO line");
                assert_eq!(class, 0);
                assert!(conf.is_none());
                assert!(
                    (0.0..=1.0).contains(&cx) && (0.0..=1.0).contains(&cy),
                    "{l}"
                );
                assert!(w > 0.0 && h > 0.0 && w <= 1.0 && h <= 1.0, "{l}");
                assert!(h * 576.0 > w * 768.0, "a person is taller than wide: {l}");
                boxes += 1;
            }
        }
    }
    assert_eq!(boxes, s.train_boxes + s.val_boxes);
    let yaml = std::fs::read_to_string(out.join("data.yaml")).unwrap();
    assert!(yaml.contains("nc: 1\nnames: ['person']\n"), "{yaml}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("autolabel.json")).unwrap())
            .unwrap();
    assert_eq!(report["summary"]["train_images"], 4);
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn bad_options_and_sources_are_named() {
    let out = tmp("bad");
    let o = out.to_str().unwrap();
    let e = autolabel(&args(&["--source", "/nonexistent/clip.mp4", "--out", o]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/clip.mp4"), "{e}");
    let e = autolabel(&args(&["--source", "x.mp4", "--out", o, "--every", "0"]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("--every"), "{e}");
    let e = autolabel(&args(&[
        "--source",
        "x.mp4",
        "--out",
        o,
        "--val-fraction",
        "1.5",
    ]))
    .unwrap_err()
    .to_string();
    assert!(e.contains("--val-fraction"), "{e}");
    let e = autolabel(&args(&[
        "--source",
        "x.mp4",
        "--out",
        o,
        "--classes",
        "unicorn",
    ]))
    .unwrap_err()
    .to_string();
    assert!(e.contains("--classes") && e.contains("unicorn"), "{e}");
    let mut a = args(&["--source", "x.mp4", "--out", o]);
    a.teacher = Some("nope.onnx".into());
    let e = autolabel(&a).unwrap_err();
    assert!(format!("{e:#}").contains("nope.onnx"), "{e:#}");
    let _ = std::fs::remove_dir_all(&out);
}
