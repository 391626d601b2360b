//! The `vigia` binary end to end: results on stdout, annotated images, and clear errors.

mod common;

use common::vigia;

use std::path::Path;
use std::process::{Command, Output};

use prost::Message;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json_lines(o: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l}: {e}")))
        .collect()
}

#[test]
fn detect_with_no_model_uses_the_embedded_detector_and_saves_annotations() {
    let Some(shared) = common::shared() else {
        return;
    };
    let out = common::temp_dir("cli-detect");
    let image = shared.join("data/images/person.jpg");
    // Run from a folder with no models/ so only the embedded model can serve.
    let o = Command::new(common::vigia_bin())
        .current_dir(&out)
        .args([
            "detect",
            image.to_str().unwrap(),
            "--save",
            "annotated",
            "--conf",
            "0.35",
        ])
        .env_remove("VIGIA_MODELS")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let lines = json_lines(&o);
    assert_eq!(lines.len(), 1);
    let dets = lines[0]["detections"].as_array().unwrap();
    let person = dets
        .iter()
        .find(|d| d["label"] == "person")
        .expect("a person");
    assert!(person["score"].as_f64().unwrap() > 0.6);
    assert_eq!(lines[0]["width"], 640);
    // The annotated copy exists, has the same size, and differs from the original.
    let saved = image::open(out.join("annotated/person.jpg"))
        .unwrap()
        .into_rgb8();
    let original = image::open(&image).unwrap().into_rgb8();
    assert_eq!(saved.dimensions(), original.dimensions());
    let changed = saved
        .pixels()
        .zip(original.pixels())
        .filter(|(a, b)| a.0.iter().zip(b.0.iter()).any(|(x, y)| x.abs_diff(*y) > 60))
        .count();
    assert!(
        changed > 500,
        "only {changed} pixels changed by the annotation"
    );
}

#[test]
fn folder_run_skips_a_corrupt_image_and_processes_the_rest() {
    let Some(shared) = common::shared() else {
        return;
    };
    let dir = common::temp_dir("cli-folder");
    std::fs::copy(shared.join("data/images/person.jpg"), dir.join("a.jpg")).unwrap();
    std::fs::copy(shared.join("data/images/dog.jpg"), dir.join("c.jpg")).unwrap();
    let jpeg = std::fs::read(shared.join("data/images/dog.jpg")).unwrap();
    std::fs::write(dir.join("b.jpg"), &jpeg[..200]).unwrap();
    let o = vigia(&[
        "detect",
        "--source",
        dir.to_str().unwrap(),
        "--classes",
        "person",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines = json_lines(&o);
    assert_eq!(lines.len(), 2, "the corrupt image yields no line");
    assert!(lines[0]["source"].as_str().unwrap().ends_with("a.jpg"));
    assert!(lines[1]["source"].as_str().unwrap().ends_with("c.jpg"));
    let err = stderr(&o);
    assert!(err.contains("skipping") && err.contains("b.jpg"), "{err}");
    assert!(
        err.contains("2 frame(s)") && err.contains("1 corrupt frame(s)"),
        "{err}"
    );
    // --classes person: only people, and none in dog.jpg.
    let people = lines[0]["detections"].as_array().unwrap();
    assert!(!people.is_empty() && people.iter().all(|d| d["class_id"] == 0));
    assert_eq!(lines[1]["detections"].as_array().unwrap().len(), 0);
    // A glob picks the same files.
    let pattern = format!("{}/*.jpg", dir.display());
    let o = vigia(&["detect", &pattern, "-q"]);
    assert_eq!(json_lines(&o).len(), 2);
}

#[test]
fn classify_prints_top_k_with_labels() {
    let Some(shared) = common::shared() else {
        return;
    };
    let card = common::models_dir().join("efficientnet-lite0-224.toml");
    let img = shared.join("data/images/orange.jpg");
    let o = vigia(&[
        "classify",
        "--model",
        card.to_str().unwrap(),
        img.to_str().unwrap(),
        "--top-k",
        "3",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines = json_lines(&o);
    let top = lines[0]["top"].as_array().unwrap();
    assert_eq!(top.len(), 3);
    assert_eq!(top[0]["label"], "orange");
}

#[test]
fn inspect_reports_graph_facts_and_the_card() {
    let nanodet = common::models_dir().join("nanodet-m-416.onnx");
    let o = vigia(&["inspect", nanodet.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("input     input_1:0 [1,3,416,416]"), "{text}");
    assert!(text.contains("Conv 34"), "{text}");
    assert!(text.contains("params    37"), "{text}");
    assert!(text.contains("family = \"nanodet\""), "{text}");
    let o = vigia(&["inspect", nanodet.to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["graph"]["op_histogram"]["LeakyRelu"], 28);
}

fn assert_fails_with(args: &[&str], needles: &[&str]) {
    let o = vigia(args);
    assert!(!o.status.success(), "{args:?} should fail");
    let err = stderr(&o);
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: stderr lacks {n:?}: {err}");
    }
}

/// A minimal ONNX file whose single node is an operator tract does not know.
fn onnx_with_unknown_op(path: &Path) {
    use tract_onnx::pb;
    let tensor_type = |dims: &[i64]| pb::TypeProto {
        value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
            elem_type: 1,
            shape: Some(pb::TensorShapeProto {
                dim: dims
                    .iter()
                    .map(|d| pb::tensor_shape_proto::Dimension {
                        value: Some(pb::tensor_shape_proto::dimension::Value::DimValue(*d)),
                        ..Default::default()
                    })
                    .collect(),
            }),
        })),
        ..Default::default()
    };
    let model = pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        graph: Some(pb::GraphProto {
            name: "g".into(),
            node: vec![pb::NodeProto {
                op_type: "FancyWarp".into(),
                name: "warp".into(),
                input: vec!["x".into()],
                output: vec!["y".into()],
                ..Default::default()
            }],
            input: vec![pb::ValueInfoProto {
                name: "x".into(),
                r#type: Some(tensor_type(&[1, 3, 64, 64])),
                ..Default::default()
            }],
            output: vec![pb::ValueInfoProto {
                name: "y".into(),
                r#type: Some(tensor_type(&[1, 10])),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    std::fs::write(path, model.encode_to_vec()).unwrap();
}

#[test]
fn bad_models_give_clear_errors_naming_the_file() {
    let Some(shared) = common::shared() else {
        return;
    };
    let dir = common::temp_dir("cli-bad-models");
    let img = shared.join("data/images/person.jpg");
    let img = img.to_str().unwrap();

    assert_fails_with(
        &["detect", img, "--model", "/nonexistent/m.onnx"],
        &["/nonexistent/m.onnx"],
    );
    assert_fails_with(
        &["detect", img, "--model", "no-such-model"],
        &["no-such-model", "--model"],
    );

    let text = dir.join("notes.onnx");
    std::fs::write(&text, "this is not a model\n").unwrap();
    assert_fails_with(
        &["detect", img, "--model", text.to_str().unwrap()],
        &["notes.onnx", "not a readable ONNX model"],
    );

    let truncated = dir.join("truncated.onnx");
    let bytes = std::fs::read(common::models_dir().join("nanodet-m-416.onnx")).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    assert_fails_with(
        &["detect", img, "--model", truncated.to_str().unwrap()],
        &["truncated.onnx", "ONNX"],
    );

    let unknown = dir.join("fancy.onnx");
    onnx_with_unknown_op(&unknown);
    assert_fails_with(
        &["detect", img, "--model", unknown.to_str().unwrap()],
        &["fancy.onnx", "FancyWarp", "not supported by tract"],
    );

    // NanoDet needs a multiple of 32.
    assert_fails_with(
        &["detect", img, "--imgsz", "300"],
        &["nanodet-m-416", "input shape [1, 3, 300, 300]"],
    );

    // A classifier given to detect, and the reverse.
    let cls = common::models_dir().join("efficientnet-lite0-224.toml");
    assert_fails_with(
        &["detect", img, "--model", cls.to_str().unwrap()],
        &["vigia classify"],
    );
    assert_fails_with(
        &["classify", img, "--model", "nanodet-m-416"],
        &["vigia detect"],
    );
}

#[test]
fn bad_inputs_and_flags_give_clear_errors() {
    let Some(shared) = common::shared() else {
        return;
    };
    let img = shared.join("data/images/person.jpg");
    let img = img.to_str().unwrap();
    assert_fails_with(
        &["detect", "/nonexistent/photo.jpg"],
        &["cannot open source", "/nonexistent/photo.jpg"],
    );
    assert_fails_with(&["detect"], &["SOURCE"]);
    assert_fails_with(&["detect", img, "--conf", "2"], &["--conf", "outside 0..1"]);
    assert_fails_with(
        &["detect", img, "--classes", "unicorn"],
        &["--classes", "unicorn"],
    );
    assert_fails_with(
        &["detect", img, "--classes", "99"],
        &["--classes", "out of range"],
    );
    assert_fails_with(&["detect", img, "--threads", "0"], &["--threads"]);
    // A single corrupt image: reported, non-zero exit.
    let dir = common::temp_dir("cli-bad-image");
    std::fs::write(dir.join("broken.png"), b"\x89PNG\r\n\x1a\n garbage").unwrap();
    let o = vigia(&["detect", dir.join("broken.png").to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("broken.png"), "{}", stderr(&o));
    // Bad model card.
    std::fs::write(dir.join("m.toml"), "name = 'm'\ntask = 'detect'\n").unwrap();
    assert_fails_with(
        &[
            "detect",
            img,
            "--model",
            dir.join("m.toml").to_str().unwrap(),
        ],
        &["m.toml", "missing field"],
    );
}

#[test]
fn a_camera_that_does_not_exist_is_a_clear_error() {
    assert_fails_with(
        &["detect", "0", "-q", "--source-wait", "0"],
        &["/dev/video0"],
    );
    assert_fails_with(
        &["track", "/dev/video7", "-q", "--source-wait", "1"],
        &["/dev/video7", "retrying"],
    );
}

#[test]
fn mot_detections_are_tracked_and_scored_from_the_command_line() {
    use std::io::Write;
    use vigia::source::synthetic::SyntheticScene;
    let dir = common::temp_dir("cli-mot");
    let scene =
        SyntheticScene::from_spec("synthetic://?scene=random&people=6&frames=120&seed=3").unwrap();
    scene.write_mot_gt(dir.join("gt.txt"), 120).unwrap();
    let mut det = std::fs::File::create(dir.join("det.txt")).unwrap();
    for f in 0..120u64 {
        for d in scene.detections_with_noise(f, 9, 2.0, 0.05, 0.2) {
            let b = d.bbox;
            writeln!(
                det,
                "{},-1,{:.2},{:.2},{:.2},{:.2},{:.3},-1,-1,-1",
                f + 1,
                b.x1,
                b.y1,
                b.width(),
                b.height(),
                d.score
            )
            .unwrap();
        }
    }
    drop(det);
    let (det, tracks, gt) = (
        dir.join("det.txt"),
        dir.join("tracks.txt"),
        dir.join("gt.txt"),
    );
    let o = vigia(&[
        "track",
        "--detections",
        det.to_str().unwrap(),
        "--save-mot",
        tracks.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&tracks).unwrap();
    let first = text.lines().next().unwrap();
    assert_eq!(first.split(',').count(), 10, "{first}");
    let o = vigia(&[
        "eval-mot",
        "--gt",
        gt.to_str().unwrap(),
        "--tracks",
        tracks.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let m: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(m["mota"].as_f64().unwrap() > 0.6, "{m}");
    assert!(m["idf1"].as_f64().unwrap() > 0.6, "{m}");
    // A malformed detections file names the line and column.
    std::fs::write(&det, "1,-1,10,10,20,abc,0.9\n").unwrap();
    assert_fails_with(
        &[
            "track",
            "--detections",
            det.to_str().unwrap(),
            "--save-mot",
            tracks.to_str().unwrap(),
        ],
        &["det.txt:1", "column 6"],
    );
}
