//! MOTChallenge text files (ground truth, detections, tracker results) and the CLEAR-MOT and
//! identity metrics computed exactly as py-motmetrics 1.4 computes them.
//!
//! # File format
//! One box per line: `frame,id,x,y,w,h,conf,x,y,z` with 1-based frames, the top-left corner and
//! size in pixels, id -1 for plain detections. Ground truth files use columns 7 to 9 for the
//! "consider" flag, the class and the visibility. Fields may be separated by commas or
//! whitespace; columns after the sixth may be missing (`conf` then reads 1, the others -1).
//!
//! # Evaluation
//! [`evaluate`] reproduces `motmetrics.io.loadtxt` (default `min_confidence=-1`) followed by
//! `motmetrics.utils.compare_to_groundtruth(gt, hyp, 'iou', distth=1 - iou_threshold)` and
//! `motmetrics.metrics.create().compute(...)`:
//! - rows whose column 7 is below -1 are dropped from both files, and nothing else is: ground
//!   truth rows flagged 0, of other classes or invisible all count. This is the library default;
//!   MOTChallenge's own `eval_motchallenge.py` loads ground truth with `min_confidence=1`, which
//!   [`keep_min_confidence`] reproduces. (py-motmetrics also drops rows lacking column 7, which
//!   this reader fills with 1.)
//! - every frame present in either file is evaluated; a pair may match when IoU >= threshold.
//! - per frame, an object keeps the hypothesis it was last matched to whenever they still
//!   overlap enough; the rest are paired by a minimum-cost assignment of `1 - IoU` that first
//!   maximises the number of pairs. A pair that contradicts an object's previous hypothesis is
//!   an id switch (counted in the frame it happens, however long ago the previous match was).
//! - MOTA = 1 - (misses + switches + false positives) / ground-truth boxes; MOTP is the mean
//!   `1 - IoU` over matched pairs (lower is better, as py-motmetrics reports it).
//! - IDF1/IDP/IDR come from the global one-to-one assignment of ground-truth to hypothesis
//!   trajectories maximising the frames where they overlap with IoU >= threshold.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;

use pathfinding::kuhn_munkres::{kuhn_munkres, kuhn_munkres_min};
use pathfinding::matrix::Matrix;

use crate::detection::{BBox, Detection};
use crate::error::{Error, Result};
use crate::track::Track;

/// Names of the ten MOTChallenge columns, for messages.
const COLUMNS: [&str; 10] = [
    "frame",
    "id",
    "x",
    "y",
    "w",
    "h",
    "conf",
    "class/x",
    "visibility/y",
    "z",
];

/// One line of a MOTChallenge file.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct MotRow {
    /// Frame number as written (1-based).
    pub frame: u64,
    /// Object or track id; -1 for detections.
    pub id: i64,
    /// Left edge.
    pub x: f64,
    /// Top edge.
    pub y: f64,
    /// Width.
    pub w: f64,
    /// Height.
    pub h: f64,
    /// Column 7: detection confidence, or the ground truth's "consider" flag (1 when missing).
    pub conf: f64,
    /// Column 8: class in ground truth, world x (-1) elsewhere (-1 when missing).
    pub class: f64,
    /// Column 9: visibility in ground truth, world y (-1) elsewhere (-1 when missing).
    pub visibility: f64,
}

impl MotRow {
    /// The box as corners.
    pub fn bbox(&self) -> BBox {
        BBox::new(
            self.x as f32,
            self.y as f32,
            (self.x + self.w) as f32,
            (self.y + self.h) as f32,
        )
    }
}

/// Groups rows into per-frame detections (class 0, score from column 7), frames in order.
pub fn detections_by_frame(rows: &[MotRow]) -> BTreeMap<u64, Vec<Detection>> {
    let mut by_frame: BTreeMap<u64, Vec<Detection>> = BTreeMap::new();
    for r in rows {
        by_frame.entry(r.frame).or_default().push(Detection {
            bbox: r.bbox(),
            score: r.conf as f32,
            class_id: 0,
        });
    }
    by_frame
}

/// Reads a MOTChallenge file; errors name the file, line and column.
pub fn read_mot(path: impl AsRef<Path>) -> Result<Vec<MotRow>> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    parse_mot(&text, &name).map_err(|reason| Error::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, reason),
    })
}

/// Parses MOTChallenge text; `name` prefixes error messages (`name:line: column n (field): ...`).
/// Empty lines and lines starting with `#` are skipped.
pub fn parse_mot(text: &str, name: &str) -> std::result::Result<Vec<MotRow>, String> {
    let mut rows = Vec::new();
    let mut tokens: Vec<&str> = Vec::with_capacity(10);
    for (n, line) in text.lines().enumerate() {
        let line_no = n + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        tokens.clear();
        if line.contains(',') {
            tokens.extend(line.split(',').map(str::trim));
        } else {
            tokens.extend(line.split_whitespace());
        }
        while tokens.last() == Some(&"") {
            tokens.pop();
        }
        if tokens.len() < 6 {
            return Err(format!(
                "{name}:{line_no}: {} columns, expected at least 6 (frame,id,x,y,w,h)",
                tokens.len()
            ));
        }
        let mut values = [1.0, -1.0, -1.0];
        let mut head = [0.0f64; 6];
        for (i, tok) in tokens.iter().take(9).enumerate() {
            let v = number(tok).ok_or_else(|| {
                if tok.is_empty() {
                    format!(
                        "{name}:{line_no}: column {} ({}) is empty",
                        i + 1,
                        COLUMNS[i]
                    )
                } else {
                    format!(
                        "{name}:{line_no}: column {} ({}): '{tok}' is not a number",
                        i + 1,
                        COLUMNS[i]
                    )
                }
            })?;
            if i < 6 {
                head[i] = v;
            } else {
                values[i - 6] = v;
            }
        }
        let integral = |i: usize, v: f64| -> std::result::Result<f64, String> {
            if v.fract() == 0.0 && v.abs() < 9.0e15 {
                Ok(v)
            } else {
                Err(format!(
                    "{name}:{line_no}: column {} ({}): '{}' is not a whole number",
                    i + 1,
                    COLUMNS[i],
                    tokens[i]
                ))
            }
        };
        let frame = integral(0, head[0])?;
        if frame < 0.0 {
            return Err(format!(
                "{name}:{line_no}: column 1 (frame): '{}' is negative",
                tokens[0]
            ));
        }
        let id = integral(1, head[1])?;
        rows.push(MotRow {
            frame: frame as u64,
            id: id as i64,
            x: head[2],
            y: head[3],
            w: head[4],
            h: head[5],
            conf: values[0],
            class: values[1],
            visibility: values[2],
        });
    }
    Ok(rows)
}

fn number(tok: &str) -> Option<f64> {
    let v: f64 = tok.parse().ok()?;
    v.is_finite().then_some(v)
}

/// Writes one tracker result line `frame,id,x,y,w,h,conf,-1,-1,-1` (2 decimals); `frame` is
/// the 1-based frame number.
pub fn write_mot_line(w: &mut impl Write, frame: u64, track: &Track) -> std::io::Result<()> {
    let b = &track.bbox;
    writeln!(
        w,
        "{frame},{},{:.2},{:.2},{:.2},{:.2},{:.2},-1,-1,-1",
        track.id,
        b.x1,
        b.y1,
        b.x2 - b.x1,
        b.y2 - b.y1,
        track.score
    )
}

/// Writes one row as `frame,id,x,y,w,h,conf,class,visibility` (box with 2 decimals).
pub fn write_mot_row(w: &mut impl Write, row: &MotRow) -> std::io::Result<()> {
    writeln!(
        w,
        "{},{},{:.2},{:.2},{:.2},{:.2},{},{},{}",
        row.frame, row.id, row.x, row.y, row.w, row.h, row.conf, row.class, row.visibility
    )
}

/// Writes rows to a file; errors name it.
pub fn write_mot(path: impl AsRef<Path>, rows: &[MotRow]) -> Result<()> {
    let path = path.as_ref();
    let io = |error| Error::Write {
        path: path.to_path_buf(),
        error,
    };
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
    for r in rows {
        write_mot_row(&mut w, r).map_err(io)?;
    }
    w.flush().map_err(io)
}

/// The rows whose column 7 is at least `min` (`eval_motchallenge.py` loads ground truth with 1).
pub fn keep_min_confidence(rows: &[MotRow], min: f64) -> Vec<MotRow> {
    rows.iter().copied().filter(|r| r.conf >= min).collect()
}

/// CLEAR-MOT, identity and track-quality metrics, named as in py-motmetrics where they differ.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct MotMetrics {
    /// Multiple object tracking accuracy: 1 - (fn + fp + id_switches) / num_gt.
    pub mota: f64,
    /// Mean distance `1 - IoU` over matches and switches (py-motmetrics' MOTP).
    pub motp: f64,
    /// Identity F1: 2 idtp / (num_gt + num_hyp).
    pub idf1: f64,
    /// Identity precision: idtp / (idtp + idfp).
    pub idp: f64,
    /// Identity recall: idtp / (idtp + idfn).
    pub idr: f64,
    /// Identity true positives of the global trajectory assignment.
    pub idtp: u64,
    /// Identity false positives.
    pub idfp: u64,
    /// Identity false negatives.
    pub idfn: u64,
    /// Id switches (`num_switches`).
    pub id_switches: u64,
    /// False positives (`num_false_positives`).
    pub fp: u64,
    /// Misses (`num_misses`).
    pub fn_: u64,
    /// Ground-truth boxes (`num_objects`).
    pub num_gt: u64,
    /// Hypothesis boxes (`num_predictions`).
    pub num_hyp: u64,
    /// Matches that are not switches (`num_matches`).
    pub num_matches: u64,
    /// Frames present in either input.
    pub num_frames: u64,
    /// Distinct ground-truth ids.
    pub num_unique_objects: u64,
    /// Objects matched in at least 80% of their frames.
    pub mostly_tracked: u64,
    /// Objects matched in 20% to 80% of their frames.
    pub partially_tracked: u64,
    /// Objects matched in less than 20% of their frames.
    pub mostly_lost: u64,
    /// Times an object went from matched to missed within its matched span.
    pub fragmentations: u64,
    /// (matches + switches) / (matches + switches + fp).
    pub precision: f64,
    /// (matches + switches) / num_gt.
    pub recall: f64,
}

/// IoU distance exactly as py-motmetrics computes it on (x - 1, y - 1, w, h) boxes.
fn iou_distance(a: &MotRow, b: &MotRow) -> f64 {
    let (ax, ay) = (a.x - 1.0, a.y - 1.0);
    let (bx, by) = (b.x - 1.0, b.y - 1.0);
    let (ax2, ay2) = (ax + a.w, ay + a.h);
    let (bx2, by2) = (bx + b.w, by + b.h);
    let iw = (ax2.min(bx2) - ax.max(bx)).max(0.0);
    let ih = (ay2.min(by2) - ay.max(by)).max(0.0);
    let inter = iw * ih;
    let area_a = (ax2 - ax).max(0.0) * (ay2 - ay).max(0.0);
    let area_b = (bx2 - bx).max(0.0) * (by2 - by).max(0.0);
    let iou = if inter == 0.0 {
        0.0
    } else {
        inter / (area_a + area_b - inter)
    };
    1.0 - iou
}

/// Rows grouped by frame in file order.
fn by_frame(rows: &[MotRow]) -> HashMap<u64, Vec<usize>> {
    let mut m: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, r) in rows.iter().enumerate() {
        if r.conf >= -1.0 {
            m.entry(r.frame).or_default().push(i);
        }
    }
    m
}

/// Minimum-cost assignment over the finite entries of a `rows x cols` matrix that first
/// maximises the number of pairs, as py-motmetrics' solver does with its "expensive edges".
fn max_pairs_min_cost(dist: &[f64], rows: usize, cols: usize) -> Vec<(usize, usize)> {
    const SCALE: f64 = 1e9;
    let finite: Vec<(usize, usize)> = (0..rows)
        .flat_map(|r| (0..cols).map(move |c| (r, c)))
        .filter(|&(r, c)| dist[r * cols + c].is_finite())
        .collect();
    if finite.is_empty() {
        return Vec::new();
    }
    // Solve each connected group of rows and columns on its own.
    let mut parent: Vec<usize> = (0..rows + cols).collect();
    fn find(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    for &(r, c) in &finite {
        let (a, b) = (find(&mut parent, r), find(&mut parent, rows + c));
        if a != b {
            parent[a] = b;
        }
    }
    let mut groups: HashMap<usize, (Vec<usize>, Vec<usize>)> = HashMap::new();
    for &(r, c) in &finite {
        let root = find(&mut parent, r);
        let g = groups.entry(root).or_default();
        if !g.0.contains(&r) {
            g.0.push(r);
        }
        if !g.1.contains(&c) {
            g.1.push(c);
        }
    }
    let mut roots: Vec<usize> = groups.keys().copied().collect();
    roots.sort_unstable();
    let mut out = Vec::new();
    for root in roots {
        let (mut grow, mut gcol) = groups.remove(&root).unwrap_or_default();
        grow.sort_unstable();
        gcol.sort_unstable();
        if grow.len() == 1 && gcol.len() == 1 {
            out.push((grow[0], gcol[0]));
            continue;
        }
        // Rows of the solved matrix must not outnumber its columns.
        let transposed = grow.len() > gcol.len();
        let (a, b) = if transposed {
            (&gcol, &grow)
        } else {
            (&grow, &gcol)
        };
        let at = |i: usize, j: usize| {
            let (r, c) = if transposed {
                (b[j], a[i])
            } else {
                (a[i], b[j])
            };
            dist[r * cols + c]
        };
        let scaled = |v: f64| (v * SCALE).round() as i64;
        let mut max_abs = 0i64;
        for i in 0..a.len() {
            for j in 0..b.len() {
                let v = at(i, j);
                if v.is_finite() {
                    max_abs = max_abs.max(scaled(v).abs());
                }
            }
        }
        // Same rule as motmetrics.lap.add_expensive_edges: l = 2 r c + 1 with c = max|cost| + 1.
        let large = 2 * a.len() as i64 * (max_abs + 1) + 1;
        let mut w = Matrix::new(a.len(), b.len(), 0i64);
        for i in 0..a.len() {
            for j in 0..b.len() {
                let v = at(i, j);
                w[(i, j)] = if v.is_finite() { scaled(v) } else { large };
            }
        }
        let (_, assigned) = kuhn_munkres_min(&w);
        for (i, &j) in assigned.iter().enumerate() {
            if at(i, j).is_finite() {
                out.push(if transposed {
                    (b[j], a[i])
                } else {
                    (a[i], b[j])
                });
            }
        }
    }
    out
}

/// Evaluates tracker output `hyp` against ground truth `gt` like py-motmetrics (see the module
/// documentation); a pair may match when its IoU is at least `iou_threshold` (0.5 usually).
pub fn evaluate(gt: &[MotRow], hyp: &[MotRow], iou_threshold: f32) -> MotMetrics {
    let max_dist = 1.0 - iou_threshold as f64;
    let gt_frames = by_frame(gt);
    let hyp_frames = by_frame(hyp);
    let mut frames: Vec<u64> = gt_frames.keys().chain(hyp_frames.keys()).copied().collect();
    frames.sort_unstable();
    frames.dedup();

    // Accumulator state (MOTAccumulator.m) and counters.
    let mut last_hyp: HashMap<i64, i64> = HashMap::new();
    let (mut matches, mut switches, mut fps, mut misses) = (0u64, 0u64, 0u64, 0u64);
    let mut dist_sum = 0.0;
    // Per object: its match/miss sequence in frame order (true = matched or switched).
    let mut history: HashMap<i64, Vec<bool>> = HashMap::new();
    // Identity counts: frames per object, per hypothesis, and per overlapping pair.
    let mut object_frames: HashMap<i64, u64> = HashMap::new();
    let mut hyp_frames_count: HashMap<i64, u64> = HashMap::new();
    let mut pair_frames: HashMap<(i64, i64), u64> = HashMap::new();
    let (mut num_gt, mut num_hyp) = (0u64, 0u64);

    let empty = Vec::new();
    let mut dist: Vec<f64> = Vec::new();
    for frame in &frames {
        let orows = gt_frames.get(frame).unwrap_or(&empty);
        let hrows = hyp_frames.get(frame).unwrap_or(&empty);
        let oids: Vec<i64> = orows.iter().map(|&i| gt[i].id).collect();
        let hids: Vec<i64> = hrows.iter().map(|&i| hyp[i].id).collect();
        let (no, nh) = (oids.len(), hids.len());
        num_gt += no as u64;
        num_hyp += nh as u64;

        dist.clear();
        for &oi in orows {
            for &hi in hrows {
                let d = iou_distance(&gt[oi], &hyp[hi]);
                dist.push(if d > max_dist || d.is_nan() {
                    f64::NAN
                } else {
                    d
                });
            }
        }
        let mut seen_o: Vec<i64> = oids.clone();
        seen_o.sort_unstable();
        seen_o.dedup();
        for o in &seen_o {
            *object_frames.entry(*o).or_default() += 1;
        }
        let mut seen_h: Vec<i64> = hids.clone();
        seen_h.sort_unstable();
        seen_h.dedup();
        for h in &seen_h {
            *hyp_frames_count.entry(*h).or_default() += 1;
        }
        for i in 0..no {
            for j in 0..nh {
                if dist[i * nh + j].is_finite() {
                    *pair_frames.entry((oids[i], hids[j])).or_default() += 1;
                }
            }
        }

        let mut o_done = vec![false; no];
        let mut h_done = vec![false; nh];
        let mut events: Vec<(i64, bool)> = Vec::with_capacity(no);
        if no > 0 && nh > 0 {
            // 1. Keep previous correspondences that are still valid.
            for i in 0..no {
                let Some(&hprev) = last_hyp.get(&oids[i]) else {
                    continue;
                };
                let Some(j) = (0..nh).find(|&j| !h_done[j] && hids[j] == hprev) else {
                    continue;
                };
                let d = dist[i * nh + j];
                if d.is_finite() {
                    o_done[i] = true;
                    h_done[j] = true;
                    matches += 1;
                    dist_sum += d;
                    events.push((oids[i], true));
                }
            }
            // 2. Assign the rest.
            let mut rest = dist.clone();
            for i in 0..no {
                for j in 0..nh {
                    if o_done[i] || h_done[j] {
                        rest[i * nh + j] = f64::NAN;
                    }
                }
            }
            for (i, j) in max_pairs_min_cost(&rest, no, nh) {
                let (o, h) = (oids[i], hids[j]);
                match last_hyp.get(&o) {
                    Some(&prev) if prev != h => switches += 1,
                    _ => matches += 1,
                }
                dist_sum += rest[i * nh + j];
                events.push((o, true));
                o_done[i] = true;
                h_done[j] = true;
                last_hyp.insert(o, h);
            }
        }
        // 3. and 4. Misses and false positives.
        for i in 0..no {
            if !o_done[i] {
                misses += 1;
                events.push((oids[i], false));
            }
        }
        fps += h_done.iter().filter(|d| !**d).count() as u64;
        for (o, hit) in events {
            history.entry(o).or_default().push(hit);
        }
    }

    // Track quality.
    let (mut mt, mut pt, mut ml, mut frag) = (0u64, 0u64, 0u64, 0u64);
    for seq in history.values() {
        let hits = seq.iter().filter(|h| **h).count();
        let ratio = hits as f64 / seq.len() as f64;
        if ratio >= 0.8 {
            mt += 1;
        } else if ratio >= 0.2 {
            pt += 1;
        } else {
            ml += 1;
        }
        if let (Some(first), Some(last)) =
            (seq.iter().position(|h| *h), seq.iter().rposition(|h| *h))
        {
            frag += (first + 1..=last)
                .filter(|&k| !seq[k] && seq[k - 1])
                .count() as u64;
        }
    }

    // Identity: global assignment of object to hypothesis trajectories maximising overlaps.
    let mut ob: Vec<i64> = object_frames.keys().copied().collect();
    ob.sort_unstable();
    let mut hy: Vec<i64> = hyp_frames_count.keys().copied().collect();
    hy.sort_unstable();
    let best_overlap = if ob.is_empty() || hy.is_empty() {
        0
    } else {
        let transposed = ob.len() > hy.len();
        let (a, b) = if transposed { (&hy, &ob) } else { (&ob, &hy) };
        let mut w = Matrix::new(a.len(), b.len(), 0i64);
        for (i, x) in a.iter().enumerate() {
            for (j, y) in b.iter().enumerate() {
                let key = if transposed { (*y, *x) } else { (*x, *y) };
                w[(i, j)] = pair_frames.get(&key).copied().unwrap_or(0) as i64;
            }
        }
        kuhn_munkres(&w).0 as u64
    };
    let sum_object_frames: u64 = object_frames.values().sum();
    let sum_hyp_frames: u64 = hyp_frames_count.values().sum();
    // Saturating: with repeated (frame, id) rows an overlap can exceed the frames counted.
    let idfn = sum_object_frames.saturating_sub(best_overlap);
    let idfp = sum_hyp_frames.saturating_sub(best_overlap);
    let idtp = num_gt.saturating_sub(idfn);

    let detections = matches + switches;
    let div = |a: f64, b: f64| a / b;
    MotMetrics {
        mota: 1.0 - div((misses + switches + fps) as f64, num_gt as f64),
        motp: div(dist_sum, detections as f64),
        idf1: div(2.0 * idtp as f64, (num_gt + num_hyp) as f64),
        idp: div(idtp as f64, (idtp + idfp) as f64),
        idr: div(idtp as f64, (idtp + idfn) as f64),
        idtp,
        idfp,
        idfn,
        id_switches: switches,
        fp: fps,
        fn_: misses,
        num_gt,
        num_hyp,
        num_matches: matches,
        num_frames: frames.len() as u64,
        num_unique_objects: history.len() as u64,
        mostly_tracked: mt,
        partially_tracked: pt,
        mostly_lost: ml,
        fragmentations: frag,
        precision: div(detections as f64, (detections + fps) as f64),
        recall: div(detections as f64, num_gt as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::track::TrackState;

    fn row(frame: u64, id: i64, x: f64, y: f64) -> MotRow {
        MotRow {
            frame,
            id,
            x,
            y,
            w: 10.0,
            h: 20.0,
            conf: 1.0,
            class: 1.0,
            visibility: 1.0,
        }
    }

    #[test]
    fn parses_commas_spaces_and_missing_columns() {
        let text = "1,2,10.5,20,30,40,0.9,-1,-1,-1\n\n# comment\n2 3 1 2 3 4\n3, 4, 1, 2, 3, 4, 1, 1, 0.25\n";
        let rows = parse_mot(text, "t.txt").unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].frame, 1);
        assert_eq!(rows[0].id, 2);
        assert_eq!(rows[0].x, 10.5);
        assert_eq!(rows[0].conf, 0.9);
        assert_eq!(
            (rows[1].conf, rows[1].class, rows[1].visibility),
            (1.0, -1.0, -1.0)
        );
        assert_eq!(rows[2].visibility, 0.25);
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let err = parse_mot("1,1,1,1,1,1\n2,1,1,1,1,abc\n", "det.txt").unwrap_err();
        assert_eq!(err, "det.txt:2: column 6 (h): 'abc' is not a number");
        let err = parse_mot("1,2,3\n", "det.txt").unwrap_err();
        assert!(err.starts_with("det.txt:1: 3 columns"), "{err}");
        let err = parse_mot("1.5,2,3,4,5,6\n", "gt.txt").unwrap_err();
        assert!(err.contains("column 1 (frame)"), "{err}");
        let err = parse_mot("1,,3,4,5,6\n", "gt.txt").unwrap_err();
        assert_eq!(err, "gt.txt:1: column 2 (id) is empty");
    }

    #[test]
    fn read_mot_error_names_the_path() {
        let dir = std::env::temp_dir().join(format!("vigia-mot-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("det.txt");
        std::fs::write(&p, "1,-1,1,1,1,x\n").unwrap();
        let err = read_mot(&p).unwrap_err().to_string();
        assert!(
            err.contains("det.txt:1: column 6 (h): 'x' is not a number"),
            "{err}"
        );
        assert!(read_mot(dir.join("missing.txt")).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn writes_track_lines() {
        let t = Track {
            id: 7,
            bbox: BBox::new(1.0, 2.0, 11.5, 22.25),
            score: 0.876,
            class_id: 0,
            state: TrackState::Tracked,
            age: 3,
            frames_since_update: 0,
            velocity: (0.0, 0.0),
        };
        let mut out = Vec::new();
        write_mot_line(&mut out, 5, &t).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "5,7,1.00,2.00,10.50,20.25,0.88,-1,-1,-1\n"
        );
        let mut out = Vec::new();
        write_mot_row(&mut out, &row(3, 2, 4.0, 5.0)).unwrap();
        let back = parse_mot(std::str::from_utf8(&out).unwrap(), "x").unwrap();
        assert_eq!(back[0], row(3, 2, 4.0, 5.0));
    }

    #[test]
    fn perfect_tracking_scores_one() {
        let gt: Vec<MotRow> = (1..=10)
            .flat_map(|f| [row(f, 1, f as f64, 0.0), row(f, 2, 100.0, f as f64)])
            .collect();
        let m = evaluate(&gt, &gt, 0.5);
        assert_eq!(m.mota, 1.0);
        assert_eq!(m.motp, 0.0);
        assert_eq!(m.idf1, 1.0);
        assert_eq!((m.num_gt, m.num_matches, m.id_switches), (20, 20, 0));
        assert_eq!((m.mostly_tracked, m.mostly_lost), (2, 0));
    }

    #[test]
    fn counts_switches_misses_false_positives_and_fragments() {
        let gt: Vec<MotRow> = (1..=6).map(|f| row(f, 1, 0.0, 0.0)).collect();
        let mut hyp = Vec::new();
        for f in 1..=6u64 {
            match f {
                3 => {}
                1 | 2 => hyp.push(row(f, 10, 1.0, 0.0)),
                _ => hyp.push(row(f, 11, 1.0, 0.0)),
            }
        }
        hyp.push(row(4, 12, 200.0, 0.0));
        let m = evaluate(&gt, &hyp, 0.5);
        assert_eq!((m.num_matches, m.id_switches, m.fn_, m.fp), (4, 1, 1, 1));
        assert_eq!(m.fragmentations, 1);
        assert!((m.mota - (1.0 - 3.0 / 6.0)).abs() < 1e-12);
        // IoU of boxes shifted by 1 px: 9*20 / (2*200 - 180).
        let d = 1.0 - 180.0 / 220.0;
        assert!((m.motp - d).abs() < 1e-12);
        // Best identity pairing: object 1 with hypothesis 11 over 3 frames.
        assert_eq!((m.idtp, m.idfn, m.idfp), (3, 3, 3));
        assert!((m.idf1 - 6.0 / 12.0).abs() < 1e-12);
    }

    #[test]
    fn previous_correspondence_wins_over_a_closer_box() {
        // Frame 1: object 1 matched to hypothesis 5. Frame 2: hypothesis 6 fits better, but 5
        // still overlaps enough, so the match is kept and 6 is a false positive.
        let gt = vec![row(1, 1, 0.0, 0.0), row(2, 1, 0.0, 0.0)];
        let hyp = vec![
            row(1, 5, 0.0, 0.0),
            row(2, 5, 2.0, 0.0),
            row(2, 6, 0.0, 0.0),
        ];
        let m = evaluate(&gt, &hyp, 0.5);
        assert_eq!((m.num_matches, m.id_switches, m.fp), (2, 0, 1));
    }

    #[test]
    fn confidence_below_minus_one_is_ignored_and_empty_inputs_are_nan_safe() {
        let mut gt = vec![row(1, 1, 0.0, 0.0)];
        let mut skipped = row(1, 2, 50.0, 0.0);
        skipped.conf = -2.0;
        gt.push(skipped);
        let m = evaluate(&gt, &[], 0.5);
        assert_eq!((m.num_gt, m.fn_), (1, 1));
        assert_eq!(m.mota, 0.0);
        assert!(m.motp.is_nan());
        let m = evaluate(&[], &[], 0.5);
        assert_eq!(m.num_frames, 0);
        assert_eq!(keep_min_confidence(&gt, 1.0).len(), 1);
    }

    #[test]
    fn assignment_maximises_pairs_before_cost() {
        // Row 0 fits column 0 best, but only the pairing (0,1),(1,0) matches both.
        let nan = f64::NAN;
        let d = [0.1, 0.4, 0.3, nan];
        let mut got = max_pairs_min_cost(&d, 2, 2);
        got.sort_unstable();
        assert_eq!(got, vec![(0, 1), (1, 0)]);
        let d = [nan, nan, 0.2, nan, 0.1, 0.3];
        let mut got = max_pairs_min_cost(&d, 3, 2);
        got.sort_unstable();
        assert_eq!(got, vec![(1, 0), (2, 1)]);
    }
}
