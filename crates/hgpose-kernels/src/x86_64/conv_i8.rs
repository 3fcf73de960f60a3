//! The int8 direct-convolution kernels with AVX-512 VNNI and AVX2: dot products of unsigned
//! activations by signed weights in quads, requantized as they are stored.

use crate::ops::conv_i8_kernel::{Block, Store, ROWS};
use std::arch::x86_64::*;

/// # Safety
/// AVX-512F, BW and VNNI present; `Kernel::run`'s bounds hold.
pub unsafe fn block_vnni(block: &Block, p0: usize, n: usize, out: Store, stride: usize) {
    // One instance per store, so that neither carries the other's values through the
    // accumulation loop (a shared one ran the model's layers up to 2x slower).
    match out {
        Store::Bytes(out) => block_vnni_as::<false>(
            block,
            p0,
            n,
            out.ptr,
            std::ptr::null_mut(),
            0.0,
            None,
            stride,
        ),
        Store::Floats { out, scale, addend } => block_vnni_as::<true>(
            block,
            p0,
            n,
            std::ptr::null_mut(),
            out.ptr,
            scale,
            addend.map(|a| a.as_ptr()),
            stride,
        ),
    }
}

/// # Safety
/// as [`block_vnni`]; `bytes` (without `FLOATS`) or `floats` (with) is the output.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn block_vnni_as<const FLOATS: bool>(
    block: &Block,
    p0: usize,
    n: usize,
    bytes: *mut u8,
    floats: *mut f32,
    dequantize: f32,
    addend: Option<*const f32>,
    stride: usize,
) {
    let lanes = |j: usize| -> __mmask16 {
        let left = n.saturating_sub(16 * j).min(16) as u32;
        ((1u32 << left) - 1) as __mmask16
    };
    let m = [lanes(0), lanes(1), lanes(2), lanes(3)];
    let src = block.input.as_ptr().add(p0 * 4) as *const i32;
    let mut acc = [[_mm512_setzero_si512(); 4]; ROWS];
    let mut w = block.weights.as_ptr();
    for &off in block.offsets {
        let s = src.add(off);
        let v = [
            _mm512_maskz_loadu_epi32(m[0], s),
            _mm512_maskz_loadu_epi32(m[1], s.add(16)),
            _mm512_maskz_loadu_epi32(m[2], s.add(32)),
            _mm512_maskz_loadu_epi32(m[3], s.add(48)),
        ];
        for (r, row) in acc.iter_mut().enumerate() {
            let b = _mm512_set1_epi32(*w.add(r));
            for (a, x) in row.iter_mut().zip(&v) {
                *a = _mm512_dpbusd_epi32(*a, *x, b);
            }
        }
        w = w.add(ROWS);
    }
    let zp = block.zero_point as f32;
    for (r, row) in acc.iter().enumerate().take(block.rows) {
        let bias = _mm512_set1_epi32(block.bias[r]);
        let scale = _mm512_set1_ps(block.scale[r]);
        let at = r * stride + p0;
        for (j, a) in row.iter().enumerate() {
            let v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(*a, bias)), scale);
            let v = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v);
            let v = _mm512_min_ps(
                _mm512_max_ps(v, _mm512_set1_ps(-zp)),
                _mm512_set1_ps(255.0 - zp),
            );
            let i = at + 16 * j;
            if FLOATS {
                let mut f = _mm512_mul_ps(v, _mm512_set1_ps(dequantize));
                if let Some(addend) = addend {
                    f = _mm512_add_ps(f, _mm512_maskz_loadu_ps(m[j], addend.add(i)));
                }
                _mm512_mask_storeu_ps(floats.add(i), m[j], f);
            } else {
                let zero_point = _mm512_set1_epi32(block.zero_point as i32);
                let q = _mm512_add_epi32(_mm512_cvttps_epi32(v), zero_point);
                _mm_mask_storeu_epi8(bytes.add(i) as *mut i8, m[j], _mm512_cvtepi32_epi8(q));
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use crate::ops::conv_i8_kernel::*;

    /// The VNNI kernel gives the portable loops' bytes, for full and partial runs and
    /// blocks, with sums that reach past i16 and outputs that clamp at both ends.
    /// Run by `crate::native`'s harness where the CPU has AVX-512 VNNI.
    pub(crate) fn vnni_matches_the_portable_loops() {
        let native = Kernel::Vnni;
        let steps = 37;
        let positions = 200;
        let input: Vec<u8> = (0..(positions + steps) * 4)
            .map(|i| (i * 73 % 256) as u8)
            .collect();
        let offsets: Vec<usize> = (0..steps).map(|t| t * 7 % 31).collect();
        let weights: Vec<i32> = (0..steps * ROWS)
            .map(|i| {
                let b = |k: usize| ((i * 4 + k) * 89 % 255) as i32 as u8 as i8;
                i32::from_le_bytes([b(0), b(1), b(2), b(3)].map(|v| v as u8))
            })
            .collect();
        let mut seen = Vec::new();
        for (rows, n, p0) in [
            (6, 64, 0),
            (6, 64, 40),
            (3, 17, 5),
            (1, 1, 99),
            (6, 48, 100),
        ] {
            let block = Block {
                input: &input,
                offsets: &offsets,
                max_offset: 30,
                weights: &weights,
                bias: [1000, -2000, 0, 7, -70000, 123456],
                scale: [0.0007, 0.0011, 0.00002, 0.5, 0.0003, 0.0001],
                rows,
                zero_point: 37,
            };
            let stride = 300;
            let mut mine = vec![0u8; ROWS * stride];
            let mut reference = vec![0u8; ROWS * stride];
            unsafe {
                native.run(
                    &block,
                    p0,
                    n,
                    Store::Bytes(OutBytes::new(&mut mine)),
                    stride,
                );
                Kernel::Portable.run(
                    &block,
                    p0,
                    n,
                    Store::Bytes(OutBytes::new(&mut reference)),
                    stride,
                );
            }
            assert_eq!(mine, reference, "rows {rows}, n {n}, p0 {p0}");
            // Dequantized as stored, with an addend.
            let addend: Vec<f32> = (0..ROWS * stride).map(|i| i as f32 * 0.25 - 9.0).collect();
            let floats = |kernel: Kernel| {
                let mut out = vec![0f32; ROWS * stride];
                let store = Store::Floats {
                    out: Planes::new(&mut out),
                    scale: 0.0625,
                    addend: Some(&addend),
                };
                unsafe { kernel.run(&block, p0, n, store, stride) };
                out
            };
            let (mine, theirs) = (floats(native), floats(Kernel::Portable));
            assert_eq!(mine, theirs, "floats: rows {rows}, n {n}, p0 {p0}");
            let at = p0 + n - 1;
            let q = reference[at] as f32;
            assert_eq!(theirs[at], (q - 37.0) * 0.0625 + addend[at]);
            for r in 0..rows {
                seen.extend_from_slice(&reference[r * stride + p0..][..n]);
            }
        }
        // Outputs that vary, and clamp at both ends somewhere.
        assert!(seen.contains(&0) && seen.contains(&255), "{seen:?}");
        assert!(seen.iter().any(|v| *v != 0 && *v != 255));
    }
}
