//! The element passes' portable code: the reference the native instances are checked against,
//! and what the x86_64 instances compile with wider vector units (`x86_64::elementwise`).

/// One element of the floored op: a product rounded, then a sum rounded (no fused
/// multiply-add, as tract), then the max with `floor`.
#[inline(always)]
pub fn scale_shift_floor(x: f32, scale: f32, shift: f32, floor: f32) -> f32 {
    let v = x * scale + shift;
    if v > floor {
        v
    } else {
        floor
    }
}

/// Rounds to the nearest integer, ties to even, for |x| < 2^22 (what the clamp guarantees).
#[inline(always)]
fn round_small(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23: adding it leaves no fractional bits
    (x + MAGIC) - MAGIC
}

/// `quantize_u8` per element: `clamp(round_ties_even(x * scale) + zp, 0, 255)`.
#[inline(always)]
pub fn quantize_u8(xs: &[f32], ys: &mut [u8], scale: f32, zero_point: u8) {
    for (x, y) in xs.iter().zip(ys.iter_mut()) {
        *y = quantize_one(*x, scale, zero_point as f32);
    }
}

/// One element: `clamp(round_ties_even(x * scale) + zp, 0, 255)`, NaN to the zero point.
#[inline(always)]
fn quantize_one(x: f32, scale: f32, zp: f32) -> u8 {
    let p = x * scale;
    // NaN goes to the zero point, as in tract; beyond +-512 saturates anyway, and the bound
    // keeps `round_small` exact. Constant bounds and selects: the loop vectorizes.
    let p = if p.is_nan() {
        0.0
    } else {
        p.clamp(-512.0, 512.0)
    };
    let v = (round_small(p) + zp).clamp(0.0, 255.0);
    // SAFETY: v is an integer in 0..=255.
    unsafe { v.to_int_unchecked::<i32>() as u8 }
}

/// A residual module's batch norm and ReLU before a quantization, per element:
/// [`scale_shift_floor`] with these scale, shift and floor.
#[derive(Debug, Clone, Copy)]
pub struct BatchNorm {
    pub scale: f32,
    pub shift: f32,
    /// `None`: no ReLU (the sum as it is).
    pub floor: Option<f32>,
}

/// `batch_norm_quantize_u8` per element: the batch norm's and the quantization's own code.
#[inline(always)]
pub fn batch_norm_quantize_u8(
    xs: &[f32],
    ys: &mut [u8],
    batch_norm: BatchNorm,
    scale: f32,
    zero_point: u8,
) {
    let BatchNorm {
        scale: s,
        shift: t,
        floor,
    } = batch_norm;
    let zp = zero_point as f32;
    match floor {
        Some(floor) => {
            for (x, y) in xs.iter().zip(ys.iter_mut()) {
                *y = quantize_one(scale_shift_floor(*x, s, t, floor), scale, zp);
            }
        }
        None => {
            for (x, y) in xs.iter().zip(ys.iter_mut()) {
                *y = quantize_one(*x * s + t, scale, zp);
            }
        }
    }
}

/// `dequantize_u8` per element: `(x - zero_point) * scale`.
#[inline(always)]
pub fn dequantize_u8(xs: &[u8], ys: &mut [f32], scale: f32, zero_point: i32) {
    for (x, y) in xs.iter().zip(ys.iter_mut()) {
        *y = (i32::from(*x) - zero_point) as f32 * scale;
    }
}

/// One run of accumulators sharing a multiplier, as tract's `Scale`, `Add`, `Max` and `Min` do.
/// tract rounds the magnitude and puts the sign back; for a positive multiplier that is rounding
/// the product itself (IEEE products are sign-symmetric). Clamping before adding the zero point
/// is clamping after it, for accumulators whose product stays inside i32 (|acc| < 2^31).
#[inline(always)]
pub fn requant_run(acc: &[i32], out: &mut [u8], scale: f32, zero_point: i32, lo: i32, hi: i32) {
    let (lo_f, hi_f) = ((lo - zero_point) as f32, (hi - zero_point) as f32);
    for (a, o) in acc.iter().zip(out.iter_mut()) {
        let r = (*a as f32 * scale).round_ties_even().clamp(lo_f, hi_f);
        // SAFETY: r is an integer within [lo - zero point, hi - zero point], inside i32.
        let q = unsafe { r.to_int_unchecked::<i32>() } + zero_point;
        // The 8-bit two's complement pattern of the clamped value (u8 or i8 alike).
        *o = q as u8;
    }
}
