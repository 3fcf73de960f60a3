//! The f32 direct-convolution kernel with NEON FMAs: 6 output channels over 16 positions a call,
//! 24 accumulators of 4 lanes, each step's 6 weights taken by lane from two registers. Shorter
//! runs (a row's tail) take the portable loops.

use crate::ops::conv_f32_kernel::{Block, ROWS};
use std::arch::aarch64::*;

/// Positions one call covers.
pub const WIDTH: usize = 16;

/// # Safety
/// `Kernel::run`'s bounds hold and the run is a whole [`WIDTH`] positions long.
pub unsafe fn block_neon(block: &Block, p0: usize, out: *mut f32, stride: usize) {
    let src = block.input.as_ptr().add(p0);
    let mut acc = [[vdupq_n_f32(0.0); 4]; ROWS];
    let mut w = block.weights.as_ptr();
    for &off in block.offsets {
        let s = src.add(off);
        let v = [
            vld1q_f32(s),
            vld1q_f32(s.add(4)),
            vld1q_f32(s.add(8)),
            vld1q_f32(s.add(12)),
        ];
        // The step's ROWS = 6 weights: 0-3 in one register, 4-5 in a half register.
        let w03 = vld1q_f32(w);
        let w45 = vld1_f32(w.add(4));
        for (j, x) in v.iter().enumerate() {
            acc[0][j] = vfmaq_laneq_f32::<0>(acc[0][j], *x, w03);
            acc[1][j] = vfmaq_laneq_f32::<1>(acc[1][j], *x, w03);
            acc[2][j] = vfmaq_laneq_f32::<2>(acc[2][j], *x, w03);
            acc[3][j] = vfmaq_laneq_f32::<3>(acc[3][j], *x, w03);
            acc[4][j] = vfmaq_lane_f32::<0>(acc[4][j], *x, w45);
            acc[5][j] = vfmaq_lane_f32::<1>(acc[5][j], *x, w45);
        }
        w = w.add(ROWS);
    }
    let zero = vdupq_n_f32(0.0);
    for (r, row) in acc.iter().enumerate().take(block.rows) {
        let b = vdupq_n_f32(block.bias[r]);
        let at = r * stride + p0;
        for (j, a) in row.iter().enumerate() {
            let mut v = vaddq_f32(*a, b);
            if block.relu {
                v = vmaxq_f32(v, zero);
            }
            if let Some(addend) = block.addend {
                v = vaddq_f32(v, vld1q_f32(addend.as_ptr().add(at + 4 * j)));
            }
            vst1q_f32(out.add(at + 4 * j), v);
        }
    }
}
