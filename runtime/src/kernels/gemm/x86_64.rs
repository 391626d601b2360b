//! Micro-kernels of [`super`] for x86-64: AVX-512F (12 x 32) and AVX2+FMA (6 x 16).
//!
//! Each computes one `MR x NR` tile of `C = A B` over `k` steps: per step it loads one row of
//! the packed B panel (`NR` values, two vectors) and broadcasts each of the `MR` values of the
//! packed A panel, so the `2 MR` accumulators never leave the registers. A clamp (ReLU, ReLU6),
//! LeakyReLU, Sigmoid or SiLU is applied to the accumulators before they are stored. Each kernel also comes
//! for fewer rows (`ROWS < MR`, the last panel of an `M` that is not a multiple of `MR`),
//! reading the same packed panels and writing only those rows: no scratch tile, no
//! multiply-adds on the panel's zero rows. With AVX-512, `B` panels are packed by masked loads
//! ([`pack_rows_avx512`]).

use std::arch::x86_64::*;

use super::Start;
use crate::kernels::activation::x86::{sigmoid_avx2, sigmoid_avx512, silu_avx2, silu_avx512};
use crate::kernels::activation::InRegisters;
use crate::kernels::transpose::x86::{transpose16, unroll16};

/// AVX-512F, the first `ROWS` (at most 12) rows of a 12-row panel x the first `cols` of its 32
/// columns, in `V` vectors a row (`V = 1` for up to 16 columns: no multiply-adds on the
/// panel's empty half; up to `2 ROWS` accumulators). Columns past `cols` are neither read nor
/// written in `c` (masked loads and stores): the last panel of an `N` that is not a multiple
/// of 32 needs no scratch tile.
///
/// `B`'s `k` rows lie `ldb` values apart: 32 in a packed panel; with `DIRECT`, rows of `B`
/// read where they lie (a 1x1 convolution's input planes), each step also asking for the
/// row's next 32 values (the next column panel's) to be brought into L1.
///
/// # Safety
/// The CPU must support AVX-512F; `V` must be 1 or 2 and `cols <= 16 V`; `a` must hold `12 k`
/// values, `b` `k` rows of `16 V` values `ldb` apart, `bias` `ROWS`, and `c` `ROWS` rows of
/// `cols` writable values `ldc` apart (and a [`Start::Residual`] as many readable ones).
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
pub unsafe fn tile_avx512<const ROWS: usize, const V: usize, const DIRECT: bool>(
    k: usize,
    a: *const f32,
    (b, ldb): (*const f32, usize),
    c: *mut f32,
    ldc: usize,
    cols: usize,
    bias: *const f32,
    start: Start,
    post: Option<&InRegisters>,
) {
    const MR: usize = 12;
    // `each!` below walks at most 12 rows of two vectors.
    const { assert!(ROWS >= 1 && ROWS <= MR && (V == 1 || V == 2)) };
    let mut mask = [0 as __mmask16; V];
    for (v, m) in mask.iter_mut().enumerate() {
        let n = cols.saturating_sub(16 * v).min(16);
        *m = ((1u32 << n) - 1) as __mmask16;
    }
    // Every access to `acc` outside the loop of `k` goes through `each!`, with constant
    // indices: a loop the compiler leaves rolled (the long bodies of the sigmoid stores) would
    // keep `acc` on the stack, zeroed by a call to `memset` for every tile.
    macro_rules! each {
        (|$r:ident, $v:ident| $body:expr) => {
            each!(@rows $r $v $body; 0 1 2 3 4 5 6 7 8 9 10 11)
        };
        (@rows $r:ident $v:ident $body:expr; $($n:literal)*) => {{
            $(
                if $n < ROWS {
                    let $r = $n;
                    let $v = 0;
                    $body;
                    if V > 1 {
                        let $v = 1;
                        $body;
                    }
                }
            )*
        }};
    }
    let mut acc = [[_mm512_setzero_ps(); V]; ROWS];
    match start {
        Start::Output => {
            each!(|r, v| acc[r][v] = _mm512_maskz_loadu_ps(mask[v], c.add(r * ldc + 16 * v)))
        }
        Start::Bias => each!(|r, v| acc[r][v] = _mm512_set1_ps(*bias.add(r))),
        Start::Residual(from) => each!(|r, v| acc[r][v] = _mm512_add_ps(
            _mm512_maskz_loadu_ps(mask[v], from.add(r * ldc + 16 * v)),
            _mm512_set1_ps(*bias.add(r)),
        )),
    }
    let (mut a, mut b) = (a, b);
    for _ in 0..k {
        if DIRECT {
            _mm_prefetch::<_MM_HINT_T0>(b.wrapping_add(32).cast());
            _mm_prefetch::<_MM_HINT_T0>(b.wrapping_add(48).cast());
        }
        let mut bv = [_mm512_setzero_ps(); V];
        for (v, x) in bv.iter_mut().enumerate() {
            *x = _mm512_loadu_ps(b.add(16 * v));
        }
        for (r, row) in acc.iter_mut().enumerate() {
            let x = _mm512_set1_ps(*a.add(r));
            for (v, y) in row.iter_mut().enumerate() {
                *y = _mm512_fmadd_ps(x, bv[v], *y);
            }
        }
        a = a.add(MR);
        b = b.wrapping_add(ldb);
    }
    // The activation is part of each store: a separate pass over `acc` would keep it on the
    // stack.
    macro_rules! store {
        ($x:ident => $y:expr) => {
            each!(|r, v| {
                let $x = acc[r][v];
                _mm512_mask_storeu_ps(c.add(r * ldc + 16 * v), mask[v], $y)
            })
        };
    }
    match post {
        None => store!(x => x),
        Some(&InRegisters::Clamp(lo, hi)) => {
            let (lo, hi) = (_mm512_set1_ps(lo), _mm512_set1_ps(hi));
            store!(x => _mm512_min_ps(_mm512_max_ps(x, lo), hi))
        }
        Some(&InRegisters::Leaky(alpha)) => {
            let alpha = _mm512_set1_ps(alpha);
            store!(x => leaky_avx512(x, alpha))
        }
        Some(&InRegisters::Sigmoid) => store!(x => sigmoid_avx512(x)),
        Some(&InRegisters::Silu) => store!(x => silu_avx512(x)),
    }
}

/// `alpha v` in the lanes where `v < 0`, `v` elsewhere.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn leaky_avx512(v: __m512, alpha: __m512) -> __m512 {
    let negative = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(v, _mm512_setzero_ps());
    _mm512_mask_mul_ps(v, negative, v, alpha)
}

/// AVX2+FMA, the first `ROWS` (at most 6) rows of a 6-row panel x 16 columns (up to 12
/// accumulators).
///
/// # Safety
/// The CPU must support AVX2 and FMA; `a` must hold `6 k` values, `b` `16 k`, `bias` `ROWS`, and
/// `c` `ROWS` rows of 16 writable values `ldc` apart (and a [`Start::Residual`] as many
/// readable ones).
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn tile_avx2<const ROWS: usize>(
    k: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    bias: *const f32,
    start: Start,
    post: Option<&InRegisters>,
) {
    const MR: usize = 6;
    let mut acc = [[_mm256_setzero_ps(); 2]; ROWS];
    for (r, row) in acc.iter_mut().enumerate() {
        *row = match start {
            Start::Output => {
                let p = c.add(r * ldc);
                [_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8))]
            }
            Start::Residual(from) => {
                let (p, v) = (from.add(r * ldc), _mm256_set1_ps(*bias.add(r)));
                let x = [_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8))];
                [_mm256_add_ps(x[0], v), _mm256_add_ps(x[1], v)]
            }
            Start::Bias => {
                let v = _mm256_set1_ps(*bias.add(r));
                [v, v]
            }
        };
    }
    let (mut a, mut b) = (a, b);
    for _ in 0..k {
        let b0 = _mm256_loadu_ps(b);
        let b1 = _mm256_loadu_ps(b.add(8));
        for (r, row) in acc.iter_mut().enumerate() {
            let x = _mm256_set1_ps(*a.add(r));
            row[0] = _mm256_fmadd_ps(x, b0, row[0]);
            row[1] = _mm256_fmadd_ps(x, b1, row[1]);
        }
        a = a.add(MR);
        b = b.add(16);
    }
    // The activation is part of each store loop, as in the AVX-512 kernel.
    macro_rules! store {
        ($v:ident => $y:expr) => {
            for (r, row) in acc.iter().enumerate() {
                let p = c.add(r * ldc);
                let $v = row[0];
                _mm256_storeu_ps(p, $y);
                let $v = row[1];
                _mm256_storeu_ps(p.add(8), $y);
            }
        };
    }
    match post {
        None => store!(v => v),
        Some(&InRegisters::Clamp(lo, hi)) => {
            let (lo, hi) = (_mm256_set1_ps(lo), _mm256_set1_ps(hi));
            store!(v => _mm256_min_ps(_mm256_max_ps(v, lo), hi))
        }
        Some(&InRegisters::Leaky(alpha)) => {
            let alpha = _mm256_set1_ps(alpha);
            // The sign bit picks `alpha v` (negative zero gives negative zero either way).
            store!(v => _mm256_blendv_ps(v, _mm256_mul_ps(v, alpha), v))
        }
        Some(&InRegisters::Sigmoid) => store!(v => sigmoid_avx2(v)),
        Some(&InRegisters::Silu) => store!(v => silu_avx2(v)),
    }
}

/// AVX-512F: `dst[r * ldc + j] = post(tiles[j * nr + r] + bias[r] + residual[r * ldc + j])`
/// for `r < h`, `j < n`:
/// the scratch tiles of the row-lane product (`n` columns of `nr` rows) written to `C`, in
/// blocks of 16 rows x 16 columns transposed in registers.
///
/// # Safety
/// The CPU must support AVX-512F; `nr` must be a multiple of 16 and `h <= nr`; `tiles` must
/// hold `n` columns of `nr` values, `bias` `h` values, `dst` (and `residual`, when given) `h`
/// rows of `n` values `ldc` apart.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
pub unsafe fn store_transposed_avx512(
    tiles: *const f32,
    nr: usize,
    h: usize,
    n: usize,
    bias: *const f32,
    residual: Option<*const f32>,
    post: Option<&InRegisters>,
    dst: *mut f32,
    ldc: usize,
) {
    let (lo, hi, alpha) = match post {
        Some(&InRegisters::Clamp(lo, hi)) => (lo, hi, 1.0),
        Some(&InRegisters::Leaky(alpha)) => (f32::NEG_INFINITY, f32::INFINITY, alpha),
        _ => (f32::NEG_INFINITY, f32::INFINITY, 1.0),
    };
    let (lo, hi, alpha) = (
        _mm512_set1_ps(lo),
        _mm512_set1_ps(hi),
        _mm512_set1_ps(alpha),
    );
    let mut first = 0;
    while first < h {
        let rows = 16.min(h - first);
        let mut j = 0;
        while j < n {
            let cols = 16.min(n - j);
            let mut v = [_mm512_setzero_ps(); 16];
            // Columns past the last are read again from the last: their lanes are not stored.
            unroll16!(|i| v[i] = _mm512_loadu_ps(tiles.add((j + i.min(cols - 1)) * nr + first)));
            let t = transpose16(v);
            let mask: __mmask16 = if cols == 16 { 0xffff } else { (1 << cols) - 1 };
            unroll16!(|r| if r < rows {
                let at = (first + r) * ldc + j;
                let mut y = _mm512_add_ps(t[r], _mm512_set1_ps(*bias.add(first + r)));
                if let Some(res) = residual {
                    y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(mask, res.add(at)));
                }
                let y = match post {
                    Some(&InRegisters::Sigmoid) => sigmoid_avx512(y),
                    Some(&InRegisters::Silu) => silu_avx512(y),
                    _ => leaky_avx512(_mm512_min_ps(_mm512_max_ps(y, lo), hi), alpha),
                };
                _mm512_mask_storeu_ps(dst.add(at), mask, y);
            });
            j += cols;
        }
        first += rows;
    }
}

/// A panel row as one or two vectors (16 lanes on AVX-512, 8 on AVX2), each gathered from one
/// row of `B` by up to [`LaneRuns::PARTS`] masked loads: lane `p` of the panel row (counting
/// across vectors) is value `p + shift` of the `B` row for the part whose mask holds it, zero
/// for no part.
#[derive(Debug, Clone, Copy)]
pub struct LaneRuns {
    /// Values per panel row (`nr`).
    pub width: usize,
    /// Lanes per vector.
    pub lanes: usize,
    /// Vectors per panel row (`nr / lanes` rounded up).
    pub vectors: usize,
    /// Lanes of each vector that belong to the panel row (the last one's may stop short).
    pub store: [u16; 2],
    /// Masked loads per vector.
    pub counts: [usize; 2],
    /// Each vector's loads: (shift, lanes).
    pub parts: [[(isize, u16); LaneRuns::PARTS]; 2],
}

impl LaneRuns {
    /// Masked loads a vector may need (runs of 6 values or more).
    pub const PARTS: usize = 4;

    /// The vectors of `width` lanes for a panel row of `nr` values made of `runs` (position in
    /// the panel, offset in the row, length); `None` past two vectors or [`Self::PARTS`] runs
    /// a vector.
    pub fn new(runs: &[(usize, usize, usize)], nr: usize, width: usize) -> Option<Self> {
        if nr > 2 * width || width > 16 {
            return None;
        }
        let mut lanes = LaneRuns {
            width: nr,
            lanes: width,
            vectors: nr.div_ceil(width),
            store: [0; 2],
            counts: [0; 2],
            parts: [[(0, 0); Self::PARTS]; 2],
        };
        for v in 0..lanes.vectors {
            let (low, high) = (width * v, (width * v + width).min(nr));
            lanes.store[v] = lane_mask(0, high - low);
            for &(at, from, len) in runs {
                let (start, end) = (at.max(low), (at + len).min(high));
                if start >= end {
                    continue;
                }
                let c = lanes.counts[v];
                if c == Self::PARTS {
                    return None;
                }
                lanes.parts[v][c] = (
                    from as isize - at as isize,
                    lane_mask(start - low, end - low),
                );
                lanes.counts[v] += 1;
            }
        }
        Some(lanes)
    }
}

/// Bits `start..end` of a lane mask.
fn lane_mask(start: usize, end: usize) -> u16 {
    let upto = |n: usize| if n >= 16 { u16::MAX } else { (1u16 << n) - 1 };
    upto(end) & !upto(start)
}

/// AVX-512F: row `t < rows` of the panel (`lanes.width` values apart) gathered from the `B`
/// row starting at `row(t)` by the masked loads of `lanes`, the lanes no load covers zero.
///
/// # Safety
/// The CPU must support AVX-512F; every lane a load of `lanes` covers must be readable from
/// each row; `panel` must hold `rows` rows of the panel's width.
#[target_feature(enable = "avx512f")]
pub unsafe fn pack_rows_avx512(
    row: impl Fn(usize) -> *const f32,
    rows: usize,
    lanes: &LaneRuns,
    panel: *mut f32,
) {
    let nr = lanes.width;
    for t in 0..rows {
        let row = row(t);
        for v in 0..lanes.vectors {
            debug_assert_eq!(lanes.lanes, 16);
            let parts = &lanes.parts[v][..lanes.counts[v]];
            let mut x = _mm512_setzero_ps();
            for &(shift, mask) in parts {
                // Lanes outside `mask` are neither read nor able to fault.
                let at = row.wrapping_offset(shift + 16 * v as isize);
                x = _mm512_mask_loadu_ps(x, mask, at);
            }
            _mm512_mask_storeu_ps(panel.add(t * nr + 16 * v), lanes.store[v], x);
        }
    }
}

/// AVX2: [`pack_rows_avx512`] with 8-lane vectors.
///
/// # Safety
/// The CPU must support AVX2; `lanes` must have 8-lane vectors; as [`pack_rows_avx512`]
/// otherwise.
#[target_feature(enable = "avx2")]
pub unsafe fn pack_rows_avx2(
    row: impl Fn(usize) -> *const f32,
    rows: usize,
    lanes: &LaneRuns,
    panel: *mut f32,
) {
    debug_assert_eq!(lanes.lanes, 8);
    let nr = lanes.width;
    let mut masks = [[_mm256_setzero_si256(); LaneRuns::PARTS]; 2];
    for ((masks, parts), &count) in masks.iter_mut().zip(&lanes.parts).zip(&lanes.counts) {
        for (m, &(_, bits)) in masks.iter_mut().zip(&parts[..count]) {
            *m = lane_vector(bits);
        }
    }
    let stores = lanes.store.map(|bits| lane_vector(bits));
    for t in 0..rows {
        let row = row(t);
        for v in 0..lanes.vectors {
            let parts = &lanes.parts[v][..lanes.counts[v]];
            let mut x = _mm256_setzero_ps();
            for (&(shift, _), &mask) in parts.iter().zip(&masks[v]) {
                // Lanes outside `mask` are neither read nor able to fault.
                let at = row.wrapping_offset(shift + 8 * v as isize);
                x = _mm256_or_ps(x, _mm256_maskload_ps(at, mask));
            }
            let to = panel.add(t * nr + 8 * v);
            if lanes.store[v] == 0xff {
                _mm256_storeu_ps(to, x);
            } else {
                _mm256_maskstore_ps(to, stores[v], x);
            }
        }
    }
}

/// The 8-lane mask `bits` as a vector: all ones in the lanes it holds.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn lane_vector(bits: u16) -> __m256i {
    let each = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    _mm256_cmpeq_epi32(
        _mm256_and_si256(_mm256_set1_epi32(i32::from(bits)), each),
        each,
    )
}
