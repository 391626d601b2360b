//! Track life-cycle events for publishing: `new` when a track is first reported, `update` at most
//! every few seconds or when the box moved a lot, `end` when the track has been gone a while.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::detection::BBox;
use crate::track::{Track, TrackState};

/// When events are emitted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EventPolicy {
    /// Seconds between two `update` events of one track when nothing big changes.
    pub update_every: f64,
    /// An `update` comes early when the box's IoU with the last published one falls below this.
    pub moved_iou: f32,
    /// Seconds between two early `update` events of one track.
    pub min_gap: f64,
    /// Seconds a track must be missing from the tracker's output before its `end`.
    pub end_after: f64,
}

impl Default for EventPolicy {
    fn default() -> Self {
        EventPolicy {
            update_every: 5.0,
            moved_iou: 0.5,
            min_gap: 1.0,
            end_after: 1.0,
        }
    }
}

/// What happened to a track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    New,
    Update,
    End,
}

/// One event about one track.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackEvent {
    pub kind: EventKind,
    /// Number of this event in the camera's stream, from 1 (gaps mean lost events).
    pub seq: u64,
    pub id: u64,
    pub class_id: usize,
    pub score: f32,
    /// Last known box in frame pixels.
    pub bbox: BBox,
    /// Frame index the event was produced at.
    pub frame: u64,
    /// Source time of that frame, seconds.
    pub time: f64,
    /// Source time the track was first reported.
    pub start_time: f64,
}

#[derive(Debug, Clone, Copy)]
struct Active {
    first_time: f64,
    last_seen: f64,
    published: f64,
    published_box: BBox,
    last: Track,
}

/// Turns each frame's tracks into [`TrackEvent`]s.
#[derive(Debug, Clone, Default)]
pub struct TrackEvents {
    policy: EventPolicy,
    active: BTreeMap<u64, Active>,
    seq: u64,
}

impl TrackEvents {
    /// Events under `policy`.
    pub fn new(policy: EventPolicy) -> Self {
        TrackEvents {
            policy,
            ..Default::default()
        }
    }

    /// Tracks being followed for events.
    pub fn active(&self) -> usize {
        self.active.len()
    }

    fn event(&mut self, kind: EventKind, a: &Active, frame: u64, time: f64) -> TrackEvent {
        self.seq += 1;
        TrackEvent {
            kind,
            seq: self.seq,
            id: a.last.id,
            class_id: a.last.class_id,
            score: a.last.score,
            bbox: a.last.bbox,
            frame,
            time,
            start_time: a.first_time,
        }
    }

    /// Advances to `frame` at `time` with the tracker's output; appends the events to `out`.
    pub fn update(&mut self, tracks: &[Track], frame: u64, time: f64, out: &mut Vec<TrackEvent>) {
        let p = self.policy;
        for t in tracks.iter().filter(|t| t.state == TrackState::Tracked) {
            match self.active.get(&t.id).copied() {
                None => {
                    let a = Active {
                        first_time: time,
                        last_seen: time,
                        published: time,
                        published_box: t.bbox,
                        last: *t,
                    };
                    self.active.insert(t.id, a);
                    let e = self.event(EventKind::New, &a, frame, time);
                    out.push(e);
                }
                Some(mut a) => {
                    a.last = *t;
                    a.last_seen = time;
                    let since = time - a.published;
                    let moved = t.bbox.iou(&a.published_box) < p.moved_iou;
                    if since >= p.update_every || (moved && since >= p.min_gap) {
                        a.published = time;
                        a.published_box = t.bbox;
                        let e = self.event(EventKind::Update, &a, frame, time);
                        out.push(e);
                    }
                    self.active.insert(t.id, a);
                }
            }
        }
        // Lost tracks the tracker still reports keep their event open, without updates.
        for t in tracks.iter().filter(|t| t.state == TrackState::Lost) {
            if let Some(a) = self.active.get_mut(&t.id) {
                a.last_seen = time;
            }
        }
        let gone: Vec<u64> = self
            .active
            .iter()
            .filter(|(_, a)| time - a.last_seen > p.end_after)
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            if let Some(a) = self.active.remove(&id) {
                let e = self.event(EventKind::End, &a, frame, time);
                out.push(e);
            }
        }
    }

    /// Ends every open track (the source finished); appends the `end` events to `out`.
    pub fn finish(&mut self, frame: u64, time: f64, out: &mut Vec<TrackEvent>) {
        for a in std::mem::take(&mut self.active).into_values() {
            let e = self.event(EventKind::End, &a, frame, time);
            out.push(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn track(id: u64, x: f32, state: TrackState) -> Track {
        Track {
            id,
            bbox: BBox {
                x1: x,
                y1: 0.0,
                x2: x + 10.0,
                y2: 20.0,
            },
            score: 0.9,
            class_id: 0,
            state,
            age: 5,
            frames_since_update: 0,
            velocity: (0.0, 0.0),
        }
    }

    fn kinds(ev: &[TrackEvent]) -> Vec<(EventKind, u64)> {
        ev.iter().map(|e| (e.kind, e.id)).collect()
    }

    #[test]
    fn new_update_end_with_increasing_numbers() {
        let mut te = TrackEvents::new(EventPolicy::default());
        let mut ev = Vec::new();
        let dt = 0.1;
        // Two people, one standing still for 6 s, one walking fast.
        for i in 0..60u64 {
            let t = i as f64 * dt;
            let tracks = [
                track(1, 0.0, TrackState::Tracked),
                track(2, 100.0 + i as f32 * 2.0, TrackState::Tracked),
            ];
            te.update(&tracks, i, t, &mut ev);
        }
        assert_eq!(kinds(&ev[..2]), [(EventKind::New, 1), (EventKind::New, 2)]);
        let updates_1 = ev
            .iter()
            .filter(|e| e.id == 1 && e.kind == EventKind::Update)
            .count();
        let updates_2 = ev
            .iter()
            .filter(|e| e.id == 2 && e.kind == EventKind::Update)
            .count();
        assert_eq!(updates_1, 1, "still person: one update after 5 s");
        assert!(
            updates_2 >= 3,
            "moving person: updates on large moves, {updates_2}"
        );
        // Person 2 leaves; lost for 0.5 s (still reported), then gone.
        let mut ev2 = Vec::new();
        for i in 60..90u64 {
            let t = i as f64 * dt;
            let mut tracks = vec![track(1, 0.0, TrackState::Tracked)];
            if i < 65 {
                tracks.push(track(2, 220.0, TrackState::Lost));
            }
            te.update(&tracks, i, t, &mut ev2);
        }
        let ends: Vec<_> = ev2.iter().filter(|e| e.kind == EventKind::End).collect();
        assert_eq!(ends.len(), 1);
        assert_eq!(ends[0].id, 2);
        assert!(ends[0].time > 6.4 + 1.0 - 1e-9 && ends[0].time < 6.4 + 1.2);
        te.finish(90, 9.0, &mut ev2);
        assert_eq!(
            ev2.last().map(|e| (e.kind, e.id)),
            Some((EventKind::End, 1))
        );
        let all: Vec<u64> = ev.iter().chain(&ev2).map(|e| e.seq).collect();
        assert_eq!(all, (1..=all.len() as u64).collect::<Vec<_>>());
        assert_eq!(te.active(), 0);
    }
}
