//! Person following: target selection, a lock state machine, PID control and command outputs.
//!
//! The [`Follower`] consumes the tracker's [`Track`](crate::track::Track)s once per frame, locks onto
//! one person ([`TargetPolicy`] picks who, [`LockMachine`] keeps the lock through occlusions and
//! never switches person without a [`FollowEvent`]) and turns the target's position in the image
//! into a normalized [`Command`] with one [`Pid`] per axis. Commands go to a [`CommandSink`]
//! (JSON lines, UDP, a serial line protocol or MAVLink 2); a [`Watchdog`] thread sends stop
//! commands on its own clock when the pipeline stops producing commands.
//!
//! Sign conventions of a [`Command`] (all values in [-1, 1]):
//! - `yaw_rate > 0`: turn right (clockwise seen from above), because the target is right of centre;
//! - `pitch_rate > 0`: tilt up (a gimbal) or climb (a vehicle), because the target is above centre;
//! - `forward > 0`: move toward the target, because it looks smaller than the desired size.

mod appearance_match;
mod control;
#[cfg(feature = "mavlink")]
mod mavlink_out;
mod output;
mod pid;
#[cfg(test)]
mod scenario_tests;
#[cfg(feature = "serial")]
mod serial_out;
mod serial_proto;
mod state;
mod target;
mod watchdog;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::Serialize;

pub use appearance_match::{most_similar, AppearanceGate, AppearanceMatch, AppearanceScore};
pub use control::{Follower, FollowerConfig};
#[cfg(feature = "mavlink")]
pub use mavlink_out::MavlinkSink;
pub use output::{
    open_camera_sink, open_sink, CommandSink, JsonLinesSink, MavlinkConfig, MavlinkMode,
    OutputSpec, SinkSet, UdpJsonSink, FOLLOW_OUT_OPTION,
};
pub use pid::{Pid, PidGains};
#[cfg(feature = "serial")]
pub use serial_out::SerialSink;
pub use serial_proto::{
    command_line, event_line, line_checksum, verify_line, write_command_line, write_event_line,
};
pub use state::{LockMachine, LockSettings, LockState, ReacquireGate, TargetSource, TargetView};
pub use target::{TargetPolicy, TARGET_OPTION};
pub use watchdog::{Watchdog, WatchdogHandle};

/// The follower's lock state without its data, as reported in commands and events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FollowState {
    /// No target and no candidate.
    Idle,
    /// A candidate was selected and must persist before the lock.
    Acquiring,
    /// Following a target that the tracker sees this frame.
    Locked,
    /// The target is not seen; steering on its prediction with decaying commands.
    Coasting,
    /// The coast time ran out; motion stopped, waiting for the target or a matching new track.
    Reacquiring,
    /// Gave up on the target; motion stopped until the policy finds a new candidate.
    Lost,
}

impl FollowState {
    /// Lowercase name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            FollowState::Idle => "idle",
            FollowState::Acquiring => "acquiring",
            FollowState::Locked => "locked",
            FollowState::Coasting => "coasting",
            FollowState::Reacquiring => "reacquiring",
            FollowState::Lost => "lost",
        }
    }

    /// Small integer code used by the serial line protocol (0 idle … 5 lost).
    pub fn code(self) -> u8 {
        match self {
            FollowState::Idle => 0,
            FollowState::Acquiring => 1,
            FollowState::Locked => 2,
            FollowState::Coasting => 3,
            FollowState::Reacquiring => 4,
            FollowState::Lost => 5,
        }
    }

    /// Whether commands in this state may carry motion (only `Locked` and `Coasting`).
    pub fn may_move(self) -> bool {
        matches!(self, FollowState::Locked | FollowState::Coasting)
    }
}

impl fmt::Display for FollowState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the lock state or the target changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventReason {
    /// The policy selected a candidate.
    CandidateFound,
    /// The candidate disappeared or stopped qualifying and the policy chose another one.
    CandidateChanged {
        /// The candidate given up.
        previous: u64,
    },
    /// The candidate disappeared and nobody else qualifies.
    CandidateMissing,
    /// The candidate persisted for the required frames.
    Acquired,
    /// The locked target is no longer tracked this frame.
    TargetOccluded,
    /// The same track came back.
    Reacquired,
    /// The coast time ran out without the target coming back.
    CoastExpired,
    /// A new track near the target's prediction, of similar size, took over.
    TargetChanged {
        /// The id followed before.
        previous: u64,
    },
    /// Neither the target nor a matching track came back before the lost timeout.
    Timeout,
    /// The person most like the target does not look enough like them (reported once per person).
    CandidateRejected {
        /// The person refused.
        candidate: u64,
    },
    /// The target was not seen for the whole appearance memory: no longer looked for.
    MemoryExpired,
    /// The caller reset the follower.
    Reset,
}

impl EventReason {
    /// Short snake_case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            EventReason::CandidateFound => "candidate_found",
            EventReason::CandidateChanged { .. } => "candidate_changed",
            EventReason::CandidateMissing => "candidate_missing",
            EventReason::Acquired => "acquired",
            EventReason::TargetOccluded => "target_occluded",
            EventReason::Reacquired => "reacquired",
            EventReason::CoastExpired => "coast_expired",
            EventReason::TargetChanged { .. } => "target_changed",
            EventReason::Timeout => "timeout",
            EventReason::CandidateRejected { .. } => "candidate_rejected",
            EventReason::MemoryExpired => "memory_expired",
            EventReason::Reset => "reset",
        }
    }
}

impl fmt::Display for EventReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventReason::CandidateChanged { previous }
            | EventReason::TargetChanged { previous } => {
                write!(f, "{} (was {previous})", self.as_str())
            }
            EventReason::CandidateRejected { candidate } => {
                write!(f, "{} ({candidate})", self.as_str())
            }
            _ => f.write_str(self.as_str()),
        }
    }
}

/// One change of lock state or of target, always reported.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FollowEvent {
    /// Frame time (seconds) at which the change happened.
    pub time: f64,
    /// State before the change.
    pub from: FollowState,
    /// State after the change.
    pub to: FollowState,
    /// The target (or candidate) concerned: the new one, or the one given up on.
    pub target_id: Option<u64>,
    /// Why it changed.
    pub reason: EventReason,
    /// The appearance similarities behind the decision, when appearance decided.
    pub appearance: Option<AppearanceScore>,
}

impl fmt::Display for FollowEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3}s {} -> {}", self.time, self.from, self.to)?;
        if let Some(id) = self.target_id {
            write!(f, " (target {id})")?;
        }
        write!(f, ": {}", self.reason)?;
        if let Some(a) = self.appearance {
            write!(f, " (similarity {:.2}", a.similarity)?;
            if let Some(s) = a.second {
                write!(f, ", next best {s:.2}")?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// Who produced a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CommandReason {
    /// The follower, from a frame.
    Follow,
    /// The watchdog: no fresh command for too long, so stop.
    Watchdog,
    /// A final stop sent when the output shuts down.
    Shutdown,
}

impl CommandReason {
    /// Lowercase name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            CommandReason::Follow => "follow",
            CommandReason::Watchdog => "watchdog",
            CommandReason::Shutdown => "shutdown",
        }
    }
}

/// One steering command: normalized rates in [-1, 1] plus what they were computed from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Command {
    /// Seconds: the frame time (for watchdog stops, the last frame time plus the time elapsed since).
    pub time: f64,
    /// Sequence number, strictly increasing across follower and watchdog when they share a [`CommandSeq`].
    pub seq: u64,
    /// Turn rate, positive to the right.
    pub yaw_rate: f32,
    /// Tilt rate (gimbal) or vertical speed (vehicle), positive up.
    pub pitch_rate: f32,
    /// Forward speed, positive toward the target.
    pub forward: f32,
    /// Lock state when the command was produced.
    pub state: FollowState,
    /// Target (or, while acquiring, candidate) id.
    pub target_id: Option<u64>,
    /// Horizontal error of the target centre: -1 left edge, 0 centre, 1 right edge.
    pub ex: f32,
    /// Vertical error of the target centre: -1 top edge, 0 centre, 1 bottom edge.
    pub ey: f32,
    /// Target box height as a fraction of the frame height (the distance proxy).
    pub size: f32,
    /// Target box normalized to the frame (x1, y1, x2, y2 in 0..1), when there is one.
    pub target_box: Option<[f32; 4]>,
    /// Who produced the command.
    pub reason: CommandReason,
}

impl Command {
    /// An all-zero command (no motion, no target) in `state`.
    pub fn stop(time: f64, seq: u64, state: FollowState, reason: CommandReason) -> Self {
        Command {
            time,
            seq,
            yaw_rate: 0.0,
            pitch_rate: 0.0,
            forward: 0.0,
            state,
            target_id: None,
            ex: 0.0,
            ey: 0.0,
            size: 0.0,
            target_box: None,
            reason,
        }
    }

    /// True when every motion output is exactly zero.
    pub fn is_zero_motion(&self) -> bool {
        self.yaw_rate == 0.0 && self.pitch_rate == 0.0 && self.forward == 0.0
    }
}

/// What [`Follower::update`] returns for one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct FollowOutput {
    /// The command for this frame.
    pub command: Command,
    /// State and target changes that happened during this frame, in order.
    pub events: Vec<FollowEvent>,
}

/// A shared, strictly increasing command sequence counter (clone to share).
#[derive(Debug, Clone, Default)]
pub struct CommandSeq(Arc<AtomicU64>);

impl CommandSeq {
    /// A counter whose first number is 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the next number.
    pub fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::SeqCst)
    }

    /// Makes sure the next number is greater than `seq`.
    pub fn observe(&self, seq: u64) {
        self.0.fetch_max(seq.saturating_add(1), Ordering::SeqCst);
    }

    /// The number the next call to [`CommandSeq::next`] returns.
    pub fn peek(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follow_command_stop_is_zero_motion_and_serializes_reason() {
        let c = Command::stop(1.5, 7, FollowState::Lost, CommandReason::Watchdog);
        assert!(c.is_zero_motion());
        let v = serde_json::to_value(c).unwrap();
        assert_eq!(v["reason"], "watchdog");
        assert_eq!(v["state"], "lost");
        assert_eq!(v["seq"], 7);
        assert!(v["target_id"].is_null());
    }

    #[test]
    fn follow_event_serializes_reason_with_kind() {
        let e = FollowEvent {
            time: 2.0,
            from: FollowState::Reacquiring,
            to: FollowState::Locked,
            target_id: Some(9),
            reason: EventReason::TargetChanged { previous: 4 },
            appearance: None,
        };
        let v = serde_json::to_value(e).unwrap();
        assert_eq!(v["reason"]["kind"], "target_changed");
        assert_eq!(v["reason"]["previous"], 4);
        assert_eq!(v["to"], "locked");
        assert_eq!(
            e.to_string(),
            "2.000s reacquiring -> locked (target 9): target_changed (was 4)"
        );
    }

    #[test]
    fn follow_command_seq_shares_and_observes() {
        let a = CommandSeq::new();
        let b = a.clone();
        assert_eq!(a.next(), 0);
        assert_eq!(b.next(), 1);
        b.observe(10);
        assert_eq!(a.next(), 11);
        a.observe(3);
        assert_eq!(a.peek(), 12);
    }
}
