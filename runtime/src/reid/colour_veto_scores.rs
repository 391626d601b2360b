//! How often the colour veto rules out a pair of tracklets, the same person's and two people's:
//! the first is the veto's cost (a returning person refused), the second its use.

use serde::Serialize;

use super::{ColourAverage, ColourShares};

/// One person crop's colour shares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ColourSample {
    /// The person (track id).
    pub person: u64,
    /// Frame it was cut from.
    pub frame: u64,
    /// Its shares.
    pub shares: ColourShares,
}

/// Pairs of tracklets the veto rules out.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ColourVetoScores {
    /// The least difference in one hue's share that rules a pair out.
    pub veto: f32,
    /// Pairs of one person's two halves.
    pub same_pairs: usize,
    /// Of those, ruled out (a person who would not be recognised).
    pub same_ruled_out: usize,
    /// Pairs of two people (the first half of one, the second half of the other).
    pub other_pairs: usize,
    /// Of those, ruled out (whatever the embedding says).
    pub other_ruled_out: usize,
}

/// Splits each person's samples in time like [`super::retrieval`] (first half, second half),
/// averages each half as a tracklet, and counts the pairs of halves the veto rules out.
/// `None` when fewer than two people have samples in both halves.
pub fn colour_veto_scores(samples: &[ColourSample], veto: f32) -> Option<ColourVetoScores> {
    let mut people: Vec<u64> = samples.iter().map(|s| s.person).collect();
    people.sort_unstable();
    people.dedup();
    let mut halves = Vec::new();
    for p in people {
        let mut own: Vec<&ColourSample> = samples.iter().filter(|s| s.person == p).collect();
        if own.len() < 2 {
            continue;
        }
        own.sort_by_key(|s| s.frame);
        let (first, second) = own.split_at(own.len() / 2);
        let average = |part: &[&ColourSample]| {
            let mut sum = ColourShares::default();
            for s in part {
                sum.0.iter_mut().zip(s.shares.0).for_each(|(a, x)| *a += x);
            }
            sum.0.iter_mut().for_each(|x| *x /= part.len() as f32);
            ColourAverage::from_mean(sum, part.len() as u32)
        };
        halves.push((average(first), average(second)));
    }
    if halves.len() < 2 {
        return None;
    }
    let mut s = ColourVetoScores {
        veto,
        same_pairs: 0,
        same_ruled_out: 0,
        other_pairs: 0,
        other_ruled_out: 0,
    };
    for (i, (query, _)) in halves.iter().enumerate() {
        for (j, (_, later)) in halves.iter().enumerate() {
            let out = query.conflict(later, veto).is_some() as usize;
            if i == j {
                s.same_pairs += 1;
                s.same_ruled_out += out;
            } else {
                s.other_pairs += 1;
                s.other_ruled_out += out;
            }
        }
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(person: u64, frame: u64, red: f32) -> ColourSample {
        ColourSample {
            person,
            frame,
            shares: ColourShares([red, 0.0, 0.0, 0.0, 0.0, 0.0]),
        }
    }

    #[test]
    fn counts_the_pairs_ruled_out() {
        // Person 1: red shoulders; 2: a red jacket; 3: red shoulders too; 4: a red jacket
        // that later comes back in grey.
        let mut samples = Vec::new();
        for f in 0..6 {
            samples.push(s(1, f, 0.25));
            samples.push(s(2, f, 0.9));
            samples.push(s(3, f, 0.3));
            samples.push(s(4, f, if f < 3 { 0.9 } else { 0.0 }));
        }
        let r = colour_veto_scores(&samples, 0.15).unwrap();
        assert_eq!((r.same_pairs, r.other_pairs), (4, 12));
        // Person 4 against themselves: red, then grey.
        assert_eq!(r.same_ruled_out, 1);
        // (first half, second half) 1-2, 1-4, 2-1, 2-3, 2-4, 3-2, 3-4, 4-1, 4-3; not 1-3,
        // 3-1 (0.05 apart) nor 4-2 (both red).
        assert_eq!(r.other_ruled_out, 9);
        assert!(colour_veto_scores(&samples[..4], 0.15).is_none());
    }
}
