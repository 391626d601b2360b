//! Several inference workers give exactly the results of one: same detections, same tracks,
//! frames in order, on a real video and on a synthetic scene.

mod common;

use common::{have_ffmpeg, vigia};

use std::process::Output;

/// The JSON lines of a run, without the per-frame timings (the only field allowed to differ).
fn frames_without_times(o: &Output) -> Vec<serde_json::Value> {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            v.as_object_mut().expect("an object").remove("time_ms");
            v
        })
        .collect()
}

/// vtest.avi from ../shared, when it and ffmpeg are there.
fn vtest() -> Option<std::path::PathBuf> {
    let shared = common::shared()?;
    have_ffmpeg().then(|| shared.join("data/video/vtest.avi"))
}

fn run_with_workers(base: &[&str], workers: u32) -> Vec<serde_json::Value> {
    let n = workers.to_string();
    let mut args = base.to_vec();
    args.extend(["--workers", &n, "-q"]);
    frames_without_times(&vigia(&args))
}

#[test]
fn vtest_tracks_are_identical_with_one_two_and_three_workers() {
    let Some(video) = vtest() else {
        return;
    };
    let base = [
        "track",
        video.to_str().unwrap(),
        "--max-frames",
        "24",
        "--classes",
        "person",
    ];
    let one = run_with_workers(&base, 1);
    assert_eq!(one.len(), 24);
    let indices: Vec<u64> = one.iter().map(|f| f["frame"].as_u64().unwrap()).collect();
    assert_eq!(indices, (0..24).collect::<Vec<_>>());
    // vtest has several people walking in every frame: real detections and confirmed tracks.
    let tracked = one
        .iter()
        .flat_map(|f| f["detections"].as_array().unwrap())
        .filter(|d| d.get("track_id").is_some())
        .count();
    assert!(tracked > 24, "only {tracked} tracked boxes in 24 frames");
    for workers in [2, 3] {
        let many = run_with_workers(&base, workers);
        assert_eq!(many.len(), one.len(), "{workers} workers");
        for (a, b) in one.iter().zip(&many) {
            assert_eq!(a, b, "frame {} differs with {workers} workers", a["frame"]);
        }
    }
}

#[test]
fn strided_video_keeps_frame_order_with_two_workers() {
    let Some(video) = vtest() else {
        return;
    };
    let base = [
        "detect",
        video.to_str().unwrap(),
        "--vid-stride",
        "5",
        "--max-frames",
        "10",
    ];
    let one = run_with_workers(&base, 1);
    let two = run_with_workers(&base, 2);
    let indices: Vec<u64> = two.iter().map(|f| f["frame"].as_u64().unwrap()).collect();
    assert_eq!(indices, (0..10).map(|i| i * 5).collect::<Vec<_>>());
    assert_eq!(one, two);
}

#[test]
fn synthetic_scene_tracks_are_identical_with_two_workers() {
    // No ../shared needed: the embedded detector on generated frames.
    let base = [
        "track",
        "synthetic://?scene=crossing&seed=7&frames=30",
        "--conf",
        "0.1",
    ];
    let one = run_with_workers(&base, 1);
    let two = run_with_workers(&base, 2);
    assert_eq!(one.len(), 30);
    assert_eq!(one, two);
}

#[test]
fn bad_worker_counts_are_refused() {
    let o = vigia(&["detect", "x.jpg", "--workers", "0"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--workers"));
    let image = common::models_dir().join("samples/person.jpg");
    let o = vigia(&["classify", image.to_str().unwrap(), "--workers", "2"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--workers applies to detect, track and follow"),
        "{err}"
    );
}
