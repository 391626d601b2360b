//! The GPU engine (`--engine cuda`, tract-cuda) and `--engine auto`.
//!
//! Everywhere: `auto` runs and says which engine it picked and why. Without the `cuda` feature,
//! `--engine cuda` is refused with the rebuild hint. With it and no usable GPU (the build
//! machines), `--engine cuda` fails with one line naming what is missing, for a machine with no
//! driver and for real driver libraries (built here from C) that report no device, an old CUDA
//! version, or stand alone without the CUDA runtime; `auto` falls back to the CPU with the
//! same detections. With a GPU, the outputs of four models must match the CPU engine's.

mod common;

use std::process::Output;

fn sample() -> String {
    common::models_dir()
        .join("samples/person.jpg")
        .to_string_lossy()
        .into_owned()
}

fn detections(o: &Output) -> Vec<serde_json::Value> {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["detections"].as_array().unwrap().clone()
}

#[test]
fn auto_runs_here_says_why_and_detects_what_tract_detects() {
    let image = sample();
    let auto = common::vigia(&["detect", &image]);
    let stderr = String::from_utf8_lossy(&auto.stderr);
    let tract = common::vigia(&["detect", &image, "--engine", "tract", "-q"]);
    if stderr.contains("vigia: engine: auto: GPU found") {
        // A GPU machine: the GPU's outputs are checked against the CPU's below.
        return;
    }
    // With a GPU engine built in, the line says why the CPU runs; without, there is no choice.
    let built_in = cfg!(any(feature = "cuda", feature = "cuda-13"));
    assert_eq!(
        stderr.contains("vigia: engine: auto: CPU, "),
        built_in,
        "{stderr}"
    );
    assert!(stderr.contains("on tract 0.23.9"), "{stderr}");
    assert_eq!(detections(&auto), detections(&tract));
    assert!(!detections(&tract).is_empty());
}

#[test]
fn unknown_engines_list_the_choices() {
    let o = common::vigia(&["detect", &sample(), "--engine", "tensorrt"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("auto, tract, cuda or ort"), "{err}");
    let o = common::vigia(&["detect", &sample(), "--ort-ep", "cuda"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--ort-ep needs --engine ort"), "{err}");
}

#[cfg(not(any(feature = "cuda", feature = "cuda-13")))]
#[test]
fn without_the_feature_engine_cuda_is_refused_with_the_rebuild_hint() {
    let o = common::vigia(&["detect", &sample(), "--engine", "cuda"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--features cuda"), "{err}");
    let o = common::vigia(&["doctor"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("not in this build"), "{out}");
    assert!(
        out.contains("runs tract on the CPU: this build has no GPU engine"),
        "{out}"
    );
}

#[cfg(any(feature = "cuda", feature = "cuda-13"))]
mod with_cuda {
    use super::*;
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use vigia::engine::gpu::{probe, GpuStatus};
    use vigia::resolve::{load_model, EngineKind, LoadOptions, LoadedModel};

    /// Whether this machine has a GPU the engine can use; prints why not.
    fn gpu_here() -> bool {
        match probe() {
            GpuStatus::Ready(info) => {
                eprintln!("GPU: {}", info.summary());
                true
            }
            other => {
                common::skip(format!(
                    "skipping the GPU's output checks: {}",
                    other.unusable_reason().unwrap_or_default()
                ));
                false
            }
        }
    }

    /// Runs `vigia` with `LD_LIBRARY_PATH` set to `dir`, so the dynamic loader finds its libraries.
    fn vigia_with_libs(dir: &Path, args: &[&str]) -> Output {
        Command::new(common::vigia_bin())
            .args(args)
            .env("LD_LIBRARY_PATH", dir)
            .output()
            .expect("run vigia")
    }

    /// Asserts a one-line, panic-free refusal of `--engine cuda` containing `needle`.
    fn refused(o: &Output, needle: &str) {
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked"), "{err}");
        let line = err
            .lines()
            .find(|l| l.contains("engine cuda cannot run here"))
            .unwrap_or_else(|| panic!("no refusal line in:\n{err}"));
        assert!(line.contains(needle), "{line}");
    }

    #[test]
    fn without_a_gpu_engine_cuda_says_what_is_missing_and_auto_falls_back() {
        if !matches!(probe(), GpuStatus::Unavailable(_)) {
            common::skip("skipping: this machine has a usable GPU");
            return;
        }
        let image = sample();
        let o = common::vigia(&["detect", &image, "--engine", "cuda"]);
        refused(&o, "CUDA driver");
        // bench, classify and track refuse the same way.
        let o = common::vigia(&["bench", "--engine", "cuda", "--runs", "1"]);
        refused(&o, "CUDA driver");
        let card = common::models_dir().join("efficientnet-lite0-224.toml");
        let card = card.to_str().unwrap();
        let o = common::vigia(&["classify", &image, "--model", card, "--engine", "cuda"]);
        refused(&o, "CUDA driver");
        // auto: the CPU, the reason on the engine line, and tract's detections.
        let auto = common::vigia(&["detect", &image]);
        let err = String::from_utf8_lossy(&auto.stderr);
        assert!(
            err.contains("vigia: engine: auto: CPU, no usable NVIDIA GPU"),
            "{err}"
        );
        let tract = common::vigia(&["detect", &image, "--engine", "tract", "-q"]);
        assert_eq!(detections(&auto), detections(&tract));
        // doctor names the build's CUDA API and the reason.
        let o = common::vigia(&["doctor"]);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(out.contains("built in (CUDA"), "{out}");
        assert!(out.contains("none usable: no usable NVIDIA GPU"), "{out}");
        let o = common::vigia(&["doctor", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["gpu"]["auto_engine"], "tract");
        assert!(v["gpu"]["unusable"].as_str().unwrap().contains("CUDA"));
    }

    /// A driver library `libcuda.so.1` whose `cuInit` returns `init` and whose driver reports
    /// CUDA API `version`, compiled into a fresh folder; `None` (with the reason) without `cc`.
    fn driver_library(name: &str, init: i32, version: i32) -> Option<PathBuf> {
        let dir = common::temp_dir(name);
        let c = dir.join("driver.c");
        std::fs::write(
            &c,
            format!(
                "int cuInit(unsigned int flags) {{ (void)flags; return {init}; }}\n\
                 int cuDriverGetVersion(int *v) {{ *v = {version}; return 0; }}\n"
            ),
        )
        .unwrap();
        let status = Command::new("cc")
            .args(["-shared", "-fPIC", "-o"])
            .arg(dir.join("libcuda.so.1"))
            .arg(&c)
            .status();
        match status {
            Ok(s) if s.success() => Some(dir),
            other => {
                common::skip(format!(
                    "skipping: cannot build a driver library with cc ({other:?})"
                ));
                None
            }
        }
    }

    #[test]
    fn driver_libraries_without_a_device_a_new_enough_api_or_cuda_are_named() {
        if !matches!(probe(), GpuStatus::Unavailable(_)) {
            common::skip("skipping: this machine has a usable GPU");
            return;
        }
        let image = sample();
        let detect = ["detect", image.as_str(), "--engine", "cuda"];
        // A driver but no device (a container without GPU passthrough): CUDA_ERROR_NO_DEVICE.
        if let Some(dir) = driver_library("cuda-no-device", 100, 13000) {
            refused(&vigia_with_libs(&dir, &detect), "cuInit returned 100");
        }
        // A driver older than the CUDA API this build binds.
        if let Some(dir) = driver_library("cuda-old-driver", 0, 11040) {
            refused(&vigia_with_libs(&dir, &detect), "CUDA driver too old");
        }
        // A working driver, but none of the CUDA libraries (runtime, NVRTC, cuBLAS, cuDNN).
        if let Some(dir) = driver_library("cuda-no-runtime", 0, 13020) {
            let o = vigia_with_libs(&dir, &detect);
            refused(&o, "could not be dlopen'd");
            // auto takes the CPU and says so.
            let auto = vigia_with_libs(&dir, &["detect", image.as_str()]);
            let err = String::from_utf8_lossy(&auto.stderr);
            assert!(auto.status.success(), "{err}");
            assert!(err.contains("vigia: engine: auto: CPU"), "{err}");
        }
    }

    fn load(spec: &Path, engine: EngineKind, half: bool) -> LoadedModel {
        let m = load_model(
            spec.to_str(),
            None,
            &LoadOptions {
                engine,
                half,
                ..LoadOptions::default()
            },
        )
        .unwrap_or_else(|e| panic!("{} on {engine:?}: {e}", spec.display()));
        assert_eq!(
            m.engine.name(),
            if engine == EngineKind::Cuda {
                "cuda"
            } else {
                "tract"
            }
        );
        m
    }

    /// Largest difference between the two engines' raw outputs on the same ramp input, relative
    /// to the largest magnitude.
    fn max_rel_diff(cpu: &mut LoadedModel, gpu: &mut LoadedModel) -> f32 {
        let n = cpu.engine.input_mut().len();
        for (i, (a, b)) in cpu
            .engine
            .input_mut()
            .iter_mut()
            .zip(gpu.engine.input_mut().iter_mut())
            .enumerate()
        {
            // A smooth, image-like ramp in [0, 1].
            *a = ((i * 7919) % n) as f32 / n as f32;
            *b = *a;
        }
        cpu.engine.run().unwrap();
        gpu.engine.run().unwrap();
        common::max_rel_output_diff(&*cpu.engine, &*gpu.engine)
    }

    #[test]
    fn gpu_outputs_match_the_cpu_engine_for_four_models() {
        if !gpu_here() {
            return;
        }
        // (model, whether f16 is checked). The ResNet50 fixture has constant, not trained,
        // weights: its activations pass f16's range (tract's CPU f16 gives NaN too), so only its
        // f32 outputs are compared. The YOLOv8n fixture is the one whose weights give outputs
        // that vary with the image (the plain one's class scores stay below 2e-4).
        let mut models = vec![
            (common::models_dir().join("nanodet-m-416.toml"), true),
            (
                common::models_dir().join("efficientnet-lite0-224.toml"),
                true,
            ),
        ];
        match common::shared() {
            Some(shared) => models.extend([
                (shared.join("models/yolo/yolov8n-640-hot.onnx"), true),
                (shared.join("models/onnx-light/light_resnet50.onnx"), false),
            ]),
            None => common::skip("skipping YOLOv8n and ResNet50: ../shared is absent"),
        }
        // Every model's figures first, then the verdicts, so one run on a GPU says it all.
        let mut failures = Vec::new();
        for (model, check_half) in &models {
            let name = model.display();
            let mut cpu = load(model, EngineKind::Tract, false);
            let mut gpu = load(model, EngineKind::Cuda, false);
            let placement = gpu
                .report
                .gpu
                .clone()
                .expect("the cuda engine reports placement");
            eprintln!("{name}: {}", placement.summary());
            if placement.gpu_ops == 0 {
                failures.push(format!("{name}: no operator on the GPU"));
            }
            let f32_diff = max_rel_diff(&mut cpu, &mut gpu);
            eprintln!("{name}: f32 {f32_diff:.2e}");
            if f32_diff >= 1e-3 {
                failures.push(format!("{name}: f32 differs by {f32_diff:.2e}"));
            }
            if *check_half {
                let mut half = load(model, EngineKind::Cuda, true);
                let f16_diff = max_rel_diff(&mut cpu, &mut half);
                eprintln!("{name}: f16 {f16_diff:.2e}");
                // f16 keeps 11 bits: on an H200, 7.5e-3 (EfficientNet-Lite0), 2.6e-2 (YOLOv8n)
                // and 7.3e-2 (NanoDet-m, on its smallest-magnitude output) of the largest
                // magnitude; a wrong operator is off by the whole range.
                if f16_diff >= 1e-1 {
                    failures.push(format!("{name}: f16 differs by {f16_diff:.2e}"));
                }
            }
            // A second worker's state gives the same outputs.
            let mut fork = gpu.engine.fork().unwrap();
            fork.input_mut().copy_from_slice(gpu.engine.input_mut());
            fork.run().unwrap();
            let (a, b) = (gpu.engine.outputs().unwrap(), fork.outputs().unwrap());
            if !a.iter().zip(&b).all(|(x, y)| x == y) {
                failures.push(format!("{name}: a forked state gives other outputs"));
            }
        }
        assert!(failures.is_empty(), "{failures:#?}");
    }

    #[test]
    fn the_cli_follows_on_the_gpu_with_two_workers_frames_in_order() {
        if !gpu_here() {
            return;
        }
        let Some(shared) = common::shared() else {
            return;
        };
        if !common::have_ffmpeg() {
            return;
        }
        let video = shared.join("data/video/vtest.avi");
        let run = |engine: &str| {
            let o = common::vigia(&[
                "detect",
                video.to_str().unwrap(),
                "--engine",
                engine,
                "--workers",
                "2",
                "--max-frames",
                "40",
                "-q",
            ]);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
                .map(|v| {
                    (
                        v["frame"].as_u64().unwrap(),
                        v["detections"].as_array().unwrap().len(),
                    )
                })
                .collect::<Vec<_>>()
        };
        let (gpu, cpu) = (run("cuda"), run("tract"));
        assert_eq!(gpu.len(), 40);
        assert!(
            gpu.windows(2).all(|w| w[0].0 < w[1].0),
            "frames out of order"
        );
        let same = gpu.iter().zip(&cpu).filter(|(a, b)| a == b).count();
        assert!(
            same >= 36,
            "only {same} of 40 frames have the CPU's detection count"
        );
    }
}
