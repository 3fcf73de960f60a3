//! hgpose's own int8 convolutions for the int8 companion's layers (1x1, 3x3, the 7x7 stride-2
//! stem), on x86_64 CPUs with AVX-512 VNNI.
//!
//! tract 0.23 lowers each quantized convolution to some ten ops: the u8 input offset to i8,
//! im2col and packing, an integer product (`avx512vnni_mmm_i32_16x16`, which adds 128 to every
//! broadcast byte and ran the default model's shallow products at 12-39 GMAC/s), the zero-point
//! corrections and a per-channel requantization. On the default model those took 22 of 26 ms
//! per inference (`bench --profile`), where the f32 graph took 16. [`DirectConvI8`] is the
//! int8 sibling of [`super::direct_conv::DirectConv`]: it lays the u8 input out in quads of
//! channels (four channels' bytes side by side, with a border of the input's zero point for
//! 3x3 and 7x7 kernels), runs [`super::conv_i8_kernel`] over it, and requantizes as it stores.
//! A 1x1 layer whose output is dequantized next stores f32 at once, and adds the residual
//! branch when an add follows (the bottleneck's last convolution and its skip): two fewer passes
//! over 64x64x128 tensors. Each thread lays out the tile of positions (1x1) or band of padded
//! rows (3x3) it reads just before reading it, and a layer with a [`Prelude`] makes those bytes
//! from its f32 input (batch norm, ReLU and quantization in one pass).
//!
//! The sums are exact integers and the requantization and dequantization are tract's (f32
//! multiplier, ties to even; `(q - zero point) * scale`), so outputs equal tract's reference
//! evaluation of the decluttered graph to the bit (tests). tract's optimized plan rounds some
//! requantizations one step apart from its own reference, so against it keypoints agree and
//! confidences move by a few percent at most.
//!
//! The rewrite runs on the decluttered model, where quantized convolutions are `Conv` ops (and
//! 1x1 ones `EinSum`s) with their quantization parameters as constant inputs. It takes those
//! whose input and output are u8, whose weights are symmetric (zero point 0), with one input
//! and one output zero point and scale; others stay tract's.

use super::conv_geometry::{conv_shape, pointwise_shape, sole_successor, Geometry, Reads, Shape};
use super::quantize::{batch_norm_quantize_u8, quantize_u8, BatchNorm};
use super::conv_i8_kernel::{Block, Kernel, OutBytes, Planes, Store, ROWS, WIDTH};
use crate::spin_team::for_each_task;
use crate::threads::executor_threads;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::cnn::Conv;
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::math::Add;
use tract_onnx::tract_core::ops::quant::DequantizeLinearF32;

/// A quantized convolution of one NCHW u8 image with a square kernel of odd `side`, "same"
/// padding and stride 1 or 2. Inputs: the image, the packed weights ([`pack_weights`]), the
/// corrected bias and the multipliers (both padded to whole blocks).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DirectConvI8 {
    pub shape: Shape,
    /// The input's zero point: the border's value.
    pub x_zero: u8,
    /// The output's zero point.
    pub y_zero: u8,
    /// For a 1x1 layer whose output is dequantized next: the dequantization's scale (as f32
    /// bits), done as the results are stored, which then are f32.
    pub dequantize: Option<u32>,
    /// With `dequantize`: an f32 tensor of the output's shape added to it (the residual add
    /// that follows), a fifth input.
    pub with_addend: bool,
    /// The output's type (u8, possibly with its quantization attached, or f32 when
    /// dequantized) and shape.
    pub out_dt: DatumType,
    pub out_shape: TVec<usize>,
    pub kernel: Kernel,
    /// When the input is f32: what turns it into the u8 image, done as it is laid out in quads
    /// (taken in from the ops before, [`super::quantize_into_conv`]).
    pub prelude: Option<Prelude>,
}

/// A batch norm and ReLU (`FastScaleShift`'s, optional) then the quantization to u8
/// ([`quantize_u8`], to the layer's `x_zero`) of an f32 input, done in one pass
/// ([`batch_norm_quantize_u8`]) as the input is laid out in quads. With a batch norm, the last inputs are its per-channel scales and
/// shifts, and the floor when it is floored (the ReLU).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prelude {
    /// `Some(floored)` with a batch norm.
    pub batch_norm: Option<bool>,
    /// The quantization's multiplier (the reciprocal of its scale), as f32 bits.
    pub quantize: u32,
}

/// Where the input's u8 lines come from.
enum Source<'a> {
    Bytes(&'a [u8]),
    Floats {
        x: &'a [f32],
        multiplier: f32,
        zero_point: u8,
        /// The batch norm's per-channel scales and shifts, and its floor (the ReLU).
        batch_norm: Option<(&'a [f32], &'a [f32], Option<f32>)>,
    },
}

impl Source<'_> {
    /// Values `at..at + len` (of channel `c`) as u8, computed into `buf` from f32 by the
    /// separate ops' own element code (so to the same bytes). Whole bands of rows at a time:
    /// per line, the calls cost as much as the work on the small maps.
    fn span<'b>(&'b self, at: usize, len: usize, c: usize, buf: &'b mut PlaneBuf) -> &'b [u8] {
        match self {
            Source::Bytes(x) => &x[at..at + len],
            Source::Floats {
                x,
                multiplier,
                zero_point,
                batch_norm,
            } => {
                buf.bytes.resize(len, 0);
                let span = &x[at..at + len];
                match batch_norm {
                    Some((s, t, floor)) => {
                        let bn = BatchNorm {
                            scale: s[c],
                            shift: t[c],
                            floor: *floor,
                        };
                        batch_norm_quantize_u8(span, &mut buf.bytes, bn, *multiplier, *zero_point)
                    }
                    None => quantize_u8(span, &mut buf.bytes, *multiplier, *zero_point),
                }
                &buf.bytes
            }
        }
    }
}

/// One quad's channels (up to 4) over the same positions, as u8: what [`interleave`] takes.
#[derive(Clone, Copy)]
struct QuadSpans<'b> {
    spans: [&'b [u8]; 4],
    n: usize,
}

impl<'b> QuadSpans<'b> {
    fn all(&self) -> &[&'b [u8]] {
        &self.spans[..self.n]
    }

    /// Their `i`-th runs of `w` positions (row `i` of spans of whole rows).
    fn row(&self, i: usize, w: usize) -> QuadSpans<'b> {
        let mut row = *self;
        for span in &mut row.spans[..self.n] {
            *span = &span[i * w..(i + 1) * w];
        }
        row
    }
}

/// One span's scratch for [`Source::span`].
#[derive(Default)]
struct PlaneBuf {
    bytes: Vec<u8>,
}

impl Geometry for DirectConvI8 {
    fn shape(&self) -> Shape {
        self.shape
    }
}

impl DirectConvI8 {
    fn quads(&self) -> usize {
        self.shape.in_channels.div_ceil(4)
    }

    /// Values `from..from + len` of each channel plane of quad `q`, as u8 (computed into
    /// `bufs` from an f32 source).
    fn quad_spans<'b>(
        &self,
        src: &'b Source,
        q: usize,
        (from, len): (usize, usize),
        bufs: &'b mut [PlaneBuf; 4],
    ) -> QuadSpans<'b> {
        let hw = self.shape.height * self.shape.width;
        let mut spans = QuadSpans {
            spans: [&[]; 4],
            n: 0,
        };
        for (c, buf) in (4 * q..(4 * q + 4).min(self.shape.in_channels)).zip(bufs) {
            spans.spans[spans.n] = src.span(c * hw + from, len, c, buf);
            spans.n += 1;
        }
        spans
    }

    /// The stride-2 stem's input in quads: position `p` of quad `q`'s phase plane holds
    /// channels `4q..4q+4` at bytes `(q * planes + p) * 4 ..`, bordered and padded with the
    /// input's zero point. Reads run on past the last plane through the dropped columns, by
    /// less than a row and a kernel side, so that much more is allocated. Quads (and bands of
    /// rows, when there are few quads, as in the stem) are shared out among `threads`.
    fn phase_input(&self, src: &Source, threads: usize) -> anyhow::Result<Vec<u8>> {
        let Shape {
            in_channels,
            height: h,
            width: w,
            stride: s,
            side,
            ..
        } = self.shape;
        let pad = self.pad();
        let (row, plane) = (self.padded_row(), self.padded_plane());
        let per_quad = s * s * plane;
        let quads = self.quads();
        let mut out = vec![self.x_zero; (quads * per_quad + row + side) * 4];
        let dst = OutBytes::new(&mut out);
        let split = threads > 1 && in_channels * h * w >= PARALLEL_LAYOUT;
        let bands = match split {
            true => (2 * threads).div_ceil(quads).min(h),
            false => 1,
        };
        let band = h.div_ceil(bands);
        // Rows y0..y1 of quad q.
        let fill = |q: usize, y0: usize, y1: usize| {
            let mut bufs: [PlaneBuf; 4] = Default::default();
            let spans = self.quad_spans(src, q, (y0 * w, (y1 - y0) * w), &mut bufs);
            // (A quad short of channels keeps the zero point in their bytes.)
            let mut quad_line = vec![self.x_zero; 4 * w];
            for y in y0..y1 {
                let yy = y + pad;
                // The line in quads, then its even and odd columns to their phases.
                interleave(spans.row(y - y0, w).all(), &mut quad_line);
                for px in 0..s {
                    let phase = (yy % s) * s + px;
                    let at = (q * per_quad + phase * plane + yy / s * row) * 4;
                    // SAFETY: each task writes its own rows of its own quad.
                    let at = unsafe { dst.run_mut(at, row * 4) };
                    let first = (s + px - pad % s) % s;
                    for xc in (first..w).step_by(s) {
                        let xx = (xc + pad) / s;
                        at[xx * 4..xx * 4 + 4].copy_from_slice(&quad_line[xc * 4..xc * 4 + 4]);
                    }
                }
            }
        };
        for_each_task(quads * bands, &|t| {
            let (q, b) = (t / bands, t % bands);
            fill(q, b * band, ((b + 1) * band).min(h));
        })?;
        Ok(out)
    }

    /// Block `b`'s weights, bias and multipliers over `input`.
    fn block<'a>(&self, args: &Args<'a>, input: Reads<'a, u8>, b: usize) -> Block<'a> {
        let steps = input.offsets.len();
        let mut bias = [0i32; ROWS];
        bias.copy_from_slice(&args.bias[b * ROWS..(b + 1) * ROWS]);
        let mut scale = [0f32; ROWS];
        scale.copy_from_slice(&args.scales[b * ROWS..(b + 1) * ROWS]);
        Block {
            input: input.input,
            offsets: input.offsets,
            max_offset: input.max_offset,
            weights: &args.weights[b * steps * ROWS..(b + 1) * steps * ROWS],
            bias,
            scale,
            rows: (self.shape.out_channels - b * ROWS).min(ROWS),
            zero_point: self.y_zero,
        }
    }

    /// A 1x1 layer's input at positions `p0..p0 + len` in quads, into `tile` (quad `q` at
    /// bytes `q * len * 4..`), through `tile`'s span buffers.
    fn quad_tile(&self, src: &Source, p0: usize, len: usize, tile: &mut TileBuf) {
        let quads = self.quads();
        tile.quads.resize(quads * len * 4, 0);
        if !self.shape.in_channels.is_multiple_of(4) {
            // The last quad's missing channels read as the zero point (their weights are 0).
            tile.quads[(quads - 1) * len * 4..].fill(self.x_zero);
        }
        for (q, dst) in tile.quads.chunks_exact_mut(len * 4).enumerate() {
            interleave(
                self.quad_spans(src, q, (p0, len), &mut tile.spans).all(),
                dst,
            );
        }
    }

    /// The padded rows that output rows `y0..y1` of a stride-1 bordered layer read, in quads
    /// with the border's zero point, into `band` (quad `q` at positions `q * plane..`, the
    /// band's first row holding padded row `y0`; then a row and a kernel side more for the
    /// reads that run on). Returns `plane`.
    fn quad_band(&self, src: &Source, y0: usize, y1: usize, band: &mut TileBuf) -> usize {
        let Shape { width: w, side, .. } = self.shape;
        let (pad, row) = (self.pad(), self.padded_row());
        let (plane, rows) = self.band_rows(y0, y1);
        let quads = self.quads();
        band.quads.clear();
        band.quads
            .resize((quads * plane + row + side) * 4, self.x_zero);
        let (ya, yb) = (rows.start, rows.end);
        for q in 0..quads {
            let spans = self.quad_spans(src, q, (ya * w, (yb - ya) * w), &mut band.spans);
            for y in ya..yb {
                let at = (q * plane + (y + pad - y0) * row + pad) * 4;
                interleave(spans.row(y - ya, w).all(), &mut band.quads[at..at + 4 * w]);
            }
        }
        plane
    }

    /// Runs of output rows (or positions, in place), one per thread where the layer is large
    /// enough to share: (run length in units, runs).
    fn runs(&self, threads: usize, units: usize) -> (usize, usize) {
        let parts = if threads > 1 && self.macs() >= PARALLEL_MACS {
            threads.min(units)
        } else {
            1
        };
        let per_run = units.div_ceil(parts);
        (per_run, units.div_ceil(per_run))
    }

    /// Run `r` of `per_run` units: every block over its positions, into `out`.
    fn fill_run(&self, args: &Args, per_run: usize, r: usize, out: Store) {
        let kernel = self.kernel;
        let (out_h, out_w) = self.out_hw();
        let hw = out_h * out_w;
        let blocks = self.shape.out_channels.div_ceil(ROWS);
        if self.in_place() {
            let (q0, q1) = (r * per_run * WIDTH, ((r + 1) * per_run * WIDTH).min(hw));
            // Tiles whose input stays in L2, laid out in quads by this thread just before it
            // reads them (no wait for the other threads, no full-size copy); in each, one block
            // after another, so that a block's weights stay in L1 and its output rows are
            // written in long runs.
            let tile = (TILE_BYTES / (self.quads() * 4) / WIDTH).max(1) * WIDTH;
            TILE.with_borrow_mut(|buf| {
                for t0 in (q0..q1).step_by(tile) {
                    let len = tile.min(q1 - t0);
                    self.quad_tile(args.source, t0, len, buf);
                    let offsets: Vec<usize> = (0..self.quads()).map(|q| q * len).collect();
                    let input = Reads::new(&buf.quads, &offsets);
                    for b in 0..blocks {
                        let block = self.block(args, input, b);
                        let out = out.skip(b * ROWS * hw + t0);
                        for p0 in (0..len).step_by(WIDTH) {
                            // SAFETY: this run alone writes positions q0..q1.
                            unsafe { kernel.run(&block, p0, WIDTH.min(len - p0), out, hw) };
                        }
                    }
                }
            });
            return;
        }
        // Whole rows of the bordered planes (the columns past the output's width dropped),
        // into a scratch buffer, then copied out row by row. (Only 1x1 layers dequantize.)
        let Store::Bytes(out) = out else {
            unreachable!("a bordered layer stores bytes")
        };
        let row = self.padded_row();
        let (y0, y1) = (r * per_run, ((r + 1) * per_run).min(out_h));
        let len = (y1 - y0) * row;
        TILE.with_borrow_mut(|band| {
            // Stride 1: this thread lays out the rows its band reads, just before it reads
            // them. (The stride-2 stem reads the whole input laid out beforehand.)
            let mut offsets = vec![];
            let input = match self.shape.stride {
                1 => {
                    let plane = self.quad_band(args.source, y0, y1, band);
                    offsets = self.offsets_over(self.quads(), plane);
                    Reads::new(&band.quads, &offsets)
                }
                _ => args.phases.from(y0 * row * 4),
            };
            self.fill_rows(args, input, (y0, y1), len, out)
        })
    }

    /// Output rows `y0..y1` of a bordered layer from `input` (its rows from `y0` on): whole
    /// rows of the bordered planes into a scratch buffer, the columns past the output's
    /// width then dropped as rows are copied out.
    fn fill_rows(
        &self,
        args: &Args,
        input: Reads<u8>,
        (y0, y1): (usize, usize),
        len: usize,
        out: OutBytes,
    ) {
        let (kernel, row) = (self.kernel, self.padded_row());
        let (out_h, out_w) = self.out_hw();
        let hw = out_h * out_w;
        let blocks = self.shape.out_channels.div_ceil(ROWS);
        SCRATCH.with_borrow_mut(|scratch| {
            if scratch.len() < ROWS * len {
                scratch.resize(ROWS * len, 0);
            }
            for b in 0..blocks {
                let block = self.block(args, input, b);
                let planes = Store::Bytes(OutBytes::new(scratch));
                for p0 in (0..len).step_by(WIDTH) {
                    // SAFETY: the scratch buffer is this thread's own.
                    unsafe { kernel.run(&block, p0, WIDTH.min(len - p0), planes, len) };
                }
                for i in 0..block.rows {
                    let c = b * ROWS + i;
                    for y in y0..y1 {
                        let src = &scratch[i * len + (y - y0) * row..][..out_w];
                        // SAFETY: this run alone writes rows y0..y1.
                        let dst = unsafe { out.run_mut(c * hw + y * out_w, out_w) };
                        dst.copy_from_slice(src);
                    }
                }
            }
        })
    }
}

/// Puts 4 (or fewer) equally long lines of bytes side by side: `out[4i + j] = lines[j][i]`;
/// a missing line leaves its bytes as they are.
fn interleave(lines: &[&[u8]], out: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if let [a, b, c, d] = lines {
        // SAFETY: SSE2 is part of x86_64; the lengths are checked inside.
        unsafe { x86::interleave4(a, b, c, d, out) };
        return;
    }
    for (j, line) in lines.iter().enumerate() {
        for (i, v) in line.iter().enumerate() {
            out[4 * i + j] = *v;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Four lines of bytes side by side, 16 positions per round of unpacks, the tail by hand.
    ///
    /// Safety: SSE2 (always there on x86_64).
    pub unsafe fn interleave4(a: &[u8], b: &[u8], c: &[u8], d: &[u8], out: &mut [u8]) {
        let n = a.len();
        assert!(b.len() == n && c.len() == n && d.len() == n && out.len() >= 4 * n);
        let full = n / 16 * 16;
        let load = |s: &[u8], i: usize| _mm_loadu_si128(s.as_ptr().add(i) as *const __m128i);
        for i in (0..full).step_by(16) {
            let (va, vb, vc, vd) = (load(a, i), load(b, i), load(c, i), load(d, i));
            let (ab_lo, ab_hi) = (_mm_unpacklo_epi8(va, vb), _mm_unpackhi_epi8(va, vb));
            let (cd_lo, cd_hi) = (_mm_unpacklo_epi8(vc, vd), _mm_unpackhi_epi8(vc, vd));
            let o = out.as_mut_ptr().add(4 * i) as *mut __m128i;
            _mm_storeu_si128(o, _mm_unpacklo_epi16(ab_lo, cd_lo));
            _mm_storeu_si128(o.add(1), _mm_unpackhi_epi16(ab_lo, cd_lo));
            _mm_storeu_si128(o.add(2), _mm_unpacklo_epi16(ab_hi, cd_hi));
            _mm_storeu_si128(o.add(3), _mm_unpackhi_epi16(ab_hi, cd_hi));
        }
        for i in full..n {
            out[4 * i..4 * i + 4].copy_from_slice(&[a[i], b[i], c[i], d[i]]);
        }
    }
}

thread_local! {
    /// Each thread's scratch buffer for runs of bordered positions, kept between calls.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    /// Each thread's tile of a 1x1 layer's input (or band of a 3x3 layer's padded rows) in
    /// quads, and the spans it is made from.
    static TILE: std::cell::RefCell<TileBuf> = std::cell::RefCell::new(TileBuf::default());
}

/// A tile or band of input in quads ([`DirectConvI8::quad_tile`], [`DirectConvI8::quad_band`]).
#[derive(Default)]
struct TileBuf {
    quads: Vec<u8>,
    spans: [PlaneBuf; 4],
}

/// Multiply-adds below which a layer stays on one thread (as for the f32 convolutions; tests
/// split every layer).
const PARALLEL_MACS: usize = if cfg!(test) { 1 } else { 1 << 19 };

/// Input values below which a layer lays out its input in quads on one thread (tests split
/// every layer).
const PARALLEL_LAYOUT: usize = if cfg!(test) { 1 } else { 1 << 15 };

/// Input bytes of a 1x1 layer's tile of positions: a quarter of a 2 MB L2 (tests: 2 KB, so
/// that their small layers run over several tiles, the last one partial).
const TILE_BYTES: usize = if cfg!(test) { 2 << 10 } else { 512 << 10 };

struct Args<'a> {
    /// The stride-2 stem's whole input in phase planes of quads ([`DirectConvI8::phase_input`];
    /// empty for the other layers, which lay out tiles or bands of rows as they go).
    phases: Reads<'a, u8>,
    source: &'a Source<'a>,
    weights: &'a [i32],
    bias: &'a [i32],
    scales: &'a [f32],
}

/// Weights `[out][in][side][side]` (i8) as blocks of [`ROWS`] channels: per step (quad, tap)
/// one dword per channel holding the 4 channels of the quad; missing channels are zero.
pub fn pack_weights(
    weights: &[i8],
    out_channels: usize,
    in_channels: usize,
    side: usize,
) -> Vec<i32> {
    let taps = side * side;
    let quads = in_channels.div_ceil(4);
    let steps = quads * taps;
    let blocks = out_channels.div_ceil(ROWS);
    let mut bytes = vec![0i8; blocks * steps * ROWS * 4];
    for o in 0..out_channels {
        let (b, r) = (o / ROWS, o % ROWS);
        for c in 0..in_channels {
            for tap in 0..taps {
                let t = (c / 4) * taps + tap;
                bytes[((b * steps + t) * ROWS + r) * 4 + c % 4] =
                    weights[(o * in_channels + c) * taps + tap];
            }
        }
    }
    bytes
        .chunks_exact(4)
        .map(|q| i32::from_le_bytes([q[0] as u8, q[1] as u8, q[2] as u8, q[3] as u8]))
        .collect()
}

impl Op for DirectConvI8 {
    fn name(&self) -> StaticName {
        "DirectConvI8".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("{}, {}", self.shape(), self.kernel.name())])
    }

    op_as_typed_op!();
}

impl EvalOp for DirectConvI8 {
    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let batch_norm = self.prelude.and_then(|p| p.batch_norm);
        let extras = match batch_norm {
            Some(floored) => 2 + floored as usize,
            None => 0,
        };
        let wanted = 4 + self.with_addend as usize + extras;
        anyhow::ensure!(inputs.len() == wanted, "DirectConvI8 takes {wanted} inputs");
        let (out_h, out_w) = self.out_hw();
        let blocks = self.shape.out_channels.div_ceil(ROWS);
        let steps = self.quads() * self.shape.side * self.shape.side;
        let image_dt = match self.prelude {
            Some(_) => DatumType::F32,
            None => DatumType::U8,
        };
        anyhow::ensure!(
            inputs[0].datum_type().unquantized() == image_dt,
            "DirectConvI8: the image is not {image_dt:?}"
        );
        let views: Vec<_> = inputs
            .iter()
            .map(|t| t.try_as_plain_ram())
            .collect::<TractResult<_>>()?;
        let weights = views[1].as_slice::<i32>()?;
        let bias = views[2].as_slice::<i32>()?;
        let scales = views[3].as_slice::<f32>()?;
        let addend = match self.with_addend {
            true => Some(views[4].as_slice::<f32>()?),
            false => None,
        };
        let hw = self.shape.height * self.shape.width;
        let src = match self.prelude {
            // SAFETY: u8 checked above (its quantized form has the same bytes).
            None => Source::Bytes(unsafe { views[0].as_slice_unchecked::<u8>() }),
            Some(prelude) => {
                let extra = &views[4 + self.with_addend as usize..];
                let batch_norm = match batch_norm {
                    Some(floored) => {
                        let (s, t) = (extra[0].as_slice::<f32>()?, extra[1].as_slice::<f32>()?);
                        let floor = match floored {
                            true => Some(*extra[2].as_slice::<f32>()?.first().context("no floor")?),
                            false => None,
                        };
                        anyhow::ensure!(
                            s.len() == self.shape.in_channels && t.len() == s.len(),
                            "DirectConvI8: {} batch norm scales for {} channels",
                            s.len(),
                            self.shape.in_channels
                        );
                        Some((s, t, floor))
                    }
                    None => None,
                };
                Source::Floats {
                    x: views[0].as_slice::<f32>()?,
                    multiplier: f32::from_bits(prelude.quantize),
                    zero_point: self.x_zero,
                    batch_norm,
                }
            }
        };
        let image_len = match &src {
            Source::Bytes(x) => x.len(),
            Source::Floats { x, .. } => x.len(),
        };
        anyhow::ensure!(
            image_len == self.shape.in_channels * hw
                && weights.len() == blocks * steps * ROWS
                && bias.len() == blocks * ROWS
                && scales.len() == blocks * ROWS
                && self.out_shape.iter().product::<usize>()
                    == self.shape.out_channels * out_h * out_w
                && addend.is_none_or(|a| a.len() == self.shape.out_channels * out_h * out_w)
                && (self.dequantize.is_none() || self.in_place()),
            "DirectConvI8: inputs do not match {self:?}"
        );
        let threads = executor_threads();
        // Only the stride-2 stem reads its whole input laid out beforehand.
        let (quads, offsets) = match self.shape.stride {
            1 => (vec![], vec![]),
            _ => (self.phase_input(&src, threads)?, self.offsets(self.quads())),
        };
        let args = Args {
            phases: Reads::new(&quads, &offsets),
            source: &src,
            weights,
            bias,
            scales,
        };
        let mut output = unsafe { Tensor::uninitialized_dt(self.out_dt, &self.out_shape)? };
        {
            let mut plain = output.try_as_plain_ram_mut()?;
            let out = match self.dequantize {
                Some(bits) => Store::Floats {
                    out: Planes::new(plain.as_slice_mut::<f32>()?),
                    scale: f32::from_bits(bits),
                    addend,
                },
                // SAFETY: the output type is u8 or its quantized form.
                None => Store::Bytes(OutBytes::new(unsafe {
                    plain.as_slice_mut_unchecked::<u8>()
                })),
            };
            let units = match self.in_place() {
                true => (out_h * out_w).div_ceil(WIDTH),
                false => out_h,
            };
            let (per_run, runs) = self.runs(threads, units);
            for_each_task(runs, &|r| self.fill_run(&args, per_run, r, out))?;
        }
        Ok(tvec!(output.into_tvalue()))
    }

    op_out_of_plan!();
}

impl TypedOp for DirectConvI8 {
    as_op!();

    fn output_facts(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(self.out_dt.fact(&*self.out_shape)))
    }

    fn cost(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        Ok(tvec!((Cost::FMA(DatumType::I32), self.macs().to_dim())))
    }
}

/// A quantized convolution found in the decluttered graph.
struct Found {
    shape: Shape,
    /// The 9 inputs past the image: weights, bias, x0, x scale, w0, w scale, y0, y scale.
    params: [OutletId; 8],
}

fn params_of(node: &TypedNode) -> Option<[OutletId; 8]> {
    match &node.inputs[..] {
        [_, rest @ ..] => rest.try_into().ok(),
        _ => None,
    }
}

/// A "same"-padded, ungrouped quantized `Conv` with a square odd kernel, stride 1 or 2.
fn as_conv(model: &TypedModel, node: &TypedNode) -> Option<Found> {
    node.op_as::<Conv>()?.q_params?;
    Some(Found {
        shape: conv_shape(model, node, DatumType::U8)?,
        params: params_of(node)?,
    })
}

/// A quantized 1x1 convolution as tract's declutter leaves it ([`pointwise_shape`]) over u8.
fn as_pointwise(model: &TypedModel, node: &TypedNode) -> Option<Found> {
    node.op_as::<EinSum>()?.q_params?;
    Some(Found {
        shape: pointwise_shape(model, node, DatumType::U8)?,
        params: params_of(node)?,
    })
}

/// A constant input's values as `T` (through tract's casts), when it is a constant.
fn constant<T: Datum>(model: &TypedModel, outlet: OutletId) -> Option<Vec<T>> {
    let konst = model.outlet_fact(outlet).ok()?.konst.clone()?;
    let plain = konst.cast_to_dt(konst.datum_type().unquantized()).ok()?;
    let cast = plain.cast_to::<T>().ok()?;
    Some(cast.try_as_plain_ram().ok()?.as_slice::<T>().ok()?.to_vec())
}

/// A [`DirectConvI8`] and its constant inputs: packed weights, corrected bias, multipliers.
struct Swap {
    op: DirectConvI8,
    packed: Vec<i32>,
    bias: Vec<i32>,
    scales: Vec<f32>,
}

/// The op and its three constant inputs for `found`, when its parameters are what the kernel
/// takes: constant i8 weights of the right shape with zero point 0, one input and one output
/// zero point and scale, one weight scale or one per output channel, a bias or none.
fn direct_op(model: &TypedModel, node: &TypedNode, found: &Found, kernel: Kernel) -> Option<Swap> {
    let [w, bias, x0, x_scale, w0, w_scale, y0, y_scale] = found.params;
    let (o, i, side) = (
        found.shape.out_channels,
        found.shape.in_channels,
        found.shape.side,
    );
    let w_fact = model.outlet_fact(w).ok()?;
    if w_fact.datum_type.unquantized() != DatumType::I8
        || w_fact.shape.as_concrete()?.iter().product::<usize>() != o * i * side * side
    {
        return None;
    }
    let weights: Vec<i8> = constant::<i8>(model, w)?;
    let bias: Vec<i32> = match constant::<i32>(model, bias)? {
        b if b.len() == o => b,
        b if b.len() == 1 => vec![b[0]; o],
        _ => return None,
    };
    let one = |v: Vec<i32>| (v.len() == 1).then(|| v[0]);
    let onef = |v: Vec<f32>| (v.len() == 1).then(|| v[0]);
    let x_zero = u8::try_from(one(constant::<i32>(model, x0)?)?).ok()?;
    let y_zero = u8::try_from(one(constant::<i32>(model, y0)?)?).ok()?;
    if constant::<i32>(model, w0)?.iter().any(|z| *z != 0) {
        return None;
    }
    let (x_scale, y_scale) = (
        onef(constant::<f32>(model, x_scale)?)?,
        onef(constant::<f32>(model, y_scale)?)?,
    );
    let w_scales = match constant::<f32>(model, w_scale)? {
        s if s.len() == o => s,
        s if s.len() == 1 => vec![s[0]; o],
        _ => return None,
    };
    let blocks = o.div_ceil(ROWS);
    let taps = i * side * side;
    // tract's multiplier: (weight scale x input scale) / output scale, in f32.
    let mut scales: Vec<f32> = w_scales.iter().map(|ws| ws * x_scale / y_scale).collect();
    if scales.iter().any(|s| !s.is_finite() || *s <= 0.0) {
        return None;
    }
    // The border holds x0, so every tap reads x0 where tract's im2col would: taking
    // x0 * sum(weights) out of the bias makes the sum of (x - x0) * w exact.
    let mut bias_adj: Vec<i32> = (0..o)
        .map(|c| {
            let sum: i32 = weights[c * taps..(c + 1) * taps]
                .iter()
                .map(|w| *w as i32)
                .sum();
            bias[c].wrapping_sub(x_zero as i32 * sum)
        })
        .collect();
    bias_adj.resize(blocks * ROWS, 0);
    scales.resize(blocks * ROWS, 1.0);
    let op = DirectConvI8 {
        shape: found.shape,
        x_zero,
        y_zero,
        dequantize: None,
        with_addend: false,
        out_dt: node.outputs[0].fact.datum_type,
        out_shape: node.outputs[0].fact.shape.as_concrete()?.into(),
        kernel,
        prelude: None,
    };
    Some(Swap {
        op,
        packed: pack_weights(&weights, o, i, side),
        bias: bias_adj,
        scales,
    })
}

/// Whether the rewrite runs here: a native kernel, and `HGPOSE_DIRECT_CONV` not `0`.
pub fn available() -> bool {
    Kernel::native().is_some() && std::env::var("HGPOSE_DIRECT_CONV").as_deref() != Ok("0")
}

/// Replaces the quantized convolutions of a decluttered model with [`DirectConvI8`] where this
/// CPU has a native kernel; returns how many.
pub fn swap_in(model: &mut TypedModel) -> TractResult<usize> {
    match Kernel::native() {
        Some(kernel) if available() => swap_in_with(model, kernel),
        _ => Ok(0),
    }
}

/// What follows a 1x1 layer and is done as its results are stored: the dequantization that
/// alone reads it and, when that feeds an add of a same-shaped f32 tensor not already taken
/// by another layer, the add (its node and the slot of the other operand).
struct Chain {
    last: usize,
    addend_of: Option<(usize, usize)>,
}

fn chain_after(model: &TypedModel, id: usize, op: &mut DirectConvI8, taken: &[usize]) -> Chain {
    let mut chain = Chain {
        last: id,
        addend_of: None,
    };
    let dequantize = sole_successor(model, id)
        .filter(|_| op.in_place())
        .and_then(|dq| {
            let d = model.node(dq).op_as::<DequantizeLinearF32>()?;
            (d.zero_point == op.y_zero as i32 && d.scale.is_finite()).then_some((dq, d.scale))
        });
    let Some((dq, scale)) = dequantize else {
        return chain;
    };
    op.dequantize = Some(scale.to_bits());
    op.out_dt = DatumType::F32;
    chain.last = dq;
    let Some(add) = sole_successor(model, dq).filter(|a| !taken.contains(a)) else {
        return chain;
    };
    let node = model.node(add);
    let is_add = node.op_as::<TypedBinOp>().is_some_and(|b| b.0.is::<Add>());
    let slot = match node.inputs[..] {
        [a, b] if a.node == dq && b.node != dq => 1,
        [a, b] if b.node == dq && a.node != dq => 0,
        _ => return chain,
    };
    let same = |o: OutletId| {
        model
            .outlet_fact(o)
            .ok()
            .map(|f| (f.datum_type, f.shape.clone()))
    };
    if is_add && same(node.inputs[slot]) == same(OutletId::new(add, 0)) {
        op.with_addend = true;
        chain.last = add;
        chain.addend_of = Some((add, slot));
    }
    chain
}

fn swap_in_with(model: &mut TypedModel, kernel: Kernel) -> TractResult<usize> {
    let mut taken = Vec::new();
    let mut ends = Vec::new();
    for node in model.nodes() {
        let Some(found) = as_conv(model, node).or_else(|| as_pointwise(model, node)) else {
            continue;
        };
        if let Some(mut direct) = direct_op(model, node, &found, kernel) {
            let chain = chain_after(model, node.id, &mut direct.op, &ends);
            ends.push(chain.last);
            taken.push((node.id, direct, chain));
        }
    }
    let swapped = taken.len();
    for (id, direct, chain) in taken {
        // Inputs as the graph has them now (an earlier patch may have replaced their source).
        let input = model.node(id).inputs[0];
        let name = model.node(id).name.clone();
        let mut patch = TypedModelPatch::new(format!("direct int8 conv {name}"));
        let mut inputs = tvec![
            patch.tap_model(model, input)?,
            patch.add_const(format!("{name}.packed"), tensor1(&direct.packed))?,
            patch.add_const(format!("{name}.bias_adj"), tensor1(&direct.bias))?,
            patch.add_const(format!("{name}.multipliers"), tensor1(&direct.scales))?,
        ];
        if let Some((add, slot)) = chain.addend_of {
            inputs.push(patch.tap_model(model, model.node(add).inputs[slot])?);
        }
        let wire = patch.wire_node(format!("{name}.direct"), direct.op, &inputs)?[0];
        patch.shunt_outside(model, OutletId::new(chain.last, 0), wire)?;
        patch.apply(model)?;
    }
    model.compact()?;
    Ok(swapped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_models::{first_output, patterned_input, QuantizedConv};
    use crate::threads::on_two_threads;

    /// The layer decluttered as the engine has it, and the same with its convolution swapped
    /// for [`DirectConvI8`] on `kernel`.
    fn theirs_and_ours(layer: &QuantizedConv, kernel: Kernel) -> (TypedModel, TypedModel) {
        let theirs = layer.model().into_decluttered().unwrap();
        let mut ours = theirs.clone();
        assert_eq!(
            swap_in_with(&mut ours, kernel).unwrap(),
            1,
            "the layer is taken"
        );
        let op = ours
            .nodes()
            .iter()
            .find_map(|n| n.op_as::<DirectConvI8>())
            .unwrap();
        // 1x1 layers take in the dequantization (and the residual add) after them.
        assert_eq!(op.dequantize.is_some(), layer.side == 1);
        assert_eq!(op.with_addend, layer.residual);
        let remain = |name: &str| ours.nodes().iter().any(|n| n.op.name() == name);
        assert_eq!(remain("DequantizeLinearF32"), layer.side != 1, "{ours}");
        assert!(!remain("Add"), "{ours}");
        (theirs, ours)
    }

    fn kernels() -> Vec<Kernel> {
        let mut kernels = vec![Kernel::Portable];
        match Kernel::native() {
            Some(native) => kernels.push(native),
            None => eprintln!("no AVX-512 VNNI here: only the portable int8 loops are checked"),
        }
        kernels
    }

    /// Every shape the hourglass has (1x1 over `EinSum`, 3x3, the 7x7 stride-2 stem), with
    /// channels that are not whole quads or blocks, odd map sizes and input zero points of 0
    /// and not 0 (the border then holds it), gives tract's outputs exactly, on one thread and
    /// on two; 1x1 layers dequantize as they store, and add the residual that follows.
    #[test]
    fn gives_tracts_outputs_for_every_layer_shape() {
        let residual = QuantizedConv {
            residual: true,
            ..QuantizedConv::layer(24, 24, 1, 1, 10, 12, 5)
        };
        let layers = [
            residual,
            QuantizedConv::layer(32, 48, 1, 1, 16, 16, 128),
            QuantizedConv::layer(13, 10, 1, 1, 9, 7, 0),
            QuantizedConv::layer(13, 10, 3, 1, 9, 7, 3),
            QuantizedConv::layer(32, 32, 3, 1, 8, 8, 0),
            QuantizedConv::layer(64, 20, 3, 1, 5, 21, 200),
            QuantizedConv::layer(3, 8, 7, 2, 20, 18, 0),
            QuantizedConv::layer(5, 7, 3, 2, 11, 9, 17),
        ];
        for kernel in kernels() {
            for l in &layers {
                let (theirs, ours) = theirs_and_ours(l, kernel);
                let input = patterned_input((
                    1,
                    l.in_channels as usize,
                    l.height as usize,
                    l.width as usize,
                ));
                let expected = first_output(&theirs, &input);
                assert!(
                    expected.iter().any(|v| *v != expected[0]),
                    "a non-constant output"
                );
                let what = format!(
                    "{kernel:?} {}x{}/{} {}->{} over {}x{}",
                    l.side, l.side, l.stride, l.in_channels, l.out_channels, l.height, l.width
                );
                assert_eq!(first_output(&ours, &input), expected, "{what}");
                let two = on_two_threads(|| first_output(&ours, &input));
                assert_eq!(two, expected, "{what}, two threads");
            }
        }
    }

    /// Weights with a zero point other than 0 are left to tract (the kernel folds only the
    /// input's zero point).
    #[test]
    fn leaves_asymmetric_weights_to_tract() {
        let mut decluttered = QuantizedConv::layer(8, 8, 3, 1, 6, 6, 0)
            .model()
            .into_decluttered()
            .unwrap();
        let conv = decluttered
            .nodes()
            .iter()
            .find(|n| n.op_is::<Conv>())
            .unwrap()
            .id;
        let konst = decluttered
            .add_const("w0_nonzero", tensor1(&[1i8; 8]))
            .unwrap();
        decluttered.add_edge(konst, InletId::new(conv, 5)).unwrap();
        assert_eq!(decluttered.node(conv).inputs.len(), 9);
        assert_eq!(decluttered.node(conv).inputs[5], konst);
        assert_eq!(swap_in_with(&mut decluttered, Kernel::Portable).unwrap(), 0);
    }

    #[test]
    fn packs_weights_by_quads_of_input_channels() {
        // 2 output channels, 5 input channels (2 quads), 1x1: w[o][c] = 10o + c.
        let weights: Vec<i8> = (0..2)
            .flat_map(|o| (0..5).map(move |c| (10 * o + c) as i8))
            .collect();
        let packed = pack_weights(&weights, 2, 5, 1);
        assert_eq!(packed.len(), 2 * ROWS);
        let bytes = |v: i32| v.to_le_bytes().map(|b| b as i8);
        assert_eq!(bytes(packed[0]), [0, 1, 2, 3]); // quad 0, channel 0
        assert_eq!(bytes(packed[1]), [10, 11, 12, 13]); // quad 0, channel 1
        assert_eq!(bytes(packed[2]), [0; 4]); // quad 0, channel 2 (missing)
        assert_eq!(bytes(packed[ROWS]), [4, 0, 0, 0]); // quad 1, channel 0
        assert_eq!(bytes(packed[ROWS + 1]), [14, 0, 0, 0]);
    }

    #[test]
    fn interleaves_lines_of_any_length() {
        for n in [1, 15, 16, 17, 40] {
            let lines: Vec<Vec<u8>> = (0..4)
                .map(|j| (0..n).map(|i| (i * 4 + j) as u8).collect())
                .collect();
            let refs: Vec<&[u8]> = lines.iter().map(|l| &l[..]).collect();
            let mut out = vec![0u8; 4 * n];
            interleave(&refs, &mut out);
            assert_eq!(
                out,
                (0..4 * n).map(|v| v as u8).collect::<Vec<_>>(),
                "n {n}"
            );
            let mut three = vec![9u8; 4 * n];
            interleave(&refs[..3], &mut three);
            assert!(three
                .chunks(4)
                .enumerate()
                .all(|(i, q)| q == [(4 * i) as u8, (4 * i + 1) as u8, (4 * i + 2) as u8, 9]));
        }
    }
}
