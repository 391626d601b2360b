//! SIGINT and SIGTERM at different points of `vigia track` with every file output: the MP4
//! stays playable (ffprobe decodes as many frames as there are JSON lines), every JSON line
//! parses, and the MOT file holds only whole lines of frames that were processed.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn have_ffmpeg() -> bool {
    let ok = Command::new("ffprobe").arg("-version").output().is_ok();
    if !ok {
        common::skip("skipping: ffmpeg/ffprobe not found");
    }
    ok
}

/// Frames ffprobe decodes from `path` (0 when it cannot read it).
fn decoded_frames(path: &Path) -> u64 {
    let o = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

fn line_count(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// When to send the signal.
#[derive(Debug, Clone, Copy)]
enum When {
    /// A fixed time after start (model loading, ffmpeg start-up, first frames).
    After(Duration),
    /// Once this many JSON lines are on disk.
    Lines(usize),
}

/// Runs `vigia track vtest.avi` with every file output, signals it, and checks the outputs.
fn interrupt(name: &str, signal: &str, when: When) {
    let Some(shared) = common::shared() else {
        return;
    };
    if !have_ffmpeg() {
        return;
    }
    let dir = common::temp_dir(name);
    let (mp4, jsonl, mot) = (
        dir.join("out.mp4"),
        dir.join("out.jsonl"),
        dir.join("tracks.txt"),
    );
    let child = Command::new(common::vigia_bin())
        .arg("track")
        .arg(shared.join("data/video/vtest.avi"))
        .arg("--save-video")
        .arg(&mp4)
        .arg("--save-json")
        .arg(&jsonl)
        .arg("--save-mot")
        .arg(&mot)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    match when {
        When::After(d) => std::thread::sleep(d),
        When::Lines(n) => {
            while line_count(&jsonl) < n {
                assert!(start.elapsed() < Duration::from_secs(180), "no progress");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{signal} {when:?}: {} {err}", o.status);
    assert!(!err.contains("panicked"), "{err}");

    let text = std::fs::read_to_string(&jsonl).unwrap_or_default();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "JSON ends mid-line"
    );
    let frames: Vec<u64> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a whole JSON line");
            v["frame"].as_u64().unwrap()
        })
        .collect();
    assert!(frames.len() < 795, "stopped early");
    assert!(frames.iter().enumerate().all(|(i, f)| *f == i as u64));
    if let When::Lines(n) = when {
        assert!(frames.len() >= n);
    }
    if !frames.is_empty() {
        assert!(err.contains("stopped early"), "{err}");
        assert_eq!(decoded_frames(&mp4), frames.len() as u64, "{err}");
    }
    let tracks = std::fs::read_to_string(&mot).unwrap_or_default();
    assert!(
        tracks.is_empty() || tracks.ends_with('\n'),
        "MOT ends mid-line"
    );
    for l in tracks.lines() {
        let cols: Vec<&str> = l.split(',').collect();
        assert_eq!(cols.len(), 10, "{l}");
        let f: u64 = cols[0].parse().unwrap();
        assert!(f >= 1 && f <= frames.len() as u64, "{l}");
    }
}

#[test]
fn sigint_while_starting_up() {
    interrupt(
        "sig-int-start",
        "-INT",
        When::After(Duration::from_millis(300)),
    );
}

#[test]
fn sigterm_after_the_first_frames() {
    interrupt("sig-term-early", "-TERM", When::Lines(3));
}

#[test]
fn sigint_mid_run() {
    interrupt("sig-int-mid", "-INT", When::Lines(25));
}

#[test]
fn sigterm_mid_run() {
    interrupt("sig-term-mid", "-TERM", When::Lines(40));
}
