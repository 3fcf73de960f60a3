//! Byte interleaving for the int8 layouts (tract's K=4-inner panels), with NEON's
//! interleaving stores.

use std::arch::aarch64::*;

/// 8 or 16 columns of the four rows starting at `rows`, with NEON's interleaving stores.
///
/// # Safety
/// Each of `rows` must have `len` readable bytes; `out` must hold `4 * len` (asserted).
#[inline(always)]
pub unsafe fn interleave_rows(rows: [*const u8; 4], len: usize, out: &mut [u8]) {
    assert!((len == 8 || len == 16) && out.len() >= 4 * len);
    // SAFETY: len-byte loads from the rows (the caller's contract), a 4 * len-byte store
    // into `out` (asserted).
    unsafe {
        if len == 8 {
            let v = uint8x8x4_t(
                vld1_u8(rows[0]),
                vld1_u8(rows[1]),
                vld1_u8(rows[2]),
                vld1_u8(rows[3]),
            );
            vst4_u8(out.as_mut_ptr(), v);
            return;
        }
        let v = uint8x16x4_t(
            vld1q_u8(rows[0]),
            vld1q_u8(rows[1]),
            vld1q_u8(rows[2]),
            vld1q_u8(rows[3]),
        );
        vst4q_u8(out.as_mut_ptr(), v);
    }
}
