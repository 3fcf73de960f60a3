//! The element passes compiled for AVX2 / AVX-512: the portable code (`generic::elementwise`)
//! inlined into functions with the wider features enabled, which the compiler vectorizes.

use crate::generic::elementwise::{self as generic, BatchNorm};

/// # Safety
/// The CPU has AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn quantize_u8_avx2(xs: &[f32], ys: &mut [u8], scale: f32, zero_point: u8) {
    generic::quantize_u8(xs, ys, scale, zero_point);
}

/// # Safety
/// The CPU has AVX-512F and BW.
#[target_feature(enable = "avx512f,avx512bw")]
pub unsafe fn batch_norm_quantize_u8_avx512(
    xs: &[f32],
    ys: &mut [u8],
    batch_norm: BatchNorm,
    scale: f32,
    zero_point: u8,
) {
    generic::batch_norm_quantize_u8(xs, ys, batch_norm, scale, zero_point);
}

/// # Safety
/// The CPU has AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn dequantize_u8_avx2(xs: &[u8], ys: &mut [f32], scale: f32, zero_point: i32) {
    generic::dequantize_u8(xs, ys, scale, zero_point);
}

/// # Safety
/// The CPU has AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn requant_run_avx2(
    acc: &[i32],
    out: &mut [u8],
    scale: f32,
    zero_point: i32,
    lo: i32,
    hi: i32,
) {
    generic::requant_run(acc, out, scale, zero_point, lo, hi);
}
