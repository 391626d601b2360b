//! Matrix products for convolutions: `C[M][N] = act(A[M][K] B[K][N] + bias[M])`, with `A` (the
//! filters) packed once when the model loads and `B` read from the input through row offsets.
//!
//! The product is tiled as in BLIS: for each block of `KC` steps of `K`, a panel of `NR`
//! columns of `B` (or a few, when `K` is short) is copied into a small contiguous buffer
//! (where it stays in L1), then every `MR`-row panel of `A` (in L2) runs the micro-kernel
//! against it, which keeps its `MR x NR` accumulators in registers. Bias seeds the
//! accumulators; a clamp (ReLU, ReLU6) or LeakyReLU is applied to them in registers on the last
//! block, and any other activation to each tile as soon as its last block is stored, while it
//! is still in cache. Work is split over the
//! thread pool by columns (or by rows when there are few columns); each thread packs its own
//! panels, so no thread waits for another.

#[cfg(target_arch = "aarch64")]
mod aarch64;
mod row_lanes;
#[cfg(target_arch = "x86_64")]
mod x86_64;

pub use row_lanes::{gemm_row_lanes, row_lanes_pay, RowLaneWeights};

use std::cell::RefCell;

use super::activation::InRegisters;
use super::aligned_buf::AlignedBuf;
use super::pool::{self, SharedMut, MIN_PARALLEL_WORK};
use super::{Activation, Isa};

/// Most steps of `K` per block (the packed `B` panel is `KC x NR`, 16-32 KiB).
const KC: usize = 256;

/// Steps of `K` per block for a depth of `k`: `K` split into equal blocks of at most [`KC`],
/// so that no block is a short tail (`K = 288` runs as two blocks of 144, not 256 and 32: each
/// block reloads and stores its tiles, packs its panels and starts its prefetches).
fn block_depth(k: usize) -> usize {
    k.div_ceil(k.div_ceil(KC).max(1))
}

/// The tile (`MR` rows x `NR` columns) of the micro-kernel for `isa`.
pub fn tile(isa: Isa) -> (usize, usize) {
    match isa {
        Isa::Avx512 => (12, 32),
        Isa::Avx2Fma => (6, 16),
        Isa::Neon => (8, 8),
        Isa::Portable => (4, 8),
    }
}

/// The `A` operand (filters) packed for one instruction set: panels of `MR` rows, each stored
/// step by step (`MR` values per step of `K`), the last panel padded with zero rows.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedWeights {
    isa: Isa,
    m: usize,
    k: usize,
    data: AlignedBuf,
    /// `M` biases, padded with zeros to whole panels.
    bias: Vec<f32>,
}

impl PackedWeights {
    /// Packs `weights` (`[m][k]`, row-major) and `bias` (`[m]`) for `isa`.
    pub fn new(
        isa: Isa,
        weights: &[f32],
        bias: &[f32],
        m: usize,
        k: usize,
    ) -> Result<Self, String> {
        check_operands(weights, bias, m, k)?;
        let (mr, _) = tile(isa);
        let panels = m.div_ceil(mr);
        let mut data = AlignedBuf::zeroed(panels * mr * k);
        let out = data.as_mut_slice();
        for (row, w) in weights.chunks_exact(k).enumerate() {
            let (p, r) = (row / mr, row % mr);
            let base = p * mr * k;
            for (step, &v) in w.iter().enumerate() {
                out[base + step * mr + r] = v;
            }
        }
        let mut padded = bias.to_vec();
        padded.resize(panels * mr, 0.0);
        Ok(PackedWeights {
            isa,
            m,
            k,
            data,
            bias: padded,
        })
    }

    /// Rows (`M`).
    pub fn rows(&self) -> usize {
        self.m
    }

    /// The weights (`[m][k]`, row-major) and biases it was packed from.
    pub fn unpacked(&self) -> (Vec<f32>, Vec<f32>) {
        let weights = unpack_panels(self.data.as_slice(), self.m, self.k, tile(self.isa).0);
        (weights, self.bias[..self.m].to_vec())
    }

    /// Depth (`K`).
    pub fn depth(&self) -> usize {
        self.k
    }

    /// The instruction set the panels are packed for.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// The micro-kernel's tile (`MR` rows x `NR` columns) the panels are packed for.
    pub fn tile(&self) -> (usize, usize) {
        tile(self.isa)
    }
}

/// The `[m][k]` row-major weights of `data`, packed in panels of `width` rows stored step by
/// step (`width` values per step of `K`).
fn unpack_panels(data: &[f32], m: usize, k: usize, width: usize) -> Vec<f32> {
    (0..m)
        .flat_map(|row| {
            let base = (row / width) * width * k + row % width;
            (0..k).map(move |step| data[base + step * width])
        })
        .collect()
}

/// Checks that `weights` hold `m x k` values and `bias` `m`, neither empty.
fn check_operands(weights: &[f32], bias: &[f32], m: usize, k: usize) -> Result<(), String> {
    if m == 0 || k == 0 {
        return Err(format!("empty product ({m} x {k})"));
    }
    if weights.len() != m * k {
        return Err(format!("{} weights for {m} x {k}", weights.len()));
    }
    if bias.len() != m {
        return Err(format!("{} biases for {m} rows", bias.len()));
    }
    Ok(())
}

/// The `B` operand: `K` rows of `N` columns. Row `r` starts at `data[offsets[r]]` (or is the
/// slice `rows[r]`, for rows read from several tensors); its columns come in runs of `run`
/// values, `pitch` apart (column `j` is at `(j / run) * pitch + j % run`), which lets a
/// convolution skip the padding columns of its phase planes.
#[derive(Debug, Clone, Copy)]
pub struct Columns<'a> {
    starts: RowStarts<'a>,
    k: usize,
    n: usize,
    run: usize,
    pitch: usize,
}

/// Where the rows of [`Columns`] start.
#[derive(Debug, Clone, Copy)]
enum RowStarts<'a> {
    /// Row `r` at `data[offsets[r]]`.
    Offsets(&'a [f32], &'a [usize]),
    /// Row `r` is `rows[r]`.
    Slices(&'a [&'a [f32]]),
}

impl<'a> Columns<'a> {
    /// Contiguous rows of `n` columns; checks that every row lies inside `data`.
    pub fn new(data: &'a [f32], offsets: &'a [usize], n: usize) -> Result<Self, String> {
        Self::in_runs(data, offsets, n, n.max(1), n.max(1))
    }

    /// Rows of `n` columns in runs of `run`, `pitch` apart (`run <= pitch`, `run` dividing `n`);
    /// checks that every row lies inside `data`.
    pub fn in_runs(
        data: &'a [f32],
        offsets: &'a [usize],
        n: usize,
        run: usize,
        pitch: usize,
    ) -> Result<Self, String> {
        let span = span(n, run, pitch)?;
        if let Some(&far) = offsets.iter().max() {
            if far + span > data.len() {
                return Err(format!(
                    "a row at {far} spanning {span} values runs past {} values",
                    data.len()
                ));
            }
        }
        Ok(Columns {
            starts: RowStarts::Offsets(data, offsets),
            k: offsets.len(),
            n,
            run,
            pitch,
        })
    }

    /// Contiguous rows of `n` columns, each the start of one slice of `rows` (rows of several
    /// tensors: the parts of a concatenation read where they are); checks that every slice
    /// holds `n` values.
    pub fn from_rows(rows: &'a [&'a [f32]], n: usize) -> Result<Self, String> {
        if let Some(short) = rows.iter().position(|r| r.len() < n) {
            return Err(format!(
                "row {short} of {} values for {n} columns",
                rows[short].len()
            ));
        }
        Ok(Columns {
            starts: RowStarts::Slices(rows),
            k: rows.len(),
            n,
            run: n.max(1),
            pitch: n.max(1),
        })
    }

    /// Columns (`N`).
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether there are no columns.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The first row's start and the distance between rows, when every row is one run of
    /// `N` contiguous values and each starts that far past the one before (the input planes of
    /// a 1x1 convolution): such rows can be read in place of a packed panel.
    fn uniform_rows(&self) -> Option<(*const f32, usize)> {
        let RowStarts::Offsets(data, offsets) = self.starts else {
            return None;
        };
        if self.run != self.n || offsets.len() < 2 {
            return None;
        }
        let stride = offsets[1].checked_sub(offsets[0])?;
        let uniform = offsets.windows(2).all(|w| w[1] == w[0] + stride);
        uniform.then(|| (data[offsets[0]..].as_ptr(), stride))
    }

    /// The values of row `r` from its start (at least the row's span).
    #[inline]
    fn row(&self, r: usize) -> &'a [f32] {
        match self.starts {
            RowStarts::Offsets(data, offsets) => &data[offsets[r]..],
            RowStarts::Slices(rows) => rows[r],
        }
    }
}

/// The values a row of `n` columns in runs of `run`, `pitch` apart, spans.
fn span(n: usize, run: usize, pitch: usize) -> Result<usize, String> {
    if run == 0 || run > pitch || !n.is_multiple_of(run) {
        return Err(format!("{n} columns in runs of {run}, {pitch} apart"));
    }
    Ok(if n == 0 {
        0
    } else {
        (n / run - 1) * pitch + run
    })
}

thread_local! {
    /// Each thread's packed `B` panel.
    static PANEL: RefCell<AlignedBuf> = RefCell::new(AlignedBuf::default());
}

/// `c[(i - first) * NR + j] = sum_k a[i][k] panel[k * NR + j]` for the rows `i` of `a`'s row
/// panels `panels` (rows past `M` come out zero; `first` is the range's first row): the
/// product of the packed filters with one `B` panel already packed (`K` rows of the
/// micro-kernel's `NR` columns), as Winograd's transformed inputs are. No bias, no activation,
/// on the calling thread.
///
/// Panics when `panels` runs past `a`'s panels, `panel` holds fewer than `K x NR` values, `c`
/// fewer than the range's rows x `NR`, or `a` was packed for an instruction set this CPU lacks.
pub fn panel_product(
    a: &PackedWeights,
    panels: std::ops::Range<usize>,
    panel: &[f32],
    c: &mut [f32],
) {
    let (mr, nr) = tile(a.isa);
    assert!(panels.end <= a.m.div_ceil(mr), "row panels past M");
    assert!(panel.len() >= a.k * nr, "B panel too short");
    assert!(c.len() >= panels.len() * mr * nr, "C too short");
    assert!(a.isa.is_supported(), "{} kernels on this CPU", a.isa.name());
    static ZEROS: [f32; 16] = [0.0; 16];
    let packed = a.data.as_slice();
    let depth = block_depth(a.k);
    let mut pc = 0;
    while pc < a.k {
        let kc = depth.min(a.k - pc);
        for (q, p) in panels.clone().enumerate() {
            // SAFETY: the panel of `a` holds `mr * k` values from `p * mr * k`, `panel` `k * nr`,
            // `c` `mr` rows of `nr` from `q * mr * nr` (all checked above); `mr <= 16` zeros
            // seed the accumulators; the instruction set is supported (checked).
            unsafe {
                tile_kernel(
                    a.isa,
                    kc,
                    packed.as_ptr().add(p * mr * a.k + pc * mr),
                    panel.as_ptr().add(pc * nr),
                    c.as_mut_ptr().add(q * mr * nr),
                    nr,
                    ZEROS.as_ptr(),
                    if pc > 0 { Start::Output } else { Start::Bias },
                    None,
                );
            }
        }
        pc += kc;
    }
}

/// Checks the operands of an `m x k` product on `isa` (the filters' `(m, k, isa)`) against `b`,
/// an output of `c_len` values with rows `ldc` apart and the residual; `false` when there is
/// nothing to compute (no columns).
///
/// Panics when they disagree on `K`, `ldc < N`, the output or residual is too short, or `isa`
/// is one this CPU lacks.
fn check_product(
    (m, k, isa): (usize, usize, Isa),
    b: &Columns,
    c_len: usize,
    residual: Option<&[f32]>,
    ldc: usize,
) -> bool {
    assert_eq!(b.k, k, "B has one row per step of K");
    assert!(ldc >= b.n, "ldc {ldc} below N {}", b.n);
    if b.n == 0 {
        return false;
    }
    assert!(c_len >= (m - 1) * ldc + b.n, "C too short");
    if let Some(r) = residual {
        assert!(r.len() >= (m - 1) * ldc + b.n, "residual too short");
    }
    assert!(isa.is_supported(), "{} kernels on this CPU", isa.name());
    true
}

/// Computes `c[i * ldc + j] = act(sum_k a[i][k] b[k][j] + bias[i] + r[i * ldc + j])` for
/// `i < M`, `j < N` (`r` the residual, when there is one: a skip connection added before the
/// activation), with the work spread over the current kernel pool ([`super::pool`]).
///
/// Panics when `a` and `b` disagree on `K`, `ldc < N`, `c` or `residual` is too short, or `a`
/// was packed for an instruction set this CPU lacks.
pub fn gemm(
    a: &PackedWeights,
    b: &Columns,
    residual: Option<&[f32]>,
    c: &mut [f32],
    ldc: usize,
    activation: Activation,
) {
    if !check_product((a.m, a.k, a.isa), b, c.len(), residual, ldc) {
        return;
    }
    let (mr, nr) = tile(a.isa);
    let m_panels = a.m.div_ceil(mr);
    let n_panels = b.n.div_ceil(nr);
    let out = SharedMut::new(c);
    let pool = pool::current();
    let panels = (m_panels, n_panels);
    let (tm, tn) = split(pool.threads(), panels, (mr, nr), a.m * a.k * b.n);
    let task = |t: usize| {
        let (im, jn) = (t / tn, t % tn);
        let rows = part(m_panels, tm, im);
        let cols = part(n_panels, tn, jn);
        PANEL.with_borrow_mut(|panel| {
            // SAFETY: tasks cover disjoint panel ranges, so their tiles never overlap; every
            // tile lies inside `c` (checked above), and the kernels match the CPU (checked).
            let residual = residual.map(<[f32]>::as_ptr);
            unsafe { run_block(a, b, residual, out, ldc, activation, rows, cols, panel) }
        });
    };
    pool.run(tm * tn, &task);
}

/// [`gemm`] on the calling thread alone, into a buffer the other tasks of the caller's job
/// write too: for kernels that split their work over the pool themselves (a dense convolution
/// by bands of output rows).
///
/// Panics when `a` and `b` disagree on `K`, `ldc < N`, or `a` was packed for an instruction
/// set this CPU lacks.
///
/// # Safety
/// Every `c[i * ldc + j]` for `i < M`, `j < N` must be writable, and written by no other thread
/// during the call; `residual`, when given, must be readable at the same places.
pub(crate) unsafe fn gemm_serial(
    a: &PackedWeights,
    b: &Columns,
    residual: Option<*const f32>,
    c: SharedMut,
    ldc: usize,
    activation: Activation,
) {
    assert_eq!(b.k, a.k, "B has one row per step of K");
    assert!(ldc >= b.n, "ldc {ldc} below N {}", b.n);
    assert!(a.isa.is_supported(), "{} kernels on this CPU", a.isa.name());
    let (mr, nr) = tile(a.isa);
    let (rows, cols) = (0..a.m.div_ceil(mr), 0..b.n.div_ceil(nr));
    PANEL.with_borrow_mut(|panel| run_block(a, b, residual, c, ldc, activation, rows, cols, panel));
}

/// How many parts to cut the row and column panels (`mr` and `nr` wide) into (`tm x tn`
/// tasks) for `threads`.
fn split(
    threads: usize,
    (m_panels, n_panels): (usize, usize),
    (mr, nr): (usize, usize),
    work: usize,
) -> (usize, usize) {
    if threads < 2 || work < MIN_PARALLEL_WORK {
        return (1, 1);
    }
    if n_panels >= 4 * threads {
        // Columns: no panel is packed twice, and twice as many parts as threads even out.
        (1, 2 * threads)
    } else if m_panels >= 2 * threads && (n_panels < 2 * threads || n_panels * nr < m_panels * mr) {
        // Rows where there are too few column panels to share, or few (a 14x14 map's 7) and
        // more filters than pixels (the expand 1x1s of mobile networks): each task packs
        // every `B` panel (K x N, the smaller operand) but streams only its share of the
        // filters, and writes whole output rows, where split columns would leave tasks of 3
        // and 3.5 panels sharing a cache line at every row end (196 values a row).
        (threads, 1)
    } else if n_panels >= 2 * threads {
        (1, threads)
    } else {
        let tn = n_panels.clamp(1, threads);
        (threads.div_ceil(tn).min(m_panels), tn)
    }
}

/// Part `i` of `0..len` cut into `parts` nearly equal ranges.
pub(crate) fn part(len: usize, parts: usize, i: usize) -> std::ops::Range<usize> {
    (len * i / parts)..(len * (i + 1) / parts)
}

/// Bytes of the `A` block one task streams per block of `K` above which, when all its `B`
/// panels fit in [`B_BLOCK_BYTES`], the task runs row panel by row panel ([`run_block`]): an
/// `A` block larger than about half of L2 would otherwise come from L3 once per column panel
/// (ResNet50's and EfficientNet's 7x7 and 14x14 layers with 1024-2048 filters).
const A_BLOCK_BYTES: usize = 512 * 1024;

/// Bytes of packed `B` panels a task may hold at once (in L2 with one row panel of `A` in L1).
const B_BLOCK_BYTES: usize = 384 * 1024;

/// Bytes of packed `B` panels a task otherwise packs before its row panels run against them
/// (in L1, beside a row panel of `A`). With a short `K` (16-64: the expand convolutions of
/// mobile networks) a panel is 2-8 KiB, and running each row panel over several of them writes
/// every output row in runs of several hundred bytes instead of one `NR`-wide tile.
const B_GROUP_BYTES: usize = 24 * 1024;

/// Row panels a task needs before its column panels are grouped: with one or two (the 3x3
/// stems of detectors, 16-24 filters over 27 values) the few output rows stream well tile by
/// tile, and grouping measured 6 % slower.
const GROUP_MIN_ROW_PANELS: usize = 3;

/// One task: row panels `rows` x column panels `cols`.
///
/// For each block of `KC` steps, the column panels are packed a group at a time and every row
/// panel runs against the whole group. A group is one panel (the `B` panel in L1, the `A`
/// block in L2); as many as fit in [`B_GROUP_BYTES`] when the task has
/// [`GROUP_MIN_ROW_PANELS`] row panels or more (a short `K`); or all of them when the `A`
/// block would not fit in L2 and they fit in [`B_BLOCK_BYTES`] (the `A` panel in L1, the `B`
/// panels in L2).
///
/// # Safety
/// The tiles of `rows x cols` must lie inside the output (and the residual, when given) and
/// belong to this task alone, and `a.isa` must be supported by the CPU.
#[allow(clippy::too_many_arguments)]
unsafe fn run_block(
    a: &PackedWeights,
    b: &Columns,
    residual: Option<*const f32>,
    out: SharedMut,
    ldc: usize,
    activation: Activation,
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
    panel: &mut AlignedBuf,
) {
    let (mr, nr) = tile(a.isa);
    let k = a.k;
    let size = |panels: usize| panels * KC.min(k) * size_of::<f32>();
    // With a few row panels a packed `B` panel serves a few tiles, and its copy costs a large
    // share of their multiply-adds: `B` is read where it lies when it can be.
    let direct = match b.uniform_rows() {
        Some(rows_at) if a.isa == Isa::Avx512 && rows.len() <= DIRECT_MAX_ROW_PANELS => {
            Some(rows_at)
        }
        _ => None,
    };
    let group = if direct.is_some() {
        1
    } else if cols.len() > 1
        && size(rows.len() * mr) > A_BLOCK_BYTES
        && size(cols.len() * nr) <= B_BLOCK_BYTES
    {
        cols.len()
    } else if rows.len() >= GROUP_MIN_ROW_PANELS {
        (B_GROUP_BYTES / size(nr)).clamp(1, cols.len().max(1))
    } else {
        1
    };
    panel.ensure(KC.min(k) * nr * group);
    let panels = panel.as_mut_slice();
    let fused = activation.in_registers(a.isa);
    let depth = block_depth(k);
    let mut pc = 0;
    while pc < k {
        let kc = depth.min(k - pc);
        let (first, last) = (pc == 0, pc + kc == k);
        let step = Step {
            a,
            residual: if first { residual } else { None },
            out,
            ldc,
            n: b.n,
            pc,
            kc,
            first,
            post: if last { fused } else { None },
            activation: if last && fused.is_none() {
                activation
            } else {
                Activation::None
            },
        };
        let mut start = cols.start;
        while start < cols.end {
            let held = start..(start + group).min(cols.end);
            // Full-width panels of `B` read in place where they can be (`direct`), the others
            // packed.
            let in_place = |q: usize| direct.filter(|_| (q + 1) * nr <= b.n);
            for (i, q) in held.clone().enumerate() {
                if in_place(q).is_none() {
                    let w = nr.min(b.n - q * nr);
                    pack_panel(a.isa, b, pc, kc, q * nr, w, nr, &mut panels[i * kc * nr..]);
                }
            }
            for p in rows.clone() {
                for (i, q) in held.clone().enumerate() {
                    // With a short K the stores outrun the multiply-adds: the next tile's
                    // output (and residual) lines are asked for while this one computes.
                    if k <= SHORT_K {
                        let next = if q + 1 < held.end {
                            Some((p, q + 1))
                        } else {
                            (p + 1 < rows.end).then_some((p + 1, held.start))
                        };
                        if let Some((p, q)) = next {
                            step.prefetch_tile(p, q);
                        }
                    }
                    match in_place(q) {
                        Some((first_row, ldb)) => {
                            let at = first_row.add(pc * ldb + q * nr);
                            step.tile_direct(p, q, (at, ldb));
                        }
                        None => step.tile(p, q, panels[i * kc * nr..].as_ptr()),
                    }
                }
            }
            start = held.end;
        }
        pc += kc;
    }
}

/// One block of `K` steps of a task of [`run_block`]: what each of its tiles needs.
struct Step<'a> {
    a: &'a PackedWeights,
    /// The residual the tiles start from (first block only).
    residual: Option<*const f32>,
    out: SharedMut,
    ldc: usize,
    n: usize,
    pc: usize,
    kc: usize,
    first: bool,
    /// The activation fused into the kernels' stores (last block only).
    post: Option<InRegisters>,
    /// The activation applied to each stored tile (last block only, when not in registers).
    activation: Activation,
}

/// Row panels per task up to which [`run_block`] reads `B` in place of packing it, where its
/// rows allow ([`Columns::uniform_rows`], AVX-512): M up to 48. EfficientNet-Lite0's 1x1
/// projections to 16-24 channels ran 22-35 % faster in place (`vigia bench --profile`, one
/// thread), its 40-channel ones 5-9 %; up to eight row panels (M up to 96) was no faster.
const DIRECT_MAX_ROW_PANELS: usize = 4;

/// Depth up to which [`run_block`] prefetches each tile's output lines.
const SHORT_K: usize = 256;

impl Step<'_> {
    /// Asks for the output lines of tile (row panel `p`, column panel `q`) and, on the first
    /// block, its residual's.
    #[inline]
    fn prefetch_tile(&self, p: usize, q: usize) {
        let (mr, nr) = tile(self.a.isa);
        let (i, j) = (p * mr, q * nr);
        let (h, w) = (mr.min(self.a.m - i), nr.min(self.n - j));
        for r in 0..h {
            let at = (i + r) * self.ldc + j;
            prefetch_for_write(self.out.get().wrapping_add(at), w);
            if let Some(residual) = self.residual {
                prefetch(residual.wrapping_add(at), w);
            }
        }
    }

    /// Where tile (row panel `p`, column panel `q`) reads its filters and bias, writes its
    /// output and starts from.
    ///
    /// # Safety
    /// As [`run_block`].
    #[inline]
    unsafe fn operands(&self, p: usize, q: usize) -> (*const f32, *const f32, *mut f32, Start) {
        let a = self.a;
        let (mr, nr) = tile(a.isa);
        let (i, j) = (p * mr, q * nr);
        let ap = a.data.as_slice().as_ptr().add(p * mr * a.k + self.pc * mr);
        let bias = a.bias.as_ptr().add(i);
        let dst = self.out.get().add(i * self.ldc + j);
        // The first block starts from the bias, or from the residual and the bias (read by the
        // kernel as it loads its accumulators); the later ones from what the earlier stored.
        let start = match (self.first, self.residual) {
            (true, Some(residual)) => Start::Residual(residual.add(i * self.ldc + j)),
            (true, None) => Start::Bias,
            (false, _) => Start::Output,
        };
        (ap, bias, dst, start)
    }

    /// Full-width tile (row panel `p`, column panel `q`) against `B`'s rows read in place,
    /// `b.1` values apart from `b.0`.
    ///
    /// # Safety
    /// As [`run_block`]; `b.0` starts `kc` rows of `NR` readable values `b.1` apart; the
    /// instruction set is AVX-512.
    #[inline]
    unsafe fn tile_direct(&self, p: usize, q: usize, b: (*const f32, usize)) {
        let a = self.a;
        let (mr, nr) = tile(a.isa);
        let h = mr.min(a.m - p * mr);
        let (ap, bias, dst, start) = self.operands(p, q);
        let post = self.post.as_ref();
        let done = tile_direct_kernel(a.isa, h, self.kc, ap, b, dst, self.ldc, bias, start, post);
        assert!(done, "no {} kernel reading B in place", a.isa.name());
        if self.activation != Activation::None {
            self.activation.apply_rows_for(a.isa, dst, h, nr, self.ldc);
        }
    }

    /// Tile (row panel `p`, column panel `q`) against the packed panel at `b`.
    ///
    /// # Safety
    /// As [`run_block`]; `b` holds the packed `kc x NR` panel of column panel `q`.
    #[inline]
    unsafe fn tile(&self, p: usize, q: usize, b: *const f32) {
        let a = self.a;
        let (mr, nr) = tile(a.isa);
        let (i, j) = (p * mr, q * nr);
        let (h, w) = (mr.min(a.m - i), nr.min(self.n - j));
        let (kc, ldc) = (self.kc, self.ldc);
        let post = self.post.as_ref();
        let (ap, bias, dst, start) = self.operands(p, q);
        if h == mr && w == nr {
            tile_kernel(a.isa, kc, ap, b, dst, ldc, bias, start, post);
        } else if tile_part_kernel(a.isa, (h, w), kc, ap, b, dst, ldc, bias, start, post) {
            // An edge tile computed in place.
        } else {
            // An edge tile goes through a full-size scratch tile, which starts as the tile's
            // output (or residual, and bias) where the kernel does not start from the bias.
            let mut scratch = [0f32; 12 * 32];
            let t = scratch.as_mut_ptr();
            for r in 0..h {
                let row = t.add(r * nr);
                match start {
                    Start::Bias => {}
                    Start::Output => std::ptr::copy_nonoverlapping(dst.add(r * ldc), row, w),
                    Start::Residual(from) => {
                        for x in 0..w {
                            *row.add(x) = *from.add(r * ldc + x) + *bias.add(r);
                        }
                    }
                }
            }
            let start = match start {
                Start::Bias => Start::Bias,
                _ => Start::Output,
            };
            tile_kernel(a.isa, kc, ap, b, t, nr, bias, start, post);
            for r in 0..h {
                std::ptr::copy_nonoverlapping(t.add(r * nr), dst.add(r * ldc), w);
            }
        }
        if self.activation != Activation::None {
            self.activation.apply_rows_for(a.isa, dst, h, w, ldc);
        }
    }
}

/// Asks for the `len` values from `at` to be brought into L2 ahead of their use (a hint: no
/// effect on results, none at all off x86-64).
#[inline]
pub(crate) fn prefetch(at: *const f32, len: usize) {
    #[cfg(target_arch = "x86_64")]
    prefetch_lines::<{ std::arch::x86_64::_MM_HINT_T1 }>(at, len);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (at, len);
}

/// As [`prefetch`], for values about to be written (into L1, owned).
#[inline]
fn prefetch_for_write(at: *mut f32, len: usize) {
    #[cfg(target_arch = "x86_64")]
    prefetch_lines::<{ std::arch::x86_64::_MM_HINT_ET0 }>(at, len);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (at, len);
}

/// One x86-64 prefetch with `HINT` per cache line of the `len` values from `at`.
#[cfg(target_arch = "x86_64")]
#[inline]
fn prefetch_lines<const HINT: i32>(at: *const f32, len: usize) {
    // From the start of the first value's line to the last value's.
    let skew = at as usize % 64;
    let first = at.cast::<i8>().wrapping_sub(skew);
    for line in (0..skew + len * size_of::<f32>()).step_by(64) {
        // SAFETY: a prefetch reads nothing and never faults, whatever the address.
        unsafe { std::arch::x86_64::_mm_prefetch::<HINT>(first.wrapping_add(line)) };
    }
}

/// Copies rows `pc..pc + kc`, columns `j..j + w` of `b` into `panel` (`nr` values per row,
/// zeros past `w`), in `isa`'s vectors where it has masked loads.
#[allow(clippy::too_many_arguments)]
fn pack_panel(
    isa: Isa,
    b: &Columns,
    pc: usize,
    kc: usize,
    j: usize,
    w: usize,
    nr: usize,
    panel: &mut [f32],
) {
    // The panel's columns as (position in the panel, offset in a row, length) runs: as many as
    // the vector packing takes (a list of 64 was zeroed by a 1.5 KiB `memset` for every panel).
    let mut runs = [(0usize, 0usize, 0usize); 8];
    let mut count = 0;
    let mut col = j;
    while col < j + w {
        let len = (b.run - col % b.run).min(j + w - col);
        runs[count] = (col - j, (col / b.run) * b.pitch + col % b.run, len);
        count += 1;
        col += len;
        if count == runs.len() && col < j + w {
            // Runs shorter than a panel / 8 (maps a few pixels wide): copy column by column.
            return pack_panel_by_column(b, pc, kc, j, w, nr, panel);
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        let width = match isa {
            Isa::Avx512 => 16,
            Isa::Avx2Fma => 8,
            _ => 0,
        };
        if let Some(lanes) = x86_64::LaneRuns::new(&runs[..count], nr, width) {
            let row = |t: usize| b.row(pc + t).as_ptr();
            assert!(panel.len() >= kc * nr, "panel of {} values", panel.len());
            assert!(isa.is_supported(), "{} kernels on this CPU", isa.name());
            // SAFETY: the CPU has the instruction set (checked); every lane the runs load lies
            // inside its row's span, which `Columns` checked to lie inside the row's data; the
            // panel holds `kc` rows of `nr`.
            unsafe {
                if width == 16 {
                    x86_64::pack_rows_avx512(row, kc, &lanes, panel.as_mut_ptr());
                } else {
                    x86_64::pack_rows_avx2(row, kc, &lanes, panel.as_mut_ptr());
                }
            }
            return;
        }
    }
    let _ = isa;
    for (t, dst) in panel.chunks_exact_mut(nr).take(kc).enumerate() {
        let row = b.row(pc + t);
        for &(at, from, len) in &runs[..count] {
            copy_short(&mut dst[at..at + len], &row[from..from + len]);
        }
        dst[w..].fill(0.0);
    }
}

/// Copies a few dozen values in 8-value steps the compiler inlines (no call to `memcpy`).
#[inline(always)]
pub(crate) fn copy_short(dst: &mut [f32], src: &[f32]) {
    let mut d = dst.chunks_exact_mut(8);
    let mut s = src.chunks_exact(8);
    for (d, s) in (&mut d).zip(&mut s) {
        let s: &[f32; 8] = s.try_into().expect("8 values");
        d.copy_from_slice(s);
    }
    for (d, s) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *d = *s;
    }
}

/// [`pack_panel`] one column at a time (for runs of a few columns).
fn pack_panel_by_column(
    b: &Columns,
    pc: usize,
    kc: usize,
    j: usize,
    w: usize,
    nr: usize,
    panel: &mut [f32],
) {
    for (t, dst) in panel.chunks_exact_mut(nr).take(kc).enumerate() {
        let row = b.row(pc + t);
        for (x, v) in dst[..w].iter_mut().enumerate() {
            let col = j + x;
            *v = row[(col / b.run) * b.pitch + col % b.run];
        }
        dst[w..].fill(0.0);
    }
}

/// What a micro-kernel's accumulators start from.
#[derive(Debug, Clone, Copy)]
enum Start {
    /// The bias (the first block of `K`).
    Bias,
    /// The tile already in `c` (a later block of `K`).
    Output,
    /// The residual's tile at this address (rows `ldc` apart, as `c`'s) plus the bias: a skip
    /// connection read once, as the kernel loads its accumulators.
    Residual(*const f32),
}

/// Runs the micro-kernel of `isa` on one full tile, applying `post` before the store.
///
/// # Safety
/// As for the kernels: `isa` supported, `a` holding `MR kc` values, `b` `NR kc`, `bias` `MR`,
/// `c` `MR` rows of `NR` writable values `ldc` apart.
#[allow(clippy::too_many_arguments)]
#[inline]
unsafe fn tile_kernel(
    isa: Isa,
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    bias: *const f32,
    start: Start,
    post: Option<&InRegisters>,
) {
    let (rows, cols) = tile(isa);
    // SAFETY: as required of the caller, with all of the panel's rows and columns.
    let done = unsafe { tile_part_kernel(isa, (rows, cols), kc, a, b, c, ldc, bias, start, post) };
    assert!(done, "no {} kernel for {rows} rows", isa.name());
}

/// Whether `isa` has kernels that compute only the first rows of a panel (otherwise an edge
/// panel goes through a scratch tile).
pub fn has_row_kernels(isa: Isa) -> bool {
    matches!(isa, Isa::Avx512 | Isa::Avx2Fma)
}

/// Runs the micro-kernel of `isa` on the first `rows` rows and `cols` columns of one tile, as
/// [`tile_kernel`], without touching the rest of `c`; `false` (and nothing done) when `isa`
/// has no kernel for that part: fewer rows than `MR` on AVX-512 and AVX2, fewer columns than
/// `NR` on AVX-512 only (masked loads and stores; a panel of up to 16 columns in one vector a
/// row).
///
/// # Safety
/// As for the kernels: `isa` supported, `a` holding `MR kc` values, `b` `NR kc`, `bias` `rows`,
/// `c` `rows` rows of `cols` writable values `ldc` apart.
#[allow(clippy::too_many_arguments)]
#[inline]
unsafe fn tile_part_kernel(
    isa: Isa,
    (rows, cols): (usize, usize),
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    bias: *const f32,
    start: Start,
    post: Option<&InRegisters>,
) -> bool {
    let nr = tile(isa).1;
    if cols == 0 || cols > nr {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    macro_rules! avx512 {
        ($($n:literal)*) => {
            match (rows, cols > 16) {
                $(
                    ($n, true) => x86_64::tile_avx512::<$n, 2, false>(kc, a, (b, 32), c, ldc, cols, bias, start, post),
                    ($n, false) => x86_64::tile_avx512::<$n, 1, false>(kc, a, (b, 32), c, ldc, cols, bias, start, post),
                )*
                _ => return false,
            }
        };
    }
    #[cfg(target_arch = "x86_64")]
    macro_rules! avx2 {
        ($($n:literal)*) => {
            match rows {
                $($n => x86_64::tile_avx2::<$n>(kc, a, b, c, ldc, bias, start, post),)*
                _ => return false,
            }
        };
    }
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => avx512!(1 2 3 4 5 6 7 8 9 10 11 12),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma if cols == nr => avx2!(1 2 3 4 5 6),
        #[cfg(target_arch = "aarch64")]
        Isa::Neon if rows == 8 && cols == nr => {
            aarch64::tile_neon(kc, a, b, c, ldc, bias, start, post)
        }
        Isa::Portable if rows == tile(Isa::Portable).0 && cols == nr => {
            tile_portable(kc, a, b, c, ldc, bias, start, post)
        }
        _ => return false,
    }
    true
}

/// Runs the AVX-512 micro-kernel on the first `rows` rows of a full-width tile (32 columns)
/// whose `B` rows are read where they lie, `ldb` values apart ([`Columns::uniform_rows`]), as
/// [`tile_part_kernel`] does on a packed panel; `false` (and nothing done) off AVX-512.
///
/// # Safety
/// As [`tile_part_kernel`], with `b` holding `kc` rows of 32 readable values `ldb` apart.
#[allow(clippy::too_many_arguments)]
#[inline]
unsafe fn tile_direct_kernel(
    isa: Isa,
    rows: usize,
    kc: usize,
    a: *const f32,
    b: (*const f32, usize),
    c: *mut f32,
    ldc: usize,
    bias: *const f32,
    start: Start,
    post: Option<&InRegisters>,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    macro_rules! avx512 {
        ($($n:literal)*) => {
            match rows {
                $($n => x86_64::tile_avx512::<$n, 2, true>(kc, a, b, c, ldc, 32, bias, start, post),)*
                _ => return false,
            }
        };
    }
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => {
            avx512!(1 2 3 4 5 6 7 8 9 10 11 12);
            true
        }
        _ => {
            let _ = (rows, kc, a, b, c, ldc, bias, start, post);
            false
        }
    }
}

/// The portable micro-kernel, 4 rows x 8 columns, vectorized by the compiler.
///
/// # Safety
/// `a` must hold `4 kc` values, `b` `8 kc`, `bias` 4, and `c` 4 rows of 8 writable values
/// `ldc` apart.
#[allow(clippy::too_many_arguments)]
unsafe fn tile_portable(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    bias: *const f32,
    start: Start,
    post: Option<&InRegisters>,
) {
    const MR: usize = 4;
    const NR: usize = 8;
    let a = std::slice::from_raw_parts(a, MR * kc);
    let b = std::slice::from_raw_parts(b, NR * kc);
    let mut acc = [[0f32; NR]; MR];
    for (r, row) in acc.iter_mut().enumerate() {
        match start {
            Start::Output => row.copy_from_slice(std::slice::from_raw_parts(c.add(r * ldc), NR)),
            Start::Bias => *row = [*bias.add(r); NR],
            Start::Residual(from) => {
                let from = std::slice::from_raw_parts(from.add(r * ldc), NR);
                for (o, &x) in row.iter_mut().zip(from) {
                    *o = x + *bias.add(r);
                }
            }
        }
    }
    for (av, bv) in a.chunks_exact(MR).zip(b.chunks_exact(NR)) {
        for (row, &x) in acc.iter_mut().zip(av) {
            for (o, &y) in row.iter_mut().zip(bv) {
                *o += x * y;
            }
        }
    }
    // The activation is part of the store, as in the SIMD kernels.
    for (r, row) in acc.iter().enumerate() {
        let dst = std::slice::from_raw_parts_mut(c.add(r * ldc), NR);
        match post {
            Some(post) => dst
                .iter_mut()
                .zip(row)
                .for_each(|(d, &v)| *d = post.apply_one(v)),
            None => dst.copy_from_slice(row),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_split_by_rows_when_columns_are_few_and_filters_outnumber_pixels() {
        let (tile, big) = ((12, 32), MIN_PARALLEL_WORK);
        // EfficientNet-Lite0's 80 -> 480 expand 1x1 at 14x14 (40 x 7 panels): rows.
        assert_eq!(split(2, (40, 7), tile, big), (2, 1));
        // Its 480 -> 80 projection (7 x 7 panels): columns, the filters the smaller operand.
        assert_eq!(split(2, (7, 7), tile, big), (1, 2));
        // A 28x28 map (25 column panels): columns, twice as many parts as threads.
        assert_eq!(split(2, (40, 25), tile, big), (1, 4));
        // Too few column panels to share: rows whatever the sizes.
        assert_eq!(split(2, (5, 3), tile, big), (2, 1));
        // One thread, or too little work: one task.
        assert_eq!(split(1, (40, 7), tile, big), (1, 1));
        assert_eq!(split(2, (40, 7), tile, big - 1), (1, 1));
    }

    #[test]
    fn depth_blocks_are_equal_and_at_most_kc() {
        assert_eq!(block_depth(288), 144);
        assert_eq!(block_depth(576), 192);
        assert_eq!(block_depth(256), 256);
        assert_eq!(block_depth(257), 129);
        assert_eq!(block_depth(27), 27);
        for k in 1..3000 {
            let depth = block_depth(k);
            assert!(depth <= KC, "{k}: {depth}");
            // As few blocks as KC allows, the last one at most one step shorter per block.
            assert_eq!(k.div_ceil(depth), k.div_ceil(KC), "{k}");
            assert!(
                k.div_ceil(depth) * depth - k < k.div_ceil(KC),
                "{k}: {depth}"
            );
        }
    }

    /// `act(A B + bias)` in f64.
    pub(super) fn naive(
        w: &[f32],
        bias: &[f32],
        b: &[f32],
        m: usize,
        k: usize,
        n: usize,
    ) -> Vec<f32> {
        let mut c = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = bias[i] as f64;
                for t in 0..k {
                    s += w[i * k + t] as f64 * b[t * n + j] as f64;
                }
                c[i * n + j] = s as f32;
            }
        }
        c
    }

    pub(super) fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| (((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 2001) as f32 / 1000.0 - 1.0)
            .collect()
    }

    #[test]
    fn every_isa_matches_the_naive_product_on_edge_and_multi_block_shapes() {
        // Clamps, LeakyReLU and (on x86-64) Sigmoid and SiLU go into the micro-kernel's store
        // (on the last block of K only), the others over the stored tile.
        let activations = [
            Activation::None,
            Activation::Clip { min: 0.0, max: 6.0 },
            Activation::Clip {
                min: -0.5,
                max: 0.25,
            },
            Activation::LeakyRelu { alpha: 0.1 },
            Activation::LeakyRelu { alpha: 1.5 },
            Activation::Sigmoid,
            Activation::Silu,
            Activation::HardSwish,
        ];
        for (isa, activation) in Isa::all_supported()
            .into_iter()
            .flat_map(|isa| activations.map(|act| (isa, act)))
        {
            for &(m, k, n) in &[
                (1, 1, 1),
                (5, 3, 7),
                (12, 27, 32),
                (13, 27, 33),
                // Last panels of every height below the widest tile's 12 rows. With up to four
                // row panels (M up to 48 on AVX-512), the full-width column panels of B are
                // read in place, the last one packed.
                (23, 9, 64),
                (20, 300, 64),
                (17, 5, 40),
                (3, 2, 32),
                (10, 9, 96),
                (21, 4, 32),
                (24, 300, 70),
                (7, 600, 17),
                (64, 64, 200),
                // A short K: with three row panels or more the column panels are packed in
                // groups, the last group partial and its last panel an edge.
                (13, 16, 965),
                (30, 24, 1000),
                (40, 16, 965),
                // An A block past L2 with few column panels: row panel by row panel, over
                // two blocks of K, the last column panel an edge.
                (530, 300, 75),
            ] {
                let w = values(m * k, 1);
                let bias = values(m, 2);
                let bv = values(k * n, 3);
                let offsets: Vec<usize> = (0..k).map(|t| t * n).collect();
                let a = PackedWeights::new(isa, &w, &bias, m, k).unwrap();
                let cols = Columns::new(&bv, &offsets, n).unwrap();
                let residual = values(m * n, 4);
                for with_residual in [false, true] {
                    let mut c = vec![f32::NAN; m * n];
                    let r = with_residual.then_some(&residual[..]);
                    gemm(&a, &cols, r, &mut c, n, activation);
                    let want = naive(&w, &bias, &bv, m, k, n);
                    for (i, (g, e)) in c.iter().zip(&want).enumerate() {
                        let e = activation.apply_one(e + r.map_or(0.0, |r| r[i]));
                        assert!(
                            (g - e).abs() <= 1e-4 * e.abs().max(1.0),
                            "{isa:?} {activation:?} {m}x{k}x{n} residual {with_residual} at \
                             {i}: {g} vs {e}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn rows_read_in_place_match_the_naive_product_whatever_their_stride() {
        // Rows of 100 columns 117 apart (a window of wider rows), two blocks of K, two threads.
        let (m, k, n, stride) = (20, 300, 100, 117);
        let w = values(m * k, 5);
        let bias = values(m, 6);
        let data = values(k * stride, 7);
        let offsets: Vec<usize> = (0..k).map(|t| t * stride).collect();
        let dense: Vec<f32> = offsets
            .iter()
            .flat_map(|&o| data[o..o + n].to_vec())
            .collect();
        let want = naive(&w, &bias, &dense, m, k, n);
        let cols = Columns::new(&data, &offsets, n).unwrap();
        assert_eq!(cols.uniform_rows().map(|r| r.1), Some(stride));
        for isa in Isa::all_supported() {
            let a = PackedWeights::new(isa, &w, &bias, m, k).unwrap();
            for threads in [1, 2] {
                let mut c = vec![f32::NAN; m * n];
                pool::with_pool(std::sync::Arc::new(pool::Pool::new(threads)), || {
                    gemm(&a, &cols, None, &mut c, n, Activation::None)
                });
                for (i, (g, e)) in c.iter().zip(&want).enumerate() {
                    assert!((g - e).abs() <= 1e-4 * e.abs().max(1.0), "{isa:?} at {i}");
                }
            }
        }
        // Rows not evenly spaced are packed.
        let mut uneven = offsets.clone();
        uneven[1] += 1;
        assert!(Columns::new(&data, &uneven, n)
            .unwrap()
            .uniform_rows()
            .is_none());
    }

    #[test]
    fn columns_in_runs_skip_the_gaps() {
        // 3 rows of 2 runs of 5 columns, 7 apart (2 gap columns), and runs of 1 (by column).
        for (run, pitch, n) in [(5usize, 7usize, 10usize), (1, 3, 40), (3, 3, 9)] {
            let (m, k) = (13, 3);
            let len = (n / run - 1) * pitch + run;
            let data = values(k * len, 5);
            let offsets: Vec<usize> = (0..k).map(|t| t * len).collect();
            let dense: Vec<f32> = (0..k)
                .flat_map(|t| (0..n).map(move |c| (t, c)))
                .map(|(t, c)| data[t * len + (c / run) * pitch + c % run])
                .collect();
            let w = values(m * k, 6);
            let bias = values(m, 7);
            let want = naive(&w, &bias, &dense, m, k, n);
            for isa in Isa::all_supported() {
                let a = PackedWeights::new(isa, &w, &bias, m, k).unwrap();
                let cols = Columns::in_runs(&data, &offsets, n, run, pitch).unwrap();
                let mut c = vec![f32::NAN; m * n];
                gemm(&a, &cols, None, &mut c, n, Activation::None);
                for (g, e) in c.iter().zip(&want) {
                    assert!(
                        (g - e).abs() <= 1e-4 * e.abs().max(1.0),
                        "{isa:?} {g} vs {e}"
                    );
                }
            }
        }
        assert!(Columns::in_runs(&[0.0; 100], &[0], 10, 4, 7).is_err());
        assert!(Columns::in_runs(&[0.0; 100], &[0], 10, 5, 4).is_err());
    }

    #[test]
    fn vector_packing_matches_the_scalar_copy() {
        // Runs long and short, gaps of 0-3 columns, panels of 32 (pixel lanes) and 12 (channel
        // lanes) columns, whole and partial, at every offset of a few rows.
        for (run, pitch) in [
            (52usize, 54usize),
            (26, 28),
            (13, 15),
            (6, 7),
            (5, 7),
            (32, 32),
        ] {
            let rows = 4;
            let n = run * rows;
            let k = 9;
            let len = (rows - 1) * pitch + run + 2 * pitch;
            let data = values(len + k, 8);
            let offsets: Vec<usize> = (0..k).map(|t| t % 3 + (t / 3) * pitch).collect();
            let b = Columns::in_runs(&data, &offsets, n, run, pitch).unwrap();
            for nr in [32, 16, 12] {
                for j in 0..n {
                    let w = nr.min(n - j);
                    let mut want = vec![f32::NAN; k * nr];
                    pack_panel(Isa::Portable, &b, 0, k, j, w, nr, &mut want);
                    for isa in Isa::all_supported() {
                        let mut got = vec![f32::NAN; k * nr + 16];
                        pack_panel(isa, &b, 0, k, j, w, nr, &mut got);
                        assert_eq!(got[..k * nr], want[..], "{isa:?} {run}/{pitch} {nr} at {j}");
                        assert!(
                            got[k * nr..].iter().all(|v| v.is_nan()),
                            "{isa:?} wrote past"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn packed_weights_unpack_to_what_they_were_packed_from() {
        for isa in Isa::all_supported() {
            for (m, k) in [(1, 1), (13, 7), (32, 5), (45, 3)] {
                let (w, bias) = (values(m * k, 9), values(m, 10));
                let packed = PackedWeights::new(isa, &w, &bias, m, k).unwrap();
                assert_eq!(
                    packed.unpacked(),
                    (w.clone(), bias.clone()),
                    "{isa:?} {m}x{k}"
                );
                let lanes = RowLaneWeights::new(isa, &w, &bias, m, k).unwrap();
                assert_eq!(lanes.unpacked(), (w, bias), "{isa:?} {m}x{k} channel lanes");
            }
        }
    }

    #[test]
    fn bad_operands_are_refused() {
        assert!(PackedWeights::new(Isa::Portable, &[0.0; 5], &[0.0; 2], 2, 3).is_err());
        assert!(PackedWeights::new(Isa::Portable, &[0.0; 6], &[0.0; 1], 2, 3).is_err());
        assert!(PackedWeights::new(Isa::Portable, &[], &[], 0, 3).is_err());
        assert!(Columns::new(&[0.0; 10], &[0, 4], 7).is_err());
        assert!(Columns::new(&[0.0; 11], &[0, 4], 7).is_ok());
        assert!(Columns::from_rows(&[&[0.0; 7], &[0.0; 6]], 7).is_err());
        assert!(Columns::from_rows(&[&[0.0; 7], &[0.0; 9]], 7).is_ok());
    }
}
