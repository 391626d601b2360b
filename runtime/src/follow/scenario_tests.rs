//! A following scenario on tracks only: two people crossing, the target occluded for one second
//! and coming back with the same id, then the target gone for good.

use crate::detection::BBox;
use crate::track::{Track, TrackState};

use super::{EventReason, FollowEvent, FollowState, Follower, FollowerConfig};

const FPS: f64 = 30.0;
const W: u32 = 640;
const H: u32 = 480;

fn track(id: u64, cx: f32, cy: f32, w: f32, h: f32, vx: f32, state: TrackState) -> Track {
    Track {
        id,
        bbox: BBox::from_cxcywh(cx, cy, w, h),
        score: 0.85,
        class_id: 0,
        state,
        age: 1,
        frames_since_update: if state == TrackState::Tracked { 0 } else { 1 },
        velocity: (vx, 0.0),
    }
}

/// Person A (id 1, the target) walks right, B (id 2) walks left; they cross at t = 2 s.
/// A is occluded (tracker reports its prediction) during [4, 5) s and leaves at 6 s.
fn frame(t: f64) -> Vec<Track> {
    let mut v = Vec::new();
    let walk = |from: f32, speed: f32| from + speed * t.min(4.0) as f32;
    let ax = walk(150.0, 85.0);
    let bx = walk(490.0, -85.0);
    let a_state = if (4.0..5.0).contains(&t) {
        Some(TrackState::Lost)
    } else if t < 6.0 {
        Some(TrackState::Tracked)
    } else {
        None
    };
    if let Some(s) = a_state {
        v.push(track(
            1,
            ax,
            250.0,
            100.0,
            300.0,
            if t < 4.0 { 85.0 } else { 0.0 },
            s,
        ));
    }
    v.push(track(
        2,
        bx,
        255.0,
        92.0,
        280.0,
        if t < 4.0 { -85.0 } else { 0.0 },
        TrackState::Tracked,
    ));
    v
}

#[test]
fn follow_scenario_crossing_occlusion_and_departure() {
    let cfg = FollowerConfig::default();
    let mut f = Follower::new(cfg).unwrap();
    let mut all_events: Vec<FollowEvent> = Vec::new();
    let mut prev_target: Option<u64> = None;
    let mut last_seen_a = 0.0;
    let mut moved_while_locked = false;
    for i in 0..(11.0 * FPS) as usize {
        let t = i as f64 / FPS;
        let tracks = frame(t);
        let out = f.update(&tracks, t, W, H);
        let c = out.command;

        // Never switch person silently: a new target id comes with an event naming it.
        if c.target_id.is_some() && c.target_id != prev_target {
            assert!(
                out.events.iter().any(|e| e.target_id == c.target_id),
                "t={t:.3}: target {:?} -> {:?} without an event",
                prev_target,
                c.target_id
            );
        }
        prev_target = c.target_id.or(prev_target);
        all_events.extend(out.events.iter().copied());

        // Zero motion whenever the state does not allow motion.
        if !c.state.may_move() {
            assert!(c.is_zero_motion(), "t={t:.3} {c:?}");
        }
        if tracks
            .iter()
            .any(|k| k.id == 1 && k.state == TrackState::Tracked)
        {
            last_seen_a = t;
        }

        if (0.2..4.0).contains(&t) {
            // Locked on A through the crossing: the errors are A's, not B's.
            assert_eq!(c.state, FollowState::Locked, "t={t:.3}");
            assert_eq!(c.target_id, Some(1), "t={t:.3}");
            let a = tracks.iter().find(|k| k.id == 1).unwrap();
            let want_ex = (a.bbox.center().0 / W as f32) * 2.0 - 1.0;
            assert!(
                (c.ex - want_ex).abs() < 1e-5,
                "t={t:.3} ex {} != {want_ex}",
                c.ex
            );
            moved_while_locked |= !c.is_zero_motion();
        }
        if (4.0..5.0).contains(&t) && t - last_seen_a < cfg.coast_time - 0.5 / FPS {
            assert_eq!(c.state, FollowState::Coasting, "t={t:.3}");
            assert_eq!(c.target_id, Some(1));
        }
        if (5.0 + 0.5 / FPS..6.0).contains(&t) {
            assert_eq!(
                (c.state, c.target_id),
                (FollowState::Locked, Some(1)),
                "t={t:.3}"
            );
        }
        if t >= 6.0 && t - last_seen_a >= cfg.watchdog && t < last_seen_a + cfg.lost_timeout {
            // Gone for good: exactly zero motion from the watchdog time on, B never taken over.
            assert_eq!(
                (c.yaw_rate, c.pitch_rate, c.forward),
                (0.0, 0.0, 0.0),
                "t={t:.3} {c:?}"
            );
            assert_ne!(c.target_id, Some(2), "t={t:.3}");
        }
    }
    assert!(moved_while_locked, "the follower steered while locked");

    let reasons: Vec<_> = all_events.iter().map(|e| (e.reason, e.target_id)).collect();
    let expected_prefix = [
        (EventReason::CandidateFound, Some(1)),
        (EventReason::Acquired, Some(1)),
        (EventReason::TargetOccluded, Some(1)),
    ];
    assert_eq!(&reasons[..3], &expected_prefix, "{reasons:?}");
    // Came back as itself, maybe after the coast ran out: never a target change to B.
    let back = reasons
        .iter()
        .position(|r| *r == (EventReason::Reacquired, Some(1)))
        .expect("reacquired the same id");
    assert!(reasons[3..back]
        .iter()
        .all(|r| *r == (EventReason::CoastExpired, Some(1))));
    assert!(!reasons
        .iter()
        .any(|(r, _)| matches!(r, EventReason::TargetChanged { .. })));
    // Then gone: occluded, coast expired, timed out after 3 s, and only then B, announced.
    let rest: Vec<_> = reasons[back + 1..].to_vec();
    assert_eq!(
        rest,
        vec![
            (EventReason::TargetOccluded, Some(1)),
            (EventReason::CoastExpired, Some(1)),
            (EventReason::Timeout, Some(1)),
            (EventReason::CandidateFound, Some(2)),
            (EventReason::Acquired, Some(2)),
        ]
    );
    let timeout = all_events
        .iter()
        .find(|e| e.reason == EventReason::Timeout)
        .unwrap();
    assert!(timeout.time >= 6.0 - 1.0 / FPS + cfg.lost_timeout - 1e-9);
    assert_eq!(f.target_id(), Some(2));
}
