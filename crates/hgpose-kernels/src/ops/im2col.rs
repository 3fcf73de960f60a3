//! A faster stand-in for tract's eager im2col of quantized convolutions, for the integer kernels
//! that take their activations "K=4-inner" (`PackedI8K4`: x86 VNNI, hgpose's AVX2 kernel,
//! aarch64 SDOT).
//!
//! tract 0.23 feeds that layout one k-row at a time (all pixels of one input tap), so every
//! byte lands 4 bytes from the last and each row crosses every panel of the buffer; on the
//! paper's 2x256 model that was 35% of the int8 inference (`bench --profile`), more than the
//! integer matrix products themselves. This op fills one panel (r output pixels, all of k) at a
//! time, which stays in L1: four k-rows of r pixels are gathered (a plain copy away from the
//! borders) and interleaved with SIMD byte shuffles. Panels are split over tract's threads.
//! Only undilated, single-group convolutions of one CHW image are taken over, and
//! only where this op's output fact equals tract's; it is swapped in after tract optimizes.

#[cfg(target_arch = "aarch64")]
use crate::aarch64::interleave as simd;
use crate::ops::plan_op::PlanOp;
use crate::plan_op;
use crate::threads::light_work;
#[cfg(target_arch = "x86_64")]
use crate::x86_64::interleave as simd;
use tract_linalg::mmm::{PackedExoticFact, PackedMatrixStorage};
use tract_linalg::pack::PackedI8K4;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::conv::Im2Col;
use tract_onnx::tract_core::ops::nn::DataFormat;

/// The geometry of one convolution's im2col: a CHW image, a `kh x kw` kernel at stride
/// `sy x sx` with `pad_top`/`pad_left` leading padding, output `oh x ow`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Geometry {
    pub channels: usize,
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub sy: usize,
    pub sx: usize,
    pub pad_top: usize,
    pub pad_left: usize,
    pub oh: usize,
    pub ow: usize,
}

impl Geometry {
    /// Rows of the im2col matrix: one per (channel, kernel tap), channel-major as tract's.
    pub fn k(&self) -> usize {
        self.channels * self.kh * self.kw
    }

    /// Columns: one per output pixel.
    pub fn n(&self) -> usize {
        self.oh * self.ow
    }
}

/// im2col of a quantized NCHW image straight into tract's `PackedI8K4` layout:
/// panel `p` holds pixels `p*r .. p*r+r`; inside it, byte `(k/4)*4r + m*4 + k%4` is row `k` of
/// pixel `p*r+m`. Padding taps take the zero point; k beyond `k()` and pixels beyond `n()` are 0.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FastIm2ColK4 {
    pub geometry: Geometry,
    pub format: PackedI8K4,
}

impl FastIm2ColK4 {
    fn panel_len(&self) -> usize {
        self.format.single_panel_len(self.geometry.k())
    }

    /// Fills `out` (whole panels, the first being `first_panel`) from the padded image.
    pub fn fill_panels(&self, padded: &PaddedImage, first_panel: usize, out: &mut [u8]) {
        let g = &self.geometry;
        let r = self.format.r;
        let n = g.n();
        let taps_per_channel = g.kh * g.kw;
        let zeros = vec![0u8; r];
        let mut scratch = vec![0u8; 4 * r];
        // Per kernel tap, where it reads in a padded channel plane: one start for a panel on
        // one output row, one offset per pixel for a panel across rows.
        let mut starts = vec![0usize; taps_per_channel];
        let mut offsets = vec![0usize; taps_per_channel * r];
        for (i, panel) in out.chunks_exact_mut(self.panel_len()).enumerate() {
            let n0 = (first_panel + i) * r;
            let width = n.saturating_sub(n0).min(r);
            let (oy0, ox0) = (n0 / g.ow, n0 % g.ow);
            let one_row = width == r && ox0 + r <= g.ow;
            for (t, start) in starts.iter_mut().enumerate() {
                let (ky, kx) = (t / g.kw, t % g.kw);
                *start = (oy0 * g.sy + ky) * padded.w + ox0 * g.sx + kx;
                if !one_row {
                    let (mut oy, mut ox) = (oy0, ox0);
                    for offset in &mut offsets[t * r..t * r + width] {
                        *offset = (oy * g.sy + ky) * padded.w + ox * g.sx + kx;
                        ox += 1;
                        if ox == g.ow {
                            ox = 0;
                            oy += 1;
                        }
                    }
                }
            }
            // (channel, tap) of k-row k, counted up rather than divided out per row.
            let (mut c, mut t) = (0, 0);
            let plane_len = padded.h * padded.w;
            for (kb, block) in panel.chunks_exact_mut(4 * r).enumerate() {
                let in_block = (g.k() - (kb * 4).min(g.k())).min(4);
                // The common case, four plain slices of the padded image: no slices built.
                if one_row && g.sx == 1 && in_block == 4 {
                    let mut at = [0usize; 4];
                    for a in &mut at {
                        *a = c * plane_len + starts[t];
                        t += 1;
                        if t == taps_per_channel {
                            t = 0;
                            c += 1;
                        }
                    }
                    interleave4_at(&padded.data, at, block);
                    continue;
                }
                let mut rows: [&[u8]; 4] = [&zeros[..]; 4];
                let pairs = rows.iter_mut().zip(scratch.chunks_exact_mut(r));
                for (row, dst) in pairs.take(in_block) {
                    let plane = &padded.data[c * plane_len..(c + 1) * plane_len];
                    let start = starts[t];
                    if one_row && g.sx == 1 {
                        *row = &plane[start..start + r];
                    } else {
                        if one_row {
                            // The rest of the buffer from the run's start: SIMD may read a
                            // little past the run (the buffer keeps slack for that).
                            deinterleave(&padded.data[c * plane_len + start..], g.sx, dst);
                        } else {
                            for (v, o) in dst.iter_mut().zip(&offsets[t * r..t * r + width]) {
                                *v = plane[*o];
                            }
                            dst[width..].fill(0);
                        }
                        *row = dst;
                    }
                    t += 1;
                    if t == taps_per_channel {
                        t = 0;
                        c += 1;
                    }
                }
                interleave4(rows[0], rows[1], rows[2], rows[3], block);
            }
        }
    }
}

/// The image with its padding written out (the zero point), so that every kernel tap of every
/// pixel reads inside it: a panel of pixels on one output row reads each k-row as one slice.
/// Copying the image costs a fraction of writing the im2col matrix (1/9 of it for 3x3).
pub struct PaddedImage {
    data: Vec<u8>,
    h: usize,
    w: usize,
}

impl PaddedImage {
    pub fn new(g: &Geometry, x: &[u8], pad: u8) -> Self {
        // Every row and column a tap reaches: the last output's window ends there.
        let h = (g.oh.max(1) - 1) * g.sy + g.kh;
        let w = (g.ow.max(1) - 1) * g.sx + g.kw;
        // 32 bytes of slack: a strided run near the end may be loaded 32 bytes at a time.
        let mut data = vec![pad; g.channels * h * w + 32];
        for c in 0..g.channels {
            let plane = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
            for y in 0..h {
                let Some(iy) = y.checked_sub(g.pad_top).filter(|iy| *iy < g.h) else {
                    continue;
                };
                // Columns x of the padded row that hold input column x - pad_left.
                let first = g.pad_left.min(w);
                let last = (g.pad_left + g.w).min(w);
                if first < last {
                    let dst = &mut data[(c * h + y) * w..(c * h + y + 1) * w];
                    dst[first..last].copy_from_slice(&plane[iy * g.w..iy * g.w + last - first]);
                }
            }
        }
        PaddedImage { data, h, w }
    }
}

/// `dst[m] = from[m * step]`: the pixels of a strided convolution's row (the 7x7 stride-2 stem).
pub(crate) fn deinterleave(from: &[u8], step: usize, dst: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if step == 2 && dst.len() == 16 && from.len() >= 32 {
        crate::x86_64::interleave::even_bytes_16(&from[..32], dst);
        return;
    }
    crate::generic::interleave::deinterleave(from, step, dst);
}

/// [`interleave4`] of the four rows of `out.len() / 4` bytes that start at `at` in `data`.
#[inline]
pub fn interleave4_at(data: &[u8], at: [usize; 4], out: &mut [u8]) {
    let len = out.len() / 4;
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    if (len == 8 || len == 16) && at.iter().all(|a| a + len <= data.len()) {
        // SAFETY: each row's len bytes lie inside `data` (checked just above); out is 4 * len.
        unsafe { simd::interleave_rows(at.map(|a| data.as_ptr().wrapping_add(a)), len, out) };
        return;
    }
    let row = |i: usize| &data[at[i]..at[i] + len];
    interleave4(row(0), row(1), row(2), row(3), out);
}

/// `out[4m + j] = row_j[m]` for the four rows `a, b, c, d` (all of one length; `out` is 4x).
pub fn interleave4(a: &[u8], b: &[u8], c: &[u8], d: &[u8], out: &mut [u8]) {
    let len = a.len();
    assert!(b.len() == len && c.len() == len && d.len() == len && out.len() == 4 * len);
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    let done = {
        let blocks = len / 16;
        for (i, block) in out.chunks_exact_mut(64).take(blocks).enumerate() {
            let rows = [a, b, c, d].map(|r| r[16 * i..].as_ptr());
            // SAFETY: each row has 16 bytes from 16 * i (i < len / 16); block is 64 bytes.
            unsafe { simd::interleave_rows(rows, 16, block) };
        }
        blocks * 16
    };
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let done = 0;
    crate::generic::interleave::interleave4_from([a, b, c, d], done, out);
}

impl PlanOp for FastIm2ColK4 {
    const NAME: &'static str = "FastIm2ColK4";

    fn run(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = super::first_input(&inputs, "FastIm2ColK4")?;
        let dt = input.datum_type();
        anyhow::ensure!(
            dt.size_of() == 1,
            "FastIm2ColK4 takes 8-bit tensors, not {dt:?}"
        );
        let g = &self.geometry;
        let chw = &input.shape()[input.rank().saturating_sub(3)..];
        anyhow::ensure!(
            chw == [g.channels, g.h, g.w] && input.len() == g.channels * g.h * g.w,
            "FastIm2ColK4 expected one [{}, {}, {}] image, got {:?}",
            g.channels,
            g.h,
            g.w,
            input.shape()
        );
        // tract's im2col pads with the zero point when it is given one, else with 0.
        let pad = match inputs.get(1) {
            Some(t) => *t.as_bytes().first().unwrap_or(&0),
            None => 0,
        };
        let (k, n, r) = (g.k(), g.n(), self.format.r);
        let panel_len = self.panel_len();
        let panels = n.div_ceil(r);
        let mut data = unsafe {
            Tensor::uninitialized_aligned_dt(dt, &[panels * panel_len], self.format.alignment())?
        };
        if panels > 0 {
            let padded = PaddedImage::new(g, input.as_bytes(), pad);
            let out = data.as_bytes_mut();
            let len = out.len();
            tract_linalg::multithread::par_chunks_mut(
                out,
                panel_len,
                light_work(len),
                |first, chunk| {
                    // `first` counts panels (rows of `panel_len` bytes).
                    self.fill_panels(&padded, first, chunk);
                    Ok(())
                },
            )?;
        }
        let values = tvec!(super::pack::packed_k4(&self.format, k, n, panel_len, data)?);
        let output = PackedMatrixStorage::new_batched(&[1, 1], values).into_tensor(dt);
        Ok(tvec!(output.into_tvalue()))
    }

    fn facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let input = super::first_input(inputs, "FastIm2ColK4")?;
        let fact = PackedExoticFact {
            format: Box::new(self.format.clone()),
            k: self.geometry.k(),
            mn: self.geometry.n().to_dim(),
        };
        Ok(tvec!(input
            .datum_type
            .fact([1usize, 1])
            .with_exotic_fact(fact)))
    }
}

plan_op!(FastIm2ColK4);

/// The geometry of tract's `Im2Col` when [`FastIm2ColK4`] can compute it: one CHW image (or
/// NCHW with a batch of one), one group, an undilated 2D kernel, and a `PackedI8K4` output.
fn geometry_of(im2col: &Im2Col, input: &TypedFact, output: &TypedFact) -> Option<Geometry> {
    let spec = &im2col.pool_spec;
    if im2col.group != 1 || spec.kernel_shape.len() != 2 {
        return None;
    }
    if spec.dilations.as_deref().is_some_and(|d| d != [1, 1]) {
        return None;
    }
    let strides = spec.strides.as_deref().unwrap_or(&[1, 1]).to_vec();
    let dims = input.shape.as_concrete()?;
    let (channels, h, w) = match (spec.data_format, dims) {
        (DataFormat::NCHW, &[1, c, h, w]) | (DataFormat::CHW, &[c, h, w]) => (c, h, w),
        _ => return None,
    };
    let computed = spec
        .padding
        .compute(&[h, w], &spec.kernel_shape, &[1, 1], &strides);
    let packed = output
        .exotic_fact
        .as_ref()?
        .downcast_ref::<PackedExoticFact>()?;
    packed.format.downcast_ref::<PackedI8K4>()?;
    Some(Geometry {
        channels,
        h,
        w,
        kh: spec.kernel_shape[0],
        kw: spec.kernel_shape[1],
        sy: strides[0],
        sx: strides[1],
        pad_top: computed[0].pad_before,
        pad_left: computed[1].pad_before,
        oh: computed[0].convoluted,
        ow: computed[1].convoluted,
    })
}

/// Replaces tract's `Im2Col` nodes of an optimized model with [`FastIm2ColK4`] where it computes
/// the same packed matrix; returns how many. The output facts must match exactly.
pub fn swap_in(model: &mut TypedModel) -> TractResult<usize> {
    let mut swapped = 0;
    for id in 0..model.nodes().len() {
        let node = model.node(id);
        let Some(im2col) = node.op_as::<Im2Col>() else {
            continue;
        };
        let input = model.outlet_fact(node.inputs[0])?;
        let theirs = &node.outputs[0].fact;
        let Some(geometry) = geometry_of(im2col, input, theirs) else {
            continue;
        };
        let Some(format) = theirs
            .exotic_fact
            .as_ref()
            .and_then(|f| f.downcast_ref::<PackedExoticFact>())
            .and_then(|f| f.format.downcast_ref::<PackedI8K4>())
            .cloned()
        else {
            continue;
        };
        let ours = FastIm2ColK4 { geometry, format };
        if ours.output_facts(&[input])?[0] != *theirs {
            continue;
        }
        model.node_mut(id).op = Box::new(ours);
        swapped += 1;
    }
    Ok(swapped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_linalg::mmm::EagerPackedInput;
    use tract_onnx::tract_core::ops::cnn::{PaddingSpec, PoolSpec};

    fn geometry(c: usize, (h, w): (usize, usize), k: usize, s: usize, pad: usize) -> Geometry {
        Geometry {
            channels: c,
            h,
            w,
            kh: k,
            kw: k,
            sy: s,
            sx: s,
            pad_top: pad,
            pad_left: pad,
            oh: (h + 2 * pad - k) / s + 1,
            ow: (w + 2 * pad - k) / s + 1,
        }
    }

    /// The layout written out by definition, one byte at a time.
    fn reference(g: &Geometry, r: usize, x: &[u8], pad: u8) -> Vec<u8> {
        let (k, n) = (g.k(), g.n());
        let k_aligned = k.div_ceil(4) * 4;
        let panel_len = k_aligned * r;
        let mut out = vec![0u8; n.div_ceil(r) * panel_len];
        for kk in 0..k {
            let (c, ky, kx) = (kk / (g.kh * g.kw), kk / g.kw % g.kh, kk % g.kw);
            for p in 0..n {
                let (oy, ox) = (p / g.ow, p % g.ow);
                let iy = (oy * g.sy + ky) as isize - g.pad_top as isize;
                let ix = (ox * g.sx + kx) as isize - g.pad_left as isize;
                let inside = iy >= 0 && iy < g.h as isize && ix >= 0 && ix < g.w as isize;
                let v = if inside {
                    x[c * g.h * g.w + iy as usize * g.w + ix as usize]
                } else {
                    pad
                };
                out[(p / r) * panel_len + (kk / 4) * 4 * r + (p % r) * 4 + kk % 4] = v;
            }
        }
        out
    }

    fn image(g: &Geometry) -> Vec<u8> {
        (0..g.channels * g.h * g.w)
            .map(|i| (i * 37 % 251) as u8)
            .collect()
    }

    fn packed_bytes(output: &TValue) -> Vec<u8> {
        let storage = output.try_storage_as::<PackedMatrixStorage>().unwrap();
        let packed = storage
            .value_at_flat(0)
            .downcast_ref::<EagerPackedInput>()
            .unwrap();
        packed.packed.as_bytes().to_vec()
    }

    fn run(op: &FastIm2ColK4, x: &[u8], pad: Option<u8>) -> Vec<u8> {
        let g = &op.geometry;
        let input = Tensor::from_shape(&[1, g.channels, g.h, g.w], x).unwrap();
        let mut inputs = tvec!(input.into_tvalue());
        if let Some(pad) = pad {
            inputs.push(tensor0(pad).into_tvalue());
        }
        let out = op.eval(&EvalContext::out_of_plan(), inputs).unwrap();
        packed_bytes(&out[0])
    }

    /// The hourglass's shapes (3x3 at every resolution down to 2x2, the 7x7 stride-2 stem) and
    /// odd ones: images narrower than a panel, sizes that leave a partial last panel, k not a
    /// multiple of 4.
    fn shapes() -> Vec<Geometry> {
        vec![
            geometry(5, (64, 64), 3, 1, 1),
            geometry(3, (16, 16), 3, 1, 1),
            geometry(4, (8, 8), 3, 1, 1),
            geometry(7, (4, 4), 3, 1, 1),
            geometry(2, (2, 2), 3, 1, 1),
            geometry(3, (40, 36), 7, 2, 3),
            geometry(3, (13, 21), 3, 1, 1),
            geometry(2, (9, 5), 3, 2, 0),
            geometry(1, (6, 33), 1, 1, 0),
        ]
    }

    #[test]
    fn packs_as_the_layout_defines_for_both_panel_widths() {
        for r in [8, 16] {
            for g in shapes() {
                let x = image(&g);
                let op = FastIm2ColK4 {
                    geometry: g.clone(),
                    format: PackedI8K4::new(r),
                };
                assert_eq!(
                    run(&op, &x, Some(200)),
                    reference(&g, r, &x, 200),
                    "r={r} {g:?}"
                );
                assert_eq!(
                    run(&op, &x, None),
                    reference(&g, r, &x, 0),
                    "r={r} {g:?} no pad"
                );
            }
        }
    }

    #[test]
    fn panels_split_over_threads_pack_the_same() {
        let g = geometry(6, (32, 32), 3, 1, 1);
        let x = image(&g);
        let op = FastIm2ColK4 {
            geometry: g.clone(),
            format: PackedI8K4::new(16),
        };
        let threaded = crate::threads::on_two_threads(|| run(&op, &x, Some(9)));
        assert_eq!(threaded, reference(&g, 16, &x, 9));
    }

    #[test]
    fn interleaves_any_length() {
        for len in [0, 3, 8, 16, 21, 48] {
            let rows: Vec<Vec<u8>> = (0..4)
                .map(|j| (0..len).map(|m| (m * 4 + j) as u8).collect())
                .collect();
            let mut out = vec![0u8; 4 * len];
            interleave4(&rows[0], &rows[1], &rows[2], &rows[3], &mut out);
            let want: Vec<u8> = (0..4 * len).map(|i| i as u8).collect();
            assert_eq!(out, want, "len {len}");
        }
    }

    /// Against tract's own `Im2Col`, built for an integer kernel of this CPU that takes the
    /// K=4-inner layout, when it has one (x86 with VNNI, aarch64 with SDOT).
    #[test]
    fn packs_exactly_what_tracts_im2col_packs() {
        let kernel = tract_linalg::MmmDispatch::native()
            .runnable()
            .iter()
            .find_map(|mmm| {
                let packing = mmm
                    .packings()
                    .iter()
                    .position(|(_, b)| b.downcast_ref::<PackedI8K4>().is_some())?;
                Some((mmm.clone(), packing))
            });
        let Some((mmm, packing)) = kernel else {
            eprintln!(
                "NOTE: this CPU has no integer kernel with the K=4-inner packing (VNNI, SDOT); \
                 FastIm2ColK4 is never used here and is checked against the layout only"
            );
            return;
        };
        for g in shapes() {
            let spec = PoolSpec {
                data_format: DataFormat::NCHW,
                kernel_shape: tvec!(g.kh, g.kw),
                padding: PaddingSpec::Explicit(
                    tvec!(g.pad_top, g.pad_left),
                    tvec!(
                        (g.oh - 1) * g.sy + g.kh - g.h - g.pad_top,
                        (g.ow - 1) * g.sx + g.kw - g.w - g.pad_left
                    ),
                ),
                dilations: None,
                strides: Some(tvec!(g.sy, g.sx)),
                input_channels: g.channels,
                output_channels: 8,
            };
            let shape = ShapeFact::from_dims([1, g.channels, g.h, g.w]);
            let theirs_op = Im2Col::new(spec, 1, g.k(), &shape, mmm.clone(), packing).unwrap();
            let x = image(&g);
            let input = Tensor::from_shape(&[1, g.channels, g.h, g.w], &x)
                .unwrap()
                .cast_to_dt(DatumType::I8)
                .unwrap()
                .into_owned();
            let pad = tensor0(-3i8);
            let theirs = theirs_op
                .eval(
                    &EvalContext::out_of_plan(),
                    tvec!(input.clone().into_tvalue(), pad.clone().into_tvalue()),
                )
                .unwrap();
            let fact = TypedFact::shape_and_dt_of(&input);
            let facts = [&fact];
            let input_fact = facts[0];
            let output_fact = theirs_op.output_facts(&facts).unwrap().remove(0);
            let geometry = geometry_of(&theirs_op, input_fact, &output_fact).unwrap();
            assert_eq!(geometry, g);
            let format = mmm.packings()[packing]
                .1
                .downcast_ref::<PackedI8K4>()
                .unwrap();
            let ours_op = FastIm2ColK4 {
                geometry,
                format: format.clone(),
            };
            assert_eq!(ours_op.output_facts(&facts).unwrap()[0], output_fact);
            let ours = ours_op
                .eval(
                    &EvalContext::out_of_plan(),
                    tvec!(input.into_tvalue(), pad.into_tvalue()),
                )
                .unwrap();
            assert_eq!(packed_bytes(&ours[0]), packed_bytes(&theirs[0]), "{g:?}");
        }
    }
}
