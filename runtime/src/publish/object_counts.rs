//! Objects in view per label, reported only when a new count has held for a few frames (one
//! flickering detection does not flood a retained topic).

use std::collections::BTreeMap;

/// Per-class counts with a hold before a change is reported.
#[derive(Debug, Clone)]
pub struct ObjectCounts {
    hold_frames: u32,
    /// Classes reported from the first frame, 0 included.
    always: Vec<usize>,
    /// class -> (reported count, candidate count, frames the candidate held)
    classes: BTreeMap<usize, (Option<u32>, u32, u32)>,
}

impl ObjectCounts {
    /// Reports a count once it held for `hold_frames` consecutive frames; `always` classes are
    /// reported (as 0) from the first frame.
    pub fn new(hold_frames: u32, always: &[usize]) -> Self {
        ObjectCounts {
            hold_frames: hold_frames.max(1),
            always: always.to_vec(),
            classes: always.iter().map(|c| (*c, (None, 0, u32::MAX))).collect(),
        }
    }

    /// Advances one frame with the classes of the objects in view; returns changed counts.
    pub fn update(
        &mut self,
        classes_in_view: impl IntoIterator<Item = usize>,
    ) -> Vec<(usize, u32)> {
        let mut now: BTreeMap<usize, u32> = BTreeMap::new();
        for c in classes_in_view {
            *now.entry(c).or_default() += 1;
        }
        for c in now.keys() {
            self.classes.entry(*c).or_insert((None, 0, 0));
        }
        let mut changed = Vec::new();
        for (class, (reported, candidate, held)) in self.classes.iter_mut() {
            let n = now.get(class).copied().unwrap_or(0);
            if n == *candidate {
                *held = held.saturating_add(1);
            } else {
                *candidate = n;
                *held = 1;
            }
            if *held >= self.hold_frames && *reported != Some(n) {
                // A class glimpsed for less than the hold was never reported: its 0 is no news.
                if n == 0 && reported.is_none() && !self.always.contains(class) {
                    continue;
                }
                *reported = Some(n);
                changed.push((*class, n));
            }
        }
        let always = &self.always;
        self.classes.retain(|class, (reported, candidate, _)| {
            reported.is_some() || *candidate > 0 || always.contains(class)
        });
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_change_after_the_hold_and_flicker_is_ignored() {
        let mut c = ObjectCounts::new(3, &[0]);
        assert_eq!(
            c.update([]),
            vec![(0, 0)],
            "always-reported class starts at 0"
        );
        assert_eq!(c.update([0, 0]), vec![]);
        assert_eq!(c.update([0, 0]), vec![]);
        assert_eq!(c.update([0, 0, 2]), vec![(0, 2)]);
        // One frame with a third person does not change the reported count.
        assert_eq!(c.update([0, 0, 0, 2]), vec![]);
        assert_eq!(c.update([0, 0, 2]), vec![(2, 1)]);
        assert_eq!(c.update([]), vec![]);
        assert_eq!(c.update([]), vec![]);
        assert_eq!(c.update([]), vec![(0, 0), (2, 0)]);
        assert_eq!(c.update([]), vec![]);
        // A class seen for one frame only is never reported, not even as 0.
        assert_eq!(c.update([5]), vec![]);
        for _ in 0..5 {
            assert_eq!(c.update([]), vec![]);
        }
    }
}
