//! Formats with whole bytes per pixel: RGB, BGR, grey and RGB565, one row at a time.

use super::layout::Layout;

/// Formats with whole bytes per pixel: `N` source bytes map to one RGB pixel.
pub(super) fn rows_map<const N: usize>(
    data: &[u8],
    out: &mut [u8],
    layout: &Layout,
    pixel: impl Fn(&[u8]) -> [u8; 3],
) {
    let w = layout.width;
    for (row, dst) in out.chunks_exact_mut(w * 3).enumerate() {
        let src = &data[row * layout.stride..][..w * N];
        for (px, s) in dst.chunks_exact_mut(3).zip(src.chunks_exact(N)) {
            px.copy_from_slice(&pixel(s));
        }
    }
}

/// One little-endian RGB565 pixel.
pub(super) fn rgb565(p: &[u8]) -> [u8; 3] {
    let v = u16::from_le_bytes([p[0], p[1]]);
    let r = ((v >> 11) & 0x1f) as u8;
    let g = ((v >> 5) & 0x3f) as u8;
    let b = (v & 0x1f) as u8;
    // Replicating the top bits fills the low ones, so 0x1f maps to 255 exactly.
    [
        (r << 3) | (r >> 2),
        (g << 2) | (g >> 4),
        (b << 3) | (b >> 2),
    ]
}
