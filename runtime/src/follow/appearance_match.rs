//! Who, among the people in view, looks like the target: the follower's appearance test.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::reid::{ColourConflict, DEFAULT_COLOUR_VETO};
use crate::track::appearance::{Appearances, Gallery};
use crate::track::{Track, TrackState};

/// How sure the follower must be that a person is the target before following them again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AppearanceGate {
    /// Least similarity to the target's gallery (`--reid-threshold`).
    pub threshold: f32,
    /// Least lead of the best person over the next best (`--reid-margin`).
    pub margin: f32,
    /// Least difference in one strong colour's share of the upper body that rules a person
    /// out (`--reid-colour-veto`); `None`: colours not compared.
    pub colour_veto: Option<f32>,
    /// Seconds after the last sighting during which the target is looked for (`--follow-memory`).
    pub memory: f64,
    /// Seconds after giving up at which anyone may be followed (`--follow-any-after`); `None`:
    /// never without a new `--target` or a reset.
    pub any_after: Option<f64>,
    /// Crops a person's appearance must be built from before they are judged.
    pub min_views: u32,
}

impl Default for AppearanceGate {
    fn default() -> Self {
        AppearanceGate {
            threshold: 0.93,
            margin: 0.05,
            colour_veto: Some(DEFAULT_COLOUR_VETO),
            memory: 60.0,
            any_after: None,
            min_views: 5,
        }
    }
}

impl AppearanceGate {
    /// Checks the settings; errors name the option.
    pub fn validate(&self) -> Result<()> {
        crate::reid::validate_match_rule(self.threshold, self.margin)?;
        crate::reid::validate_colour_veto(self.colour_veto)?;
        if !(self.memory.is_finite() && self.memory >= 0.0) {
            return Err(Error::option(
                "--follow-memory",
                format!("must be a number of seconds >= 0, got {}", self.memory),
            ));
        }
        if let Some(a) = self.any_after {
            if !(a.is_finite() && a >= 0.0) {
                return Err(Error::option(
                    "--follow-any-after",
                    format!("must be a number of seconds >= 0, got {a}"),
                ));
            }
        }
        Ok(())
    }
}

/// The similarities behind a decision, reported with the event.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AppearanceScore {
    /// Similarity of the person decided about to the target.
    pub similarity: f32,
    /// Similarity of the next most similar person in view not ruled out by colour, when there
    /// was one.
    pub second: Option<f32>,
    /// The colour that rules the person out, when one does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub colour_conflict: Option<ColourConflict>,
}

/// The outcome of comparing the people in view with the target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AppearanceMatch {
    /// The most similar person.
    pub id: u64,
    /// Their scores.
    pub score: AppearanceScore,
    /// Whether they pass the threshold and the margin.
    pub accepted: bool,
}

/// Compares every tracked person of `class_id` (except `excluded` ids) whose appearance is
/// built from at least `min_views` crops with `target`; the most similar one, if any. A person
/// whose strong colours cover clearly different shares of the body than the target's is ruled
/// out (and no rival for the margin either); when everyone is, the most similar of them is
/// returned, refused, with the colour that rules them out.
pub fn most_similar(
    gate: &AppearanceGate,
    target: &Gallery,
    tracks: &[Track],
    appearances: &Appearances,
    class_id: usize,
    excluded: impl Fn(u64) -> bool,
) -> Option<AppearanceMatch> {
    let mut best: Option<(u64, f32)> = None;
    let mut second: Option<f32> = None;
    let mut ruled_out: Option<(u64, f32, ColourConflict)> = None;
    for t in tracks {
        if t.state != TrackState::Tracked || t.class_id != class_id || excluded(t.id) {
            continue;
        }
        let Some(g) = appearances
            .get(t.id)
            .filter(|g| g.updates() >= gate.min_views)
        else {
            continue;
        };
        let s = target.similarity_to(g);
        if let Some(c) = target.colour_conflict(g, gate.colour_veto) {
            if ruled_out.is_none_or(|(_, r, _)| s > r) {
                ruled_out = Some((t.id, s, c));
            }
            continue;
        }
        match best {
            Some((_, b)) if s <= b => second = Some(second.map_or(s, |x| x.max(s))),
            _ => {
                if let Some((_, b)) = best {
                    second = Some(second.map_or(b, |x| x.max(b)));
                }
                best = Some((t.id, s));
            }
        }
    }
    let Some((id, similarity)) = best else {
        let (id, similarity, conflict) = ruled_out?;
        return Some(AppearanceMatch {
            id,
            score: AppearanceScore {
                similarity,
                second: None,
                colour_conflict: Some(conflict),
            },
            accepted: false,
        });
    };
    let accepted =
        similarity >= gate.threshold && second.is_none_or(|x| similarity - x >= gate.margin);
    Some(AppearanceMatch {
        id,
        score: AppearanceScore {
            similarity,
            second,
            colour_conflict: None,
        },
        accepted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detection::BBox;
    use crate::follow::target::tests::person;

    fn gallery(v: [f32; 3]) -> Gallery {
        let mut v = v.to_vec();
        crate::reid::l2_normalize(&mut v);
        let mut g = Gallery::new(&v);
        for _ in 0..4 {
            g.add(&v);
        }
        g
    }

    #[test]
    fn picks_the_clear_match_and_refuses_look_alikes_and_strangers() {
        let target = gallery([1.0, 0.0, 0.0]);
        let b = BBox::new(0.0, 0.0, 10.0, 30.0);
        let tracks = [person(1, b), person(2, b), person(3, b)];
        let mut a = Appearances::default();
        a.insert(1, gallery([0.0, 1.0, 0.0]));
        a.insert(2, gallery([1.0, 0.05, 0.0]));
        let gate = AppearanceGate::default();
        let m = most_similar(&gate, &target, &tracks, &a, 0, |_| false).unwrap();
        assert_eq!(m.id, 2);
        assert!(m.accepted);
        assert!(m.score.second.unwrap() < 0.1);
        // A look-alike next to the target: no clear winner.
        a.insert(3, gallery([1.0, 0.06, 0.0]));
        let m = most_similar(&gate, &target, &tracks, &a, 0, |_| false).unwrap();
        assert!(!m.accepted);
        // Only a stranger in view.
        let m = most_similar(&gate, &target, &tracks, &a, 0, |id| id != 1).unwrap();
        assert_eq!(m.id, 1);
        assert!(!m.accepted);
        // Appearances built from too few crops are not judged.
        let mut young = Appearances::default();
        young.insert(2, Gallery::new(target.average()));
        assert!(most_similar(&gate, &target, &tracks, &young, 0, |_| false).is_none());
        // Nobody with an appearance.
        assert!(
            most_similar(&gate, &target, &tracks, &Appearances::default(), 0, |_| {
                false
            })
            .is_none()
        );
    }

    #[test]
    fn a_look_alike_in_other_colours_is_ruled_out_and_no_rival_for_the_margin() {
        use crate::reid::ColourShares;
        let with_red = |v: [f32; 3], red: f32| {
            let mut g = gallery(v);
            for _ in 0..5 {
                g.add_colour(&ColourShares([red, 0.0, 0.0, 0.0, 0.0, 0.0]));
            }
            g
        };
        // The target: red shoulders (a quarter of the upper body).
        let target = with_red([1.0, 0.0, 0.0], 0.25);
        let b = BBox::new(0.0, 0.0, 10.0, 30.0);
        let tracks = [person(1, b), person(2, b)];
        let mut a = Appearances::default();
        // A woman in a red jacket, as similar as can be by the embedding.
        a.insert(1, with_red([1.0, 0.01, 0.0], 0.9));
        let gate = AppearanceGate::default();
        let m = most_similar(&gate, &target, &tracks, &a, 0, |_| false).unwrap();
        assert_eq!(m.id, 1);
        assert!(!m.accepted);
        let c = m.score.colour_conflict.unwrap();
        assert_eq!(c.hue, "red");
        assert!((c.target - 0.25).abs() < 1e-6 && (c.candidate - 0.9).abs() < 1e-6);
        let event = serde_json::to_value(m.score).unwrap();
        assert_eq!(event["colour_conflict"]["hue"], "red", "{event}");
        // The target back beside her: she is no rival for the margin.
        a.insert(2, with_red([1.0, 0.05, 0.0], 0.3));
        let m = most_similar(&gate, &target, &tracks, &a, 0, |_| false).unwrap();
        assert_eq!(m.id, 2);
        assert!(m.accepted && m.score.second.is_none(), "{m:?}");
        assert!(serde_json::to_value(m.score).unwrap()["colour_conflict"].is_null());
        // Colours not compared: she wins on similarity.
        let off = AppearanceGate {
            colour_veto: None,
            ..gate
        };
        let m = most_similar(&off, &target, &tracks, &a, 0, |_| false).unwrap();
        assert_eq!(m.id, 1);
        assert!(!m.accepted, "no margin over the target: {m:?}");
    }

    #[test]
    fn gate_validation_names_options() {
        let names = |bad: AppearanceGate, option: &str| {
            let err = bad.validate().unwrap_err().to_string();
            assert!(err.contains(option), "{err}");
        };
        let d = AppearanceGate::default();
        names(AppearanceGate { memory: -1.0, ..d }, "--follow-memory");
        let any_after = Some(f64::NAN);
        names(AppearanceGate { any_after, ..d }, "--follow-any-after");
        let colour_veto = Some(0.0);
        names(AppearanceGate { colour_veto, ..d }, "--reid-colour-veto");
        assert!(d.validate().is_ok());
    }
}
