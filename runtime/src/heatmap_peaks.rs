//! CenterNet's detection step on its heat map, in Rust: the local maxima of each class channel
//! (a 3x3 max-pool equality test), the `k` highest of them, and their boxes from the size map.
//!
//! It is what the in-graph tail of CenterNet exports computes (MaxPool, Equal, Mul, TopK over the
//! whole map, Gather of the sizes), without sorting 1.3 M values per frame: only values at or
//! above the confidence threshold are examined. Shared by the graph pass that removes that tail
//! ([`crate::engine::passes::centernet_topk_cut`]) and the decoder ([`crate::decode::centernet`]).

/// How many peaks the exports keep (their TopK's `k`).
pub const TOP_K: usize = 100;

/// A heat map `[H][W][C]` (NHWC without the batch, class scores after the sigmoid) and its size
/// map `[H][W][4]` (distances to the left, top, right and bottom edges in input pixels).
#[derive(Debug, Clone, Copy)]
pub struct CenterMaps<'a> {
    pub heat: &'a [f32],
    pub sizes: &'a [f32],
    pub height: usize,
    pub width: usize,
    pub classes: usize,
    /// Input pixels per map cell.
    pub stride: f32,
}

/// One peak: score, cell and class.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Peak {
    pub score: f32,
    pub y: usize,
    pub x: usize,
    pub class: usize,
}

impl CenterMaps<'_> {
    /// The `k` highest local maxima with a score of at least `min_score`, best first (ties in map
    /// order). A value is a local maximum when no value of its 3x3 neighbourhood in the same class
    /// channel is larger.
    pub fn peaks(&self, min_score: f32, k: usize) -> Vec<Peak> {
        let (h, w, c) = (self.height, self.width, self.classes);
        let at = |y: usize, x: usize, class: usize| self.heat[(y * w + x) * c + class];
        let mut found = vec![];
        for y in 0..h {
            for x in 0..w {
                let cell = &self.heat[(y * w + x) * c..(y * w + x + 1) * c];
                for (class, &v) in cell.iter().enumerate() {
                    if v.is_nan() || v < min_score {
                        continue;
                    }
                    let is_max = (y.saturating_sub(1)..(y + 2).min(h)).all(|ny| {
                        (x.saturating_sub(1)..(x + 2).min(w)).all(|nx| at(ny, nx, class) <= v)
                    });
                    if is_max {
                        found.push(Peak {
                            score: v,
                            y,
                            x,
                            class,
                        });
                    }
                }
            }
        }
        // Stable: equal scores keep map order.
        found.sort_by(|a, b| b.score.total_cmp(&a.score));
        found.truncate(k);
        found
    }

    /// The detection row of a peak: x1, y1, x2, y2 (input pixels), score, class.
    pub fn row(&self, p: &Peak) -> [f32; 6] {
        let s = &self.sizes[(p.y * self.width + p.x) * 4..][..4];
        let (cx, cy) = (p.x as f32 * self.stride, p.y as f32 * self.stride);
        [
            cx - s[0],
            cy - s[1],
            cx + s[2],
            cy + s[3],
            p.score,
            p.class as f32,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peaks_are_local_maxima_per_class_best_first() {
        let (h, w, c) = (4, 5, 2);
        let mut heat = vec![0.0f32; h * w * c];
        let mut set = |y: usize, x: usize, class: usize, v: f32| heat[(y * w + x) * c + class] = v;
        set(1, 1, 0, 0.9); // peak
        set(1, 2, 0, 0.8); // next to a larger one: not a peak
        set(3, 4, 0, 0.5); // peak in a corner
        set(1, 2, 1, 0.7); // peak in the other class, same cell as a non-peak
        set(0, 0, 1, 0.2); // under the threshold
        let sizes: Vec<f32> = (0..h * w * 4).map(|i| (i % 4) as f32 + 1.0).collect();
        let maps = CenterMaps {
            heat: &heat,
            sizes: &sizes,
            height: h,
            width: w,
            classes: c,
            stride: 4.0,
        };
        let got: Vec<(f32, usize, usize, usize)> = maps
            .peaks(0.3, 10)
            .iter()
            .map(|p| (p.score, p.y, p.x, p.class))
            .collect();
        assert_eq!(got, vec![(0.9, 1, 1, 0), (0.7, 1, 2, 1), (0.5, 3, 4, 0)]);
        assert_eq!(maps.peaks(0.3, 2).len(), 2);
        let top = maps.peaks(0.3, 1)[0];
        assert_eq!(
            maps.row(&top),
            [4.0 - 1.0, 4.0 - 2.0, 4.0 + 3.0, 4.0 + 4.0, 0.9, 0.0]
        );
    }

    #[test]
    fn equal_neighbours_are_both_peaks() {
        // MaxPool equality keeps both of two equal neighbours, as the graph does.
        let heat = [0.6f32, 0.6, 0.1];
        let sizes = [0.0f32; 12];
        let maps = CenterMaps {
            heat: &heat,
            sizes: &sizes,
            height: 1,
            width: 3,
            classes: 1,
            stride: 1.0,
        };
        let got: Vec<usize> = maps.peaks(0.0, 10).iter().map(|p| p.x).collect();
        assert_eq!(got, vec![0, 1]);
    }
}
