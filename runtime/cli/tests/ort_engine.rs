//! ONNX Runtime as a second engine: the same raw outputs, detections and classes as tract.
//!
//! With `--features ort` these run when `ORT_DYLIB_PATH` names libonnxruntime (the Python
//! `onnxruntime` wheel ships one in site-packages/onnxruntime/capi/); otherwise they skip with
//! the reason. Without the feature, `--engine ort` must be refused with a hint.

mod common;

use std::process::Command;

fn vigia(args: &[&str]) -> std::process::Output {
    Command::new(common::vigia_bin())
        .args(args)
        .output()
        .expect("run vigia")
}

#[cfg(not(feature = "ort"))]
#[test]
fn without_the_feature_engine_ort_is_refused_with_a_hint() {
    let image = common::models_dir().join("samples/person.jpg");
    let o = vigia(&["detect", image.to_str().unwrap(), "--engine", "ort"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--features ort"), "{err}");
    let o = vigia(&["detect", image.to_str().unwrap(), "--engine", "onnx"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("tract, cuda or ort"));
}

#[cfg(feature = "ort")]
mod with_ort {
    use super::*;
    use std::path::PathBuf;

    use vigia::classifier::Classifier;
    use vigia::decode::DecodeParams;
    use vigia::detector::Detector;
    use vigia::model::Task;
    use vigia::resolve::{load_model, EngineKind, LoadOptions, LoadedModel};
    use vigia::source::images::load_rgb;

    /// The ONNX Runtime library named by `ORT_DYLIB_PATH`, or `None` with a printed reason.
    fn dylib() -> Option<PathBuf> {
        match std::env::var_os("ORT_DYLIB_PATH") {
            Some(p) if PathBuf::from(&p).exists() => Some(PathBuf::from(p)),
            Some(p) => {
                common::skip(format!(
                    "skipping: ORT_DYLIB_PATH={} does not exist",
                    p.to_string_lossy()
                ));
                None
            }
            None => {
                common::skip(
                    "skipping: ORT_DYLIB_PATH is not set (pip install onnxruntime; point it at \
                     site-packages/onnxruntime/capi/libonnxruntime.so.*)",
                );
                None
            }
        }
    }

    fn load(spec: &str, task: Task, engine: EngineKind) -> LoadedModel {
        let m = load_model(
            Some(spec),
            Some(task),
            &LoadOptions {
                engine,
                threads: 1,
                ..LoadOptions::default()
            },
        )
        .unwrap_or_else(|e| panic!("{spec} on {engine:?}: {e}"));
        assert_eq!(
            m.engine.name(),
            match engine {
                EngineKind::Ort => "ort",
                _ => "tract",
            }
        );
        m
    }

    fn max_rel_output_diff(a: &LoadedModel, b: &LoadedModel) -> f32 {
        common::max_rel_output_diff(&*a.engine, &*b.engine)
    }

    #[test]
    fn nanodet_detections_match_tract_on_person_jpg() {
        if dylib().is_none() {
            return;
        }
        let card = common::models_dir().join("nanodet-m-416.toml");
        let card = card.to_str().unwrap();
        let mut tract = Detector::new(load(card, Task::Detect, EngineKind::Tract));
        let mut ort = Detector::new(load(card, Task::Detect, EngineKind::Ort));
        let image = load_rgb(&common::models_dir().join("samples/person.jpg")).unwrap();
        let params = DecodeParams::default();
        let a = tract.detect(&image, &params).unwrap().to_vec();
        let b = ort.detect(&image, &params).unwrap().to_vec();
        let diff = max_rel_output_diff(tract.model(), ort.model());
        assert!(diff < 1e-3, "raw outputs differ by {diff}");
        // The sample holds a person, a dog and a horse.
        assert!(
            a.len() >= 2 && a.iter().any(|d| d.class_id == 0),
            "tract found {a:?}"
        );
        assert_eq!(a.len(), b.len(), "tract {a:?}\nort {b:?}");
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.class_id, y.class_id);
            assert!((x.score - y.score).abs() < 2e-3, "{x:?} vs {y:?}");
            for (p, q) in [
                (x.bbox.x1, y.bbox.x1),
                (x.bbox.y1, y.bbox.y1),
                (x.bbox.x2, y.bbox.x2),
                (x.bbox.y2, y.bbox.y2),
            ] {
                assert!((p - q).abs() < 0.5, "{x:?} vs {y:?}");
            }
        }
        // A second worker's session gives the same detections.
        let mut fork = ort.fork().unwrap();
        assert_eq!(fork.detect(&image, &params).unwrap(), &b[..]);
    }

    #[test]
    fn efficientnet_top1_matches_tract_on_reference_images() {
        if dylib().is_none() {
            return;
        }
        let Some(shared) = common::shared() else {
            return;
        };
        let card = common::models_dir().join("efficientnet-lite0-224.toml");
        let card = card.to_str().unwrap();
        let mut tract = Classifier::new(load(card, Task::Classify, EngineKind::Tract));
        let mut ort = Classifier::new(load(card, Task::Classify, EngineKind::Ort));
        for (image, expected) in [
            ("squirrel_cls.jpg", "fox squirrel"),
            ("coffee.png", "espresso"),
            ("orange.jpg", "orange"),
            ("dog.jpg", ""),
        ] {
            let img = load_rgb(&shared.join("data/images").join(image)).unwrap();
            let a = tract.classify(&img, 5).unwrap();
            let b = ort.classify(&img, 5).unwrap();
            let diff = max_rel_output_diff(tract.model(), ort.model());
            assert!(diff < 1e-3, "{image}: raw outputs differ by {diff}");
            assert_eq!(a[0].class_id, b[0].class_id, "{image}: {a:?} vs {b:?}");
            assert!((a[0].score - b[0].score).abs() < 2e-3, "{image}");
            if !expected.is_empty() {
                assert_eq!(b[0].label.split(',').next().unwrap().trim(), expected);
            }
        }
    }

    #[test]
    fn cli_engine_ort_prints_the_same_detections_as_tract() {
        let Some(lib) = dylib() else {
            return;
        };
        let image = common::models_dir().join("samples/person.jpg");
        let image = image.to_str().unwrap();
        let run = |extra: &[&str]| -> serde_json::Value {
            let mut args = vec!["detect", image, "-q"];
            args.extend_from_slice(extra);
            let o = vigia(&args);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            serde_json::from_slice(&o.stdout).unwrap()
        };
        let tract = run(&[]);
        // The library given by option (here its folder) as well as by environment variable.
        let folder = lib.parent().unwrap().to_str().unwrap().to_string();
        let ort = run(&["--engine", "ort", "--ort-lib", &folder, "--workers", "1"]);
        let (a, b) = (
            tract["detections"].as_array().unwrap(),
            ort["detections"].as_array().unwrap(),
        );
        assert!(!a.is_empty());
        assert_eq!(a.len(), b.len(), "{a:?}\n{b:?}");
        for (x, y) in a.iter().zip(b) {
            assert_eq!(x["class_id"], y["class_id"]);
            let bx: Vec<f64> = serde_json::from_value(x["box"].clone()).unwrap();
            let by: Vec<f64> = serde_json::from_value(y["box"].clone()).unwrap();
            assert!(bx.iter().zip(&by).all(|(p, q)| (p - q).abs() < 0.5));
        }
    }

    #[test]
    fn a_cpu_only_library_refuses_the_gpu_providers_by_name() {
        let Some(lib) = dylib() else {
            return;
        };
        let image = common::models_dir().join("samples/person.jpg");
        for (ep, name) in [("cuda", "CUDA"), ("tensorrt", "TensorRT")] {
            let o = vigia(&[
                "detect",
                image.to_str().unwrap(),
                "--engine",
                "ort",
                "--ort-ep",
                ep,
            ]);
            let err = String::from_utf8_lossy(&o.stderr);
            if o.status.success() {
                // An onnxruntime-gpu library: the provider is there.
                common::skip(format!(
                    "skipping: {} has the {name} provider",
                    lib.display()
                ));
                continue;
            }
            assert!(!err.contains("panicked"), "{err}");
            let line = err
                .lines()
                .find(|l| l.contains("engine ort cannot run here"))
                .unwrap_or_else(|| panic!("no refusal line in:\n{err}"));
            assert!(
                line.contains(&format!("without the {name} execution provider")),
                "{line}"
            );
            assert!(line.contains("onnxruntime-gpu"), "{line}");
        }
        // The CPU provider, named, runs.
        let o = vigia(&[
            "detect",
            image.to_str().unwrap(),
            "--engine",
            "ort",
            "--ort-ep",
            "cpu",
            "-q",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }

    #[test]
    fn a_missing_library_is_a_clear_error() {
        let image = common::models_dir().join("samples/person.jpg");
        let o = vigia(&[
            "detect",
            image.to_str().unwrap(),
            "--engine",
            "ort",
            "--ort-lib",
            "/nonexistent/libonnxruntime.so",
        ]);
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("--ort-lib"), "{err}");
        assert!(err.contains("/nonexistent/libonnxruntime.so"), "{err}");
        assert!(err.contains("pip install onnxruntime"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}
