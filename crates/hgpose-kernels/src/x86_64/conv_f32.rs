//! The f32 direct-convolution kernels with AVX-512 and AVX2 FMAs: 6 output channels over 64
//! (AVX-512) or 16 (AVX2) positions a call.

use crate::ops::conv_f32_kernel::{Block, ROWS};
use std::arch::x86_64::*;

/// # Safety
/// AVX-512F present; `Kernel::run`'s bounds hold.
#[target_feature(enable = "avx512f")]
pub unsafe fn block_avx512(block: &Block, p0: usize, n: usize, out: *mut f32, stride: usize) {
    let lanes = |j: usize| -> __mmask16 {
        let left = n.saturating_sub(16 * j).min(16) as u32;
        ((1u32 << left) - 1) as __mmask16
    };
    let m = [lanes(0), lanes(1), lanes(2), lanes(3)];
    let src = block.input.as_ptr().add(p0);
    let mut acc = [[_mm512_setzero_ps(); 4]; ROWS];
    let mut w = block.weights.as_ptr();
    for &off in block.offsets {
        let s = src.add(off);
        let v = [
            _mm512_maskz_loadu_ps(m[0], s),
            _mm512_maskz_loadu_ps(m[1], s.add(16)),
            _mm512_maskz_loadu_ps(m[2], s.add(32)),
            _mm512_maskz_loadu_ps(m[3], s.add(48)),
        ];
        for (r, row) in acc.iter_mut().enumerate() {
            let b = _mm512_set1_ps(*w.add(r));
            for (a, x) in row.iter_mut().zip(&v) {
                *a = _mm512_fmadd_ps(*x, b, *a);
            }
        }
        w = w.add(ROWS);
    }
    let zero = _mm512_setzero_ps();
    for (r, row) in acc.iter().enumerate() {
        if r >= block.rows {
            break;
        }
        let b = _mm512_set1_ps(block.bias[r]);
        let at = r * stride + p0;
        for (j, a) in row.iter().enumerate() {
            let mut v = _mm512_add_ps(*a, b);
            if block.relu {
                v = _mm512_max_ps(v, zero);
            }
            if let Some(addend) = block.addend {
                let y = _mm512_maskz_loadu_ps(m[j], addend.as_ptr().add(at + 16 * j));
                v = _mm512_add_ps(v, y);
            }
            _mm512_mask_storeu_ps(out.add(at + 16 * j), m[j], v);
        }
    }
}

/// # Safety
/// AVX2 and FMA present; `Kernel::run`'s bounds hold; `FULL` means `n == 16`.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn block_avx2<const FULL: bool>(
    block: &Block,
    p0: usize,
    n: usize,
    out: *mut f32,
    stride: usize,
) {
    let lanes = |j: usize| -> __m256i {
        let left = n.saturating_sub(8 * j).min(8) as i32;
        let idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        _mm256_cmpgt_epi32(_mm256_set1_epi32(left), idx)
    };
    let m = [lanes(0), lanes(1)];
    let load = |p: *const f32, j: usize| -> __m256 {
        if FULL {
            _mm256_loadu_ps(p)
        } else {
            _mm256_maskload_ps(p, m[j])
        }
    };
    let src = block.input.as_ptr().add(p0);
    let mut acc = [[_mm256_setzero_ps(); 2]; ROWS];
    let mut w = block.weights.as_ptr();
    for &off in block.offsets {
        let s = src.add(off);
        let v = [load(s, 0), load(s.add(8), 1)];
        for (r, row) in acc.iter_mut().enumerate() {
            let b = _mm256_broadcast_ss(&*w.add(r));
            for (a, x) in row.iter_mut().zip(&v) {
                *a = _mm256_fmadd_ps(*x, b, *a);
            }
        }
        w = w.add(ROWS);
    }
    let zero = _mm256_setzero_ps();
    for (r, row) in acc.iter().enumerate() {
        if r >= block.rows {
            break;
        }
        let b = _mm256_set1_ps(block.bias[r]);
        let at = r * stride + p0;
        for (j, a) in row.iter().enumerate() {
            let mut v = _mm256_add_ps(*a, b);
            if block.relu {
                v = _mm256_max_ps(v, zero);
            }
            if let Some(addend) = block.addend {
                v = _mm256_add_ps(v, load(addend.as_ptr().add(at + 8 * j), j));
            }
            let dst = out.add(at + 8 * j);
            if FULL {
                _mm256_storeu_ps(dst, v);
            } else {
                _mm256_maskstore_ps(dst, m[j], v);
            }
        }
    }
}
