//! Thresholded linear assignment (minimum total cost) between rows and columns of a cost
//! matrix, as used by ByteTrack to pair tracks with detections.
//!
//! A pair may be matched only when its cost is at most `thresh`; among such pairs the solver
//! finds the optimum of the problem ByteTrack solves with `lapjv(extend_cost=True,
//! cost_limit=thresh)`: every row or column left unmatched costs `thresh / 2`, so a pair is
//! worth matching exactly when its cost does not exceed `thresh` (ties are matched). The matrix
//! is split into independent groups connected by admissible pairs (nearly always tiny for
//! boxes: most pairs do not overlap); each group is solved exactly with the Kuhn-Munkres
//! algorithm of the `pathfinding` crate on integer costs (the cost times 1e6, rounded), after
//! extending it with the "leave unmatched" rows and columns, which also makes it square.

use pathfinding::kuhn_munkres::kuhn_munkres_min;
use pathfinding::matrix::Matrix;

/// Integer units per unit of cost.
const SCALE: f64 = 1e6;
/// Scaled costs are clamped to this magnitude so that sums cannot overflow `i64`.
const MAX_SCALED: i64 = 1_000_000_000_000;

/// Reusable solver: keeps its buffers between calls, so the tracker does not allocate per frame
/// for the common case of small groups.
#[derive(Debug, Default, Clone)]
pub struct AssignmentSolver {
    /// Matched (row, column) pairs of the last solve, sorted by row.
    pub matches: Vec<(usize, usize)>,
    /// Rows left unmatched by the last solve, increasing.
    pub unmatched_rows: Vec<usize>,
    /// Columns left unmatched by the last solve, increasing.
    pub unmatched_cols: Vec<usize>,
    parent: Vec<usize>,
    root_group: Vec<usize>,
    group_of: Vec<usize>,
    group_start: Vec<usize>,
    group_fill: Vec<usize>,
    group_nodes: Vec<usize>,
    row_matched: Vec<bool>,
    col_matched: Vec<bool>,
}

impl AssignmentSolver {
    /// An empty solver.
    pub fn new() -> Self {
        Self::default()
    }

    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    /// Solves the thresholded assignment of the row-major `rows` x `cols` matrix `cost`; results
    /// land in [`matches`](Self::matches), [`unmatched_rows`](Self::unmatched_rows) and
    /// [`unmatched_cols`](Self::unmatched_cols). Costs above `thresh`, NaN and infinities never match.
    pub fn solve(&mut self, cost: &[f32], rows: usize, cols: usize, thresh: f32) {
        assert_eq!(
            cost.len(),
            rows * cols,
            "cost matrix holds {} values, expected {rows} x {cols}",
            cost.len()
        );
        self.matches.clear();
        self.unmatched_rows.clear();
        self.unmatched_cols.clear();
        self.row_matched.clear();
        self.row_matched.resize(rows, false);
        self.col_matched.clear();
        self.col_matched.resize(cols, false);
        let admissible = |c: f32| c <= thresh && c.is_finite();

        if rows > 0 && cols > 0 && thresh.is_finite() {
            // Union-find over rows (0..rows) and columns (rows..rows + cols).
            let n = rows + cols;
            self.parent.clear();
            self.parent.extend(0..n);
            let mut any = false;
            for r in 0..rows {
                for c in 0..cols {
                    if admissible(cost[r * cols + c]) {
                        any = true;
                        let (a, b) = (self.find(r), self.find(rows + c));
                        if a != b {
                            self.parent[a] = b;
                        }
                    }
                }
            }
            if any {
                self.solve_groups(cost, rows, cols, thresh);
            }
        }

        self.matches.sort_unstable();
        for (r, &m) in self.row_matched.iter().enumerate() {
            if !m {
                self.unmatched_rows.push(r);
            }
        }
        for (c, &m) in self.col_matched.iter().enumerate() {
            if !m {
                self.unmatched_cols.push(c);
            }
        }
    }

    fn solve_groups(&mut self, cost: &[f32], rows: usize, cols: usize, thresh: f32) {
        let n = rows + cols;
        // Dense group index per root, then nodes bucketed by group (counting sort).
        self.root_group.clear();
        self.root_group.resize(n, usize::MAX);
        self.group_of.clear();
        let mut groups = 0;
        for x in 0..n {
            let root = self.find(x);
            if self.root_group[root] == usize::MAX {
                self.root_group[root] = groups;
                groups += 1;
            }
            self.group_of.push(self.root_group[root]);
        }
        let start = &mut self.group_start;
        start.clear();
        start.resize(groups + 1, 0);
        for &g in &self.group_of {
            start[g + 1] += 1;
        }
        for g in 0..groups {
            start[g + 1] += start[g];
        }
        self.group_fill.clear();
        self.group_fill.extend_from_slice(&start[..groups]);
        self.group_nodes.clear();
        self.group_nodes.resize(n, 0);
        for (x, &g) in self.group_of.iter().enumerate() {
            self.group_nodes[self.group_fill[g]] = x;
            self.group_fill[g] += 1;
        }

        let thresh_scaled = scale(thresh);
        for g in 0..groups {
            let nodes = &self.group_nodes[self.group_start[g]..self.group_start[g + 1]];
            let split = nodes.partition_point(|&x| x < rows);
            let (grow, gcol) = (&nodes[..split], &nodes[split..]);
            if grow.is_empty() || gcol.is_empty() {
                continue;
            }
            if grow.len() == 1 && gcol.len() == 1 {
                // The only admissible pair of its group.
                let (r, c) = (grow[0], gcol[0] - rows);
                self.matches.push((r, c));
                self.row_matched[r] = true;
                self.col_matched[c] = true;
                continue;
            }
            let pairs = solve_group(cost, cols, rows, grow, gcol, thresh, thresh_scaled);
            for (r, c) in pairs {
                self.matches.push((r, c));
                self.row_matched[r] = true;
                self.col_matched[c] = true;
            }
        }
    }
}

fn scale(c: f32) -> i64 {
    ((c as f64) * SCALE)
        .round()
        .clamp(-(MAX_SCALED as f64), MAX_SCALED as f64) as i64
}

/// Exact solution for one group: the `n x m` block extended to `(n + m) x (n + m)` with a
/// "leave unmatched" column per row and row per column, each costing half the threshold.
fn solve_group(
    cost: &[f32],
    cols: usize,
    rows: usize,
    grow: &[usize],
    gcol: &[usize],
    thresh: f32,
    thresh_scaled: i64,
) -> Vec<(usize, usize)> {
    let (n, m) = (grow.len(), gcol.len());
    let size = n + m;
    // Two "unmatched" entries cost strictly more than `thresh`, so a pair costing exactly
    // `thresh` is matched.
    let dummy = thresh_scaled.div_euclid(2) + 1;
    let mut max_abs = dummy.abs();
    for &r in grow {
        for &c in gcol {
            let v = cost[r * cols + (c - rows)];
            if v <= thresh && v.is_finite() {
                max_abs = max_abs.max(scale(v).abs());
            }
        }
    }
    // More than any perfect matching made of admissible entries could cost.
    let forbidden = (max_abs + 1).saturating_mul(2 * size as i64 + 2);
    let mut w = Matrix::new(size, size, 0i64);
    for (i, &r) in grow.iter().enumerate() {
        for (j, &c) in gcol.iter().enumerate() {
            let v = cost[r * cols + (c - rows)];
            w[(i, j)] = if v <= thresh && v.is_finite() {
                scale(v)
            } else {
                forbidden
            };
        }
        for j in m..size {
            w[(i, j)] = dummy;
        }
    }
    for i in n..size {
        for j in 0..m {
            w[(i, j)] = dummy;
        }
    }
    let (_, assigned) = kuhn_munkres_min(&w);
    let mut out = Vec::with_capacity(n.min(m));
    for (i, &j) in assigned.iter().enumerate().take(n) {
        if j < m && w[(i, j)] != forbidden {
            out.push((grow[i], gcol[j] - rows));
        }
    }
    out
}

/// One-shot thresholded assignment of a row-major `rows` x `cols` cost matrix: returns the
/// matched (row, column) pairs (sorted by row), the unmatched rows and the unmatched columns.
/// Pairs costing more than `thresh` are never matched.
pub fn linear_assignment(
    cost: &[f32],
    rows: usize,
    cols: usize,
    thresh: f32,
) -> (Vec<(usize, usize)>, Vec<usize>, Vec<usize>) {
    let mut solver = AssignmentSolver::new();
    solver.solve(cost, rows, cols, thresh);
    (solver.matches, solver.unmatched_rows, solver.unmatched_cols)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exhaustive reference: minimises matched cost plus thresh/2 per unmatched row and column.
    fn brute_force(cost: &[f32], rows: usize, cols: usize, thresh: f32) -> f64 {
        fn go(
            r: usize,
            used: &mut Vec<bool>,
            cost: &[f32],
            rows: usize,
            cols: usize,
            thresh: f32,
        ) -> f64 {
            if r == rows {
                let free = used.iter().filter(|u| !**u).count();
                return free as f64 * thresh as f64 / 2.0;
            }
            let mut best = thresh as f64 / 2.0 + go(r + 1, used, cost, rows, cols, thresh);
            for c in 0..cols {
                let v = cost[r * cols + c];
                if !used[c] && v <= thresh {
                    used[c] = true;
                    best = best.min(v as f64 + go(r + 1, used, cost, rows, cols, thresh));
                    used[c] = false;
                }
            }
            best
        }
        go(0, &mut vec![false; cols], cost, rows, cols, thresh)
    }

    fn total(cost: &[f32], cols: usize, thresh: f32, m: &[(usize, usize)], rows: usize) -> f64 {
        let matched: f64 = m.iter().map(|&(r, c)| cost[r * cols + c] as f64).sum();
        let unmatched = (rows - m.len()) + (cols - m.len());
        matched + unmatched as f64 * thresh as f64 / 2.0
    }

    #[test]
    fn square_matrix_finds_the_optimum() {
        let cost = [0.9, 0.1, 0.5, 0.2, 0.3, 0.9, 0.4, 0.95, 0.05];
        let (m, ur, uc) = linear_assignment(&cost, 3, 3, 0.8);
        assert_eq!(m, vec![(0, 1), (1, 0), (2, 2)]);
        assert!(ur.is_empty() && uc.is_empty());
    }

    #[test]
    fn pairs_above_threshold_are_rejected() {
        let cost = [0.85, 0.99, 0.99, 0.3];
        let (m, ur, uc) = linear_assignment(&cost, 2, 2, 0.8);
        assert_eq!(m, vec![(1, 1)]);
        assert_eq!(ur, vec![0]);
        assert_eq!(uc, vec![0]);
        // A pair at exactly the threshold is matched.
        let (m, _, _) = linear_assignment(&[0.5], 1, 1, 0.5);
        assert_eq!(m, vec![(0, 0)]);
    }

    #[test]
    fn rectangular_matrices_both_ways() {
        // 2 rows, 4 columns.
        let cost = [0.7, 0.2, 0.9, 0.1, 0.3, 0.25, 0.8, 0.95];
        let (m, ur, uc) = linear_assignment(&cost, 2, 4, 0.8);
        assert_eq!(m, vec![(0, 3), (1, 1)]);
        assert!(ur.is_empty());
        assert_eq!(uc, vec![0, 2]);
        // Its transpose: 4 rows, 2 columns.
        let t: Vec<f32> = (0..4)
            .flat_map(|c| (0..2).map(move |r| (r, c)))
            .map(|(r, c)| cost[r * 4 + c])
            .collect();
        let (m, ur, uc) = linear_assignment(&t, 4, 2, 0.8);
        assert_eq!(m, vec![(1, 1), (3, 0)]);
        assert_eq!(ur, vec![0, 2]);
        assert!(uc.is_empty());
    }

    #[test]
    fn empty_inputs() {
        let (m, ur, uc) = linear_assignment(&[], 0, 3, 0.8);
        assert!(m.is_empty() && ur.is_empty());
        assert_eq!(uc, vec![0, 1, 2]);
        let (m, ur, uc) = linear_assignment(&[], 2, 0, 0.8);
        assert!(m.is_empty() && uc.is_empty());
        assert_eq!(ur, vec![0, 1]);
        let (m, ur, uc) = linear_assignment(&[], 0, 0, 0.8);
        assert!(m.is_empty() && ur.is_empty() && uc.is_empty());
    }

    #[test]
    fn nan_and_infinite_costs_never_match() {
        let cost = [f32::NAN, f32::INFINITY, 0.1, f32::NEG_INFINITY];
        let (m, ur, uc) = linear_assignment(&cost, 2, 2, 0.8);
        assert_eq!(m, vec![(1, 0)]);
        assert_eq!(ur, vec![0]);
        assert_eq!(uc, vec![1]);
    }

    #[test]
    fn prefers_leaving_unmatched_over_an_expensive_pair() {
        // Two pairs cost 0.5 + 0.5; the single pair (0, 0) costs 0.1 plus 0.4 for row 1 and
        // 0.4 for column 1 left unmatched: 0.9 < 1.0, so a maximum matching is not optimal.
        let cost = [0.1, 0.5, 0.5, 1.0];
        let (m, ur, uc) = linear_assignment(&cost, 2, 2, 0.8);
        assert_eq!(m, vec![(0, 0)]);
        assert_eq!((ur, uc), (vec![1], vec![1]));
    }

    #[test]
    fn matches_brute_force_on_pseudo_random_matrices() {
        let mut state = 0x1234_5678_9abc_def0u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32
        };
        let mut solver = AssignmentSolver::new();
        for trial in 0..300 {
            let rows = 1 + trial % 5;
            let cols = 1 + (trial / 5) % 6;
            let cost: Vec<f32> = (0..rows * cols)
                .map(|_| {
                    let v = next();
                    if v < 0.5 {
                        1.0
                    } else {
                        (v - 0.5) * 2.0
                    }
                })
                .collect();
            solver.solve(&cost, rows, cols, 0.8);
            let got = total(&cost, cols, 0.8, &solver.matches, rows);
            let best = brute_force(&cost, rows, cols, 0.8);
            assert!(
                (got - best).abs() < 1e-5,
                "trial {trial}: {got} vs {best} for {cost:?}"
            );
            for &(r, c) in &solver.matches {
                assert!(cost[r * cols + c] <= 0.8);
            }
            assert_eq!(solver.matches.len() + solver.unmatched_rows.len(), rows);
            assert_eq!(solver.matches.len() + solver.unmatched_cols.len(), cols);
        }
    }
}
