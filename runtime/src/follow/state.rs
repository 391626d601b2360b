//! The lock state machine: acquire a candidate, keep the lock through occlusions, reacquire the
//! same person (or, with an event, a new track where the person should be), give up safely.
//!
//! With appearances (the tracker re-identifies people) the target's look is kept in a
//! [`Gallery`]: a new track takes over only if it clearly looks like the target, wherever it
//! appears, and a target given up on is still looked for during the appearance memory; nobody
//! else is followed unless `any_after` allows it.

use crate::detection::BBox;
use crate::error::{Error, Result};
use crate::track::appearance::{Appearances, Gallery};
use crate::track::{Track, TrackState};

use super::appearance_match::{most_similar, AppearanceGate, AppearanceScore};
use super::target::TargetPolicy;
use super::{EventReason, FollowEvent, FollowState};

/// The lock state with its data.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LockState {
    /// No target and no candidate.
    Idle,
    /// `candidate` has been selected for `frames` consecutive frames.
    Acquiring {
        /// Candidate track id.
        candidate: u64,
        /// Consecutive frames it has qualified.
        frames: u32,
    },
    /// Following track `id`, seen this frame.
    Locked {
        /// Target track id.
        id: u64,
    },
    /// Track `id` not seen since `since` (seconds); steering on its prediction, decaying.
    Coasting {
        /// Target track id.
        id: u64,
        /// Frame time the target was last seen.
        since: f64,
    },
    /// Coast time over; motion stopped while waiting for `id` or a matching new track.
    Reacquiring {
        /// Target track id.
        id: u64,
        /// Frame time the target was last seen.
        since: f64,
        /// A new track passing the gates, with the consecutive frames it has passed them.
        candidate: Option<(u64, u32)>,
    },
    /// Gave up on `id` at `since`; waiting for the target's look to come back (with
    /// appearances) or for the policy to find a new candidate.
    Lost {
        /// The id given up on.
        id: u64,
        /// Frame time of giving up.
        since: f64,
        /// A person who looks like the target, with the consecutive frames they have.
        candidate: Option<(u64, u32)>,
    },
}

impl LockState {
    /// The state without its data.
    pub fn kind(&self) -> FollowState {
        match self {
            LockState::Idle => FollowState::Idle,
            LockState::Acquiring { .. } => FollowState::Acquiring,
            LockState::Locked { .. } => FollowState::Locked,
            LockState::Coasting { .. } => FollowState::Coasting,
            LockState::Reacquiring { .. } => FollowState::Reacquiring,
            LockState::Lost { .. } => FollowState::Lost,
        }
    }

    /// The id being followed (or, while acquiring, the candidate); none when idle or lost.
    pub fn target_id(&self) -> Option<u64> {
        match *self {
            LockState::Idle | LockState::Lost { .. } => None,
            LockState::Acquiring { candidate, .. } => Some(candidate),
            LockState::Locked { id } | LockState::Coasting { id, .. } => Some(id),
            LockState::Reacquiring { id, .. } => Some(id),
        }
    }
}

/// People remembered as refused (a bound for very long searches in crowds).
const MAX_REJECTED: usize = 4096;

/// Frames in a row a person refused before must pass the appearance test to be followed: a
/// look that settled onto the target's must stay there, not touch the threshold once.
const REJUDGED_FRAMES: u32 = 10;

/// Gates a new track must pass to take over a target that did not come back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReacquireGate {
    /// Accept when the IoU with the predicted box reaches this …
    pub min_iou: f32,
    /// … or when the centre distance, in predicted box heights, is at most this.
    pub max_center_dist: f32,
    /// And always: the larger of the two box heights over the smaller is at most this.
    pub max_size_ratio: f32,
    /// Consecutive frames the same new track must pass the gates.
    pub frames: u32,
}

impl Default for ReacquireGate {
    fn default() -> Self {
        ReacquireGate {
            min_iou: 0.2,
            max_center_dist: 1.0,
            max_size_ratio: 1.5,
            frames: 3,
        }
    }
}

impl ReacquireGate {
    /// Checks the gates; errors name `option`.
    pub fn validate(&self, option: &str) -> Result<()> {
        let bad = |reason: String| Error::Option {
            option: option.to_string(),
            reason,
        };
        if !(self.min_iou > 0.0 && self.min_iou <= 1.0) {
            return Err(bad(format!(
                "min_iou must be in (0, 1], got {}",
                self.min_iou
            )));
        }
        if !(self.max_center_dist.is_finite() && self.max_center_dist >= 0.0) {
            return Err(bad(format!(
                "max_center_dist must be >= 0, got {}",
                self.max_center_dist
            )));
        }
        if !(self.max_size_ratio.is_finite() && self.max_size_ratio >= 1.0) {
            return Err(bad(format!(
                "max_size_ratio must be >= 1, got {}",
                self.max_size_ratio
            )));
        }
        if self.frames == 0 {
            return Err(bad("frames must be at least 1".into()));
        }
        Ok(())
    }

    /// How well `candidate` matches `predicted`: `Some(centre distance in box heights)` when it
    /// passes every gate, `None` otherwise.
    pub fn score(&self, predicted: &BBox, candidate: &BBox) -> Option<f32> {
        let (hp, hc) = (predicted.height(), candidate.height());
        if hp <= 0.0 || hc <= 0.0 {
            return None;
        }
        if hp.max(hc) / hp.min(hc) > self.max_size_ratio {
            return None;
        }
        let (px, py) = predicted.center();
        let (cx, cy) = candidate.center();
        let dist = ((px - cx).powi(2) + (py - cy).powi(2)).sqrt() / hp;
        (predicted.iou(candidate) >= self.min_iou || dist <= self.max_center_dist).then_some(dist)
    }
}

/// Where the box used for steering came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetSource {
    /// The tracker matched the target to a detection this frame.
    Measured,
    /// The tracker's own (Kalman) prediction of a lost track.
    Predicted,
    /// The last known box moved by its last velocity (the tracker reports nothing).
    Extrapolated,
}

/// The box to steer by this frame, with the envelope commands are scaled by.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TargetView {
    /// Track id.
    pub id: u64,
    /// Box in pixels.
    pub bbox: BBox,
    /// Measurement, prediction or extrapolation.
    pub source: TargetSource,
    /// Command envelope in [0, 1]: 1 when locked, decaying while coasting, 0 when acquiring.
    pub gain: f32,
}

/// Settings of the lock state machine (a subset of the follower's configuration).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LockSettings {
    /// Who to follow.
    pub policy: TargetPolicy,
    /// Class id of persons.
    pub class_id: usize,
    /// Frames a candidate must persist.
    pub acquire_frames: u32,
    /// Seconds of coasting on the prediction.
    pub coast_time: f64,
    /// Seconds after the last sighting at which the target is given up.
    pub lost_timeout: f64,
    /// Seconds of steering without any prediction (the watchdog time).
    pub blind_time: f64,
    /// Gates for a new track taking over.
    pub gate: ReacquireGate,
    /// The appearance test, used when the tracker provides appearances.
    pub appearance: AppearanceGate,
}

/// Keeps the lock on one person across frames and reports every change.
#[derive(Debug, Clone)]
pub struct LockMachine {
    cfg: LockSettings,
    state: LockState,
    last_box: BBox,
    last_velocity: (f32, f32),
    last_seen: f64,
    last_fresh: f64,
    coexisting: Vec<u64>,
    /// What the target looks like (with appearances).
    gallery: Option<Gallery>,
    /// The track whose look the gallery learns from: the person the policy chose. A person
    /// taken over by appearance is followed but not learnt from, so one wrong match cannot
    /// drift the gallery toward a stranger.
    gallery_owner: Option<u64>,
    /// Scores to attach to the next event.
    score: Option<AppearanceScore>,
    /// People already reported as not looking like the target.
    rejected: Vec<u64>,
}

fn tracked(tracks: &[Track], id: u64) -> Option<&Track> {
    tracks
        .iter()
        .find(|t| t.id == id && t.state == TrackState::Tracked)
}

fn shifted(b: &BBox, v: (f32, f32), dt: f64) -> BBox {
    let (dx, dy) = (v.0 * dt as f32, v.1 * dt as f32);
    BBox::new(b.x1 + dx, b.y1 + dy, b.x2 + dx, b.y2 + dy)
}

fn ramp_down(elapsed: f64, over: f64) -> f32 {
    if over <= 0.0 {
        return 0.0;
    }
    (1.0 - elapsed.max(0.0) / over).clamp(0.0, 1.0) as f32
}

impl LockMachine {
    /// A machine in `Idle`.
    pub fn new(cfg: LockSettings) -> Self {
        LockMachine {
            cfg,
            state: LockState::Idle,
            last_box: BBox::default(),
            last_velocity: (0.0, 0.0),
            last_seen: 0.0,
            last_fresh: 0.0,
            coexisting: Vec::new(),
            gallery: None,
            gallery_owner: None,
            score: None,
            rejected: Vec::new(),
        }
    }

    /// The current state.
    pub fn state(&self) -> LockState {
        self.state
    }

    /// The settings in use.
    pub fn settings(&self) -> &LockSettings {
        &self.cfg
    }

    /// What the target looks like, once the tracker has embedded them.
    pub fn target_gallery(&self) -> Option<&Gallery> {
        self.gallery.as_ref()
    }

    /// Changes the policy used for the next acquisition (a current lock is kept).
    pub fn set_policy(&mut self, policy: TargetPolicy) {
        self.cfg.policy = policy;
    }

    /// Drops any lock or candidate: back to `Idle` (with an event unless already idle).
    pub fn reset(&mut self, time: f64, events: &mut Vec<FollowEvent>) {
        if self.state != LockState::Idle {
            self.go(LockState::Idle, time, EventReason::Reset, None, events);
        }
        self.gallery = None;
        self.gallery_owner = None;
    }

    fn go(
        &mut self,
        to: LockState,
        time: f64,
        reason: EventReason,
        id: Option<u64>,
        events: &mut Vec<FollowEvent>,
    ) {
        events.push(FollowEvent {
            time,
            from: self.state.kind(),
            to: to.kind(),
            target_id: id.or(to.target_id()),
            reason,
            appearance: self.score.take(),
        });
        self.state = to;
    }

    fn remember(&mut self, t: &Track, tracks: &[Track], time: f64) {
        self.last_box = t.bbox;
        self.last_velocity = t.velocity;
        self.last_seen = time;
        self.last_fresh = time;
        for other in tracks {
            if other.id != t.id && other.state == TrackState::Tracked {
                if let Err(pos) = self.coexisting.binary_search(&other.id) {
                    self.coexisting.insert(pos, other.id);
                }
            }
        }
    }

    fn lock(
        &mut self,
        t: &Track,
        tracks: &[Track],
        time: f64,
        reason: EventReason,
        events: &mut Vec<FollowEvent>,
    ) -> TargetView {
        self.coexisting.clear();
        self.rejected.clear();
        if reason == EventReason::Acquired {
            self.gallery = None;
            self.gallery_owner = Some(t.id);
        }
        self.go(LockState::Locked { id: t.id }, time, reason, None, events);
        self.remember(t, tracks, time);
        self.measured(t)
    }

    /// The target `t` is tracked again under its own id: locked on it once more.
    fn reacquired(
        &mut self,
        t: &Track,
        tracks: &[Track],
        time: f64,
        events: &mut Vec<FollowEvent>,
    ) -> TargetView {
        let locked = LockState::Locked { id: t.id };
        self.go(locked, time, EventReason::Reacquired, None, events);
        self.remember(t, tracks, time);
        self.measured(t)
    }

    fn measured(&self, t: &Track) -> TargetView {
        TargetView {
            id: t.id,
            bbox: t.bbox,
            source: TargetSource::Measured,
            gain: 1.0,
        }
    }

    fn candidate_view(t: &Track) -> TargetView {
        TargetView {
            id: t.id,
            bbox: t.bbox,
            source: TargetSource::Measured,
            gain: 0.0,
        }
    }

    /// Whether `t`, reported under the target's id, is the target's own track going on. A
    /// track that began after the target was last seen is the tracker's re-identification:
    /// it is judged by its look like anyone else, since the tracker can be wrong.
    fn continues(&self, t: &Track, app: Option<&Appearances>) -> bool {
        app.and_then(|a| a.since(t.id))
            .is_none_or(|since| since <= self.last_seen)
    }

    /// The target's own track, tracked in this frame.
    fn target_track<'t>(
        &self,
        tracks: &'t [Track],
        app: Option<&Appearances>,
        id: u64,
    ) -> Option<&'t Track> {
        tracked(tracks, id).filter(|t| self.continues(t, app))
    }

    /// Best guess of where target `id` is now: the tracker's prediction, else an extrapolation.
    fn predict(
        &mut self,
        tracks: &[Track],
        app: Option<&Appearances>,
        id: u64,
        time: f64,
    ) -> (BBox, TargetSource) {
        if let Some(t) = tracks.iter().find(|t| t.id == id && self.continues(t, app)) {
            self.last_box = t.bbox;
            self.last_velocity = t.velocity;
            self.last_fresh = time;
            return (t.bbox, TargetSource::Predicted);
        }
        let dt = (time - self.last_fresh).clamp(0.0, self.cfg.coast_time);
        (
            shifted(&self.last_box, self.last_velocity, dt),
            TargetSource::Extrapolated,
        )
    }

    fn try_acquire(
        &mut self,
        tracks: &[Track],
        time: f64,
        w: u32,
        h: u32,
        events: &mut Vec<FollowEvent>,
    ) -> Option<TargetView> {
        let t = self.cfg.policy.select(tracks, self.cfg.class_id, w, h)?;
        if self.cfg.acquire_frames <= 1 {
            return Some(self.lock(t, tracks, time, EventReason::Acquired, events));
        }
        self.go(
            LockState::Acquiring {
                candidate: t.id,
                frames: 1,
            },
            time,
            EventReason::CandidateFound,
            None,
            events,
        );
        Some(Self::candidate_view(t))
    }

    /// Advances one frame; appends the changes to `events` and returns the box to steer by.
    pub fn step(
        &mut self,
        tracks: &[Track],
        time: f64,
        frame_w: u32,
        frame_h: u32,
        events: &mut Vec<FollowEvent>,
    ) -> Option<TargetView> {
        self.step_with(tracks, None, time, frame_w, frame_h, events)
    }

    /// As [`LockMachine::step`], with the tracks' appearances when the tracker has them.
    pub fn step_with(
        &mut self,
        tracks: &[Track],
        appearances: Option<&Appearances>,
        time: f64,
        frame_w: u32,
        frame_h: u32,
        events: &mut Vec<FollowEvent>,
    ) -> Option<TargetView> {
        let view = self.advance(tracks, appearances, time, frame_w, frame_h, events);
        if let (LockState::Locked { id }, Some(app)) = (self.state, appearances) {
            if let Some(seen) = app.get(id).filter(|_| self.gallery_owner == Some(id)) {
                match &mut self.gallery {
                    Some(g) => g.add_look(seen),
                    None => self.gallery = Some(seen.clone()),
                }
            }
        }
        view
    }

    fn advance(
        &mut self,
        tracks: &[Track],
        app: Option<&Appearances>,
        time: f64,
        frame_w: u32,
        frame_h: u32,
        events: &mut Vec<FollowEvent>,
    ) -> Option<TargetView> {
        match self.state {
            LockState::Idle => self.try_acquire(tracks, time, frame_w, frame_h, events),
            LockState::Lost { id, .. } if self.target_track(tracks, app, id).is_some() => {
                // The target's own track came back.
                let t = *tracked(tracks, id).expect("tracked");
                Some(self.reacquired(&t, tracks, time, events))
            }
            LockState::Lost {
                id,
                since,
                candidate,
            } => match app {
                Some(app) => self.search_lost(
                    tracks,
                    app,
                    id,
                    since,
                    candidate,
                    time,
                    (frame_w, frame_h),
                    events,
                ),
                None => self.try_acquire(tracks, time, frame_w, frame_h, events),
            },
            LockState::Acquiring { candidate, frames } => {
                let cfg = self.cfg;
                let still = tracked(tracks, candidate).filter(|t| {
                    t.class_id == cfg.class_id && cfg.policy.eligible(t, frame_w, frame_h)
                });
                if let Some(t) = still {
                    let frames = frames + 1;
                    if frames >= cfg.acquire_frames {
                        return Some(self.lock(t, tracks, time, EventReason::Acquired, events));
                    }
                    self.state = LockState::Acquiring { candidate, frames };
                    return Some(Self::candidate_view(t));
                }
                match cfg.policy.select(tracks, cfg.class_id, frame_w, frame_h) {
                    Some(t) => {
                        self.go(
                            LockState::Acquiring {
                                candidate: t.id,
                                frames: 1,
                            },
                            time,
                            EventReason::CandidateChanged {
                                previous: candidate,
                            },
                            None,
                            events,
                        );
                        Some(Self::candidate_view(t))
                    }
                    None => {
                        self.go(
                            LockState::Idle,
                            time,
                            EventReason::CandidateMissing,
                            Some(candidate),
                            events,
                        );
                        None
                    }
                }
            }
            LockState::Locked { id } => {
                if let Some(t) = self.target_track(tracks, app, id) {
                    self.remember(t, tracks, time);
                    return Some(self.measured(t));
                }
                let since = self.last_seen;
                self.go(
                    LockState::Coasting { id, since },
                    time,
                    EventReason::TargetOccluded,
                    None,
                    events,
                );
                self.coast(tracks, app, id, since, time, events)
            }
            LockState::Coasting { id, since } => {
                if let Some(t) = self.target_track(tracks, app, id) {
                    return Some(self.reacquired(t, tracks, time, events));
                }
                self.coast(tracks, app, id, since, time, events)
            }
            LockState::Reacquiring {
                id,
                since,
                candidate,
            } => self.reacquire(tracks, app, id, since, candidate, time, events),
        }
    }

    fn coast(
        &mut self,
        tracks: &[Track],
        app: Option<&Appearances>,
        id: u64,
        since: f64,
        time: f64,
        events: &mut Vec<FollowEvent>,
    ) -> Option<TargetView> {
        if time - since >= self.cfg.coast_time {
            self.go(
                LockState::Reacquiring {
                    id,
                    since,
                    candidate: None,
                },
                time,
                EventReason::CoastExpired,
                None,
                events,
            );
            return self.reacquire(tracks, app, id, since, None, time, events);
        }
        let (bbox, source) = self.predict(tracks, app, id, time);
        let gain = ramp_down(time - since, self.cfg.coast_time)
            .min(ramp_down(time - self.last_fresh, self.cfg.blind_time));
        Some(TargetView {
            id,
            bbox,
            source,
            gain,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn reacquire(
        &mut self,
        tracks: &[Track],
        app: Option<&Appearances>,
        id: u64,
        since: f64,
        candidate: Option<(u64, u32)>,
        time: f64,
        events: &mut Vec<FollowEvent>,
    ) -> Option<TargetView> {
        if let Some(t) = self.target_track(tracks, app, id) {
            return Some(self.reacquired(t, tracks, time, events));
        }
        if time - since >= self.cfg.lost_timeout {
            self.go(
                LockState::Lost {
                    id,
                    since: time,
                    candidate: None,
                },
                time,
                EventReason::Timeout,
                Some(id),
                events,
            );
            return None;
        }
        let (predicted, _) = self.predict(tracks, app, id, time);
        if let (Some(app), Some(_)) = (app, &self.gallery) {
            return match self.relock_by_look(tracks, app, id, time, candidate, events) {
                Ok(view) => Some(view),
                Err(candidate) => {
                    self.state = LockState::Reacquiring {
                        id,
                        since,
                        candidate,
                    };
                    None
                }
            };
        }
        let cfg = self.cfg;
        let best = tracks
            .iter()
            .filter(|t| {
                t.id != id
                    && t.state == TrackState::Tracked
                    && t.class_id == cfg.class_id
                    && self.coexisting.binary_search(&t.id).is_err()
            })
            .filter_map(|t| cfg.gate.score(&predicted, &t.bbox).map(|d| (t, d)))
            .min_by(|a, b| {
                a.1.partial_cmp(&b.1)
                    .unwrap_or(std::cmp::Ordering::Equal)
                    .then(a.0.id.cmp(&b.0.id))
            })
            .map(|(t, _)| t);
        let Some(t) = best else {
            self.state = LockState::Reacquiring {
                id,
                since,
                candidate: None,
            };
            return None;
        };
        let frames = match candidate {
            Some((c, n)) if c == t.id => n + 1,
            _ => 1,
        };
        if frames >= cfg.gate.frames {
            return Some(self.lock(
                t,
                tracks,
                time,
                EventReason::TargetChanged { previous: id },
                events,
            ));
        }
        self.state = LockState::Reacquiring {
            id,
            since,
            candidate: Some((t.id, frames)),
        };
        None
    }

    /// The person in view who clearly looks like the target (not one seen beside the target;
    /// a track the tracker re-identified as `id` is judged like anyone else), with their consecutive frames counted from `candidate`. A person refused for
    /// their look is reported once but judged again on every frame: a person walking into
    /// view is first seen in part, and their look only settles over the next second or two.
    /// Acceptance needs the threshold and the margin over everyone else for the gate's frames
    /// ([`REJUDGED_FRAMES`] for a person refused before).
    fn look_alike<'t>(
        &mut self,
        tracks: &'t [Track],
        app: &Appearances,
        id: u64,
        time: f64,
        candidate: Option<(u64, u32)>,
        events: &mut Vec<FollowEvent>,
    ) -> Option<(&'t Track, u32)> {
        let gallery = self.gallery.as_ref()?;
        let coexisting = &self.coexisting;
        let m = most_similar(
            &self.cfg.appearance,
            gallery,
            tracks,
            app,
            self.cfg.class_id,
            // The target's id is judged too: reported here, it is a re-identification.
            |t| coexisting.binary_search(&t).is_ok(),
        )?;
        if !m.accepted {
            let undecided = m.score.similarity >= self.cfg.appearance.threshold
                && m.score.colour_conflict.is_none();
            if undecided || self.rejected.contains(&m.id) {
                // Similar enough but not clearly ahead of someone else (wait and see), or
                // refused and reported before (judged again as their look builds up).
                return None;
            }
            if self.rejected.len() >= MAX_REJECTED {
                self.rejected.remove(0);
            }
            {
                self.rejected.push(m.id);
                self.score = Some(m.score);
                let state = self.state;
                self.go(
                    state,
                    time,
                    EventReason::CandidateRejected { candidate: m.id },
                    Some(id),
                    events,
                );
            }
            return None;
        }
        let t = tracks.iter().find(|t| t.id == m.id)?;
        let frames = match candidate {
            Some((c, n)) if c == m.id => n + 1,
            _ => 1,
        };
        self.score = Some(m.score);
        Some((t, frames))
    }

    /// Frames in a row person `id` must look like the target before being followed.
    fn frames_to_accept(&self, id: u64) -> u32 {
        if self.rejected.contains(&id) {
            self.cfg.gate.frames.max(REJUDGED_FRAMES)
        } else {
            self.cfg.gate.frames
        }
    }

    /// Locks onto the person who has looked like the target for the gate's frames; otherwise
    /// the candidate to keep counting (the caller keeps its state).
    fn relock_by_look(
        &mut self,
        tracks: &[Track],
        app: &Appearances,
        id: u64,
        time: f64,
        candidate: Option<(u64, u32)>,
        events: &mut Vec<FollowEvent>,
    ) -> std::result::Result<TargetView, Option<(u64, u32)>> {
        match self.look_alike(tracks, app, id, time, candidate, events) {
            Some((t, frames)) if frames >= self.frames_to_accept(t.id) => {
                let t = *t;
                let reason = if t.id == id {
                    EventReason::Reacquired
                } else {
                    EventReason::TargetChanged { previous: id }
                };
                Ok(self.lock(&t, tracks, time, reason, events))
            }
            found => {
                self.score = None;
                Err(found.map(|(t, n)| (t.id, n)))
            }
        }
    }

    /// Lost with appearances: look for the target's look until the memory runs out; anyone
    /// else only once `any_after` allows it.
    #[allow(clippy::too_many_arguments)]
    fn search_lost(
        &mut self,
        tracks: &[Track],
        app: &Appearances,
        id: u64,
        since: f64,
        candidate: Option<(u64, u32)>,
        time: f64,
        (frame_w, frame_h): (u32, u32),
        events: &mut Vec<FollowEvent>,
    ) -> Option<TargetView> {
        let gate = self.cfg.appearance;
        if self.gallery.is_some() && time - self.last_seen > gate.memory {
            self.gallery = None;
            let state = self.state;
            self.go(state, time, EventReason::MemoryExpired, Some(id), events);
        }
        if self.gallery.is_some() {
            match self.relock_by_look(tracks, app, id, time, candidate, events) {
                Ok(view) => return Some(view),
                Err(candidate) => {
                    self.state = LockState::Lost {
                        id,
                        since,
                        candidate,
                    }
                }
            }
        }
        match gate.any_after {
            Some(after) if time - since >= after => {
                self.try_acquire(tracks, time, frame_w, frame_h, events)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::follow::target::tests::person;

    const DT: f64 = 1.0 / 30.0;

    fn settings() -> LockSettings {
        LockSettings {
            policy: TargetPolicy::Largest,
            class_id: 0,
            acquire_frames: 5,
            coast_time: 1.0,
            lost_timeout: 3.0,
            blind_time: 0.3,
            gate: ReacquireGate::default(),
            appearance: AppearanceGate::default(),
        }
    }

    fn lost(mut t: Track) -> Track {
        t.state = TrackState::Lost;
        t.frames_since_update = 1;
        t
    }

    /// Runs frames `from..to` with the same tracks; returns all events.
    fn run(m: &mut LockMachine, tracks: &[Track], from: usize, to: usize) -> Vec<FollowEvent> {
        let mut ev = Vec::new();
        for i in from..to {
            m.step(tracks, i as f64 * DT, 640, 480, &mut ev);
        }
        ev
    }

    fn locked_on(id: u64, b: BBox) -> (LockMachine, usize) {
        let mut m = LockMachine::new(settings());
        let t = [person(id, b)];
        run(&mut m, &t, 0, 5);
        assert_eq!(m.state(), LockState::Locked { id });
        (m, 5)
    }

    #[test]
    fn follow_state_acquires_after_k_frames() {
        let mut m = LockMachine::new(settings());
        let t = [person(3, BBox::new(100.0, 100.0, 200.0, 400.0))];
        let mut ev = Vec::new();
        for i in 0..4 {
            let v = m.step(&t, i as f64 * DT, 640, 480, &mut ev).unwrap();
            assert_eq!(v.gain, 0.0, "no motion while acquiring");
            assert_eq!(m.state().kind(), FollowState::Acquiring);
        }
        let v = m.step(&t, 4.0 * DT, 640, 480, &mut ev).unwrap();
        assert_eq!(m.state(), LockState::Locked { id: 3 });
        assert_eq!(v.gain, 1.0);
        let kinds: Vec<_> = ev.iter().map(|e| (e.from, e.to, e.reason)).collect();
        assert_eq!(
            kinds,
            vec![
                (
                    FollowState::Idle,
                    FollowState::Acquiring,
                    EventReason::CandidateFound
                ),
                (
                    FollowState::Acquiring,
                    FollowState::Locked,
                    EventReason::Acquired
                ),
            ]
        );
        assert!(ev.iter().all(|e| e.target_id == Some(3)));
    }

    #[test]
    fn follow_state_candidate_gap_restarts_acquisition() {
        let mut m = LockMachine::new(settings());
        let a = [person(3, BBox::new(100.0, 100.0, 200.0, 400.0))];
        let mut ev = run(&mut m, &a, 0, 3);
        m.step(&[], 3.0 * DT, 640, 480, &mut ev);
        assert_eq!(m.state(), LockState::Idle);
        assert_eq!(ev.last().unwrap().reason, EventReason::CandidateMissing);
        ev.extend(run(&mut m, &a, 4, 8));
        assert_eq!(m.state().kind(), FollowState::Acquiring);
        m.step(&a, 8.0 * DT, 640, 480, &mut ev);
        assert_eq!(m.state(), LockState::Locked { id: 3 });
    }

    #[test]
    fn follow_state_candidate_change_is_reported() {
        let mut m = LockMachine::new(settings());
        let a = person(3, BBox::new(100.0, 100.0, 200.0, 400.0));
        let b = person(4, BBox::new(300.0, 100.0, 350.0, 200.0));
        run(&mut m, &[a, b], 0, 2);
        let ev = run(&mut m, &[b], 2, 3);
        assert_eq!(
            m.state(),
            LockState::Acquiring {
                candidate: 4,
                frames: 1
            }
        );
        assert_eq!(ev[0].reason, EventReason::CandidateChanged { previous: 3 });
        // A larger newcomer does not steal an eligible candidate.
        let big = person(9, BBox::new(0.0, 0.0, 300.0, 480.0));
        run(&mut m, &[b, big], 3, 7);
        assert_eq!(m.state(), LockState::Locked { id: 4 });
    }

    #[test]
    fn follow_state_single_frame_acquire_locks_at_once() {
        let mut m = LockMachine::new(LockSettings {
            acquire_frames: 1,
            ..settings()
        });
        let ev = run(&mut m, &[person(2, BBox::new(0.0, 0.0, 10.0, 20.0))], 0, 1);
        assert_eq!(m.state(), LockState::Locked { id: 2 });
        assert_eq!(ev.len(), 1);
        assert_eq!(
            (ev[0].from, ev[0].to),
            (FollowState::Idle, FollowState::Locked)
        );
    }

    #[test]
    fn follow_state_coasts_on_prediction_then_reacquires_same_id() {
        let b = BBox::new(200.0, 100.0, 280.0, 400.0);
        let (mut m, n) = locked_on(1, b);
        // Occluded: the tracker reports the lost track with its predicted box.
        let mut pred = lost(person(1, b));
        let mut ev = Vec::new();
        let mut gains = Vec::new();
        for i in n..n + 20 {
            pred.bbox = BBox::new(b.x1 + i as f32, b.y1, b.x2 + i as f32, b.y2);
            let v = m.step(&[pred], i as f64 * DT, 640, 480, &mut ev).unwrap();
            assert_eq!(v.source, TargetSource::Predicted);
            assert_eq!(v.bbox, pred.bbox);
            gains.push(v.gain);
        }
        assert!(matches!(m.state(), LockState::Coasting { id: 1, .. }));
        assert!(
            gains.windows(2).all(|w| w[1] < w[0]),
            "gain decays: {gains:?}"
        );
        assert!(gains[0] > 0.9 && *gains.last().unwrap() > 0.0);
        let back = m
            .step(&[person(1, b)], (n + 20) as f64 * DT, 640, 480, &mut ev)
            .unwrap();
        assert_eq!(back.gain, 1.0);
        assert_eq!(m.state(), LockState::Locked { id: 1 });
        let reasons: Vec<_> = ev.iter().map(|e| e.reason).collect();
        assert_eq!(
            reasons,
            vec![EventReason::TargetOccluded, EventReason::Reacquired]
        );
    }

    #[test]
    fn follow_state_blind_coasting_decays_within_the_watchdog_time() {
        let b = BBox::new(200.0, 100.0, 280.0, 400.0);
        let (mut m, n) = locked_on(1, b);
        let last_seen = (n - 1) as f64 * DT;
        let mut ev = Vec::new();
        let mut i = n;
        loop {
            let t = i as f64 * DT;
            let v = m.step(&[], t, 640, 480, &mut ev).unwrap();
            assert_eq!(v.source, TargetSource::Extrapolated);
            if t - last_seen >= 0.3 {
                assert_eq!(v.gain, 0.0);
                break;
            }
            assert!(v.gain > 0.0);
            i += 1;
        }
        assert!(matches!(m.state(), LockState::Coasting { id: 1, .. }));
    }

    #[test]
    fn follow_state_reacquires_a_new_id_near_the_prediction_with_an_event() {
        let b = BBox::new(200.0, 100.0, 280.0, 400.0);
        let bystander = person(2, BBox::new(500.0, 100.0, 580.0, 400.0));
        let mut m = LockMachine::new(settings());
        run(&mut m, &[person(1, b), bystander], 0, 5);
        assert_eq!(m.state(), LockState::Locked { id: 1 });
        // Target gone for the whole coast time.
        let ev = run(&mut m, &[bystander], 5, 36);
        assert_eq!(ev.last().unwrap().reason, EventReason::CoastExpired);
        assert!(matches!(m.state(), LockState::Reacquiring { id: 1, .. }));
        // A new id where the target was (slightly moved, similar size) takes over after 3 frames;
        // the bystander, far away and seen together with the target, never does.
        let newcomer = person(7, BBox::new(210.0, 110.0, 292.0, 405.0));
        let mut ev = Vec::new();
        for i in 36..38 {
            assert!(m
                .step(&[bystander, newcomer], i as f64 * DT, 640, 480, &mut ev)
                .is_none());
        }
        let v = m
            .step(&[bystander, newcomer], 38.0 * DT, 640, 480, &mut ev)
            .unwrap();
        assert_eq!(v.id, 7);
        assert_eq!(m.state(), LockState::Locked { id: 7 });
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].reason, EventReason::TargetChanged { previous: 1 });
        assert_eq!(ev[0].target_id, Some(7));
        assert_eq!(
            (ev[0].from, ev[0].to),
            (FollowState::Reacquiring, FollowState::Locked)
        );
    }

    #[test]
    fn follow_state_gates_reject_far_small_and_coexisting_tracks() {
        let b = BBox::new(200.0, 100.0, 280.0, 400.0);
        // The neighbour stands right next to the target and is seen with it.
        let neighbour = person(2, BBox::new(285.0, 100.0, 365.0, 400.0));
        let mut m = LockMachine::new(settings());
        run(&mut m, &[person(1, b), neighbour], 0, 5);
        run(&mut m, &[neighbour], 5, 36);
        let far = person(8, BBox::new(520.0, 100.0, 600.0, 400.0));
        let tiny = person(9, BBox::new(230.0, 230.0, 250.0, 270.0));
        run(&mut m, &[neighbour, far, tiny], 36, 60);
        assert!(matches!(m.state(), LockState::Reacquiring { id: 1, .. }));
        let g = ReacquireGate::default();
        assert!(g.score(&b, &far.bbox).is_none());
        assert!(g.score(&b, &tiny.bbox).is_none());
        assert!(
            g.score(&b, &neighbour.bbox).is_some(),
            "only coexistence excludes it"
        );
    }

    #[test]
    fn follow_state_lost_after_timeout_then_acquires_with_the_policy() {
        let b = BBox::new(200.0, 100.0, 280.0, 400.0);
        let (mut m, n) = locked_on(1, b);
        let last_seen = (n - 1) as f64 * DT;
        let mut ev = Vec::new();
        let mut i = n;
        while !matches!(m.state(), LockState::Lost { .. }) {
            assert!(i < 200, "never gave up");
            m.step(&[], i as f64 * DT, 640, 480, &mut ev);
            i += 1;
        }
        let gave_up = (i - 1) as f64 * DT;
        assert!(gave_up - last_seen >= 3.0 && gave_up - last_seen < 3.0 + 2.0 * DT);
        let last = ev.last().unwrap();
        assert_eq!(
            (last.to, last.reason, last.target_id),
            (FollowState::Lost, EventReason::Timeout, Some(1))
        );
        assert_eq!(m.state().target_id(), None);
        // Lost stays lost with nobody around, then acquires whoever the policy picks.
        assert!(run(&mut m, &[], i, i + 10).is_empty());
        let other = person(5, BBox::new(0.0, 0.0, 50.0, 100.0));
        let ev = run(&mut m, &[other], i + 10, i + 15);
        assert_eq!(m.state(), LockState::Locked { id: 5 });
        assert_eq!(
            (ev[0].from, ev[0].to, ev[0].reason),
            (
                FollowState::Lost,
                FollowState::Acquiring,
                EventReason::CandidateFound
            )
        );
    }

    #[test]
    fn follow_state_reset_reports_and_idles() {
        let (mut m, _) = locked_on(4, BBox::new(0.0, 0.0, 10.0, 30.0));
        let mut ev = Vec::new();
        m.reset(1.0, &mut ev);
        assert_eq!(m.state(), LockState::Idle);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].reason, EventReason::Reset);
        m.reset(1.1, &mut ev);
        assert_eq!(ev.len(), 1);
    }

    /// A gallery built from five views of `v`.
    fn look(v: [f32; 3]) -> Gallery {
        let mut v = v.to_vec();
        crate::reid::l2_normalize(&mut v);
        let mut g = Gallery::new(&v);
        for _ in 0..4 {
            g.add(&v);
        }
        g
    }

    /// Runs frames `from..to` with appearances; returns all events.
    fn run_seen(
        m: &mut LockMachine,
        tracks: &[Track],
        app: &Appearances,
        from: usize,
        to: usize,
    ) -> Vec<FollowEvent> {
        let mut ev = Vec::new();
        for i in from..to {
            m.step_with(tracks, Some(app), i as f64 * DT, 640, 480, &mut ev);
        }
        ev
    }

    #[test]
    fn follow_state_with_appearance_refuses_a_stranger_and_relocks_on_the_look() {
        let mut m = LockMachine::new(settings());
        let b = BBox::new(100.0, 100.0, 200.0, 400.0);
        let mut app = Appearances::default();
        app.insert(1, look([1.0, 0.0, 0.1]));
        run_seen(&mut m, &[person(1, b)], &app, 0, 10);
        assert_eq!(m.state(), LockState::Locked { id: 1 });
        assert!(m.target_gallery().is_some());
        // A stranger where the target was: the position gates pass, the look does not.
        app.insert(2, look([0.0, 1.0, 0.1]));
        let stranger = [person(2, b)];
        let ev = run_seen(&mut m, &stranger, &app, 10, 10 + 150);
        assert!(ev
            .iter()
            .all(|e| !matches!(e.to, FollowState::Locked | FollowState::Acquiring)));
        let rejected: Vec<_> = ev
            .iter()
            .filter(|e| e.reason == EventReason::CandidateRejected { candidate: 2 })
            .collect();
        assert_eq!(rejected.len(), 1, "{ev:?}");
        assert!(rejected[0].appearance.unwrap().similarity < 0.5);
        assert!(matches!(m.state(), LockState::Lost { id: 1, .. }));
        // Lost, without any_after: the policy does not pick the stranger either.
        run_seen(&mut m, &stranger, &app, 160, 200);
        assert!(matches!(m.state(), LockState::Lost { id: 1, .. }));
        // The target comes back with a new id, far away.
        app.insert(7, look([1.0, 0.05, 0.1]));
        let back = [
            person(2, b),
            person(7, BBox::new(500.0, 50.0, 560.0, 250.0)),
        ];
        let ev = run_seen(&mut m, &back, &app, 200, 205);
        assert_eq!(m.state(), LockState::Locked { id: 7 });
        let relock = ev.last().unwrap();
        assert_eq!(relock.reason, EventReason::TargetChanged { previous: 1 });
        let score = relock.appearance.unwrap();
        // The stranger refused before still counts for the margin, and loses it.
        assert!(score.similarity > 0.95 && score.second.is_some_and(|s| s < 0.5));
    }

    /// A machine locked on person 1 (with a look) who then left long enough to be lost.
    fn lost_after_a_lock() -> (LockMachine, Appearances) {
        let mut m = LockMachine::new(settings());
        let b = BBox::new(100.0, 100.0, 200.0, 400.0);
        let mut app = Appearances::default();
        app.insert(1, look([1.0, 0.0, 0.1]));
        run_seen(&mut m, &[person(1, b)], &app, 0, 10);
        run_seen(&mut m, &[], &app, 10, 10 + 150);
        assert!(matches!(m.state(), LockState::Lost { id: 1, .. }));
        (m, app)
    }

    #[test]
    fn follow_state_lost_relocks_when_the_tracker_gives_the_id_back() {
        let (mut m, mut app) = lost_after_a_lock();
        // The tracker's re-identification gives the returning person id 1 again, on a track
        // that began after the target was last seen: the follower checks the look itself.
        app.insert_since(1, look([1.0, 0.02, 0.1]), 159.0 * DT);
        let back = [person(1, BBox::new(400.0, 80.0, 480.0, 330.0))];
        let ev = run_seen(&mut m, &back, &app, 160, 162);
        assert!(matches!(m.state(), LockState::Lost { id: 1, .. }), "{ev:?}");
        let ev = run_seen(&mut m, &back, &app, 162, 163);
        assert_eq!(m.state(), LockState::Locked { id: 1 });
        assert_eq!(
            (ev[0].from, ev[0].reason),
            (FollowState::Lost, EventReason::Reacquired)
        );
        assert!(ev[0].appearance.unwrap().similarity > 0.95);
        // The target's own track going on (begun before the loss) is taken back at once.
        let (mut m, app) = lost_after_a_lock();
        let ev = run_seen(&mut m, &back, &app, 160, 161);
        assert_eq!(m.state(), LockState::Locked { id: 1 });
        assert_eq!(ev[0].reason, EventReason::Reacquired);
    }

    #[test]
    fn follow_state_does_not_take_a_stranger_the_tracker_gave_the_target_s_id() {
        // Lost: the tracker wrongly gives id 1 to a stranger (a track begun after the loss).
        let (mut m, mut app) = lost_after_a_lock();
        app.insert_since(1, look([0.0, 1.0, 0.1]), 159.0 * DT);
        let stranger = [person(1, BBox::new(400.0, 80.0, 480.0, 330.0))];
        let ev = run_seen(&mut m, &stranger, &app, 160, 400);
        assert!(matches!(m.state(), LockState::Lost { id: 1, .. }));
        assert!(ev.iter().all(|e| e.to == FollowState::Lost), "{ev:?}");
        assert_eq!(
            ev[0].reason,
            EventReason::CandidateRejected { candidate: 1 }
        );
        // Coasting: the stranger is neither steered toward nor locked on.
        let mut m = LockMachine::new(settings());
        let b = BBox::new(100.0, 100.0, 200.0, 400.0);
        let mut app = Appearances::default();
        app.insert(1, look([1.0, 0.0, 0.1]));
        run_seen(&mut m, &[person(1, b)], &app, 0, 10);
        let far = BBox::new(500.0, 50.0, 560.0, 250.0);
        app.insert_since(1, look([0.0, 1.0, 0.1]), 11.0 * DT);
        let mut ev = Vec::new();
        for i in 11..15 {
            let view = m.step_with(
                &[person(1, far)],
                Some(&app),
                i as f64 * DT,
                640,
                480,
                &mut ev,
            );
            let view = view.expect("coasting steers on the prediction");
            assert_eq!(view.source, TargetSource::Extrapolated);
            assert!(view.bbox.x1 < 300.0);
        }
        assert!(matches!(m.state(), LockState::Coasting { id: 1, .. }));
        run_seen(&mut m, &[person(1, far)], &app, 15, 300);
        assert!(matches!(m.state(), LockState::Lost { id: 1, .. }));
    }

    #[test]
    fn follow_state_judges_a_refused_look_again_as_it_settles() {
        let (mut m, mut app) = lost_after_a_lock();
        // The target walks in with a new id, half seen at first: below the threshold.
        let back = [person(9, BBox::new(0.0, 100.0, 60.0, 400.0))];
        app.insert(9, look([1.0, 0.4, 0.1]));
        let ev = run_seen(&mut m, &back, &app, 160, 170);
        assert!(matches!(m.state(), LockState::Lost { id: 1, .. }));
        let refused: Vec<_> = ev
            .iter()
            .filter(|e| e.reason == EventReason::CandidateRejected { candidate: 9 })
            .collect();
        assert_eq!(refused.len(), 1, "{ev:?}");
        // Fully in view, their look settles on the target's: followed again once it has
        // stayed there.
        app.insert(9, look([1.0, 0.02, 0.1]));
        run_seen(&mut m, &back, &app, 170, 170 + REJUDGED_FRAMES as usize - 1);
        assert!(matches!(m.state(), LockState::Lost { id: 1, .. }));
        let ev = run_seen(&mut m, &back, &app, 170 + REJUDGED_FRAMES as usize - 1, 185);
        assert_eq!(m.state(), LockState::Locked { id: 9 });
        assert!(ev
            .iter()
            .all(|e| e.reason != EventReason::CandidateRejected { candidate: 9 }));
    }

    #[test]
    fn follow_state_appearance_memory_expires_then_any_after_allows_the_policy() {
        let mut m = LockMachine::new(LockSettings {
            appearance: AppearanceGate {
                memory: 5.0,
                any_after: Some(8.0),
                ..AppearanceGate::default()
            },
            ..settings()
        });
        let b = BBox::new(100.0, 100.0, 200.0, 400.0);
        let mut app = Appearances::default();
        app.insert(1, look([1.0, 0.0, 0.1]));
        run_seen(&mut m, &[person(1, b)], &app, 0, 10);
        app.insert(2, look([0.0, 1.0, 0.1]));
        let stranger = [person(2, b)];
        // Lost at ~3 s, memory over at ~5.3 s, anyone allowed from ~11.3 s.
        let ev = run_seen(&mut m, &stranger, &app, 10, 30 * 11);
        assert!(ev.iter().any(|e| e.reason == EventReason::MemoryExpired));
        assert!(matches!(m.state(), LockState::Lost { .. }));
        assert!(m.target_gallery().is_none());
        run_seen(&mut m, &stranger, &app, 30 * 11, 30 * 12);
        assert_eq!(m.state().target_id(), Some(2));
    }

    #[test]
    fn follow_state_gate_validation() {
        assert!(ReacquireGate::default().validate("--follow-gate").is_ok());
        let bad = ReacquireGate {
            max_size_ratio: 0.5,
            ..Default::default()
        };
        assert!(matches!(
            bad.validate("--follow-gate"),
            Err(Error::Option { .. })
        ));
    }
}
