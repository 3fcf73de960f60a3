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

use super::conv_geometry::{Geometry, Reads, Shape};
use super::conv_i8_kernel::{Block, Kernel, OutBytes, Planes, Store, ROWS, WIDTH};
use super::quantize::{batch_norm_quantize_u8, quantize_u8, BatchNorm};
use crate::ops::plan_op::PlanOp;
use crate::plan_op;
use crate::spin_team::for_each_task;
use crate::threads::executor_threads;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

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
    if let [a, b, c, d] = lines {
        super::im2col::interleave4(a, b, c, d, &mut out[..4 * a.len()]);
        return;
    }
    for (j, line) in lines.iter().enumerate() {
        for (i, v) in line.iter().enumerate() {
            out[4 * i + j] = *v;
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

impl PlanOp for DirectConvI8 {
    const NAME: &'static str = "DirectConvI8";

    fn info_lines(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("{}, {}", self.shape(), self.kernel.name())])
    }

    fn run(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
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

    fn facts(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(self.out_dt.fact(&*self.out_shape)))
    }

    fn costs(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        Ok(tvec!((Cost::FMA(DatumType::I32), self.macs().to_dim())))
    }
}

plan_op!(DirectConvI8);

mod swap;
#[cfg(test)]
use swap::*;
pub use swap::{available, swap_in};

#[cfg(test)]
mod tests;
