//! Products with few columns, their vectors along the rows: `C = A B` computed as `Cᵀ = Bᵀ Aᵀ`.
//!
//! [`super::gemm`] puts `NR` columns of `B` in each tile's vectors and broadcasts `MR` rows of
//! `A`, so `N` columns cost `ceil(N / NR)` column panels: the 49 pixels of a 7x7 map (the last
//! stage of ResNet50 and EfficientNet) cost 64 columns' work, the 196 of a 14x14 map 224. Here
//! the vectors hold `NR` rows of `A` (output channels: a multiple of 16 in nearly every network)
//! and the broadcasts take `MR` columns of `B`, the last group only the columns left (the
//! kernels for fewer rows), so no lane computes a missing pixel. The same micro-kernel computes
//! each tile into a scratch tile (`NR` rows per column), which the last block of `K` writes into
//! `C` transposed, adding the bias and applying the activation on the way.

use std::cell::RefCell;

use super::{
    block_depth, check_operands, check_product, pack_panel, part, prefetch, tile, tile_kernel,
    tile_part_kernel, unpack_panels, Columns, Start, KC,
};
use crate::kernels::activation::InRegisters;
use crate::kernels::aligned_buf::AlignedBuf;
use crate::kernels::pool::{self, SharedMut, MIN_PARALLEL_WORK};
use crate::kernels::{Activation, Isa};

/// Share of lanes the row-lane product must save before it is chosen: its transposing store
/// costs a few cycles per output value, which a depth of a few hundred hides.
const MIN_LANE_GAIN: f64 = 0.05;

/// Steps of `K` a tile runs between two parts of its prefetch.
const PREFETCH_STEPS: usize = 64;

/// The fewest steps of `K` for which the transposing store is worth it.
const MIN_DEPTH: usize = 128;

/// The `A` operand (filters) packed for [`gemm_row_lanes`]: panels of `NR` rows, stored step by
/// step (`NR` values per step of `K`), the last panel padded with zero rows.
#[derive(Debug, Clone, PartialEq)]
pub struct RowLaneWeights {
    isa: Isa,
    m: usize,
    k: usize,
    data: AlignedBuf,
    bias: Vec<f32>,
}

impl RowLaneWeights {
    /// The weights (`[m][k]`, row-major) and biases it was packed from.
    pub fn unpacked(&self) -> (Vec<f32>, Vec<f32>) {
        let weights = unpack_panels(self.data.as_slice(), self.m, self.k, tile(self.isa).1);
        (weights, self.bias[..self.m].to_vec())
    }

    /// Packs `weights` (`[m][k]`, row-major) and `bias` (`[m]`) for `isa`.
    pub fn new(
        isa: Isa,
        weights: &[f32],
        bias: &[f32],
        m: usize,
        k: usize,
    ) -> Result<Self, String> {
        check_operands(weights, bias, m, k)?;
        let nr = tile(isa).1;
        let mut data = AlignedBuf::zeroed(m.div_ceil(nr) * nr * k);
        let out = data.as_mut_slice();
        for (row, w) in weights.chunks_exact(k).enumerate() {
            let base = (row / nr) * nr * k + row % nr;
            for (step, &v) in w.iter().enumerate() {
                out[base + step * nr] = v;
            }
        }
        Ok(RowLaneWeights {
            isa,
            m,
            k,
            data,
            bias: bias.to_vec(),
        })
    }

    /// Depth (`K`).
    pub fn depth(&self) -> usize {
        self.k
    }

    /// The instruction set the panels are packed for.
    pub fn isa(&self) -> Isa {
        self.isa
    }
}

/// Whether [`gemm_row_lanes`] suits an `m x k` by `k x n` product on `isa`: AVX-512 (its
/// transposing store), vectors that waste at least [`MIN_LANE_GAIN`] fewer lanes than
/// [`super::gemm`]'s, and a `K` deep enough to hide the store.
pub fn row_lanes_pay(isa: Isa, m: usize, k: usize, n: usize) -> bool {
    if isa != Isa::Avx512 || m == 0 || n == 0 || k < MIN_DEPTH {
        // Only AVX-512 has a transposing store fast enough (the scalar one costs several
        // cycles per output value).
        return false;
    }
    let nr = tile(isa).1;
    let used = |len: usize| len as f64 / (len.div_ceil(nr) * nr) as f64;
    let (by_columns, by_rows) = (used(n), used(m));
    by_rows >= by_columns + MIN_LANE_GAIN
}

thread_local! {
    /// Each thread's packed column groups and its scratch tiles.
    static BUFFERS: RefCell<(AlignedBuf, AlignedBuf)> = RefCell::default();
}

/// Computes `c[i * ldc + j] = act(sum_k a[i][k] b[k][j] + bias[i] + r[i * ldc + j])` for
/// `i < M`, `j < N` as [`super::gemm`] does (`r` the residual, when there is one), with the
/// row panels spread over the current kernel pool.
///
/// Panics when `a` and `b` disagree on `K`, `ldc < N`, `c` or `residual` is too short, or `a`
/// was packed for an instruction set this CPU lacks.
pub fn gemm_row_lanes(
    a: &RowLaneWeights,
    b: &Columns,
    residual: Option<&[f32]>,
    c: &mut [f32],
    ldc: usize,
    activation: Activation,
) {
    if !check_product((a.m, a.k, a.isa), b, c.len(), residual, ldc) {
        return;
    }
    let panels = a.m.div_ceil(tile(a.isa).1);
    let pool = pool::current();
    let tasks = if a.m * a.k * b.n < MIN_PARALLEL_WORK {
        1
    } else {
        pool.threads().min(panels)
    };
    let out = SharedMut::new(c);
    let task = |t: usize| {
        BUFFERS.with_borrow_mut(|(groups, scratch)| {
            // SAFETY: tasks cover disjoint row panels, so they write disjoint rows of `c`, all
            // inside it (checked above); the kernels match the CPU (checked).
            unsafe {
                run_panels(
                    a,
                    b,
                    residual.map(<[f32]>::as_ptr),
                    out,
                    ldc,
                    activation,
                    part(panels, tasks, t),
                    groups,
                    scratch,
                )
            }
        });
    };
    pool.run(tasks, &task);
}

/// One task: row panels `rows` over all of `b`'s columns.
///
/// For each block of `KC` steps, every group of `MR` columns is packed, then each row panel
/// runs against every group into its scratch tiles; on the last block each row panel's tiles
/// go to `c` as soon as they are done.
///
/// # Safety
/// Rows `rows` (in panels of `NR`) of the output must belong to this task alone and lie inside
/// it (and inside the residual, when given), and `a.isa` must be supported by the CPU.
#[allow(clippy::too_many_arguments)]
unsafe fn run_panels(
    a: &RowLaneWeights,
    b: &Columns,
    residual: Option<*const f32>,
    out: SharedMut,
    ldc: usize,
    activation: Activation,
    rows: std::ops::Range<usize>,
    groups: &mut AlignedBuf,
    scratch: &mut AlignedBuf,
) {
    static ZEROS: [f32; 16] = [0.0; 16];
    let (mr, nr) = tile(a.isa);
    let (k, n) = (a.k, b.n);
    let count = n.div_ceil(mr);
    let panel_floats = count * mr * nr;
    groups.ensure(KC.min(k) * count * mr);
    scratch.ensure(rows.len() * panel_floats);
    let (groups, scratch) = (groups.as_mut_slice(), scratch.as_mut_slice());
    let packed = a.data.as_slice();
    let post = activation.in_registers(a.isa);
    let depth = block_depth(k);
    let mut pc = 0;
    while pc < k {
        let kc = depth.min(k - pc);
        for q in 0..count {
            let w = mr.min(n - q * mr);
            pack_panel(a.isa, b, pc, kc, q * mr, w, mr, &mut groups[q * kc * mr..]);
        }
        for (i, p) in rows.clone().enumerate() {
            let weights = packed.as_ptr().add(p * nr * k + pc * nr);
            let tiles = scratch[i * panel_floats..].as_mut_ptr();
            // The weights come from memory once per run (a 7x7 layer's 2-9 MB): the next
            // panel's block is asked for while this one runs, a share per group of columns.
            let next = if p + 1 < rows.end {
                Some((p + 1) * nr * k + pc * nr)
            } else {
                (pc + kc < k).then(|| rows.start * nr * k + (pc + kc) * nr)
            };
            let share = (kc * nr).div_ceil(count);
            for q in 0..count {
                let w = mr.min(n - q * mr);
                let (g, t) = (groups[q * kc * mr..].as_ptr(), tiles.add(q * mr * nr));
                // The tile's steps run in chunks, each after asking for a part of the share:
                // one burst of a hundred prefetches would stall on the line fill buffers.
                let chunks = kc.div_ceil(PREFETCH_STEPS);
                let part = share.div_ceil(chunks);
                for c in 0..chunks {
                    if let Some(next) = next {
                        let from = (next + q * share + c * part).min(packed.len());
                        let len = part.min(packed.len() - from);
                        prefetch(packed.as_ptr().wrapping_add(from), len);
                    }
                    let s = c * PREFETCH_STEPS;
                    let steps = PREFETCH_STEPS.min(kc - s);
                    let (g, weights) = (g.add(s * mr), weights.add(s * nr));
                    let start = if pc + s > 0 {
                        Start::Output
                    } else {
                        Start::Bias
                    };
                    // SAFETY: the group holds `kc` steps of `mr` columns (zero past `w`), the
                    // panel `kc` steps of `nr` rows, the scratch tile `mr` columns of `nr`;
                    // `mr <= 16` zeros seed it on the first steps.
                    let done = tile_part_kernel(
                        a.isa,
                        (w, nr),
                        steps,
                        g,
                        weights,
                        t,
                        nr,
                        ZEROS.as_ptr(),
                        start,
                        None,
                    );
                    if !done {
                        let zeros = ZEROS.as_ptr();
                        tile_kernel(a.isa, steps, g, weights, t, nr, zeros, start, None);
                    }
                }
            }
            if pc + kc == k {
                let first = p * nr;
                let h = nr.min(a.m - first);
                let dst = out.get().add(first * ldc);
                let bias = &a.bias[first..first + h];
                let residual = residual.map(|r| r.add(first * ldc));
                store_transposed(a.isa, tiles, nr, n, bias, residual, post, dst, ldc);
                if post.is_none() && activation != Activation::None {
                    activation.apply_rows_for(a.isa, dst, h, n, ldc);
                }
            }
        }
        pc += kc;
    }
}

/// `dst[r * ldc + j] = post(tiles[j * nr + r] + bias[r] + residual[r * ldc + j])` for
/// `r < bias.len()`, `j < n`.
///
/// # Safety
/// `isa` must be supported; `tiles` must hold `n` columns of `nr` values, `dst` (and
/// `residual`, when given) `bias.len() <= nr` rows of `n` values `ldc` apart.
#[allow(clippy::too_many_arguments)]
unsafe fn store_transposed(
    isa: Isa,
    tiles: *const f32,
    nr: usize,
    n: usize,
    bias: &[f32],
    residual: Option<*const f32>,
    post: Option<InRegisters>,
    dst: *mut f32,
    ldc: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512 && nr.is_multiple_of(16) {
        let (h, post) = (bias.len(), post.as_ref());
        let bias = bias.as_ptr();
        return super::x86_64::store_transposed_avx512(
            tiles, nr, h, n, bias, residual, post, dst, ldc,
        );
    }
    let _ = isa;
    for (r, &add) in bias.iter().enumerate() {
        let row = std::slice::from_raw_parts_mut(dst.add(r * ldc), n);
        for (j, v) in row.iter_mut().enumerate() {
            let skip = residual.map_or(0.0, |res| *res.add(r * ldc + j));
            let y = *tiles.add(j * nr + r) + add + skip;
            *v = post.map_or(y, |post| post.apply_one(y));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::gemm::tests::{naive, values};

    #[test]
    fn every_isa_matches_the_naive_product() {
        let activations = [
            Activation::None,
            Activation::Clip { min: 0.0, max: 6.0 },
            Activation::LeakyRelu { alpha: 0.1 },
            Activation::Silu,
            Activation::Sigmoid,
        ];
        for isa in Isa::all_supported() {
            for activation in activations {
                // 7x7 and 14x14 maps over deep `K` (two blocks and a partial one), rows in
                // whole and partial panels, columns in whole and partial groups.
                for &(m, k, n) in &[
                    (64, 300, 49),
                    (40, 600, 196),
                    (17, 129, 1),
                    (33, 257, 13),
                    (512, 128, 12),
                ] {
                    let w = values(m * k, 1);
                    let bias = values(m, 2);
                    let bv = values(k * n, 3);
                    let offsets: Vec<usize> = (0..k).map(|t| t * n).collect();
                    let a = RowLaneWeights::new(isa, &w, &bias, m, k).unwrap();
                    let cols = Columns::new(&bv, &offsets, n).unwrap();
                    // Rows `ldc` apart, the gap left as it was.
                    let ldc = n + 3;
                    let mut c = vec![f32::NAN; (m - 1) * ldc + n];
                    let skips = values((m - 1) * ldc + n, 4);
                    for threads in [1, 2, 3] {
                        // With a residual on two threads.
                        let residual = (threads == 2).then_some(&skips[..]);
                        let pool = std::sync::Arc::new(crate::kernels::pool::Pool::new(threads));
                        crate::kernels::pool::with_pool(pool, || {
                            gemm_row_lanes(&a, &cols, residual, &mut c, ldc, activation)
                        });
                        let want = naive(&w, &bias, &bv, m, k, n);
                        for i in 0..m {
                            for j in 0..n {
                                let skip = residual.map_or(0.0, |r| r[i * ldc + j]);
                                let e = activation.apply_one(want[i * n + j] + skip);
                                let g = c[i * ldc + j];
                                assert!(
                                    (g - e).abs() <= 1e-4 * e.abs().max(1.0),
                                    "{isa:?} {activation:?} {m}x{k}x{n} {threads} threads at \
                                     ({i}, {j}): {g} vs {e}"
                                );
                            }
                            if i + 1 < m {
                                assert!(c[i * ldc + n..(i + 1) * ldc].iter().all(|v| v.is_nan()));
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn chosen_where_the_columns_waste_lanes() {
        // ResNet50's and EfficientNet's 7x7 and 14x14 layers on AVX-512 (32 columns a panel).
        assert!(row_lanes_pay(Isa::Avx512, 512, 4608, 49));
        assert!(row_lanes_pay(Isa::Avx512, 256, 2304, 196));
        assert!(row_lanes_pay(Isa::Avx512, 1280, 320, 49));
        // Columns filling their panels, rows that would not, or too shallow a K.
        assert!(!row_lanes_pay(Isa::Avx512, 64, 576, 3136));
        assert!(!row_lanes_pay(Isa::Avx512, 24, 576, 49));
        assert!(!row_lanes_pay(Isa::Avx512, 512, 27, 49));
        // No fast transposing store.
        assert!(!row_lanes_pay(Isa::Avx2Fma, 512, 4608, 49));
        assert!(!row_lanes_pay(Isa::Neon, 512, 4608, 49));
    }

    #[test]
    fn bad_operands_are_refused() {
        assert!(RowLaneWeights::new(Isa::Portable, &[0.0; 5], &[0.0; 2], 2, 3).is_err());
        assert!(RowLaneWeights::new(Isa::Portable, &[], &[], 0, 3).is_err());
    }
}
