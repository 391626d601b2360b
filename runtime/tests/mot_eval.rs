//! `vigia::mot::evaluate` against py-motmetrics on generated sequences.
//!
//! Needs a Python with `motmetrics` importable: `$VIGIA_PYTHON`, else `python3`. Without one the
//! tests print why and pass (CI installs it; see `tools/eval/motmetrics_reference.py`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use vigia::mot::{evaluate, read_mot, write_mot_line, write_mot_row, MotMetrics, MotRow};
use vigia::source::synthetic::SyntheticScene;
use vigia::track::bytetrack::{ByteTrackConfig, ByteTracker};
use vigia::track::Tracker;

/// A Python that imports motmetrics, or the reason there is none.
fn python() -> Result<String, String> {
    let py = std::env::var("VIGIA_PYTHON").unwrap_or_else(|_| "python3".into());
    match Command::new(&py).args(["-c", "import motmetrics"]).output() {
        Ok(o) if o.status.success() => Ok(py),
        Ok(o) => Err(format!(
            "{py} cannot import motmetrics ({}); set VIGIA_PYTHON to a Python that can",
            String::from_utf8_lossy(&o.stderr)
                .trim()
                .lines()
                .last()
                .unwrap_or("")
        )),
        Err(e) => Err(format!("cannot run {py}: {e}")),
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/eval/motmetrics_reference.py")
}

fn work_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vigia-mot-eval-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the reference script and returns its JSON.
fn reference(py: &str, gt: &Path, hyp: &Path) -> serde_json::Value {
    let out = Command::new(py)
        .arg(script())
        .arg(gt)
        .arg(hyp)
        .output()
        .expect("run motmetrics_reference.py");
    assert!(
        out.status.success(),
        "motmetrics_reference.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON from motmetrics_reference.py")
}

/// Asserts that `ours` equals py-motmetrics' numbers (ratios to 3 decimals, counts exactly).
fn compare(name: &str, ours: &MotMetrics, reference: &serde_json::Value) {
    let float = |key: &str| reference[key].as_f64().unwrap_or(f64::NAN);
    let count = |key: &str| reference[key].as_u64().unwrap_or(u64::MAX);
    println!("{name}: vigia    {ours:?}");
    println!("{name}: motmetrics {reference}");
    let ratios = [
        ("mota", ours.mota),
        ("motp", ours.motp),
        ("idf1", ours.idf1),
        ("idp", ours.idp),
        ("idr", ours.idr),
        ("precision", ours.precision),
        ("recall", ours.recall),
    ];
    for (key, v) in ratios {
        assert!(
            (v - float(key)).abs() < 5e-4,
            "{name}: {key} {v} vs py-motmetrics {}",
            float(key)
        );
    }
    let counts = [
        ("num_switches", ours.id_switches),
        ("num_false_positives", ours.fp),
        ("num_misses", ours.fn_),
        ("num_objects", ours.num_gt),
        ("num_predictions", ours.num_hyp),
        ("num_matches", ours.num_matches),
        ("num_frames", ours.num_frames),
        ("num_unique_objects", ours.num_unique_objects),
        ("mostly_tracked", ours.mostly_tracked),
        ("partially_tracked", ours.partially_tracked),
        ("mostly_lost", ours.mostly_lost),
        ("num_fragmentations", ours.fragmentations),
        ("idtp", ours.idtp),
        ("idfp", ours.idfp),
        ("idfn", ours.idfn),
    ];
    for (key, v) in counts {
        assert_eq!(v, count(key), "{name}: {key}");
    }
}

/// Ground truth and ByteTrack output on noisy detections of `spec`, written as MOT files.
fn tracked_sequence(
    dir: &Path,
    spec: &str,
    config: ByteTrackConfig,
    miss: f32,
    false_positives: f32,
) -> (PathBuf, PathBuf) {
    let scene = SyntheticScene::from_spec(spec).unwrap();
    let frames = scene.config().frames;
    let fps = scene.config().fps;
    let gt = dir.join("gt.txt");
    scene.write_mot_gt(&gt, frames).unwrap();
    let hyp = dir.join("hyp.txt");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&hyp).unwrap());
    let mut tracker = ByteTracker::new(config).unwrap();
    for f in 0..frames {
        let dets = scene.detections_with_noise(f, 11, 4.0, miss, false_positives);
        for t in tracker.update(&dets, f as f64 / fps) {
            write_mot_line(&mut w, f + 1, t).unwrap();
        }
    }
    drop(w);
    (gt, hyp)
}

/// Runs one comparison; returns false when skipped.
fn check(name: &str, gt: &Path, hyp: &Path) -> bool {
    let py = match python() {
        Ok(py) => py,
        Err(why) => {
            common::skip(format!("skipping the py-motmetrics comparison: {why}"));
            return false;
        }
    };
    let ours = evaluate(&read_mot(gt).unwrap(), &read_mot(hyp).unwrap(), 0.5);
    compare(name, &ours, &reference(&py, gt, hyp));
    true
}

#[test]
fn bytetrack_on_crossing_matches_py_motmetrics() {
    let dir = work_dir("crossing");
    let (gt, hyp) = tracked_sequence(
        &dir,
        "synthetic://?scene=crossing&frames=150",
        ByteTrackConfig::default(),
        0.05,
        0.3,
    );
    check("crossing", &gt, &hyp);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bytetrack_on_a_busy_random_scene_matches_py_motmetrics() {
    let dir = work_dir("random");
    let (gt, hyp) = tracked_sequence(
        &dir,
        "synthetic://?scene=random&people=10&seed=5&frames=300",
        ByteTrackConfig::default(),
        0.15,
        1.5,
    );
    if check("random", &gt, &hyp) {
        // The scene is hard enough to exercise every kind of event.
        let m = evaluate(&read_mot(&gt).unwrap(), &read_mot(&hyp).unwrap(), 0.5);
        assert!(m.id_switches > 0 && m.fp > 0 && m.fn_ > 0, "{m:?}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bytetrack_through_occlusion_matches_py_motmetrics() {
    let dir = work_dir("occlusion");
    let (gt, hyp) = tracked_sequence(
        &dir,
        "synthetic://?scene=occlusion&frames=300",
        ByteTrackConfig::default(),
        0.05,
        0.5,
    );
    check("occlusion", &gt, &hyp);
    std::fs::remove_dir_all(&dir).ok();
}

/// A hand-made hypothesis from the ground truth: shifted boxes, two identities swapped for a
/// while, a track handed over to another person, dropped rows and spurious boxes.
fn perturbed(gt: &[MotRow]) -> Vec<MotRow> {
    let mut out = Vec::new();
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    for r in gt {
        let u = next();
        if u < 0.08 || r.visibility < 0.2 {
            continue; // missed
        }
        let mut h = *r;
        h.id = 100 + r.id;
        // Identities 1 and 2 swapped from frame 80 to 160.
        if (80..160).contains(&r.frame) && (r.id == 1 || r.id == 2) {
            h.id = 100 + 3 - r.id;
        }
        // Person 3's track continues as a brand-new id after frame 200.
        if r.id == 3 && r.frame > 200 {
            h.id = 999;
        }
        h.x += (next() - 0.5) * 12.0;
        h.y += (next() - 0.5) * 12.0;
        h.w *= 0.9 + 0.2 * next();
        h.h *= 0.9 + 0.2 * next();
        h.conf = 0.5 + 0.5 * next();
        h.class = -1.0;
        h.visibility = -1.0;
        out.push(h);
        if next() < 0.05 {
            // A spurious box somewhere else in the frame.
            let mut fp = h;
            fp.id = 500 + (next() * 5.0) as i64;
            fp.x = next() * 560.0;
            fp.y = next() * 300.0;
            out.push(fp);
        }
    }
    out
}

#[test]
fn hand_perturbed_hypothesis_matches_py_motmetrics() {
    let dir = work_dir("perturbed");
    let scene =
        SyntheticScene::from_spec("synthetic://?scene=random&people=6&seed=21&frames=300").unwrap();
    let gt_path = dir.join("gt.txt");
    scene.write_mot_gt(&gt_path, 300).unwrap();
    let gt = read_mot(&gt_path).unwrap();
    let hyp = perturbed(&gt);
    let hyp_path = dir.join("hyp.txt");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&hyp_path).unwrap());
    for r in &hyp {
        write_mot_row(&mut w, r).unwrap();
    }
    drop(w);
    if check("perturbed", &gt_path, &hyp_path) {
        let m = evaluate(&gt, &read_mot(&hyp_path).unwrap(), 0.5);
        assert!(m.id_switches >= 3, "{m:?}");
        assert!(m.fp > 0 && m.fn_ > 0 && m.fragmentations > 0, "{m:?}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn perfect_hypothesis_scores_one_in_both() {
    let dir = work_dir("perfect");
    let scene = SyntheticScene::from_spec("synthetic://?scene=crossing&frames=120").unwrap();
    let gt_path = dir.join("gt.txt");
    scene.write_mot_gt(&gt_path, 120).unwrap();
    let m = evaluate(
        &read_mot(&gt_path).unwrap(),
        &read_mot(&gt_path).unwrap(),
        0.5,
    );
    assert_eq!((m.mota, m.idf1, m.id_switches), (1.0, 1.0, 0));
    check("perfect", &gt_path, &gt_path);
    std::fs::remove_dir_all(&dir).ok();
}
