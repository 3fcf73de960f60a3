//! The f32 direct-convolution kernel in plain loops: the reference the native kernels are
//! checked against, and what runs where none does.

use crate::ops::conv_f32_kernel::{Block, ROWS};

/// # Safety
/// `Kernel::run`'s bounds and contract hold.
pub unsafe fn block(block: &Block, p0: usize, n: usize, out: *mut f32, stride: usize) {
    let mut acc = [[0f32; 64]; ROWS];
    for (t, &off) in block.offsets.iter().enumerate() {
        let xs = &block.input[off + p0..off + p0 + n];
        let ws = &block.weights[t * ROWS..(t + 1) * ROWS];
        for (row, w) in acc.iter_mut().zip(ws) {
            for (a, x) in row.iter_mut().zip(xs) {
                *a = x.mul_add(*w, *a);
            }
        }
    }
    for (r, row) in acc.iter().enumerate().take(block.rows) {
        for (i, a) in row.iter().enumerate().take(n) {
            let at = r * stride + p0 + i;
            let mut v = a + block.bias[r];
            if block.relu {
                v = v.max(0.0);
            }
            if let Some(addend) = block.addend {
                v += addend[at];
            }
            out.add(at).write(v);
        }
    }
}
