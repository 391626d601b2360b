//! Maps between planes (`[C][H][W]`, NCHW) and channel blocks (`[C / 16][H][W][16]`: the 16
//! channels of a pixel in one vector), the layout [`super::blocked_conv`] computes in, 16 x 16
//! values at a time transposed in registers ([`super::transpose`]).

use super::pool::for_each_rows;
use super::transpose::{lanes_to_planes, planes_to_lanes};
use super::Isa;

/// Channels per block.
pub const BLOCK: usize = 16;

/// `blocked[c / 16][p][c % 16] = planes[c][p]` for maps of `pixels` pixels, spread over the
/// current kernel pool.
///
/// Panics unless both hold the same whole number of blocks of 16 maps.
pub fn to_blocked(isa: Isa, planes: &[f32], pixels: usize, blocked: &mut [f32]) {
    let block = check(planes.len(), blocked.len(), pixels);
    for_each_rows(blocked, block, blocked.len(), |first, part| {
        for (i, lines) in part.chunks_exact_mut(block).enumerate() {
            let b = first + i;
            let lines = lines.as_chunks_mut::<BLOCK>().0;
            planes_to_lanes(
                isa,
                &planes[b * block..(b + 1) * block],
                pixels,
                BLOCK,
                lines,
            );
        }
    });
}

/// `planes[c][p] = blocked[c / 16][p][c % 16]`: the inverse of [`to_blocked`].
///
/// Panics unless both hold the same whole number of blocks of 16 maps.
pub fn from_blocked(isa: Isa, blocked: &[f32], pixels: usize, planes: &mut [f32]) {
    let block = check(planes.len(), blocked.len(), pixels);
    for_each_rows(planes, block, blocked.len(), |first, part| {
        for (i, maps) in part.chunks_exact_mut(block).enumerate() {
            let b = first + i;
            let lines = blocked[b * block..(b + 1) * block].as_chunks::<BLOCK>().0;
            lanes_to_planes(isa, lines, BLOCK, pixels, maps);
        }
    });
}

/// Floats per block of 16 maps of `pixels`, checking both lengths.
fn check(planes: usize, blocked: usize, pixels: usize) -> usize {
    let block = BLOCK * pixels;
    assert!(
        block > 0 && planes == blocked && planes.is_multiple_of(block),
        "{planes} and {blocked} values in blocks of 16 maps of {pixels} pixels"
    );
    block
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::test_support::Rng;

    #[test]
    fn planes_go_to_blocks_and_back_on_every_instruction_set() {
        let mut rng = Rng(7);
        for isa in Isa::all_supported() {
            for (channels, pixels) in [(16, 1), (32, 49), (48, 3136), (16, 17)] {
                let planes = rng.values(channels * pixels);
                let mut blocked = vec![0.0; planes.len()];
                to_blocked(isa, &planes, pixels, &mut blocked);
                for c in 0..channels {
                    for p in 0..pixels {
                        assert_eq!(
                            blocked[((c / BLOCK) * pixels + p) * BLOCK + c % BLOCK],
                            planes[c * pixels + p],
                            "{} {channels}x{pixels} channel {c} pixel {p}",
                            isa.name()
                        );
                    }
                }
                let mut back = vec![0.0; planes.len()];
                from_blocked(isa, &blocked, pixels, &mut back);
                assert_eq!(back, planes, "{} {channels}x{pixels}", isa.name());
            }
        }
    }
}
