//! The anchor grid of Ultralytics-style heads (strides 8/16/32, plus 64 for P6 models, cell
//! centres at +0.5) and the distribution-focal-loss expectation: shared by the YOLOv8 DFL decoder
//! and the graph pass that cuts the head.

const STRIDES: [usize; 4] = [8, 16, 32, 64];

/// Anchors of a `levels`-level head (3: strides 8/16/32, 4: up to 64) on a `w` x `h` input.
pub fn anchor_count(w: usize, h: usize, levels: usize) -> usize {
    STRIDES
        .iter()
        .take(levels)
        .map(|s| w.div_ceil(*s) * h.div_ceil(*s))
        .sum()
}

/// The anchor grid of a head: per level `(stride, grid width, first anchor index)`.
#[derive(Debug, Clone, PartialEq)]
pub struct AnchorGrid {
    levels: Vec<(usize, usize, usize)>,
}

impl AnchorGrid {
    /// The grid with exactly `n` anchors on a `w` x `h` input, if 3 or 4 levels give `n`.
    pub fn new(w: usize, h: usize, n: usize) -> Option<Self> {
        let levels = (3..=4).find(|&l| anchor_count(w, h, l) == n && w > 0 && h > 0)?;
        let mut start = 0;
        let levels = STRIDES
            .iter()
            .take(levels)
            .map(|&s| {
                let gw = w.div_ceil(s);
                let level = (s, gw, start);
                start += gw * h.div_ceil(s);
                level
            })
            .collect();
        Some(AnchorGrid { levels })
    }

    /// Anchor `j`: cell centre `(x, y)` in grid units and the stride.
    #[inline]
    pub fn anchor(&self, j: usize) -> (f32, f32, f32) {
        let &(stride, gw, start) = self
            .levels
            .iter()
            .rev()
            .find(|l| l.2 <= j)
            .unwrap_or(&self.levels[0]);
        let k = j - start;
        ((k % gw) as f32 + 0.5, (k / gw) as f32 + 0.5, stride as f32)
    }

    /// `[cx, cy, w, h]` in input pixels for anchor `j` and distances (left, top, right, bottom) in
    /// grid units, computed as the Ultralytics graph does.
    #[inline]
    pub fn cxcywh(&self, j: usize, ltrb: [f32; 4]) -> [f32; 4] {
        let (ax, ay, s) = self.anchor(j);
        let (x1, y1) = (ax - ltrb[0], ay - ltrb[1]);
        let (x2, y2) = (ax + ltrb[2], ay + ltrb[3]);
        [
            (x1 + x2) / 2.0 * s,
            (y1 + y2) / 2.0 * s,
            (x2 - x1) * s,
            (y2 - y1) * s,
        ]
    }
}

/// Expected bin index under the softmax of `logits` (`scratch` is reused).
#[inline]
pub fn dfl_expectation(logits: impl Iterator<Item = f32>, scratch: &mut Vec<f32>) -> f32 {
    scratch.clear();
    scratch.extend(logits);
    let max = scratch.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let (mut sum, mut weighted) = (0.0f32, 0.0f32);
    for (k, v) in scratch.iter().enumerate() {
        let e = (v - max).exp();
        sum += e;
        weighted += e * k as f32;
    }
    weighted / sum
}
