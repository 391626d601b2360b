//! Video files through the whole pipeline with real ffmpeg: every frame, annotated MP4, JSON
//! lines, damaged files, a missing ffmpeg, and Ctrl-C.

mod common;

use common::{have_ffmpeg, vigia};

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Frames and frame rate of a video, counted by decoding it.
fn probe_frames(path: &Path) -> (u64, String) {
    let o = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=nb_read_frames,r_frame_rate",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let mut parts = text.split(',');
    let rate = parts.next().unwrap_or("").to_string();
    let n = parts
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    (n, rate)
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn vtest_every_frame_to_mp4_and_json_lines() {
    let Some(shared) = common::shared() else {
        return;
    };
    if !have_ffmpeg() {
        return;
    }
    let dir = common::temp_dir("video-full");
    let (mp4, jsonl) = (dir.join("out.mp4"), dir.join("out.jsonl"));
    let o = vigia(&[
        "detect",
        shared.join("data/video/vtest.avi").to_str().unwrap(),
        "--save-video",
        mp4.to_str().unwrap(),
        "--save-json",
        jsonl.to_str().unwrap(),
        "--classes",
        "person",
        "-q",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows = lines(&jsonl);
    assert_eq!(rows.len(), 795);
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r["frame"], i as u64);
        assert_eq!(r["width"], 768);
    }
    assert!((rows[100]["time"].as_f64().unwrap() - 10.0).abs() < 1e-6);
    // Pedestrians are found in most frames (MODELS.md: frame 100 has six persons).
    let with_people = rows
        .iter()
        .filter(|r| !r["detections"].as_array().unwrap().is_empty())
        .count();
    assert!(
        with_people > 700,
        "people found in only {with_people} of 795 frames"
    );
    let n100 = rows[100]["detections"].as_array().unwrap().len();
    assert!((3..=9).contains(&n100), "frame 100: {n100} persons");
    let (frames, rate) = probe_frames(&mp4);
    assert_eq!(frames, 795);
    assert_eq!(rate, "10/1");
}

#[test]
fn a_truncated_file_is_processed_up_to_the_damage() {
    let Some(shared) = common::shared() else {
        return;
    };
    if !have_ffmpeg() {
        return;
    }
    let dir = common::temp_dir("video-truncated");
    let bytes = std::fs::read(shared.join("data/video/vtest.avi")).unwrap();
    let cut = dir.join("cut.avi");
    std::fs::write(&cut, &bytes[..bytes.len() * 3 / 8]).unwrap();
    let jsonl = dir.join("out.jsonl");
    let o = vigia(&[
        "detect",
        cut.to_str().unwrap(),
        "--vid-stride",
        "10",
        "--save-json",
        jsonl.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let rows = lines(&jsonl);
    assert!(rows.len() > 10 && rows.len() < 60, "{} rows", rows.len());
    assert!(
        err.contains("ended early") && err.contains("of 795 expected"),
        "{err}"
    );
}

#[test]
fn damaged_frames_mid_file_are_skipped_and_counted() {
    let Some(shared) = common::shared() else {
        return;
    };
    if !have_ffmpeg() {
        return;
    }
    let dir = common::temp_dir("video-corrupt");
    let mut bytes = std::fs::read(shared.join("data/video/vtest.avi")).unwrap();
    // Overwrite a few spans of coded data in the middle with noise.
    let mut x: u32 = 12345;
    for start in [bytes.len() / 3, bytes.len() / 2, bytes.len() * 2 / 3] {
        for b in &mut bytes[start..start + 4000] {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x as u8;
        }
    }
    let bad = dir.join("damaged.avi");
    std::fs::write(&bad, &bytes).unwrap();
    let jsonl = dir.join("out.jsonl");
    let o = vigia(&[
        "detect",
        bad.to_str().unwrap(),
        "--vid-stride",
        "25",
        "--save-json",
        jsonl.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let rows = lines(&jsonl);
    assert!(rows.len() >= 30, "only {} rows: {err}", rows.len());
    let corrupt: u64 = err
        .split(" corrupt frame(s)")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(corrupt > 0, "no damaged frame counted: {err}");
}

#[test]
fn missing_ffmpeg_says_how_to_install_it() {
    let Some(shared) = common::shared() else {
        return;
    };
    let empty = common::temp_dir("no-ffmpeg-path");
    let o = Command::new(common::vigia_bin())
        .args([
            "detect",
            shared.join("data/video/vtest.avi").to_str().unwrap(),
        ])
        .env("PATH", &empty)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("not found on PATH") && err.contains("apt install ffmpeg"),
        "{err}"
    );
}

#[test]
fn ctrl_c_finishes_a_playable_video_and_complete_json_lines() {
    let Some(shared) = common::shared() else {
        return;
    };
    if !have_ffmpeg() {
        return;
    }
    let dir = common::temp_dir("video-sigint");
    let (mp4, jsonl) = (dir.join("out.mp4"), dir.join("out.jsonl"));
    let child = Command::new(common::vigia_bin())
        .args([
            "detect",
            shared.join("data/video/vtest.avi").to_str().unwrap(),
        ])
        .args([
            "--save-video",
            mp4.to_str().unwrap(),
            "--save-json",
            jsonl.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while std::fs::read_to_string(&jsonl)
        .map(|t| t.lines().count())
        .unwrap_or(0)
        < 15
    {
        assert!(start.elapsed() < Duration::from_secs(120), "no progress");
        std::thread::sleep(Duration::from_millis(50));
    }
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("stopped early"), "{err}");
    let rows = lines(&jsonl);
    assert!(rows.len() >= 15 && rows.len() < 795);
    // Every JSON line is complete and the video holds exactly those frames.
    let (frames, _) = probe_frames(&mp4);
    assert_eq!(frames, rows.len() as u64);
}
