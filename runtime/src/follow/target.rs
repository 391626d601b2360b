//! Which person to follow: the target selection policy and its command-line form.

use std::fmt;
use std::str::FromStr;

use crate::detection::BBox;
use crate::error::{Error, Result};
use crate::track::{Track, TrackState};

/// The command-line option that takes a [`TargetPolicy`].
pub const TARGET_OPTION: &str = "--target";

const VALID_FORMS: &str = "valid forms: largest, center, score, id:N, point:X,Y, rect:X1,Y1,X2,Y2 \
                           (X and Y normalized to 0..1)";

/// How to choose the person to follow among the tracked ones.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum TargetPolicy {
    /// The largest box (usually the closest person).
    #[default]
    Largest,
    /// The box whose centre is nearest the frame centre.
    Center,
    /// The highest detection score.
    HighestScore,
    /// Exactly this track id.
    TrackId(u64),
    /// The box containing this normalized point (nearest centre when several do).
    Point {
        /// Normalized x, 0 left .. 1 right.
        x: f32,
        /// Normalized y, 0 top .. 1 bottom.
        y: f32,
    },
    /// A box whose centre lies in this normalized rectangle (largest overlap with it wins).
    Rect {
        /// Left, normalized.
        x1: f32,
        /// Top, normalized.
        y1: f32,
        /// Right, normalized.
        x2: f32,
        /// Bottom, normalized.
        y2: f32,
    },
}

fn bad(reason: impl Into<String>) -> Error {
    Error::Option {
        option: TARGET_OPTION.to_string(),
        reason: reason.into(),
    }
}

fn parse_coords(form: &str, body: &str, n: usize) -> Result<Vec<f32>> {
    let parts: Vec<&str> = body.split(',').map(str::trim).collect();
    if parts.len() != n {
        return Err(bad(format!(
            "`{form}` needs {n} comma-separated numbers, got `{body}`; {VALID_FORMS}"
        )));
    }
    parts
        .iter()
        .map(|p| {
            let v: f32 = p
                .parse()
                .map_err(|_| bad(format!("`{p}` in `{form}` is not a number; {VALID_FORMS}")))?;
            if !(0.0..=1.0).contains(&v) {
                return Err(bad(format!(
                    "`{p}` in `{form}` is outside 0..1 (coordinates are normalized to the frame)"
                )));
            }
            Ok(v)
        })
        .collect()
}

impl FromStr for TargetPolicy {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        let lower = s.to_ascii_lowercase();
        match lower.as_str() {
            "largest" => return Ok(TargetPolicy::Largest),
            "center" | "centre" => return Ok(TargetPolicy::Center),
            "score" => return Ok(TargetPolicy::HighestScore),
            _ => {}
        }
        let (head, body) = lower
            .split_once(':')
            .ok_or_else(|| bad(format!("unknown target policy `{s}`; {VALID_FORMS}")))?;
        match head {
            "id" => body
                .trim()
                .parse::<u64>()
                .map(TargetPolicy::TrackId)
                .map_err(|_| {
                    bad(format!(
                        "`{body}` in `{s}` is not a track id; {VALID_FORMS}"
                    ))
                }),
            "point" => {
                let v = parse_coords(s, body, 2)?;
                Ok(TargetPolicy::Point { x: v[0], y: v[1] })
            }
            "rect" => {
                let v = parse_coords(s, body, 4)?;
                if v[0] >= v[2] || v[1] >= v[3] {
                    return Err(bad(format!(
                        "`{s}` is empty: it needs x1 < x2 and y1 < y2; {VALID_FORMS}"
                    )));
                }
                Ok(TargetPolicy::Rect {
                    x1: v[0],
                    y1: v[1],
                    x2: v[2],
                    y2: v[3],
                })
            }
            _ => Err(bad(format!("unknown target policy `{s}`; {VALID_FORMS}"))),
        }
    }
}

impl fmt::Display for TargetPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetPolicy::Largest => f.write_str("largest"),
            TargetPolicy::Center => f.write_str("center"),
            TargetPolicy::HighestScore => f.write_str("score"),
            TargetPolicy::TrackId(id) => write!(f, "id:{id}"),
            TargetPolicy::Point { x, y } => write!(f, "point:{x},{y}"),
            TargetPolicy::Rect { x1, y1, x2, y2 } => write!(f, "rect:{x1},{y1},{x2},{y2}"),
        }
    }
}

fn center_dist2(b: &BBox, x: f32, y: f32) -> f32 {
    let (cx, cy) = b.center();
    (cx - x) * (cx - x) + (cy - y) * (cy - y)
}

fn rect_px(x1: f32, y1: f32, x2: f32, y2: f32, w: f32, h: f32) -> BBox {
    BBox::new(x1 * w, y1 * h, x2 * w, y2 * h)
}

fn intersection(a: &BBox, b: &BBox) -> f32 {
    let iw = (a.x2.min(b.x2) - a.x1.max(b.x1)).max(0.0);
    let ih = (a.y2.min(b.y2) - a.y1.max(b.y1)).max(0.0);
    iw * ih
}

impl TargetPolicy {
    /// Whether `track` may be (or stay) the candidate under this policy, regardless of others.
    pub fn eligible(&self, track: &Track, frame_w: u32, frame_h: u32) -> bool {
        let (w, h) = (frame_w.max(1) as f32, frame_h.max(1) as f32);
        match *self {
            TargetPolicy::Largest | TargetPolicy::Center | TargetPolicy::HighestScore => true,
            TargetPolicy::TrackId(id) => track.id == id,
            TargetPolicy::Point { x, y } => {
                let (px, py) = (x * w, y * h);
                let b = &track.bbox;
                px >= b.x1 && px <= b.x2 && py >= b.y1 && py <= b.y2
            }
            TargetPolicy::Rect { x1, y1, x2, y2 } => {
                let r = rect_px(x1, y1, x2, y2, w, h);
                let (cx, cy) = track.bbox.center();
                cx >= r.x1 && cx <= r.x2 && cy >= r.y1 && cy <= r.y2
            }
        }
    }

    /// The track this policy picks among the `Tracked` tracks of class `class_id`, if any.
    ///
    /// Ties go to the lower id, so the choice does not depend on the order of `tracks`.
    pub fn select<'a>(
        &self,
        tracks: &'a [Track],
        class_id: usize,
        frame_w: u32,
        frame_h: u32,
    ) -> Option<&'a Track> {
        let (w, h) = (frame_w.max(1) as f32, frame_h.max(1) as f32);
        let candidates = tracks.iter().filter(|t| {
            t.state == TrackState::Tracked
                && t.class_id == class_id
                && self.eligible(t, frame_w, frame_h)
        });
        // Key: smaller is better; ties broken by id.
        let key = |t: &Track| -> f32 {
            match *self {
                TargetPolicy::Largest => -t.bbox.area(),
                TargetPolicy::Center => center_dist2(&t.bbox, w / 2.0, h / 2.0),
                TargetPolicy::HighestScore => -t.score,
                TargetPolicy::TrackId(_) => 0.0,
                TargetPolicy::Point { x, y } => center_dist2(&t.bbox, x * w, y * h),
                TargetPolicy::Rect { x1, y1, x2, y2 } => {
                    -intersection(&t.bbox, &rect_px(x1, y1, x2, y2, w, h))
                }
            }
        };
        candidates.min_by(|a, b| {
            key(a)
                .partial_cmp(&key(b))
                .unwrap_or(std::cmp::Ordering::Equal)
                .then(a.id.cmp(&b.id))
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A tracked person track with the given id and box.
    pub(crate) fn person(id: u64, b: BBox) -> Track {
        Track {
            id,
            bbox: b,
            score: 0.8,
            class_id: 0,
            state: TrackState::Tracked,
            age: 10,
            frames_since_update: 0,
            velocity: (0.0, 0.0),
        }
    }

    #[test]
    fn follow_target_parses_every_form() {
        assert_eq!(
            "largest".parse::<TargetPolicy>().unwrap(),
            TargetPolicy::Largest
        );
        assert_eq!(
            "Center".parse::<TargetPolicy>().unwrap(),
            TargetPolicy::Center
        );
        assert_eq!(
            "score".parse::<TargetPolicy>().unwrap(),
            TargetPolicy::HighestScore
        );
        assert_eq!(
            "id:7".parse::<TargetPolicy>().unwrap(),
            TargetPolicy::TrackId(7)
        );
        assert_eq!(
            "point:0.5,0.4".parse::<TargetPolicy>().unwrap(),
            TargetPolicy::Point { x: 0.5, y: 0.4 }
        );
        assert_eq!(
            "rect:0.2,0.2,0.6,0.9".parse::<TargetPolicy>().unwrap(),
            TargetPolicy::Rect {
                x1: 0.2,
                y1: 0.2,
                x2: 0.6,
                y2: 0.9
            }
        );
    }

    #[test]
    fn follow_target_display_round_trips() {
        for s in [
            "largest",
            "center",
            "score",
            "id:12",
            "point:0.5,0.25",
            "rect:0.1,0.2,0.6,0.9",
        ] {
            let p: TargetPolicy = s.parse().unwrap();
            assert_eq!(p.to_string(), s);
            assert_eq!(p.to_string().parse::<TargetPolicy>().unwrap(), p);
        }
    }

    #[test]
    fn follow_target_rejects_bad_forms_naming_the_option() {
        for s in [
            "biggest",
            "id:x",
            "id:-3",
            "point:0.5",
            "point:0.5,abc",
            "point:1.5,0.2",
            "rect:0.6,0.2,0.2,0.9",
            "rect:0.1,0.2,0.3",
            "",
        ] {
            match s.parse::<TargetPolicy>() {
                Err(Error::Option { option, reason }) => {
                    assert_eq!(option, "--target", "{s}");
                    assert!(!reason.is_empty());
                }
                other => panic!("{s:?} gave {other:?}"),
            }
        }
        let Err(Error::Option { reason, .. }) = "biggest".parse::<TargetPolicy>() else {
            panic!("expected an option error");
        };
        for form in ["largest", "center", "score", "id:N", "point:", "rect:"] {
            assert!(reason.contains(form), "{reason} lacks {form}");
        }
    }

    fn scene() -> Vec<Track> {
        let mut far = person(1, BBox::new(10.0, 10.0, 40.0, 90.0)); // 2400 px², left
        far.score = 0.95;
        let near = person(2, BBox::new(400.0, 100.0, 520.0, 400.0)); // 36000 px², right
        let central = person(3, BBox::new(300.0, 200.0, 340.0, 280.0)); // 3200 px², centre
        let mut car = person(4, BBox::new(0.0, 0.0, 640.0, 480.0));
        car.class_id = 2;
        let mut lost = person(5, BBox::new(0.0, 0.0, 600.0, 470.0));
        lost.state = TrackState::Lost;
        vec![far, near, central, car, lost]
    }

    #[test]
    fn follow_target_selection_policies() {
        let t = scene();
        let pick = |p: TargetPolicy| p.select(&t, 0, 640, 480).map(|t| t.id);
        assert_eq!(pick(TargetPolicy::Largest), Some(2));
        assert_eq!(pick(TargetPolicy::Center), Some(3));
        assert_eq!(pick(TargetPolicy::HighestScore), Some(1));
        assert_eq!(pick(TargetPolicy::TrackId(3)), Some(3));
        // Class 2 and lost tracks are never candidates, even by id.
        assert_eq!(pick(TargetPolicy::TrackId(4)), None);
        assert_eq!(pick(TargetPolicy::TrackId(5)), None);
        assert_eq!(pick(TargetPolicy::TrackId(99)), None);
        // A point inside person 2's box.
        assert_eq!(pick(TargetPolicy::Point { x: 0.7, y: 0.5 }), Some(2));
        // A point on nobody.
        assert_eq!(pick(TargetPolicy::Point { x: 0.5, y: 0.95 }), None);
        // The left 30% of the frame holds only person 1's centre.
        assert_eq!(
            pick(TargetPolicy::Rect {
                x1: 0.0,
                y1: 0.0,
                x2: 0.3,
                y2: 1.0
            }),
            Some(1)
        );
        assert_eq!(
            pick(TargetPolicy::Rect {
                x1: 0.4,
                y1: 0.3,
                x2: 0.9,
                y2: 0.9
            }),
            Some(2)
        );
        // A configurable class.
        assert_eq!(
            TargetPolicy::Largest.select(&t, 2, 640, 480).map(|t| t.id),
            Some(4)
        );
    }

    #[test]
    fn follow_target_ties_go_to_the_lower_id_whatever_the_order() {
        let a = person(8, BBox::new(0.0, 0.0, 10.0, 10.0));
        let b = person(3, BBox::new(50.0, 0.0, 60.0, 10.0));
        let p = TargetPolicy::Largest;
        assert_eq!(p.select(&[a, b], 0, 100, 100).unwrap().id, 3);
        assert_eq!(p.select(&[b, a], 0, 100, 100).unwrap().id, 3);
    }

    #[test]
    fn follow_target_eligibility() {
        let t = person(1, BBox::new(100.0, 100.0, 200.0, 300.0));
        assert!(TargetPolicy::Largest.eligible(&t, 640, 480));
        assert!(TargetPolicy::TrackId(1).eligible(&t, 640, 480));
        assert!(!TargetPolicy::TrackId(2).eligible(&t, 640, 480));
        assert!(TargetPolicy::Point { x: 0.25, y: 0.5 }.eligible(&t, 640, 480));
        assert!(!TargetPolicy::Point { x: 0.5, y: 0.5 }.eligible(&t, 640, 480));
    }
}
