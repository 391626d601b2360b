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
        &["--reid", "hist, off or an embedding model"],
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

/// An exit-and-return clip of vtest.avi as `tools/reid/exit_return.py` builds it for the
/// person vigia tracks as id 16 in the continuous video: frames 197-246 (he walks), 394-483
/// (he is away, others walk), 274-373 (he is back). 10 fps, 768 x 576.
fn exit_and_return_clip(video: &std::path::Path, out: &std::path::Path) {
    let segments = [(197, 246), (394, 483), (274, 373)];
    let mut graph = String::new();
    for (i, (a, b)) in segments.iter().enumerate() {
        graph += &format!(
            "[0:v]trim=start_frame={}:end_frame={b},setpts=PTS-STARTPTS[s{i}];",
            a - 1
        );
    }
    graph += "[s0][s1][s2]concat=n=3:v=1[out]";
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
    // By appearance: the strangers are refused, with the scores in the events ...
    let (hist, log) = follow_states(&clip, &[]);
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
