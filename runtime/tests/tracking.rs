//! ByteTrack on the synthetic scenes with simulated noisy detections: identities through a
//! crossing, an occlusion, an exit and re-entry, dropped frames, and id bookkeeping.

use std::collections::{BTreeMap, BTreeSet};

use vigia::source::synthetic::{SyntheticScene, DETECT_VISIBILITY};
use vigia::track::assignment::linear_assignment;
use vigia::track::bytetrack::{ByteTrackConfig, ByteTracker};
use vigia::track::{Track, TrackState, Tracker};
use vigia::{BBox, Detection};

/// Detection noise used throughout: 3 px jitter per edge, 5% misses, 0.3 false positives per frame.
const JITTER: f32 = 3.0;
const MISS: f32 = 0.05;
const FALSE_POSITIVES: f32 = 0.3;

/// What happened to each person and track over a run.
struct Run {
    /// Per person: the id of the tracked track matched to it in each frame (None: unmatched or
    /// not visible enough); indexed by frame number.
    ids: BTreeMap<u64, Vec<Option<u64>>>,
    /// Per frame: every reported track.
    reported: Vec<Vec<Track>>,
    next_id: u64,
}

impl Run {
    /// Distinct ids a person was matched to, in order of first appearance.
    fn id_sequence(&self, person: u64) -> Vec<u64> {
        let mut seq = Vec::new();
        for id in self.ids[&person].iter().flatten() {
            if seq.last() != Some(id) {
                seq.push(*id);
            }
        }
        seq
    }
}

/// Runs a tracker over frames `frames` of `scene` (frame time = index / fps) and matches its
/// tracked output to the people at least `DETECT_VISIBILITY` visible by optimal assignment at
/// IoU >= 0.5 (boxes clipped to the image).
fn run(
    scene: &SyntheticScene,
    config: ByteTrackConfig,
    det_seed: u64,
    frames: impl Iterator<Item = u64>,
) -> Run {
    let c = scene.config();
    let (w, h, fps) = (c.width as f32, c.height as f32, c.fps);
    let mut tracker = ByteTracker::new(config).unwrap();
    let mut ids: BTreeMap<u64, Vec<Option<u64>>> = BTreeMap::new();
    let mut reported = Vec::new();
    for f in frames {
        let dets = scene.detections_with_noise(f, det_seed, JITTER, MISS, FALSE_POSITIVES);
        let out = tracker.update(&dets, f as f64 / fps).to_vec();
        // Only people visible enough to be detected with a high score are scored: one hidden
        // behind another has no box of its own to follow.
        let gt: Vec<_> = scene
            .ground_truth(f)
            .into_iter()
            .filter(|g| g.visibility >= DETECT_VISIBILITY)
            .collect();
        let tracked: Vec<&Track> = out
            .iter()
            .filter(|t| t.state == TrackState::Tracked)
            .collect();
        let cost: Vec<f32> = gt
            .iter()
            .flat_map(|g| {
                let b = g.bbox.clip(w, h);
                tracked.iter().map(move |t| 1.0 - b.iou(&t.bbox))
            })
            .collect();
        let (matches, _, _) = linear_assignment(&cost, gt.len(), tracked.len(), 0.5);
        for g in scene.ground_truth(f) {
            let id = gt
                .iter()
                .position(|v| v.id == g.id)
                .and_then(|k| matches.iter().find(|m| m.0 == k))
                .map(|&(_, j)| tracked[j].id);
            ids.entry(g.id)
                .or_insert_with(|| vec![None; c.frames as usize])[f as usize] = id;
        }
        reported.push(out);
    }
    Run {
        ids,
        reported,
        next_id: tracker.next_id(),
    }
}

fn scene(spec: &str) -> SyntheticScene {
    SyntheticScene::from_spec(spec).unwrap()
}

/// Frames in which `person` is at least `DETECT_VISIBILITY` visible.
fn visible_frames(scene: &SyntheticScene, person: u64) -> Vec<u64> {
    (0..scene.config().frames)
        .filter(|&f| {
            scene
                .ground_truth(f)
                .iter()
                .any(|g| g.id == person && g.visibility >= DETECT_VISIBILITY)
        })
        .collect()
}

#[test]
fn crossing_keeps_both_identities() {
    let s = scene("synthetic://?scene=crossing&frames=150");
    for det_seed in [1, 2, 3, 4] {
        let r = run(&s, ByteTrackConfig::default(), det_seed, 0..150);
        // Person 1 (behind, walking right) is always track 1, person 2 always track 2, before,
        // during and after the crossing.
        assert_eq!(r.id_sequence(1), vec![1], "seed {det_seed}");
        assert_eq!(r.id_sequence(2), vec![2], "seed {det_seed}");
        assert_eq!(
            r.next_id, 3,
            "seed {det_seed}: no other track was confirmed"
        );
        // Both are followed through most of the time they are well visible.
        for person in [1, 2] {
            let frames = visible_frames(&s, person);
            let hit = frames
                .iter()
                .filter(|&&f| r.ids[&person][f as usize].is_some())
                .count();
            assert!(
                hit as f64 >= 0.85 * frames.len() as f64,
                "seed {det_seed} person {person}: {hit} of {}",
                frames.len()
            );
        }
    }
}

#[test]
fn crossing_survives_dropped_frames() {
    // Every third frame never reaches the tracker; frame times still tell it how far to predict.
    let s = scene("synthetic://?scene=crossing&frames=150");
    let r = run(
        &s,
        ByteTrackConfig::default(),
        6,
        (0..150).filter(|f| f % 3 != 2),
    );
    assert_eq!(r.id_sequence(1), vec![1]);
    assert_eq!(r.id_sequence(2), vec![2]);
}

#[test]
fn one_second_occlusion_keeps_the_id_with_a_long_enough_buffer() {
    let s = scene("synthetic://?scene=occlusion&fps=30&frames=300");
    // Fully hidden for 30 frames, plus the frames around them where less than half shows.
    let hidden: Vec<u64> = (0..300)
        .filter(|&f| {
            let g = s.ground_truth(f)[0];
            g.visibility == 0.0 && g.bbox.x1 > 0.0 && g.bbox.x2 < 640.0
        })
        .collect();
    assert_eq!(hidden.len(), 30);
    let after = hidden[29] + 25;

    let long = ByteTrackConfig {
        track_buffer: 60,
        ..Default::default()
    };
    for det_seed in [1, 2, 3] {
        let r = run(&s, long, det_seed, 0..300);
        assert_eq!(r.id_sequence(1), vec![1], "seed {det_seed}");
        assert_eq!(r.ids[&1][after as usize], Some(1), "seed {det_seed}");
    }

    // With ByteTrack's default 30-frame buffer the track expires before the person shows
    // again (about 40 frames without a usable detection), so a new id is issued.
    let r = run(&s, ByteTrackConfig::default(), 1, 0..300);
    assert_eq!(r.id_sequence(1), vec![1, 2]);
}

#[test]
fn reentering_the_frame_gives_a_new_id_whatever_the_buffer() {
    // The person walks out on the right, stays outside for 0.5 s and walks back in. ByteTrack
    // associates by IoU with a constant-velocity prediction: the lost track keeps drifting
    // outwards, so the returning person never overlaps it and gets a new id, with a short or a
    // long buffer. The buffer only decides how long the stale track is kept (and, with
    // `report_lost`, reported as lost).
    let s = scene("synthetic://?scene=reenter&away=0.5&frames=300");
    let back = (1..300u64)
        .find(|&f| {
            s.ground_truth(f - 1)[0].visibility == 0.0 && s.ground_truth(f)[0].visibility > 0.0
        })
        .unwrap();
    for buffer in [10, 300] {
        let config = ByteTrackConfig {
            track_buffer: buffer,
            report_lost: true,
            ..Default::default()
        };
        let r = run(&s, config, 1, 0..300);
        assert_eq!(r.id_sequence(1), vec![1, 2], "buffer {buffer}");
        let old_still_held = r.reported[back as usize]
            .iter()
            .any(|t| t.id == 1 && t.state == TrackState::Lost);
        assert_eq!(old_still_held, buffer == 300, "buffer {buffer}");
    }
}

#[test]
fn ids_are_contiguous_increasing_and_never_reused() {
    for spec in [
        "synthetic://?scene=random&people=8&seed=5&frames=300",
        "synthetic://?scene=random&people=4&seed=9&frames=300",
        "synthetic://?scene=reenter&away=1&frames=300",
        "synthetic://?scene=occlusion&frames=300",
    ] {
        let s = scene(spec);
        let config = ByteTrackConfig {
            report_lost: true,
            ..Default::default()
        };
        // Many false positives: unconfirmed tracks that die must not use up ids.
        let mut tracker = ByteTracker::new(config).unwrap();
        let mut first_seen: BTreeMap<u64, usize> = BTreeMap::new();
        let mut last_seen: BTreeMap<u64, usize> = BTreeMap::new();
        let mut frames_seen: BTreeMap<u64, usize> = BTreeMap::new();
        for f in 0..300u64 {
            let dets = s.detections_with_noise(f, 7, JITTER, 0.1, 2.0);
            let out = tracker.update(&dets, f as f64 / 30.0);
            let ids: BTreeSet<u64> = out.iter().map(|t| t.id).collect();
            assert_eq!(ids.len(), out.len(), "{spec}: duplicate id in one frame");
            for id in ids {
                first_seen.entry(id).or_insert(f as usize);
                last_seen.insert(id, f as usize);
                *frames_seen.entry(id).or_default() += 1;
            }
        }
        let ids: Vec<u64> = first_seen.keys().copied().collect();
        assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>(), "{spec}");
        assert_eq!(tracker.next_id(), ids.len() as u64 + 1, "{spec}");
        // Ids appear in increasing order of first appearance.
        let firsts: Vec<usize> = ids.iter().map(|id| first_seen[id]).collect();
        assert!(
            firsts.windows(2).all(|w| w[0] <= w[1]),
            "{spec}: {firsts:?}"
        );
        // Reported (tracked or lost) in one unbroken run: once gone, an id never returns.
        for id in &ids {
            assert_eq!(
                frames_seen[id],
                last_seen[id] - first_seen[id] + 1,
                "{spec}: id {id} came back"
            );
        }
    }
}

#[test]
fn reset_keeps_counting_ids() {
    let s = scene("synthetic://?scene=crossing&frames=150");
    let mut tracker = ByteTracker::default();
    for f in 0..10 {
        tracker.update(
            &s.detections_with_noise(f, 1, 0.0, 0.0, 0.0),
            f as f64 / 30.0,
        );
    }
    assert_eq!(tracker.next_id(), 3);
    tracker.reset();
    let out = tracker.update(&s.detections_with_noise(10, 1, 0.0, 0.0, 0.0), 10.0 / 30.0);
    let ids: Vec<u64> = out.iter().map(|t| t.id).collect();
    assert_eq!(ids, vec![3, 4]);
}

#[test]
fn hundred_detections_keep_a_hundred_tracks_without_spurious_ids() {
    // 100 people on a 10 x 10 grid over a 1920 x 1080 frame, each circling its cell, with
    // scores spread over the high and low bands and a few boxes missing per frame.
    let frames: Vec<Vec<Detection>> = (0..200u64)
        .map(|f| {
            (0..100u64)
                .filter_map(|i| {
                    let hash = (i * 7919 + f * 104_729).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
                    if hash % 50 == 0 {
                        return None;
                    }
                    let t = f as f32 / 30.0 + i as f32;
                    let cx = 96.0 + 192.0 * (i % 10) as f32 + 30.0 * t.sin();
                    let cy = 54.0 + 108.0 * (i / 10) as f32 + 10.0 * t.cos();
                    Some(Detection {
                        bbox: BBox::from_cxcywh(cx, cy, 40.0, 90.0),
                        score: 0.3 + 0.65 * (hash % 1000) as f32 / 1000.0,
                        class_id: 0,
                    })
                })
                .collect()
        })
        .collect();
    let mean = frames.iter().map(Vec::len).sum::<usize>() / frames.len();
    assert!(mean >= 95, "{mean} detections per frame");
    let mut tracker = ByteTracker::default();
    // Speed is measured by `cargo bench -p vigia-benches --bench tracker`, not here.
    for (f, d) in frames.iter().enumerate().take(20) {
        tracker.update(d, f as f64 / 30.0);
    }
    let mut reported = 0;
    for (f, d) in frames.iter().enumerate().skip(20) {
        reported += tracker.update(d, f as f64 / 30.0).len();
    }
    assert!(reported / 180 >= 90);
    assert!(tracker.next_id() <= 101, "ids: {}", tracker.next_id());
}
