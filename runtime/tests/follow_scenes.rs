//! The whole chain on the synthetic scenes: noisy detections → ByteTrack → follower. The follower
//! stays on its target through a crossing, coasts and reacquires the same person after a 1 s
//! occlusion, and commands exactly zero motion within the watchdog time once the target is gone.

use vigia::follow::{FollowState, Follower, FollowerConfig, TargetPolicy};
use vigia::source::synthetic::SyntheticScene;
use vigia::track::bytetrack::{ByteTrackConfig, ByteTracker};
use vigia::track::Tracker;

struct Step {
    time: f64,
    state: FollowState,
    target: Option<u64>,
    motion: [f32; 3],
    events: usize,
}

fn follow(spec: &str, tracker: ByteTrackConfig, policy: TargetPolicy, frames: u64) -> Vec<Step> {
    let scene = SyntheticScene::from_spec(spec).unwrap();
    let c = scene.config().clone();
    let mut tracker = ByteTracker::new(ByteTrackConfig {
        frame_rate: c.fps,
        ..tracker
    })
    .unwrap();
    let mut follower = Follower::new(FollowerConfig {
        policy,
        ..FollowerConfig::default()
    })
    .unwrap();
    (0..frames)
        .map(|f| {
            let time = f as f64 / c.fps;
            let dets = scene.detections_with_noise(f, 3, 3.0, 0.03, 0.2);
            let tracks = tracker.update(&dets, time).to_vec();
            let out = follower.update(&tracks, time, c.width, c.height);
            let cmd = out.command;
            Step {
                time,
                state: cmd.state,
                target: cmd.target_id,
                motion: [cmd.yaw_rate, cmd.pitch_rate, cmd.forward],
                events: out.events.len(),
            }
        })
        .collect()
}

fn locked_ids(steps: &[Step]) -> Vec<u64> {
    let mut ids: Vec<u64> = steps
        .iter()
        .filter(|s| s.state == FollowState::Locked)
        .filter_map(|s| s.target)
        .collect();
    ids.dedup();
    ids
}

#[test]
fn follower_stays_on_its_target_through_a_crossing() {
    let steps = follow(
        "synthetic://?scene=crossing&frames=150",
        ByteTrackConfig::default(),
        TargetPolicy::TrackId(1),
        150,
    );
    assert_eq!(
        locked_ids(&steps),
        vec![1],
        "switched person during the crossing"
    );
    let locked = steps
        .iter()
        .filter(|s| s.state == FollowState::Locked)
        .count();
    assert!(locked > 100, "locked only {locked} of 150 frames");
    // While locked it steers (the target walks across the image).
    assert!(steps
        .iter()
        .any(|s| s.state == FollowState::Locked && s.motion[0].abs() > 0.05));
}

#[test]
fn follower_coasts_then_reacquires_the_same_person_after_a_one_second_occlusion() {
    let tracker = ByteTrackConfig {
        track_buffer: 60,
        report_lost: true,
        ..ByteTrackConfig::default()
    };
    let steps = follow(
        "synthetic://?scene=occlusion&frames=240",
        tracker,
        TargetPolicy::Largest,
        240,
    );
    let states: Vec<FollowState> = {
        let mut v: Vec<FollowState> = steps.iter().map(|s| s.state).collect();
        v.dedup();
        v
    };
    let locked_at = states
        .iter()
        .position(|s| *s == FollowState::Locked)
        .unwrap();
    let coast_at = states
        .iter()
        .position(|s| *s == FollowState::Coasting)
        .unwrap();
    assert!(coast_at > locked_at, "{states:?}");
    assert!(
        states[coast_at..].contains(&FollowState::Locked),
        "never reacquired: {states:?}"
    );
    assert_eq!(
        locked_ids(&steps).len(),
        1,
        "a different person was locked after the occlusion"
    );
    // Coasting commands decay: the last coasting command is smaller than the first.
    let coasting: Vec<&Step> = steps
        .iter()
        .filter(|s| s.state == FollowState::Coasting)
        .collect();
    let mag = |s: &Step| s.motion.iter().map(|m| m.abs()).sum::<f32>();
    assert!(mag(coasting.last().unwrap()) <= mag(coasting[0]) + 1e-6);
    // Every state change came with an event.
    assert!(steps
        .windows(2)
        .all(|w| w[0].state == w[1].state || w[1].events > 0));
}

#[test]
fn follower_commands_zero_motion_within_the_watchdog_time_when_the_target_is_gone() {
    // The person walks out of the frame; without lost-track predictions there is nothing left
    // to steer on.
    let steps = follow(
        "synthetic://?scene=reenter&frames=200&away=3",
        ByteTrackConfig::default(),
        TargetPolicy::Largest,
        200,
    );
    let last_seen = steps
        .iter()
        .rposition(|s| s.state == FollowState::Locked)
        .expect("was locked");
    let gone_at = steps[last_seen].time;
    let watchdog = FollowerConfig::default().watchdog;
    for s in &steps[last_seen + 1..] {
        if s.state == FollowState::Locked {
            break; // came back
        }
        if s.time - gone_at >= watchdog {
            assert_eq!(
                s.motion,
                [0.0; 3],
                "moving {:.2} s after the target left",
                s.time - gone_at
            );
        }
    }
    assert!(steps[last_seen + 1..]
        .iter()
        .any(|s| s.time - gone_at >= watchdog));
}
