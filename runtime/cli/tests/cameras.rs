//! Several cameras in one process: one model, each camera's own tracks and files, JSON lines
//! that name the camera, a camera that cannot start stopping alone, and live cameras taking
//! turns at inference.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use common::{have_ffmpeg, temp_dir, vigia, vigia_cmd};

/// vtest.avi from ../shared, when it and ffmpeg are there.
fn vtest() -> Option<PathBuf> {
    let shared = common::shared()?;
    have_ffmpeg().then(|| shared.join("data/video/vtest.avi"))
}

/// The JSON lines of `path` (or of stdout bytes), parsed.
fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn read_lines(path: &Path) -> Vec<serde_json::Value> {
    json_lines(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// A frame's tracks without timings or the camera's name: what two cameras on the same video
/// must agree on.
fn tracks_of(frame: &serde_json::Value) -> serde_json::Value {
    serde_json::json!({ "frame": frame["frame"], "detections": frame["detections"] })
}

#[test]
fn two_cameras_on_one_model_track_alone_into_their_own_files() {
    let Some(video) = vtest() else {
        return;
    };
    let dir = temp_dir("two-cameras");
    let video = video.to_str().unwrap();
    let json = dir.join("frames.jsonl");
    let mot = dir.join("tracks.txt");
    let o = vigia(&[
        "track",
        "--source",
        &format!("door={video}"),
        "--source",
        &format!("yard={video}"),
        "--classes",
        "person",
        "--max-frames",
        "16",
        "--save-json",
        json.to_str().unwrap(),
        "--save-mot",
        mot.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stderr.contains("2 cameras (door, yard), one model"),
        "{stderr}"
    );
    // One load line: the model is loaded once.
    assert_eq!(stderr.matches("vigia: model ").count(), 1, "{stderr}");
    let door = read_lines(&dir.join("frames.door.jsonl"));
    let yard = read_lines(&dir.join("frames.yard.jsonl"));
    assert_eq!(door.len(), 16);
    assert_eq!(yard.len(), 16);
    assert!(door.iter().all(|f| f["camera"] == "door"));
    assert!(yard.iter().all(|f| f["camera"] == "yard"));
    // Each camera tracks on its own: the same video gives the same tracks and ids on both, as
    // it does in a run of its own.
    let tracked = door
        .iter()
        .flat_map(|f| f["detections"].as_array().unwrap())
        .filter(|d| d.get("track_id").is_some())
        .count();
    assert!(tracked > 16, "only {tracked} tracked people in 16 frames");
    let door_tracks: Vec<_> = door.iter().map(tracks_of).collect();
    let yard_tracks: Vec<_> = yard.iter().map(tracks_of).collect();
    assert_eq!(door_tracks, yard_tracks);
    let alone = vigia(&[
        "track",
        video,
        "--classes",
        "person",
        "--max-frames",
        "16",
        "-q",
    ]);
    assert!(alone.status.success());
    let alone: Vec<_> = json_lines(&String::from_utf8_lossy(&alone.stdout))
        .iter()
        .map(tracks_of)
        .collect();
    assert_eq!(door_tracks, alone);
    for name in ["door", "yard"] {
        let mot = std::fs::read_to_string(dir.join(format!("tracks.{name}.txt"))).unwrap();
        assert!(mot.lines().count() >= tracked, "{name}: {mot}");
    }
    // End-of-run lines per camera.
    assert!(stderr.contains("vigia [door]: 16 frame(s)"), "{stderr}");
    assert!(stderr.contains("vigia [yard]: 16 frame(s)"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_camera_that_cannot_start_stops_alone_and_fails_the_run() {
    let Some(video) = vtest() else {
        return;
    };
    let dir = temp_dir("camera-gone");
    let missing = dir.join("gone.mp4");
    let o = vigia(&[
        "detect",
        "--source",
        &format!("door={}", video.display()),
        "--source",
        &format!("gone={}", missing.display()),
        "--max-frames",
        "6",
        "-q",
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("camera gone could not start") && stderr.contains("gone.mp4"),
        "{stderr}"
    );
    assert!(stderr.contains("1 of 2 camera(s) failed"), "{stderr}");
    // The other camera ran to its end, on stdout, every line naming it.
    let lines = json_lines(&String::from_utf8_lossy(&o.stdout));
    assert_eq!(lines.len(), 6);
    assert!(lines.iter().all(|f| f["camera"] == "door"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn live_cameras_take_turns_at_inference() {
    if common::shared().is_none() {
        return;
    }
    // Three cameras at 30 fps, far more than one engine state serves here: each inference
    // goes to whichever camera has waited longest, so the three share the engine evenly.
    let cam = |name: &str, seed: u32| {
        format!("{name}=synthetic://?scene=random&live=1&fps=30&frames=100000&seed={seed}")
    };
    let o = vigia_cmd()
        .args(["detect", "--max-frames", "12", "-q"])
        .args(["--source", &cam("a", 1)])
        .args(["--source", &cam("b", 2)])
        .args(["--source", &cam("c", 3)])
        .output()
        .expect("run vigia");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    let lines = json_lines(&String::from_utf8_lossy(&o.stdout));
    assert_eq!(lines.len(), 36, "{stderr}");
    // Until the first camera is done, none is more than a couple of frames ahead of another.
    let mut done: HashMap<String, u32> = HashMap::new();
    for f in &lines {
        let name = f["camera"].as_str().unwrap().to_string();
        *done.entry(name).or_default() += 1;
        if done.values().any(|n| *n == 12) {
            break;
        }
        let most = done.values().max().unwrap();
        let least = ["a", "b", "c"]
            .iter()
            .map(|c| done.get(*c).copied().unwrap_or(0))
            .min()
            .unwrap();
        assert!(most - least <= 3, "uneven turns: {done:?}");
    }
}

#[test]
fn camera_options_that_need_one_camera_say_so() {
    let two = ["--source", "a=synthetic://", "--source", "b=synthetic://"];
    let o = vigia_cmd()
        .arg("detect")
        .args(two)
        .args(["--serve", "0"])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("--serve previews one camera"),
        "{e}"
    );
    let o = vigia_cmd().arg("follow").args(two).output().unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("steers from one camera"),
        "{e}"
    );
    let o = vigia_cmd()
        .args(["detect", "--source", "a=0", "--source", "a=1"])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("two cameras are named `a`"),
        "{e}"
    );
}

#[test]
fn cameras_file_names_and_sources() {
    if common::shared().is_none() {
        return;
    }
    let dir = temp_dir("cameras-file");
    let file = dir.join("cameras.toml");
    std::fs::write(
        &file,
        "[[camera]]\nname = \"hall\"\nsource = \"synthetic://?scene=crossing&frames=5\"\n\n\
         [[camera]]\nname = \"porch\"\nsource = \"synthetic://?scene=occlusion&frames=7\"\n",
    )
    .unwrap();
    // `vigia run FILE` is `vigia track --cameras FILE`.
    let o = vigia(&["run", file.to_str().unwrap(), "-q"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lines = json_lines(&String::from_utf8_lossy(&o.stdout));
    let count = |name: &str| lines.iter().filter(|f| f["camera"] == name).count();
    assert_eq!((count("hall"), count("porch")), (5, 7));
    // Each camera's frames come in order.
    for name in ["hall", "porch"] {
        let frames: Vec<u64> = lines
            .iter()
            .filter(|f| f["camera"] == name)
            .map(|f| f["frame"].as_u64().unwrap())
            .collect();
        assert!(frames.windows(2).all(|w| w[0] < w[1]), "{name}: {frames:?}");
    }
    std::fs::write(&file, "[[camera]]\nname = \"hall\"\n").unwrap();
    let o = vigia(&["detect", "--cameras", file.to_str().unwrap()]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("cameras.toml") && e.contains("source"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
