//! Retrieval scores of an embedder: given crops labelled by track, how often is the nearest
//! crop of another moment the same person (rank-1), and how well are all of them ranked (mAP).

use serde::Serialize;

use super::cosine;

/// One embedded crop.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The person (track id).
    pub person: u64,
    /// Frame it was cut from.
    pub frame: u64,
    /// Unit vector.
    pub vector: Vec<f32>,
}

/// Retrieval quality over a set of samples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RetrievalScores {
    /// Queries scored (crops of the first half of each person's frames).
    pub queries: usize,
    /// Gallery crops (the second half of each person's frames, everyone together).
    pub gallery: usize,
    /// People with crops in both halves.
    pub people: usize,
    /// Mean average precision.
    pub map: f64,
    /// Share of queries whose most similar gallery crop is the same person.
    pub rank1: f64,
    /// Mean similarity of a query to the same person's gallery crops.
    pub mean_same: f64,
    /// Mean similarity of a query to other people's gallery crops.
    pub mean_other: f64,
    /// Per person, the mean of the query crops against the mean of each person's gallery
    /// crops (what re-identification compares): share whose best match is themselves.
    pub tracklet_rank1: f64,
    /// Mean tracklet similarity of a person to themselves.
    pub tracklet_same: f64,
    /// Highest tracklet similarity between two different people.
    pub tracklet_other_max: f64,
}

/// Splits each person's samples in time (first half: queries, second half: gallery) and ranks
/// the whole gallery for every query by cosine similarity. `None` when fewer than two people
/// have samples in both halves.
pub fn retrieval(samples: &[Sample]) -> Option<RetrievalScores> {
    let mut people: Vec<u64> = samples.iter().map(|s| s.person).collect();
    people.sort_unstable();
    people.dedup();
    let mut queries = Vec::new();
    let mut gallery = Vec::new();
    let mut both = 0;
    for p in &people {
        let mut own: Vec<&Sample> = samples.iter().filter(|s| s.person == *p).collect();
        if own.len() < 2 {
            continue;
        }
        own.sort_by_key(|s| s.frame);
        let half = own.len() / 2;
        queries.extend_from_slice(&own[..half]);
        gallery.extend_from_slice(&own[half..]);
        both += 1;
    }
    if both < 2 {
        return None;
    }
    let (mut ap_sum, mut top1, mut same_sum, mut same_n, mut other_sum, mut other_n) =
        (0.0, 0usize, 0.0, 0usize, 0.0, 0usize);
    let mut ranked: Vec<(f32, bool)> = Vec::with_capacity(gallery.len());
    for q in &queries {
        ranked.clear();
        for g in &gallery {
            let s = cosine(&q.vector, &g.vector);
            let same = g.person == q.person;
            if same {
                same_sum += s as f64;
                same_n += 1;
            } else {
                other_sum += s as f64;
                other_n += 1;
            }
            ranked.push((s, same));
        }
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        top1 += ranked[0].1 as usize;
        let (mut hits, mut ap) = (0usize, 0.0);
        for (rank, (_, same)) in ranked.iter().enumerate() {
            if *same {
                hits += 1;
                ap += hits as f64 / (rank + 1) as f64;
            }
        }
        ap_sum += ap / hits.max(1) as f64;
    }
    let n = queries.len().max(1) as f64;
    let mean_of = |set: &[&Sample], p: u64| -> Vec<f32> {
        let mut m = vec![0f32; set[0].vector.len()];
        for s in set.iter().filter(|s| s.person == p) {
            m.iter_mut().zip(&s.vector).for_each(|(a, x)| *a += x);
        }
        super::l2_normalize(&mut m);
        m
    };
    let kept: Vec<u64> = people
        .iter()
        .copied()
        .filter(|p| queries.iter().any(|q| q.person == *p))
        .collect();
    let q_means: Vec<Vec<f32>> = kept.iter().map(|p| mean_of(&queries, *p)).collect();
    let g_means: Vec<Vec<f32>> = kept.iter().map(|p| mean_of(&gallery, *p)).collect();
    let (mut t_top1, mut t_same, mut t_other_max) = (0usize, 0.0, f64::MIN);
    for (i, q) in q_means.iter().enumerate() {
        let sims: Vec<f32> = g_means.iter().map(|g| cosine(q, g)).collect();
        let best = (0..sims.len())
            .max_by(|&a, &b| sims[a].total_cmp(&sims[b]))
            .unwrap_or(0);
        t_top1 += (best == i) as usize;
        t_same += sims[i] as f64;
        for (j, s) in sims.iter().enumerate() {
            if j != i {
                t_other_max = t_other_max.max(*s as f64);
            }
        }
    }
    Some(RetrievalScores {
        tracklet_rank1: t_top1 as f64 / kept.len() as f64,
        tracklet_same: t_same / kept.len() as f64,
        tracklet_other_max: t_other_max,
        queries: queries.len(),
        gallery: gallery.len(),
        people: both,
        map: ap_sum / n,
        rank1: top1 as f64 / n,
        mean_same: same_sum / same_n.max(1) as f64,
        mean_other: other_sum / other_n.max(1) as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(person: u64, frame: u64, v: [f32; 2]) -> Sample {
        let mut vector = v.to_vec();
        crate::reid::l2_normalize(&mut vector);
        Sample {
            person,
            frame,
            vector,
        }
    }

    #[test]
    fn perfect_and_confused_rankings() {
        let clear = [
            s(1, 0, [1.0, 0.0]),
            s(1, 9, [1.0, 0.1]),
            s(2, 0, [0.0, 1.0]),
            s(2, 9, [0.1, 1.0]),
        ];
        let r = retrieval(&clear).unwrap();
        assert_eq!((r.queries, r.gallery, r.people), (2, 2, 2));
        assert!((r.map - 1.0).abs() < 1e-9 && (r.rank1 - 1.0).abs() < 1e-9);
        assert!(r.mean_same > 0.99 && r.mean_other < 0.2);
        // Person 1 later looks like person 2 used to: its query ranks the wrong one first.
        let swapped = [
            s(1, 0, [1.0, 0.0]),
            s(1, 9, [0.0, 1.0]),
            s(2, 0, [0.0, 1.0]),
            s(2, 9, [1.0, 0.0]),
        ];
        let r = retrieval(&swapped).unwrap();
        assert_eq!(r.rank1, 0.0);
        assert!((r.map - 0.5).abs() < 1e-9);
        assert!(retrieval(&clear[..2]).is_none());
    }
}
