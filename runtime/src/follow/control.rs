//! The follower: lock state machine plus one PID per axis, turning tracks into commands.

use crate::error::{Error, Result};
use crate::track::appearance::Appearances;
use crate::track::Track;

use super::appearance_match::AppearanceGate;
use super::pid::{Pid, PidGains};
use super::state::{LockMachine, LockSettings, LockState, ReacquireGate, TargetSource, TargetView};
use super::target::TargetPolicy;
use super::{Command, CommandReason, CommandSeq, FollowEvent, FollowOutput, FollowState};

/// Everything the follower needs; the defaults suit a person at walking pace in a 30 fps stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FollowerConfig {
    /// Who to follow (`--target`).
    pub policy: TargetPolicy,
    /// Class id of persons in the detector's labels (0 for COCO).
    pub class_id: usize,
    /// Consecutive frames a candidate must persist before the lock.
    pub acquire_frames: u32,
    /// Seconds of coasting on the prediction, commands decaying to zero over it.
    pub coast_time: f64,
    /// Seconds after the last sighting at which the target is given up.
    pub lost_timeout: f64,
    /// Seconds without a fresh command after which the watchdog stops; also the longest time
    /// the follower steers without any measurement or prediction of the target.
    pub watchdog: f64,
    /// Desired target box height as a fraction of the frame height (the following distance).
    pub target_height: f32,
    /// Yaw axis gains (horizontal error).
    pub yaw: PidGains,
    /// Pitch / vertical axis gains (vertical error).
    pub pitch: PidGains,
    /// Forward axis gains (size error).
    pub forward: PidGains,
    /// Gates for a new track taking over a target that did not come back.
    pub gate: ReacquireGate,
    /// The appearance test that replaces the gates when the tracker provides appearances.
    pub appearance: AppearanceGate,
}

impl Default for FollowerConfig {
    fn default() -> Self {
        FollowerConfig {
            policy: TargetPolicy::Largest,
            class_id: 0,
            acquire_frames: 5,
            coast_time: 1.0,
            lost_timeout: 3.0,
            watchdog: 0.3,
            target_height: 0.5,
            yaw: PidGains {
                kp: 1.2,
                ki: 0.1,
                kd: 0.05,
                deadband: 0.03,
                integral_limit: 0.3,
                output_limit: 1.0,
                slew_rate: 4.0,
                derivative_tau: 0.05,
                max_dt: 0.5,
            },
            pitch: PidGains {
                kp: 1.0,
                ki: 0.05,
                kd: 0.05,
                deadband: 0.05,
                integral_limit: 0.2,
                output_limit: 1.0,
                slew_rate: 4.0,
                derivative_tau: 0.05,
                max_dt: 0.5,
            },
            forward: PidGains {
                kp: 2.0,
                ki: 0.0,
                kd: 0.1,
                deadband: 0.03,
                integral_limit: 0.2,
                output_limit: 1.0,
                slew_rate: 2.0,
                derivative_tau: 0.1,
                max_dt: 0.5,
            },
            gate: ReacquireGate::default(),
            appearance: AppearanceGate::default(),
        }
    }
}

fn option_error(option: &str, reason: String) -> Error {
    Error::Option {
        option: option.to_string(),
        reason,
    }
}

impl FollowerConfig {
    /// Checks every setting; errors name the command-line option that sets it.
    pub fn validate(&self) -> Result<()> {
        if self.acquire_frames == 0 {
            return Err(option_error(
                "--follow-acquire-frames",
                "must be at least 1".into(),
            ));
        }
        for (option, v) in [
            ("--follow-coast", self.coast_time),
            ("--follow-lost-timeout", self.lost_timeout),
            ("--follow-watchdog", self.watchdog),
        ] {
            if !v.is_finite() || v <= 0.0 {
                return Err(option_error(
                    option,
                    format!("must be a positive number of seconds, got {v}"),
                ));
            }
        }
        if self.lost_timeout < self.coast_time {
            return Err(option_error(
                "--follow-lost-timeout",
                format!(
                    "{} s is shorter than the coast time {} s",
                    self.lost_timeout, self.coast_time
                ),
            ));
        }
        if !(self.target_height > 0.0 && self.target_height <= 1.0) {
            return Err(option_error(
                "--follow-height",
                format!(
                    "must be a fraction of the frame height in (0, 1], got {}",
                    self.target_height
                ),
            ));
        }
        self.yaw.validate("--follow-yaw-pid")?;
        self.pitch.validate("--follow-pitch-pid")?;
        self.forward.validate("--follow-forward-pid")?;
        self.gate.validate("--follow-gate")?;
        self.appearance.validate()?;
        Ok(())
    }

    fn lock_settings(&self) -> LockSettings {
        LockSettings {
            policy: self.policy,
            class_id: self.class_id,
            acquire_frames: self.acquire_frames,
            coast_time: self.coast_time,
            lost_timeout: self.lost_timeout,
            blind_time: self.watchdog.min(self.coast_time),
            gate: self.gate,
            appearance: self.appearance,
        }
    }
}

/// Locks onto one person and produces one steering command per frame.
#[derive(Debug, Clone)]
pub struct Follower {
    config: FollowerConfig,
    machine: LockMachine,
    yaw: Pid,
    pitch: Pid,
    forward: Pid,
    seq: CommandSeq,
    last: Option<Command>,
}

/// Clamps to [-1, 1] and turns -0.0 and non-finite values into 0.0.
fn unit(v: f32) -> f32 {
    if v.is_finite() && v != 0.0 {
        v.clamp(-1.0, 1.0)
    } else {
        0.0
    }
}

impl Follower {
    /// A follower in `Idle`, after checking `config`.
    pub fn new(config: FollowerConfig) -> Result<Self> {
        config.validate()?;
        Ok(Follower {
            config,
            machine: LockMachine::new(config.lock_settings()),
            yaw: Pid::new(config.yaw),
            pitch: Pid::new(config.pitch),
            forward: Pid::new(config.forward),
            seq: CommandSeq::new(),
            last: None,
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &FollowerConfig {
        &self.config
    }

    /// Current state without data.
    pub fn state(&self) -> FollowState {
        self.machine.state().kind()
    }

    /// Current state with data.
    pub fn lock_state(&self) -> LockState {
        self.machine.state()
    }

    /// The followed (or candidate) id.
    pub fn target_id(&self) -> Option<u64> {
        self.machine.state().target_id()
    }

    /// The sequence counter commands are numbered from; share it with a watchdog.
    pub fn sequence(&self) -> CommandSeq {
        self.seq.clone()
    }

    /// The last command produced.
    pub fn last_command(&self) -> Option<&Command> {
        self.last.as_ref()
    }

    /// Changes the policy used at the next acquisition; the current lock is kept.
    pub fn set_policy(&mut self, policy: TargetPolicy) {
        self.config.policy = policy;
        self.machine.set_policy(policy);
    }

    /// Drops the lock (back to `Idle`, motion zero); returns the event if the state changed.
    pub fn reset(&mut self, time: f64) -> Vec<FollowEvent> {
        let mut events = Vec::new();
        self.machine.reset(time, &mut events);
        self.reset_pids();
        events
    }

    fn reset_pids(&mut self) {
        self.yaw.reset();
        self.pitch.reset();
        self.forward.reset();
    }

    /// Advances one frame of `frame_w` x `frame_h` pixels at `frame_time` seconds.
    pub fn update(
        &mut self,
        tracks: &[Track],
        frame_time: f64,
        frame_w: u32,
        frame_h: u32,
    ) -> FollowOutput {
        self.update_with(tracks, None, frame_time, frame_w, frame_h)
    }

    /// As [`Follower::update`], with the tracks' appearances when the tracker has them: the
    /// target is then recognised by its look after an absence, and strangers are refused.
    pub fn update_with(
        &mut self,
        tracks: &[Track],
        appearances: Option<&Appearances>,
        frame_time: f64,
        frame_w: u32,
        frame_h: u32,
    ) -> FollowOutput {
        let before = self.machine.state();
        let mut events = Vec::new();
        let view = self.machine.step_with(
            tracks,
            appearances,
            frame_time,
            frame_w,
            frame_h,
            &mut events,
        );
        let after = self.machine.state();

        match (before, after) {
            // Same target back from coasting: ramp from what the actuators really got.
            (LockState::Coasting { id: a, .. }, LockState::Locked { id: b }) if a == b => {
                if let Some(last) = &self.last {
                    self.yaw.rebase(last.yaw_rate);
                    self.pitch.rebase(last.pitch_rate);
                    self.forward.rebase(last.forward);
                }
            }
            (_, LockState::Locked { id: b })
                if before.target_id() != Some(b) || !before.kind().may_move() =>
            {
                self.reset_pids()
            }
            _ => {}
        }
        if !after.kind().may_move() {
            self.reset_pids();
        }

        let w = frame_w.max(1) as f32;
        let h = frame_h.max(1) as f32;
        let mut cmd = Command::stop(
            frame_time,
            self.seq.next(),
            after.kind(),
            CommandReason::Follow,
        );
        cmd.target_id = after.target_id();
        if let Some(TargetView {
            bbox, source, gain, ..
        }) = view
        {
            let b = bbox.clip(w, h);
            let (cx, cy) = b.center();
            cmd.ex = unit((cx / w) * 2.0 - 1.0);
            cmd.ey = unit((cy / h) * 2.0 - 1.0);
            cmd.size = unit(b.height() / h);
            cmd.target_box = Some([b.x1 / w, b.y1 / h, b.x2 / w, b.y2 / h]);
            if after.kind().may_move() && gain > 0.0 {
                let integrate = source == TargetSource::Measured;
                let t = frame_time;
                // The measured quantity is the camera's offset from the target, so a target to
                // the right (ex > 0) gives a positive yaw rate and one above (ey < 0) pitches up.
                let yaw = self.yaw.update_with(0.0, -cmd.ex, t, integrate);
                let pitch = self.pitch.update_with(0.0, cmd.ey, t, integrate);
                let fwd =
                    self.forward
                        .update_with(self.config.target_height, cmd.size, t, integrate);
                cmd.yaw_rate = unit(yaw * gain);
                cmd.pitch_rate = unit(pitch * gain);
                cmd.forward = unit(fwd * gain);
            }
        }
        self.last = Some(cmd);
        FollowOutput {
            command: cmd,
            events,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detection::BBox;
    use crate::follow::target::tests::person;
    use crate::follow::EventReason;
    use crate::track::TrackState;

    const DT: f64 = 1.0 / 30.0;

    #[test]
    fn follow_config_validation_names_options() {
        assert!(FollowerConfig::default().validate().is_ok());
        let cases = [
            (
                FollowerConfig {
                    acquire_frames: 0,
                    ..Default::default()
                },
                "--follow-acquire-frames",
            ),
            (
                FollowerConfig {
                    coast_time: -1.0,
                    ..Default::default()
                },
                "--follow-coast",
            ),
            (
                FollowerConfig {
                    lost_timeout: 0.5,
                    ..Default::default()
                },
                "--follow-lost-timeout",
            ),
            (
                FollowerConfig {
                    watchdog: f64::NAN,
                    ..Default::default()
                },
                "--follow-watchdog",
            ),
            (
                FollowerConfig {
                    target_height: 1.5,
                    ..Default::default()
                },
                "--follow-height",
            ),
            (
                FollowerConfig {
                    yaw: PidGains::p(-2.0),
                    ..Default::default()
                },
                "--follow-yaw-pid",
            ),
        ];
        for (cfg, want) in cases {
            match Follower::new(cfg) {
                Err(Error::Option { option, .. }) => assert_eq!(option, want),
                other => panic!("expected error for {want}, got {other:?}"),
            }
        }
    }

    #[test]
    fn follow_control_errors_and_signs() {
        let mut f = Follower::new(FollowerConfig {
            acquire_frames: 1,
            ..Default::default()
        })
        .unwrap();
        // Right of centre, above centre, small (far): turn right, tilt up, go forward.
        let t = [person(1, BBox::new(460.0, 60.0, 500.0, 180.0))];
        let mut out = f.update(&t, 0.0, 640, 480);
        for i in 1..10 {
            out = f.update(&t, i as f64 * DT, 640, 480);
        }
        let c = out.command;
        assert_eq!(c.state, FollowState::Locked);
        assert_eq!(c.target_id, Some(1));
        assert!((c.ex - 0.5).abs() < 1e-6, "{}", c.ex);
        assert!((c.ey - -0.5).abs() < 1e-6, "{}", c.ey);
        assert!((c.size - 0.25).abs() < 1e-6);
        assert!(c.yaw_rate > 0.3, "{c:?}");
        assert!(c.pitch_rate > 0.2, "{c:?}");
        assert!(c.forward > 0.2, "{c:?}");
        let b = c.target_box.unwrap();
        assert!((b[0] - 0.71875).abs() < 1e-6 && (b[3] - 0.375).abs() < 1e-6);
        // Left, below, too close: the opposite signs.
        let mut g = Follower::new(FollowerConfig {
            acquire_frames: 1,
            ..Default::default()
        })
        .unwrap();
        let t = [person(1, BBox::new(40.0, 100.0, 200.0, 480.0))];
        let mut out = g.update(&t, 0.0, 640, 480);
        for i in 1..10 {
            out = g.update(&t, i as f64 * DT, 640, 480);
        }
        let c = out.command;
        assert!(c.ex < 0.0 && c.ey > 0.0 && c.size > 0.5);
        assert!(
            c.yaw_rate < 0.0 && c.pitch_rate < 0.0 && c.forward < 0.0,
            "{c:?}"
        );
        // All outputs stay in [-1, 1].
        for v in [c.yaw_rate, c.pitch_rate, c.forward, c.ex, c.ey, c.size] {
            assert!((-1.0..=1.0).contains(&v));
        }
    }

    #[test]
    fn follow_control_centred_target_at_desired_size_gives_no_motion() {
        let mut f = Follower::new(FollowerConfig {
            acquire_frames: 1,
            ..Default::default()
        })
        .unwrap();
        let t = [person(1, BBox::from_cxcywh(320.0, 240.0, 100.0, 240.0))];
        for i in 0..20 {
            let c = f.update(&t, i as f64 * DT, 640, 480).command;
            assert_eq!(c.state, FollowState::Locked);
            assert!(c.is_zero_motion(), "{c:?}");
        }
    }

    #[test]
    fn follow_control_zero_motion_while_idle_acquiring_reacquiring_and_lost() {
        let mut f = Follower::new(FollowerConfig::default()).unwrap();
        let off = [person(1, BBox::new(500.0, 10.0, 560.0, 100.0))];
        let mut seen = std::collections::HashSet::new();
        let mut step = |f: &mut Follower, tracks: &[Track], i: usize| {
            let c = f.update(tracks, i as f64 * DT, 640, 480).command;
            seen.insert(c.state);
            if !c.state.may_move() {
                assert!(c.is_zero_motion(), "{c:?}");
                assert_eq!(c.yaw_rate.to_bits(), 0, "exactly +0.0");
            }
            c
        };
        step(&mut f, &[], 0);
        for i in 1..5 {
            let c = step(&mut f, &off, i);
            assert_eq!(c.state, FollowState::Acquiring);
            assert_eq!(c.target_id, Some(1));
        }
        let c = step(&mut f, &off, 5);
        assert_eq!(c.state, FollowState::Locked);
        for i in 6..12 {
            step(&mut f, &off, i);
        }
        assert!(!f.last_command().unwrap().is_zero_motion());
        for i in 12..150 {
            step(&mut f, &[], i);
        }
        assert_eq!(f.state(), FollowState::Lost);
        for s in [
            FollowState::Idle,
            FollowState::Acquiring,
            FollowState::Locked,
            FollowState::Coasting,
            FollowState::Reacquiring,
            FollowState::Lost,
        ] {
            assert!(seen.contains(&s), "{s} never visited");
        }
    }

    #[test]
    fn follow_control_coasting_decays_and_reacquire_ramps() {
        let mut f = Follower::new(FollowerConfig {
            acquire_frames: 1,
            ..Default::default()
        })
        .unwrap();
        let b = BBox::new(500.0, 100.0, 560.0, 300.0);
        let t = [person(1, b)];
        let mut i = 0;
        while i < 30 {
            f.update(&t, i as f64 * DT, 640, 480);
            i += 1;
        }
        let locked_yaw = f.last_command().unwrap().yaw_rate;
        assert!(locked_yaw > 0.5);
        let mut pred = t[0];
        pred.state = TrackState::Lost;
        let mut prev = locked_yaw;
        for _ in 0..15 {
            let c = f.update(&[pred], i as f64 * DT, 640, 480).command;
            assert_eq!(c.state, FollowState::Coasting);
            assert!(
                c.yaw_rate < prev && c.yaw_rate > 0.0,
                "{} !< {prev}",
                c.yaw_rate
            );
            prev = c.yaw_rate;
            i += 1;
        }
        let out = f.update(&t, i as f64 * DT, 640, 480);
        assert_eq!(out.events[0].reason, EventReason::Reacquired);
        // The slew limit ramps up from the decayed value instead of jumping back.
        let max_step = f.config().yaw.slew_rate * DT as f32 + 1e-4;
        assert!(
            out.command.yaw_rate <= prev + max_step,
            "{} jumped from {prev}",
            out.command.yaw_rate
        );
    }

    #[test]
    fn follow_control_sequence_numbers_increase_and_are_shared() {
        let mut f = Follower::new(FollowerConfig::default()).unwrap();
        let seq = f.sequence();
        assert_eq!(f.update(&[], 0.0, 640, 480).command.seq, 0);
        assert_eq!(seq.next(), 1);
        assert_eq!(f.update(&[], 0.1, 640, 480).command.seq, 2);
    }
}
