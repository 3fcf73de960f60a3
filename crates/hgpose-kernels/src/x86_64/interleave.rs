//! Byte interleaving for the int8 layouts (tract's K=4-inner panels), with SSE2.

use std::arch::x86_64::*;

/// 8 or 16 columns of the four rows starting at `rows`, interleaved into `out`.
///
/// # Safety
/// Each of `rows` must have `len` readable bytes; `out` must hold `4 * len` (asserted).
#[inline(always)]
pub unsafe fn interleave_rows(rows: [*const u8; 4], len: usize, out: &mut [u8]) {
    assert!((len == 8 || len == 16) && out.len() >= 4 * len);
    // SAFETY: SSE2 is part of x86_64; len-byte loads from the rows (the caller's contract)
    // and 4 * len bytes stored into `out` (asserted).
    unsafe {
        let dst = out.as_mut_ptr() as *mut __m128i;
        if len == 8 {
            let ld = |i: usize| _mm_loadl_epi64(rows[i] as *const __m128i);
            let ab = _mm_unpacklo_epi8(ld(0), ld(1));
            let cd = _mm_unpacklo_epi8(ld(2), ld(3));
            _mm_storeu_si128(dst, _mm_unpacklo_epi16(ab, cd));
            _mm_storeu_si128(dst.add(1), _mm_unpackhi_epi16(ab, cd));
            return;
        }
        let ld = |i: usize| _mm_loadu_si128(rows[i] as *const __m128i);
        let (va, vb, vc, vd) = (ld(0), ld(1), ld(2), ld(3));
        let ab_lo = _mm_unpacklo_epi8(va, vb);
        let ab_hi = _mm_unpackhi_epi8(va, vb);
        let cd_lo = _mm_unpacklo_epi8(vc, vd);
        let cd_hi = _mm_unpackhi_epi8(vc, vd);
        _mm_storeu_si128(dst, _mm_unpacklo_epi16(ab_lo, cd_lo));
        _mm_storeu_si128(dst.add(1), _mm_unpackhi_epi16(ab_lo, cd_lo));
        _mm_storeu_si128(dst.add(2), _mm_unpacklo_epi16(ab_hi, cd_hi));
        _mm_storeu_si128(dst.add(3), _mm_unpackhi_epi16(ab_hi, cd_hi));
    }
}

/// `dst[m] = run[2 * m]` for 16 bytes out of a 32-byte run: the even pixels of a stride-2 row.
pub fn even_bytes_16(run: &[u8], dst: &mut [u8]) {
    assert!(run.len() >= 32 && dst.len() >= 16);
    // SAFETY: SSE2 is part of x86_64; the two loads read run[0..16] and run[16..32], the store
    // writes dst[0..16] (asserted).
    unsafe {
        let lo = _mm_loadu_si128(run.as_ptr() as *const __m128i);
        let hi = _mm_loadu_si128(run.as_ptr().add(16) as *const __m128i);
        let even = _mm_set1_epi16(0x00ff);
        let packed = _mm_packus_epi16(_mm_and_si128(lo, even), _mm_and_si128(hi, even));
        _mm_storeu_si128(dst.as_mut_ptr() as *mut __m128i, packed);
    }
}
