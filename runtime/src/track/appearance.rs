//! Appearance memory of tracks: a [`Gallery`] per person and the per-frame [`Appearances`].

use crate::reid::{cosine, l2_normalize, ColourAverage, ColourConflict, ColourShares};

/// Weight of the running average kept at each update (the new vector gets the rest).
const EMA_KEEP: f32 = 0.9;
/// Snapshots kept besides the running average.
const SNAPSHOTS: usize = 4;
/// A vector becomes a new snapshot when it is less similar than this to every snapshot.
const DIVERSE_BELOW: f32 = 0.9;

/// What one person looked like: a running average plus a few diverse snapshots (front and
/// back, in light and in shade), all unit vectors, and how much of their upper body each
/// strong colour covers.
#[derive(Debug, Clone, PartialEq)]
pub struct Gallery {
    average: Vec<f32>,
    snapshots: Vec<Vec<f32>>,
    updates: u32,
    colour: ColourAverage,
}

impl Gallery {
    /// A gallery holding one unit vector.
    pub fn new(first: &[f32]) -> Self {
        Gallery {
            average: first.to_vec(),
            snapshots: vec![first.to_vec()],
            updates: 1,
            colour: ColourAverage::default(),
        }
    }

    /// Adds a unit vector of the same length (others are ignored).
    pub fn add(&mut self, v: &[f32]) {
        if v.len() != self.average.len() {
            return;
        }
        for (a, x) in self.average.iter_mut().zip(v) {
            *a = EMA_KEEP * *a + (1.0 - EMA_KEEP) * x;
        }
        if !l2_normalize(&mut self.average) {
            self.average.copy_from_slice(v);
        }
        self.updates = self.updates.saturating_add(1);
        let (closest, best) = self
            .snapshots
            .iter()
            .enumerate()
            .map(|(i, s)| (i, cosine(s, v)))
            .fold((0, f32::MIN), |a, b| if b.1 > a.1 { b } else { a });
        if best >= DIVERSE_BELOW {
            return;
        }
        if self.snapshots.len() < SNAPSHOTS {
            self.snapshots.push(v.to_vec());
        } else {
            // Full: the new view replaces the one it resembles most, keeping the spread.
            self.snapshots[closest] = v.to_vec();
        }
    }

    /// Adds the colour shares of one crop.
    pub fn add_colour(&mut self, shares: &ColourShares) {
        self.colour.add(shares);
    }

    /// Learns from `look`, what the same person's current track looks like: its average as
    /// one vector, its colour shares as one view.
    pub fn add_look(&mut self, look: &Gallery) {
        self.add(&look.average);
        if look.colour.views() > 0 {
            self.colour.add(look.colour.shares());
        }
    }

    /// Merges another gallery of the same person into this one.
    pub fn merge(&mut self, other: &Gallery) {
        for s in &other.snapshots {
            self.add(s);
        }
        self.add(&other.average);
        self.colour.merge(&other.colour);
    }

    /// The averaged colour shares.
    pub fn colour(&self) -> &ColourAverage {
        &self.colour
    }

    /// The strong colour that covers clearly different shares of this person (the one looked
    /// for) and of `other` (at least `veto` of the upper body), when both have been measured
    /// often enough; `None` when `veto` is `None`.
    pub fn colour_conflict(&self, other: &Gallery, veto: Option<f32>) -> Option<ColourConflict> {
        self.colour.conflict(&other.colour, veto?)
    }

    /// The running average (a unit vector).
    pub fn average(&self) -> &[f32] {
        &self.average
    }

    /// Vectors added so far.
    pub fn updates(&self) -> u32 {
        self.updates
    }

    /// Similarity of `v` to this person: the best cosine over the average and the snapshots.
    pub fn similarity(&self, v: &[f32]) -> f32 {
        self.snapshots
            .iter()
            .map(|s| cosine(s, v))
            .fold(cosine(&self.average, v), f32::max)
    }

    /// Similarity of two people: the cosine of their running averages (averages over many
    /// crops are steadier than any single view, so this is what decisions use).
    pub fn similarity_to(&self, other: &Gallery) -> f32 {
        cosine(&self.average, &other.average)
    }
}

/// What each track reported after one update looks like, by track id: the crops of its
/// current track only (a re-identified person's older looks stay with the tracker), with the
/// frame time that track began.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Appearances {
    entries: Vec<(u64, Gallery, f64)>,
}

impl Appearances {
    /// Forgets every entry, keeping the memory.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Records the gallery of track `id`, a track as old as the video.
    pub fn insert(&mut self, id: u64, gallery: Gallery) {
        self.insert_since(id, gallery, f64::NEG_INFINITY);
    }

    /// Records the gallery of track `id`, whose current track began at frame time `since`.
    pub fn insert_since(&mut self, id: u64, gallery: Gallery, since: f64) {
        match self.entries.iter_mut().find(|(i, ..)| *i == id) {
            Some(e) => *e = (id, gallery, since),
            None => self.entries.push((id, gallery, since)),
        }
    }

    /// The gallery of track `id`, when it has been embedded.
    pub fn get(&self, id: u64) -> Option<&Gallery> {
        self.entries
            .iter()
            .find(|(i, ..)| *i == id)
            .map(|(_, g, _)| g)
    }

    /// Frame time the current track of `id` began, when it has been embedded. A track that
    /// began after its id was last seen is a re-identification, not the same track going on.
    pub fn since(&self, id: u64) -> Option<f64> {
        self.entries
            .iter()
            .find(|(i, ..)| *i == id)
            .map(|(.., s)| *s)
    }

    /// Number of tracks with an appearance.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no track has an appearance.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        let mut v = v.to_vec();
        assert!(l2_normalize(&mut v));
        v
    }

    #[test]
    fn gallery_keeps_diverse_views_and_matches_either() {
        let front = unit(&[1.0, 0.0, 0.0, 0.1]);
        let back = unit(&[0.0, 1.0, 0.0, 0.1]);
        let stranger = unit(&[0.0, 0.0, 1.0, 0.1]);
        let mut g = Gallery::new(&front);
        for _ in 0..20 {
            g.add(&front);
        }
        g.add(&back);
        // The average barely moved toward the back view, but the snapshot remembers it.
        assert!(cosine(g.average(), &back) < 0.5);
        assert!(g.similarity(&back) > 0.99);
        assert!(g.similarity(&front) > 0.99);
        assert!(g.similarity(&stranger) < 0.1);
        assert_eq!(g.updates(), 22);
        let other = Gallery::new(&back);
        assert!(g.similarity_to(&other) < 0.5);
        assert!(g.similarity_to(&g.clone()) > 0.99);
        // Wrong length is ignored.
        g.add(&[1.0]);
        assert_eq!(g.updates(), 22);
    }

    #[test]
    fn gallery_snapshots_stay_bounded() {
        let mut g = Gallery::new(&unit(&[1.0, 0.0, 0.0]));
        for i in 0..100 {
            let a = i as f32 * 0.2;
            g.add(&unit(&[a.cos(), a.sin(), 0.3]));
        }
        assert!(g.snapshots.len() <= SNAPSHOTS);
    }

    #[test]
    fn appearances_insert_replaces() {
        let mut a = Appearances::default();
        a.insert(3, Gallery::new(&[1.0, 0.0]));
        a.insert(3, Gallery::new(&[0.0, 1.0]));
        assert_eq!(a.len(), 1);
        assert_eq!(a.get(3).unwrap().average(), &[0.0, 1.0]);
        assert!(a.get(4).is_none());
        assert_eq!(a.since(3), Some(f64::NEG_INFINITY));
        a.insert_since(3, Gallery::new(&[1.0, 0.0]), 2.5);
        assert_eq!((a.len(), a.since(3)), (1, Some(2.5)));
        assert!(a.since(4).is_none());
        a.clear();
        assert!(a.is_empty());
    }
}
