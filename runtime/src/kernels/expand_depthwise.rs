//! A 1x1 expansion and the depthwise convolution that reads it, computed a group of channels
//! at a time: the first two layers of an inverted residual block on a large map (EfficientNet's
//! and MobileNet's 16 -> 96 channels at 112x112). Run one after the other, the expansion
//! writes its whole output (4.8 MB there) to memory and the depthwise layer reads it back;
//! here each group of expanded channels (about [`GROUP_BYTES`]) is computed by the matrix
//! product ([`super::gemm`]) and at once convolved, while it is still in L2. Groups are spread
//! over the kernel pool, each task with its own group buffer.

use std::cell::RefCell;
use std::sync::Arc;

use super::aligned_buf::AlignedBuf;
use super::dense_conv::DenseConv;
use super::depthwise::{DepthwiseConv, DepthwisePath};
use super::gemm::{self, gemm_serial, Columns, PackedWeights};
use super::pool::{self, SharedMut};
use super::{Activation, Isa};

/// Bytes of expanded channels a group holds at most (whole row panels of the product, at least
/// one): with the input's planes and the group's output, within a 2 MiB L2.
pub const GROUP_BYTES: usize = 512 * 1024;

/// An expansion (1x1, stride 1, no padding) and the depthwise convolution over its output.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpandDepthwise {
    /// The expansion's filters and biases, packed per group of output channels.
    groups: Vec<PackedWeights>,
    /// Channels per group (the last group may hold fewer).
    group_channels: usize,
    in_channels: usize,
    /// Pixels of the input (and of the expanded map).
    pixels: usize,
    /// Where each input plane starts (the product's `B` rows), computed once.
    offsets: Vec<usize>,
    /// The expansion's activation.
    activation: Activation,
    depthwise: Arc<DepthwiseConv>,
    /// The depthwise convolution's layout (channel by channel: planes or rows).
    path: DepthwisePath,
    isa: Isa,
}

thread_local! {
    /// Each thread's group of expanded channels.
    static GROUP: RefCell<AlignedBuf> = RefCell::new(AlignedBuf::default());
}

/// Channels per group for `channels` expanded maps of `pixels`: groups of about
/// [`GROUP_BYTES`] (one row panel of `mr` channels at least), as many as an even number of
/// threads share equally (a multiple of 2, or of 4 from four groups on), all of one size but
/// the last.
fn group_channels(channels: usize, pixels: usize, mr: usize) -> usize {
    let fit = (GROUP_BYTES / (pixels * size_of::<f32>()).max(1)).max(mr);
    let groups = channels.div_ceil(fit);
    let groups = if groups >= 4 {
        groups.next_multiple_of(4)
    } else {
        groups.next_multiple_of(2)
    };
    channels.div_ceil(groups.min(channels)).max(1)
}

impl ExpandDepthwise {
    /// Joins `expand` and `depthwise` (which reads all of its output) on `isa`; an error when
    /// `expand` is not a 1x1 stride-1 convolution without padding, their channels or maps
    /// disagree, or the depthwise convolution would run on whole blocks of channels.
    pub fn new(
        expand: &DenseConv,
        depthwise: Arc<DepthwiseConv>,
        isa: Isa,
    ) -> Result<Self, String> {
        let (e, d) = (expand.geometry(), depthwise.geometry());
        let pointwise = (e.kernel_h, e.kernel_w, e.stride_h, e.stride_w) == (1, 1, 1, 1)
            && (e.out_h, e.out_w) == (e.in_h, e.in_w);
        if !pointwise {
            return Err("the expansion is not a 1x1 stride-1 convolution".into());
        }
        if expand.out_channels() != d.channels || (e.out_h, e.out_w) != (d.in_h, d.in_w) {
            return Err(format!(
                "the expansion makes {} channels of {}x{}, the depthwise convolution reads {} of \
                 {}x{}",
                expand.out_channels(),
                e.out_h,
                e.out_w,
                d.channels,
                d.in_h,
                d.in_w
            ));
        }
        let path = depthwise.path(isa);
        if path == DepthwisePath::Blocked || expand.isa() != isa {
            return Err("the depthwise convolution runs on blocks of channels".into());
        }
        let pixels = e.in_h * e.in_w;
        let group_channels = group_channels(d.channels, pixels, gemm::tile(isa).0);
        let (weights, bias) = expand.filters();
        let k = e.channels;
        let groups = (0..d.channels)
            .step_by(group_channels.max(1))
            .map(|first| {
                let rows = group_channels.min(d.channels - first);
                let w = &weights[first * k..(first + rows) * k];
                PackedWeights::new(isa, w, &bias[first..first + rows], rows, k)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ExpandDepthwise {
            groups,
            group_channels,
            in_channels: k,
            pixels,
            offsets: (0..k).map(|c| c * pixels).collect(),
            activation: expand.activation(),
            depthwise,
            path,
            isa,
        })
    }

    /// Input floats (`in_channels * in_h * in_w`).
    pub fn input_len(&self) -> usize {
        self.in_channels * self.pixels
    }

    /// Output floats (the depthwise convolution's).
    pub fn output_len(&self) -> usize {
        self.depthwise.geometry().output_len()
    }

    /// Multiply-adds of one run (both layers).
    pub fn macs(&self) -> u64 {
        let d = self.depthwise.geometry();
        let expand = self.pixels * self.in_channels * d.channels;
        (expand + d.output_len() * d.kernel_h * d.kernel_w) as u64
    }

    /// The depthwise convolution.
    pub fn depthwise(&self) -> &DepthwiseConv {
        &self.depthwise
    }

    /// Channels each group expands.
    pub fn group_channels(&self) -> usize {
        self.group_channels
    }

    /// Runs on `input` (`[in_channels][h][w]`) into `output` (the depthwise convolution's
    /// `[channels][out_h][out_w]`).
    ///
    /// Panics when a buffer length does not match the geometry.
    pub fn run(&self, input: &[f32], output: &mut [f32]) {
        assert_eq!(input.len(), self.input_len(), "input length");
        assert_eq!(output.len(), self.output_len(), "output length");
        let d = self.depthwise.geometry();
        let plane_out = d.out_h * d.out_w;
        let columns =
            Columns::new(input, &self.offsets, self.pixels).expect("input planes checked");
        let out = SharedMut::new(output);
        let task = |g: usize| {
            let weights = &self.groups[g];
            let (first, rows) = (g * self.group_channels, weights.rows());
            // SAFETY: the group's output planes `first..first + rows` lie inside `output` (its
            // length was checked) and belong to this task alone.
            let planes = unsafe {
                std::slice::from_raw_parts_mut(out.get().add(first * plane_out), rows * plane_out)
            };
            GROUP.with_borrow_mut(|group| {
                group.ensure(rows * self.pixels);
                let expanded = &mut group.as_mut_slice()[..rows * self.pixels];
                // SAFETY: `expanded` holds the group's `rows x pixels` values, written by this
                // thread alone; the filters were packed for `isa`, which `new` took from a
                // convolution built for this CPU.
                unsafe {
                    let c = SharedMut::new(expanded);
                    gemm_serial(weights, &columns, None, c, self.pixels, self.activation);
                }
                let (path, isa) = (self.path, self.isa);
                self.depthwise
                    .run_planes(path, isa, first, expanded, planes);
            });
        };
        pool::current().run(self.groups.len(), &task);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::planes::PlaneGeometry;
    use crate::kernels::pool::{with_pool, Pool};
    use crate::kernels::test_support::{assert_close, Rng};

    /// The expansion then the depthwise convolution, each on its own kernel.
    fn separate(expand: &DenseConv, depthwise: &DepthwiseConv, isa: Isa, x: &[f32]) -> Vec<f32> {
        let mut mid = vec![0.0; expand.output_len()];
        expand.run(x, &mut mid);
        let mut out = vec![0.0; depthwise.geometry().output_len()];
        depthwise.run(isa, &mid, &mut out);
        out
    }

    #[test]
    fn groups_of_expanded_channels_match_the_two_layers_run_apart() {
        let mut rng = Rng(23);
        let relu6 = Activation::Clip { min: 0.0, max: 6.0 };
        // (input channels, expanded channels, side, kernel, stride): one group and several,
        // the last partial; rows and planes depthwise layouts; both strides.
        for (cin, cexp, side, k, s) in [
            (16, 96, 112, 3, 2),
            (24, 144, 56, 3, 1),
            (24, 144, 56, 5, 2),
            (8, 30, 40, 3, 1),
            (5, 7, 9, 3, 1),
            (40, 240, 28, 5, 1),
        ] {
            for isa in Isa::all_supported() {
                let e =
                    PlaneGeometry::new(cin, (side, side), (1, 1), (1, 1), (0, 0), (0, 0)).unwrap();
                let p = k / 2;
                let d =
                    PlaneGeometry::new(cexp, (side, side), (k, k), (s, s), (p, p), (p, p)).unwrap();
                let expand = DenseConv::new(
                    isa,
                    e,
                    cexp,
                    &rng.values(cexp * cin),
                    &rng.values(cexp),
                    relu6,
                )
                .unwrap();
                let dw = DepthwiseConv::new(d, rng.values(cexp * k * k), rng.values(cexp), relu6)
                    .unwrap();
                let dw = Arc::new(dw);
                let Ok(fused) = ExpandDepthwise::new(&expand, dw.clone(), isa) else {
                    assert_eq!(dw.path(isa), DepthwisePath::Blocked, "{isa:?} {d:?}");
                    continue;
                };
                let x = rng.values(e.input_len());
                let want = separate(&expand, &dw, isa, &x);
                for threads in [1, 2] {
                    let mut got = vec![f32::NAN; fused.output_len()];
                    with_pool(Arc::new(Pool::new(threads)), || fused.run(&x, &mut got));
                    let what = format!("{isa:?} {cin}->{cexp} {side} k{k} s{s}, {threads} threads");
                    assert_close(&got, &want, 1e-5, what);
                }
            }
        }
    }

    #[test]
    fn groups_fit_in_l2_and_share_equally_between_threads() {
        // EfficientNet-Lite0's expansions: 96 channels at 112x112 in 8 groups of 12 (one row
        // panel, 602 KB), 144 at 56x56 in 4 of 36, 240 at 28x28 in 2 of 120.
        assert_eq!(group_channels(96, 112 * 112, 12), 12);
        assert_eq!(group_channels(144, 56 * 56, 12), 36);
        assert_eq!(group_channels(240, 28 * 28, 12), 120);
        // Five groups' worth become eight; three four; a single one two.
        assert_eq!(group_channels(160, 64 * 64, 12), 20);
        assert_eq!(group_channels(96, 64 * 64, 12), 24);
        assert_eq!(group_channels(32, 8 * 8, 12), 16);
        assert_eq!(group_channels(1, 8 * 8, 12), 1);
    }

    #[test]
    fn layers_that_do_not_chain_are_refused() {
        let isa = Isa::detect();
        let e = PlaneGeometry::new(4, (20, 20), (3, 3), (1, 1), (1, 1), (1, 1)).unwrap();
        let expand =
            DenseConv::new(isa, e, 8, &[0.0; 8 * 4 * 9], &[0.0; 8], Activation::None).unwrap();
        let d = PlaneGeometry::new(8, (20, 20), (3, 3), (1, 1), (1, 1), (1, 1)).unwrap();
        let dw =
            Arc::new(DepthwiseConv::new(d, vec![0.0; 72], vec![0.0; 8], Activation::None).unwrap());
        assert!(
            ExpandDepthwise::new(&expand, dw.clone(), isa).is_err(),
            "a 3x3 expansion"
        );
        let e = PlaneGeometry::new(4, (20, 20), (1, 1), (1, 1), (0, 0), (0, 0)).unwrap();
        let expand = DenseConv::new(isa, e, 6, &[0.0; 24], &[0.0; 6], Activation::None).unwrap();
        assert!(
            ExpandDepthwise::new(&expand, dw, isa).is_err(),
            "6 channels for 8"
        );
    }
}
