//! ByteTrack (Zhang et al., "ByteTrack: Multi-Object Tracking by Associating Every Detection
//! Box", ECCV 2022), written from the paper's algorithm.
//!
//! Every update:
//! 1. All tracks are moved forward by the Kalman filter over the elapsed time (in frames of the
//!    configured frame rate, so a dropped frame is predicted across).
//! 2. Detections are split by score: high (`> track_high_thresh`) and low
//!    (`track_low_thresh < score <= track_high_thresh`); lower ones are dropped.
//! 3. First association: confirmed tracks, tracked and lost, against high detections with cost
//!    `1 - IoU` (or `1 - IoU * score` with `fuse_score`), limited by `match_thresh`.
//! 4. Second association: tracked tracks still unmatched against low detections (`1 - IoU`,
//!    limit `low_match_thresh`); tracked tracks left over become lost.
//! 5. Unconfirmed tracks (born in the previous update) against high detections still unmatched
//!    (limit `unconfirmed_match_thresh`); unconfirmed tracks that miss are dropped.
//! 6. High detections still unmatched with a score of at least `new_track_thresh` start new
//!    unconfirmed tracks (confirmed at once on the first update after creation or reset).
//! 7. Lost tracks older than `max_time_lost` frames are removed, and a tracked and a lost track
//!    overlapping by more than `duplicate_iou` are merged by keeping the older one.
//!
//! Unlike the reference implementation, a track receives its id when it is confirmed, so ids
//! increase by one per confirmed track and none is spent on a one-frame false positive. Tracks
//! and detections are only associated within the same class.

use crate::detection::{BBox, Detection};
use crate::error::{Error, Result};
use crate::track::assignment::AssignmentSolver;
use crate::track::kalman::{measurement_from_bbox, KalmanFilter, KalmanState};
use crate::track::{Track, TrackState, Tracker};

/// Frames a lost track may coast before its time is compared with this slack (absorbs rounding
/// of frame times).
const TIME_SLACK_FRAMES: f64 = 1e-3;

/// Settings of [`ByteTracker`]; the defaults are the paper's.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ByteTrackConfig {
    /// Detections scoring above this take part in the first association (0.5).
    pub track_high_thresh: f32,
    /// Detections scoring above this (and not above the high threshold) take part in the second (0.1).
    pub track_low_thresh: f32,
    /// Unmatched high detections scoring at least this start a new track (0.6).
    pub new_track_thresh: f32,
    /// Largest cost (`1 - IoU`, score-fused when `fuse_score`) of the first association (0.8).
    pub match_thresh: f32,
    /// Largest `1 - IoU` of the second association with low-score detections (0.5).
    pub low_match_thresh: f32,
    /// Largest cost of matching an unconfirmed track (0.7).
    pub unconfirmed_match_thresh: f32,
    /// A tracked and a lost track overlapping above this IoU are duplicates (0.85).
    pub duplicate_iou: f32,
    /// Frames (at 30 fps) a lost track is kept before removal (30).
    pub track_buffer: u32,
    /// Nominal frame rate of the input, to convert frame times into frames (30).
    pub frame_rate: f64,
    /// Consecutive matched updates a new track needs before it is confirmed and reported (2);
    /// tracks born on the first update after creation or reset are confirmed at once.
    pub min_hits: u32,
    /// Multiply IoU by the detection score in the first and third associations (true).
    pub fuse_score: bool,
    /// Also report confirmed tracks that are currently lost (false).
    pub report_lost: bool,
}

impl Default for ByteTrackConfig {
    fn default() -> Self {
        Self {
            track_high_thresh: 0.5,
            track_low_thresh: 0.1,
            new_track_thresh: 0.6,
            match_thresh: 0.8,
            low_match_thresh: 0.5,
            unconfirmed_match_thresh: 0.7,
            duplicate_iou: 0.85,
            track_buffer: 30,
            frame_rate: 30.0,
            min_hits: 2,
            fuse_score: true,
            report_lost: false,
        }
    }
}

impl ByteTrackConfig {
    /// Frames a lost track survives: `frame_rate / 30 * track_buffer`.
    pub fn max_time_lost(&self) -> f64 {
        self.frame_rate / 30.0 * self.track_buffer as f64
    }

    /// Checks every value; the error names the offending setting.
    pub fn validate(&self) -> Result<()> {
        let bad = |option: &str, reason: String| {
            Err(Error::Option {
                option: option.into(),
                reason,
            })
        };
        let unit = [
            ("track_high_thresh", self.track_high_thresh),
            ("track_low_thresh", self.track_low_thresh),
            ("new_track_thresh", self.new_track_thresh),
            ("match_thresh", self.match_thresh),
            ("low_match_thresh", self.low_match_thresh),
            ("unconfirmed_match_thresh", self.unconfirmed_match_thresh),
            ("duplicate_iou", self.duplicate_iou),
        ];
        for (name, v) in unit {
            if !(0.0..=1.0).contains(&v) {
                return bad(name, format!("{v} is not within 0..=1"));
            }
        }
        if self.track_low_thresh > self.track_high_thresh {
            return bad(
                "track_low_thresh",
                format!(
                    "{} is above track_high_thresh {}",
                    self.track_low_thresh, self.track_high_thresh
                ),
            );
        }
        if !(self.frame_rate.is_finite() && self.frame_rate > 0.0) {
            return bad(
                "frame_rate",
                format!("{} is not a positive number", self.frame_rate),
            );
        }
        if self.min_hits == 0 {
            return bad("min_hits", "must be at least 1".into());
        }
        Ok(())
    }
}

/// One track's internal record.
#[derive(Debug, Clone)]
struct Strack {
    kf: KalmanState,
    /// 0 until confirmed.
    id: u64,
    confirmed: bool,
    state: TrackState,
    class_id: usize,
    score: f32,
    hits: u32,
    age: u32,
    frames_since_update: u32,
    /// Clock (frames) when created and when last matched.
    start_clock: f64,
    last_update_clock: f64,
    removed: bool,
    /// Box of the current mean, refreshed after predict and update.
    bbox: BBox,
}

/// ByteTrack multi-object tracker; see the module documentation for the algorithm.
#[derive(Debug, Clone)]
pub struct ByteTracker {
    config: ByteTrackConfig,
    kf: KalmanFilter,
    tracks: Vec<Strack>,
    next_id: u64,
    /// Updates since creation or reset.
    frame_count: u64,
    /// Time in frames of the last update.
    clock: f64,
    last_time: Option<f64>,
    output: Vec<Track>,
    // Buffers reused between updates.
    high: Vec<usize>,
    low: Vec<usize>,
    pool: Vec<usize>,
    unconfirmed: Vec<usize>,
    remaining_tracked: Vec<usize>,
    remaining_high: Vec<usize>,
    det_used: Vec<bool>,
    cost: Vec<f32>,
    solver: AssignmentSolver,
}

impl Default for ByteTracker {
    fn default() -> Self {
        Self::with_valid_config(ByteTrackConfig::default())
    }
}

impl ByteTracker {
    /// A tracker with `config`, validated first.
    pub fn new(config: ByteTrackConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self::with_valid_config(config))
    }

    fn with_valid_config(config: ByteTrackConfig) -> Self {
        Self {
            config,
            kf: KalmanFilter::default(),
            tracks: Vec::new(),
            next_id: 1,
            frame_count: 0,
            clock: 0.0,
            last_time: None,
            output: Vec::new(),
            high: Vec::new(),
            low: Vec::new(),
            pool: Vec::new(),
            unconfirmed: Vec::new(),
            remaining_tracked: Vec::new(),
            remaining_high: Vec::new(),
            det_used: Vec::new(),
            cost: Vec::new(),
            solver: AssignmentSolver::new(),
        }
    }

    /// The settings in use.
    pub fn config(&self) -> &ByteTrackConfig {
        &self.config
    }

    /// The id the next confirmed track will receive.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Number of tracks held internally (tracked, lost and unconfirmed).
    pub fn live_tracks(&self) -> usize {
        self.tracks.len()
    }

    /// Fills `self.cost` for `tracks x dets`; different classes cost infinity.
    fn fill_cost(
        &mut self,
        track_idx: &[usize],
        det_idx: &[usize],
        dets: &[Detection],
        fuse: bool,
    ) {
        self.cost.clear();
        for &t in track_idx {
            let tr = &self.tracks[t];
            for &d in det_idx {
                let det = &dets[d];
                let c = if det.class_id != tr.class_id {
                    f32::INFINITY
                } else {
                    let iou = tr.bbox.iou(&det.bbox);
                    if fuse {
                        1.0 - iou * det.score
                    } else {
                        1.0 - iou
                    }
                };
                self.cost.push(c);
            }
        }
    }

    fn apply_match(&mut self, t: usize, det: &Detection) {
        let z = measurement_from_bbox(&det.bbox);
        let tr = &mut self.tracks[t];
        self.kf.update(&mut tr.kf, &z);
        tr.bbox = tr.kf.bbox();
        tr.state = TrackState::Tracked;
        tr.score = det.score;
        tr.class_id = det.class_id;
        tr.hits = tr.hits.saturating_add(1);
        tr.frames_since_update = 0;
        tr.last_update_clock = self.clock;
        if !tr.confirmed && tr.hits >= self.config.min_hits {
            tr.confirmed = true;
            tr.id = self.next_id;
            self.next_id += 1;
        }
    }

    fn mark_lost(&mut self, t: usize) {
        let tr = &mut self.tracks[t];
        tr.state = TrackState::Lost;
    }

    fn associate(&mut self, rows: usize, cols: usize, thresh: f32) {
        self.solver.solve(&self.cost, rows, cols, thresh);
    }

    fn run(&mut self, dets: &[Detection], frame_time: f64) {
        let cfg = self.config;
        self.frame_count += 1;
        let dt = match self.last_time {
            Some(prev) => {
                let d = (frame_time - prev) * cfg.frame_rate;
                if d > 0.0 && d.is_finite() {
                    d
                } else {
                    1.0
                }
            }
            None => 1.0,
        };
        if frame_time.is_finite() {
            self.last_time = Some(frame_time);
        }
        self.clock += dt;

        // 1. Predict.
        for tr in &mut self.tracks {
            if tr.state != TrackState::Tracked {
                // Lost boxes keep their height (as in ByteTrack).
                tr.kf.mean[7] = 0.0;
            }
            self.kf.predict(&mut tr.kf, dt);
            tr.bbox = tr.kf.bbox();
            tr.age = tr.age.saturating_add(1);
            tr.frames_since_update = tr.frames_since_update.saturating_add(1);
        }

        // 2. Split detections by score.
        self.high.clear();
        self.low.clear();
        for (i, d) in dets.iter().enumerate() {
            if d.score > cfg.track_high_thresh {
                self.high.push(i);
            } else if d.score > cfg.track_low_thresh {
                self.low.push(i);
            }
        }
        self.det_used.clear();
        self.det_used.resize(dets.len(), false);

        // Pool: confirmed tracked first, then lost; unconfirmed apart.
        self.pool.clear();
        self.unconfirmed.clear();
        for (i, tr) in self.tracks.iter().enumerate() {
            if !tr.confirmed {
                self.unconfirmed.push(i);
            } else if tr.state == TrackState::Tracked {
                self.pool.push(i);
            }
        }
        for (i, tr) in self.tracks.iter().enumerate() {
            if tr.confirmed && tr.state == TrackState::Lost {
                self.pool.push(i);
            }
        }

        // 3. First association: pool x high.
        let pool = std::mem::take(&mut self.pool);
        let high = std::mem::take(&mut self.high);
        self.fill_cost(&pool, &high, dets, cfg.fuse_score);
        self.associate(pool.len(), high.len(), cfg.match_thresh);
        let matches = std::mem::take(&mut self.solver.matches);
        for &(r, c) in &matches {
            self.apply_match(pool[r], &dets[high[c]]);
            self.det_used[high[c]] = true;
        }
        self.solver.matches = matches;
        self.remaining_tracked.clear();
        for &r in &self.solver.unmatched_rows {
            let t = pool[r];
            if self.tracks[t].state == TrackState::Tracked {
                self.remaining_tracked.push(t);
            }
        }
        self.remaining_high.clear();
        self.remaining_high
            .extend(self.solver.unmatched_cols.iter().map(|&c| high[c]));
        self.pool = pool;
        self.high = high;

        // 4. Second association: remaining tracked x low.
        let remaining = std::mem::take(&mut self.remaining_tracked);
        let low = std::mem::take(&mut self.low);
        self.fill_cost(&remaining, &low, dets, false);
        self.associate(remaining.len(), low.len(), cfg.low_match_thresh);
        let matches = std::mem::take(&mut self.solver.matches);
        for &(r, c) in &matches {
            self.apply_match(remaining[r], &dets[low[c]]);
            self.det_used[low[c]] = true;
        }
        self.solver.matches = matches;
        let unmatched = std::mem::take(&mut self.solver.unmatched_rows);
        for &r in &unmatched {
            self.mark_lost(remaining[r]);
        }
        self.solver.unmatched_rows = unmatched;
        self.remaining_tracked = remaining;
        self.low = low;

        // 5. Unconfirmed x remaining high.
        let unconfirmed = std::mem::take(&mut self.unconfirmed);
        let rem_high = std::mem::take(&mut self.remaining_high);
        self.fill_cost(&unconfirmed, &rem_high, dets, cfg.fuse_score);
        self.associate(
            unconfirmed.len(),
            rem_high.len(),
            cfg.unconfirmed_match_thresh,
        );
        let matches = std::mem::take(&mut self.solver.matches);
        for &(r, c) in &matches {
            self.apply_match(unconfirmed[r], &dets[rem_high[c]]);
            self.det_used[rem_high[c]] = true;
        }
        self.solver.matches = matches;
        for &r in &self.solver.unmatched_rows {
            self.tracks[unconfirmed[r]].removed = true;
        }
        self.unconfirmed = unconfirmed;

        // 6. New tracks.
        let confirm_now = self.frame_count == 1 || cfg.min_hits <= 1;
        for &d in &rem_high {
            let det = &dets[d];
            if self.det_used[d] || det.score < cfg.new_track_thresh {
                continue;
            }
            let kf = self.kf.initiate(&measurement_from_bbox(&det.bbox));
            let (id, confirmed) = if confirm_now {
                self.next_id += 1;
                (self.next_id - 1, true)
            } else {
                (0, false)
            };
            self.tracks.push(Strack {
                bbox: kf.bbox(),
                kf,
                id,
                confirmed,
                state: TrackState::Tracked,
                class_id: det.class_id,
                score: det.score,
                hits: 1,
                age: 0,
                frames_since_update: 0,
                start_clock: self.clock,
                last_update_clock: self.clock,
                removed: false,
            });
        }
        self.remaining_high = rem_high;

        // 7. Expire lost tracks, then remove duplicates between tracked and lost.
        let max_lost = cfg.max_time_lost() + TIME_SLACK_FRAMES;
        for tr in &mut self.tracks {
            if tr.state == TrackState::Lost && self.clock - tr.last_update_clock > max_lost {
                tr.removed = true;
            }
        }
        self.remove_duplicates();
        self.tracks.retain(|t| !t.removed);
    }

    fn remove_duplicates(&mut self) {
        let limit = self.config.duplicate_iou;
        let n = self.tracks.len();
        for p in 0..n {
            if self.tracks[p].removed || self.tracks[p].state != TrackState::Tracked {
                continue;
            }
            for q in 0..n {
                let (a, b) = (&self.tracks[p], &self.tracks[q]);
                if b.removed || b.state != TrackState::Lost || a.class_id != b.class_id {
                    continue;
                }
                if a.bbox.iou(&b.bbox) > limit {
                    let time_p = a.last_update_clock - a.start_clock;
                    let time_q = b.last_update_clock - b.start_clock;
                    if time_p > time_q {
                        self.tracks[q].removed = true;
                    } else {
                        self.tracks[p].removed = true;
                        break;
                    }
                }
            }
        }
    }

    fn fill_output(&mut self) {
        self.output.clear();
        let fps = self.config.frame_rate as f32;
        for tr in &self.tracks {
            let report = tr.confirmed
                && (tr.state == TrackState::Tracked
                    || (self.config.report_lost && tr.state == TrackState::Lost));
            if !report {
                continue;
            }
            let (vx, vy) = tr.kf.velocity();
            self.output.push(Track {
                id: tr.id,
                bbox: tr.bbox,
                score: tr.score,
                class_id: tr.class_id,
                state: tr.state,
                age: tr.age,
                frames_since_update: tr.frames_since_update,
                velocity: (vx as f32 * fps, vy as f32 * fps),
            });
        }
        self.output.sort_unstable_by_key(|t| t.id);
    }
}

impl Tracker for ByteTracker {
    /// `frame_time` in seconds sets the prediction step (`elapsed * frame_rate` frames); when it
    /// does not advance (repeated, decreasing or not finite) one frame is assumed.
    fn update(&mut self, detections: &[Detection], frame_time: f64) -> &[Track] {
        self.run(detections, frame_time);
        self.fill_output();
        &self.output
    }

    fn reset(&mut self) {
        self.tracks.clear();
        self.output.clear();
        self.frame_count = 0;
        self.clock = 0.0;
        self.last_time = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(x: f32, y: f32, score: f32) -> Detection {
        Detection {
            bbox: BBox::new(x, y, x + 40.0, y + 100.0),
            score,
            class_id: 0,
        }
    }

    fn ids(tracks: &[Track]) -> Vec<u64> {
        tracks.iter().map(|t| t.id).collect()
    }

    #[test]
    fn first_frame_tracks_are_confirmed_at_once() {
        let mut t = ByteTracker::default();
        let out = t.update(&[det(10.0, 10.0, 0.9), det(200.0, 10.0, 0.8)], 0.0);
        assert_eq!(ids(out), vec![1, 2]);
        assert!(out.iter().all(|t| t.state == TrackState::Tracked));
    }

    #[test]
    fn later_tracks_need_a_second_hit_and_dead_ones_spend_no_id() {
        let mut t = ByteTracker::default();
        t.update(&[det(10.0, 10.0, 0.9)], 0.0);
        // A one-frame false positive: unconfirmed, then dropped.
        let out = t.update(&[det(11.0, 10.0, 0.9), det(300.0, 50.0, 0.9)], 1.0 / 30.0);
        assert_eq!(ids(out), vec![1]);
        let out = t.update(&[det(12.0, 10.0, 0.9)], 2.0 / 30.0);
        assert_eq!(ids(out), vec![1]);
        // A real newcomer: reported from its second frame, with the next id.
        t.update(&[det(13.0, 10.0, 0.9), det(400.0, 50.0, 0.9)], 3.0 / 30.0);
        let out = t.update(&[det(14.0, 10.0, 0.9), det(401.0, 50.0, 0.9)], 4.0 / 30.0);
        assert_eq!(ids(out), vec![1, 2]);
        assert_eq!(t.next_id(), 3);
    }

    #[test]
    fn low_score_detections_keep_tracks_alive_but_do_not_start_them() {
        let mut t = ByteTracker::default();
        t.update(&[det(10.0, 10.0, 0.9)], 0.0);
        let out = t.update(&[det(12.0, 10.0, 0.3), det(300.0, 10.0, 0.3)], 1.0 / 30.0);
        assert_eq!(ids(out), vec![1]);
        assert_eq!(out[0].score, 0.3);
        let out = t.update(&[det(300.0, 10.0, 0.3)], 2.0 / 30.0);
        assert!(out.is_empty());
    }

    #[test]
    fn lost_tracks_are_recovered_within_the_buffer_and_removed_after() {
        let config = ByteTrackConfig {
            track_buffer: 5,
            report_lost: true,
            ..Default::default()
        };
        let mut t = ByteTracker::new(config).unwrap();
        for f in 0..5 {
            t.update(&[det(10.0 + f as f32 * 2.0, 10.0, 0.9)], f as f64 / 30.0);
        }
        for f in 5..9 {
            let out = t.update(&[], f as f64 / 30.0);
            assert_eq!(out.len(), 1);
            assert_eq!(out[0].state, TrackState::Lost);
            assert_eq!(out[0].frames_since_update, f - 4);
        }
        // Coasted at 2 px per frame: found again at its predicted place.
        let out = t.update(&[det(28.0, 10.0, 0.9)], 9.0 / 30.0);
        assert_eq!(ids(out), vec![1]);
        assert_eq!(out[0].state, TrackState::Tracked);
        for f in 10..=15 {
            t.update(&[], f as f64 / 30.0);
        }
        assert_eq!(t.live_tracks(), 0);
    }

    #[test]
    fn a_dropped_frame_is_predicted_across() {
        let mut t = ByteTracker::default();
        for f in 0..10 {
            t.update(&[det(10.0 + f as f32 * 8.0, 10.0, 0.9)], f as f64 / 30.0);
        }
        // Frame 10 never arrives; at frame 11 the box moved 16 px.
        let out = t.update(&[det(98.0, 10.0, 0.9)], 11.0 / 30.0);
        assert_eq!(ids(out), vec![1]);
        assert!((out[0].bbox.x1 - 98.0).abs() < 2.0, "{:?}", out[0].bbox);
        assert!(
            (out[0].velocity.0 - 240.0).abs() < 20.0,
            "{:?}",
            out[0].velocity
        );
    }

    #[test]
    fn classes_are_never_mixed() {
        let mut t = ByteTracker::default();
        t.update(&[det(10.0, 10.0, 0.9)], 0.0);
        let mut other = det(10.0, 10.0, 0.9);
        other.class_id = 3;
        t.update(&[other], 1.0 / 30.0);
        let out = t.update(&[other], 2.0 / 30.0);
        assert_eq!(ids(out), vec![2]);
        assert_eq!(out[0].class_id, 3);
    }

    #[test]
    fn reset_forgets_tracks_but_keeps_counting_ids() {
        let mut t = ByteTracker::default();
        t.update(&[det(10.0, 10.0, 0.9)], 0.0);
        t.reset();
        assert_eq!(t.live_tracks(), 0);
        let out = t.update(&[det(10.0, 10.0, 0.9)], 0.0);
        assert_eq!(ids(out), vec![2]);
    }

    #[test]
    fn duplicates_keep_the_older_track() {
        let mut t = ByteTracker::default();
        // Track 1 walks right for 25 frames, then is no longer detected and coasts.
        for f in 0..25 {
            t.update(&[det(10.0 + 5.0 * f as f32, 10.0, 0.9)], f as f64 / 30.0);
        }
        // A standing person ahead of it becomes track 2; the coasting prediction of track 1
        // slides onto it until both boxes overlap almost fully.
        let mut seen_two = false;
        let mut last = Vec::new();
        for f in 25..50 {
            let out = t.update(&[det(200.0, 10.0, 0.9)], f as f64 / 30.0);
            seen_two |= out.iter().any(|t| t.id == 2);
            last = ids(out);
        }
        assert!(seen_two);
        // Track 2 (tracked for fewer frames than track 1 was) was the duplicate and went away;
        // the detection then revived track 1.
        assert_eq!(last, vec![1]);
        assert_eq!(t.live_tracks(), 1);
    }

    #[test]
    fn invalid_settings_name_the_option() {
        let config = ByteTrackConfig {
            match_thresh: 1.5,
            ..Default::default()
        };
        let err = ByteTracker::new(config).unwrap_err().to_string();
        assert!(err.contains("match_thresh"), "{err}");
        let config = ByteTrackConfig {
            frame_rate: 0.0,
            ..Default::default()
        };
        assert!(ByteTracker::new(config).is_err());
    }
}
