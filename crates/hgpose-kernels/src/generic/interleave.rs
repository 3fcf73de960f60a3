//! Byte interleaving for the int8 layouts in plain loops.

/// `out[4m + j] = row_j[m]` for `m` in `from..` the rows' length.
pub fn interleave4_from(rows: [&[u8]; 4], from: usize, out: &mut [u8]) {
    let [a, b, c, d] = rows;
    for m in from..a.len() {
        out[4 * m] = a[m];
        out[4 * m + 1] = b[m];
        out[4 * m + 2] = c[m];
        out[4 * m + 3] = d[m];
    }
}

/// `dst[m] = from[m * step]`.
pub fn deinterleave(from: &[u8], step: usize, dst: &mut [u8]) {
    for (v, src) in dst.iter_mut().zip(from.iter().step_by(step)) {
        *v = *src;
    }
}
