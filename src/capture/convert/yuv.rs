//! YUV to RGB: BT.601 limited range in 16.16 fixed point, for the packed 4:2:2 and the
//! semi-planar and planar 4:2:0 layouts.

use super::layout::Layout;

// BT.601 limited range ("studio swing") to full-range RGB, 16.16 fixed point:
// R = 1.164(Y-16) + 1.596(V-128), G = 1.164(Y-16) - 0.392(U-128) - 0.813(V-128),
// B = 1.164(Y-16) + 2.017(U-128), each coefficient rounded to the nearest 1/65536.
const Y_GAIN: i32 = 76309;
const R_V: i32 = 104597;
const G_U: i32 = 25675;
const G_V: i32 = 53279;
const B_U: i32 = 132201;
const HALF: i32 = 1 << 15;

/// The chroma terms shared by the pixels of one 2x1 or 2x2 block.
#[derive(Clone, Copy)]
struct ChromaTerms {
    r: i32,
    g: i32,
    b: i32,
}

#[inline(always)]
fn chroma_terms(u: u8, v: u8) -> ChromaTerms {
    let d = u as i32 - 128;
    let e = v as i32 - 128;
    ChromaTerms {
        r: R_V * e + HALF,
        g: HALF - G_U * d - G_V * e,
        b: B_U * d + HALF,
    }
}

#[inline(always)]
fn yuv_pixel(y: u8, c: ChromaTerms, out: &mut [u8]) {
    let l = (y as i32 - 16) * Y_GAIN;
    out[0] = ((l + c.r) >> 16).clamp(0, 255) as u8;
    out[1] = ((l + c.g) >> 16).clamp(0, 255) as u8;
    out[2] = ((l + c.b) >> 16).clamp(0, 255) as u8;
}

/// YUYV/UYVY: `order` gives the byte positions of Y0, U, Y1, V within each 4-byte pair.
pub(super) fn packed_422(data: &[u8], out: &mut [u8], layout: &Layout, order: [usize; 4]) {
    let [y0, u, y1, v] = order;
    let w = layout.width;
    for (row, dst) in out.chunks_exact_mut(w * 3).enumerate() {
        let src = &data[row * layout.stride..][..w.div_ceil(2) * 4];
        let mut pairs = dst.chunks_exact_mut(6);
        for (px, s) in (&mut pairs).zip(src.chunks_exact(4)) {
            let c = chroma_terms(s[u], s[v]);
            yuv_pixel(s[y0], c, &mut px[..3]);
            yuv_pixel(s[y1], c, &mut px[3..]);
        }
        let rest = pairs.into_remainder();
        if !rest.is_empty() {
            // Odd width: the last pair's first pixel only.
            let s = &src[src.len() - 4..];
            yuv_pixel(s[y0], chroma_terms(s[u], s[v]), rest);
        }
    }
}

/// NV12 (U first) and NV21 (V first).
pub(super) fn semi_planar_420(data: &[u8], out: &mut [u8], layout: &Layout, v_first: bool) {
    let Some(chroma) = &layout.chroma else { return };
    let w = layout.width;
    let (ui, vi) = if v_first { (1, 0) } else { (0, 1) };
    for (row, dst) in out.chunks_exact_mut(w * 3).enumerate() {
        let luma = &data[row * layout.stride..][..w];
        let uv = &data[chroma.offset + (row / 2) * chroma.stride..][..2 * w.div_ceil(2)];
        for (x, px) in dst.chunks_exact_mut(3).enumerate() {
            let pair = &uv[(x / 2) * 2..];
            yuv_pixel(luma[x], chroma_terms(pair[ui], pair[vi]), px);
        }
    }
}

/// YU12 / I420: separate U and V planes at half resolution.
pub(super) fn planar_420(data: &[u8], out: &mut [u8], layout: &Layout) {
    let Some(chroma) = &layout.chroma else { return };
    let w = layout.width;
    let half_w = w.div_ceil(2);
    for (row, dst) in out.chunks_exact_mut(w * 3).enumerate() {
        let luma = &data[row * layout.stride..][..w];
        let u = &data[chroma.offset + (row / 2) * chroma.stride..][..half_w];
        let v = &data[chroma.second_offset + (row / 2) * chroma.stride..][..half_w];
        for (x, px) in dst.chunks_exact_mut(3).enumerate() {
            yuv_pixel(luma[x], chroma_terms(u[x / 2], v[x / 2]), px);
        }
    }
}
