//! Re-identification end to end on vtest.avi: the histogram embedding tells its people apart
//! (`vigia eval-reid` on tracks made by `vigia track`), `vigia track` keeps ids with `--reid`,
//! and bad inputs are clear errors.

mod common;

use common::{have_ffmpeg, vigia};

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn the_histogram_embedding_tells_vtest_people_apart() {
    let Some(shared) = common::shared() else {
        return;
    };
    if !have_ffmpeg() {
        return;
    }
    let dir = common::temp_dir("reid-eval");
    let video = shared.join("data/video/vtest.avi");
    let video = video.to_str().unwrap();
    let tracks = dir.join("tracks.txt");
    let o = vigia(&[
        "track",
        video,
        "--reid",
        "off",
        "--max-frames",
        "200",
        "--save-mot",
        tracks.to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = vigia(&[
        "eval-reid",
        video,
        "--tracks",
        tracks.to_str().unwrap(),
        "--to-frame",
        "200",
        "--every",
        "2",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let f = |k: &str| r[k].as_f64().unwrap();
    assert!(f("people") >= 8.0, "{r}");
    // Chance would be about 1 / people; the histogram does far better, and a person is more
    // like themselves than like others on average.
    assert!(f("rank1") > 0.4 && f("map") > 0.35, "{r}");
    assert!(f("mean_same") > f("mean_other") + 0.1, "{r}");
    assert!(f("tracklet_rank1") > 0.4, "{r}");
}

#[test]
fn track_with_reid_reports_ids_like_without() {
    let Some(shared) = common::shared() else {
        return;
    };
    if !have_ffmpeg() {
        return;
    }
    let video = shared.join("data/video/vtest.avi");
    let ids = |reid: &str| -> Vec<(u64, u64)> {
        let o = vigia(&[
            "track",
            video.to_str().unwrap(),
            "--reid",
            reid,
            "--max-frames",
            "30",
            "-q",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .flat_map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                let frame = v["frame"].as_u64().unwrap();
                v["detections"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|d| d["track_id"].as_u64())
                    .map(|id| (frame, id))
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    // Nobody leaves and comes back in one second: the same ids either way.
    let (off, hist) = (ids("off"), ids("hist"));
    assert!(off.len() > 60, "{} track boxes", off.len());
    assert_eq!(off, hist);
    let model = bundled_reid_model();
    assert_eq!(off, ids(&model));
}

#[test]
fn reid_options_and_inputs_give_clear_errors() {
    let check = |args: &[&str], needles: &[&str]| {
        let o = vigia(args);
        let err = stderr(&o);
        assert!(!o.status.success(), "{args:?} succeeded");
        for n in needles {
            assert!(err.contains(n), "{args:?}: {err}");
        }
        assert!(!err.contains("panicked"), "{err}");
    };
    check(
        &["track", "x.mp4", "--reid", "face"],
        &["--reid", "hist, off, reid-vtest-64x128", "embedding model"],
    );
    check(
        &["follow", "x.mp4", "--reid-colour-veto", "2"],
        &["--reid-colour-veto", "outside (0, 1]"],
    );
    check(
        &["track", "x.mp4", "--reid", "/nonexistent/reid.onnx"],
        &["--reid", "/nonexistent/reid.onnx", "no such file"],
    );
    check(
        &["track", "x.mp4", "--reid-memory", "soon"],
        &["--reid-memory", "soon"],
    );
    check(
        &["follow", "x.mp4", "--follow-memory=-3"],
        &["--follow-memory"],
    );
    check(
        &["follow", "x.mp4", "--reid-threshold", "1.5"],
        &["--reid-threshold"],
    );
    check(
        &["eval-reid", "x.mp4", "--tracks", "/nonexistent/tracks.txt"],
        &["/nonexistent/tracks.txt"],
    );
    let dir = common::temp_dir("reid-errors");
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    if let Some(shared) = common::shared() {
        if have_ffmpeg() {
            let video = shared.join("data/video/vtest.avi");
            check(
                &[
                    "eval-reid",
                    video.to_str().unwrap(),
                    "--tracks",
                    empty.to_str().unwrap(),
                    "--to-frame",
                    "5",
                ],
                &["empty.txt", "fewer than two people"],
            );
        }
    }
}

/// The bundled embedding model `vigia-train reid` learnt from vtest.avi frames 1-400.
fn bundled_reid_model() -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../models/reid-vtest-64x128.onnx")
        .to_string_lossy()
        .into_owned()
}

#[test]
fn the_trained_embedding_tells_held_out_vtest_people_apart() {
    let Some(shared) = common::shared() else {
        return;
    };
    if !have_ffmpeg() {
        return;
    }
    let dir = common::temp_dir("reid-model-eval");
    let video = shared.join("data/video/vtest.avi");
    let tracks = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tools/train/tests/data/vtest.tracks.txt");
    let model = bundled_reid_model();
    let score = |reid: &str| -> serde_json::Value {
        let o = vigia(&[
            "eval-reid",
            video.to_str().unwrap(),
            "--tracks",
            tracks.to_str().unwrap(),
            "--reid",
            reid,
            "--from-frame",
            "401",
            "--every",
            "4",
            "--json",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    // Frames 401-795 were held out of its training.
    let r = score(&model);
    let f = |k: &str| r[k].as_f64().unwrap();
    assert!(f("people") >= 10.0, "{r}");
    assert!(f("map") > 0.4 && f("rank1") > 0.4, "{r}");
    assert!(f("mean_same") > f("mean_other") + 0.25, "{r}");
    assert!(
        r["embedder"]
            .as_str()
            .unwrap()
            .contains("reid-vtest-64x128"),
        "{r}"
    );

    // A model without its card, and a card whose model is no embedding, are refused by name.
    let bare = dir.join("bare.onnx");
    std::fs::copy(&model, &bare).unwrap();
    let o = vigia(&[
        "track",
        video.to_str().unwrap(),
        "--reid",
        bare.to_str().unwrap(),
    ]);
    let err = stderr(&o);
    assert!(!o.status.success() && err.contains("bare.toml"), "{err}");
    let detector = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../models/nanodet-m-416.onnx")
        .canonicalize()
        .unwrap();
    let card = dir.join("not-embedding.toml");
    std::fs::write(
        &card,
        format!(
            "name = \"x\"\ntask = \"embed\"\nmodel = {:?}\n[input]\nlayout = \"nchw\"\n\
             width = 416\nheight = 416\nresize = \"stretch\"\n[output]\nfamily = \"embedding\"\n",
            detector.to_str().unwrap()
        ),
    )
    .unwrap();
    let o = vigia(&[
        "eval-reid",
        video.to_str().unwrap(),
        "--tracks",
        tracks.to_str().unwrap(),
        "--reid",
        card.to_str().unwrap(),
    ]);
    let err = stderr(&o);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("not one vector per crop") && !err.contains("panicked"),
        "{err}"
    );
}

/// Video frames `spans` (1-based, inclusive) of `video`, one after the other, into `out` as
/// `tools/reid/exit_return.py` cuts its clips.
fn cut_clip(video: &std::path::Path, spans: &[(u32, u32)], out: &std::path::Path) {
    let mut graph = String::new();
    for (i, (a, b)) in spans.iter().enumerate() {
        graph += &format!(
            "[0:v]trim=start_frame={}:end_frame={b},setpts=PTS-STARTPTS[s{i}];",
            a - 1
        );
    }
    graph += &(0..spans.len())
        .map(|i| format!("[s{i}]"))
        .collect::<String>();
    graph += &format!("concat=n={}:v=1[out]", spans.len());
    let st = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(video)
        .args(["-filter_complex", &graph, "-map", "[out]"])
        .args(["-c:v", "libx264", "-preset", "veryfast", "-qp", "10"])
        .args(["-pix_fmt", "yuv420p"])
        .arg(out)
        .status()
        .unwrap();
    assert!(st.success());
}

/// An exit-and-return clip of vtest.avi as `tools/reid/exit_return.py` builds it for the
/// person vigia tracks as id 16 in the continuous video: frames 197-246 (he walks), 394-483
/// (he is away, others walk), 274-373 (he is back). 10 fps, 768 x 576.
fn exit_and_return_clip(video: &std::path::Path, out: &std::path::Path) {
    cut_clip(video, &[(197, 246), (394, 483), (274, 373)], out);
}

/// The follower's commands as (frame, state, target id) from `vigia follow` JSON lines.
type FollowStates = Vec<(usize, String, Option<u64>)>;

fn follow_states(clip: &std::path::Path, extra: &[&str]) -> (FollowStates, String) {
    let o = common::vigia_cmd()
        .arg("follow")
        .arg(clip)
        .args(["--target", "point:0.8974,0.2196", "-q"])
        .args(extra)
        .output()
        .unwrap();
    let log = stderr(&o);
    assert!(o.status.success(), "{log}");
    let states = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["type"] == "command" && v["reason"] == "follow").then(|| {
                (
                    (v["time"].as_f64().unwrap() * 10.0).round() as usize,
                    v["state"].as_str().unwrap().to_string(),
                    v["target_id"].as_u64(),
                )
            })
        })
        .collect();
    (states, log)
}

#[test]
fn the_follower_refuses_strangers_while_the_target_is_away_and_knows_him_when_back() {
    let Some(shared) = common::shared() else {
        return;
    };
    if !have_ffmpeg() {
        return;
    }
    let dir = common::temp_dir("reid-exit-return");
    let clip = dir.join("away.mp4");
    exit_and_return_clip(&shared.join("data/video/vtest.avi"), &clip);
    let locked = |states: &FollowStates, frames: std::ops::Range<usize>| {
        states
            .iter()
            .filter(|(f, s, _)| frames.contains(f) && s == "locked")
            .count()
    };
    // Motion only: once he is gone, whoever walks where he was is followed.
    let (off, _) = follow_states(&clip, &["--reid", "off"]);
    assert!(
        locked(&off, 0..50) >= 40,
        "locked {} of the first 50 frames",
        locked(&off, 0..50)
    );
    assert!(locked(&off, 50..140) > 20, "{off:?}");
    // By colour histograms: the strangers are refused, with the scores in the events ...
    let (hist, log) = follow_states(&clip, &["--reid", "hist"]);
    assert!(
        locked(&hist, 0..50) >= 40,
        "locked {} of the first 50 frames",
        locked(&hist, 0..50)
    );
    assert_eq!(locked(&hist, 50..140), 0, "{log}");
    assert!(
        log.contains("candidate_rejected") && log.contains("similarity"),
        "{log}"
    );
    // ... and after his return (3 s to settle) he is followed again, under his first id.
    let first_id = hist.iter().find(|(_, s, _)| s == "locked").unwrap().2;
    let on_him = hist
        .iter()
        .filter(|(f, s, id)| (170..240).contains(f) && s == "locked" && *id == first_id)
        .count();
    assert!(
        on_him >= 56,
        "on him {on_him} of the last 70 frames: {hist:?}"
    );
    assert!(log.contains("reacquired"), "{log}");
}

/// A real exit and return of vtest.avi, as `tools/reid/exit_return.py` builds it for the man
/// in the red-and-navy puffer jacket (motion tracks 16, then 33, of `tools/reid/vtest.tracks.txt`):
/// video frames 271-473 (he walks, leaves at 374; others walk while he is away, among them a
/// woman in a red jacket) and 564-673 (he is back from 574). 313 frames at 10 fps.
fn puffer_jacket_clip(video: &std::path::Path, out: &std::path::Path) {
    cut_clip(video, &[(271, 473), (564, 673)], out);
}

/// Boxes `[x1, y1, x2, y2]` of motion track `id` by video frame, from vtest.avi's tracks.
fn vtest_track(id: u64) -> std::collections::HashMap<usize, [f32; 4]> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/reid/vtest.tracks.txt");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let p: Vec<f32> = l.split(',').map(|x| x.parse().unwrap()).collect();
            (p[1] as u64 == id).then(|| (p[0] as usize, [p[2], p[3], p[2] + p[4], p[3] + p[5]]))
        })
        .collect()
}

fn iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let ix = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let iy = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = ix * iy;
    inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
}

#[test]
fn by_default_the_follower_stays_off_a_look_alike_and_knows_him_when_back() {
    let Some(shared) = common::shared() else {
        return;
    };
    if !have_ffmpeg() {
        return;
    }
    let dir = common::temp_dir("reid-look-alike");
    let clip = dir.join("puffer.mp4");
    puffer_jacket_clip(&shared.join("data/video/vtest.avi"), &clip);
    let o = common::vigia_cmd()
        .arg("follow")
        .arg(&clip)
        .args(["--target", "point:0.7961,0.2954"])
        .output()
        .unwrap();
    let log = stderr(&o);
    assert!(o.status.success(), "{log}");
    // Default settings: the bundled embedding model and the colour veto.
    assert!(
        log.contains("reid-vtest-64x128") && log.contains("colour veto 0.15"),
        "{log}"
    );
    // (clip frame, locked box in pixels) per follow command; events apart.
    let mut locked = Vec::new();
    let mut events = Vec::new();
    for l in String::from_utf8_lossy(&o.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        if v["type"] == "event" {
            events.push(v);
        } else if v["type"] == "command" && v["reason"] == "follow" {
            let frame = (v["time"].as_f64().unwrap() * 10.0).round() as usize;
            let b = &v["target_box"];
            if v["state"] == "locked" && b.is_array() {
                let s = [768.0, 576.0, 768.0, 576.0];
                let b: [f32; 4] = std::array::from_fn(|k| b[k].as_f64().unwrap() as f32 * s[k]);
                locked.push((frame, b));
            }
        }
    }
    let count =
        |frames: std::ops::Range<usize>| locked.iter().filter(|(f, _)| frames.contains(f)).count();
    assert!(
        count(0..103) >= 82,
        "locked {} of 103 frames before",
        count(0..103)
    );
    // While he is away (video frames 384-473) nobody is followed: the woman in red who walks
    // in is refused for where her red is (the embedding alone scores her 0.39-0.77).
    assert_eq!(count(113..203), 0, "{events:#?}");
    assert!(
        events
            .iter()
            .any(|e| e["appearance"]["colour_conflict"]["hue"] == "red"),
        "{events:#?}"
    );
    // Back (video frame 574 on, 3 s to settle): on him, as his ground-truth track says.
    let him = vtest_track(33);
    let on_him = |f: usize, b: [f32; 4]| him.get(&(574 + f - 213)).map(|&h| iou(b, h) >= 0.5);
    let settled = locked
        .iter()
        .filter(|&&(f, b)| (243..313).contains(&f) && on_him(f, b) == Some(true))
        .count();
    assert!(
        settled >= 56,
        "on him {settled} of the last 70 frames: {events:#?}"
    );
    let elsewhere = locked
        .iter()
        .filter(|&&(f, b)| (213..313).contains(&f) && on_him(f, b) == Some(false))
        .count();
    assert_eq!(elsewhere, 0, "{events:#?}");
}
