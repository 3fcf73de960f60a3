//! The int8 direct-convolution kernel in plain loops: the reference the native kernels are
//! checked against, and what runs where none does.

use crate::ops::conv_i8_kernel::{centred, requantize, Block, Store, ROWS, WIDTH};

/// # Safety
/// `Kernel::run`'s bounds and contract hold.
pub unsafe fn block(block: &Block, p0: usize, n: usize, out: Store, stride: usize) {
    let mut acc = [[0i32; WIDTH]; ROWS];
    for (t, &off) in block.offsets.iter().enumerate() {
        let xs = &block.input[(off + p0) * 4..(off + p0 + n) * 4];
        let ws = &block.weights[t * ROWS..(t + 1) * ROWS];
        for (row, w) in acc.iter_mut().zip(ws) {
            let w = w.to_le_bytes().map(|b| b as i8 as i32);
            for (a, x) in row.iter_mut().zip(xs.chunks_exact(4)) {
                let dot: i32 = x.iter().zip(&w).map(|(x, w)| *x as i32 * w).sum();
                *a = a.wrapping_add(dot);
            }
        }
    }
    for (r, row) in acc.iter().enumerate().take(block.rows) {
        for (i, a) in row.iter().enumerate().take(n) {
            let v = a.wrapping_add(block.bias[r]);
            let at = r * stride + p0 + i;
            match out {
                Store::Bytes(out) => {
                    out.ptr
                        .add(at)
                        .write(requantize(v, block.scale[r], block.zero_point))
                }
                Store::Floats { out, scale, addend } => {
                    let mut f = centred(v, block.scale[r], block.zero_point) * scale;
                    if let Some(addend) = addend {
                        f += addend[at];
                    }
                    out.ptr.add(at).write(f)
                }
            }
        }
    }
}
