//! hgpose's own f32 convolutions for the hourglass's layers (1x1, 3x3, the 7x7 stride-2 stem),
//! on x86_64.
//!
//! tract 0.23 lowers each convolution to a matrix product: it packs (1x1) or im2col-packs
//! (3x3) the activations at every inference, then runs its kernels, on the hourglass's shapes at
//! 9-28 GMAC/s on an AVX-512 Xeon whose FMA units reach 53 (`bench --profile` with
//! `HGPOSE_LOG=hgpose=debug`; a 12-accumulator FMA loop). The 1x1 products over 4096 pixels
//! with 64 input channels ran at 9. [`DirectConv`] reads the NCHW planes where they lie: a 1x1
//! convolution is a product of the weights with the input as it is (one row per channel), and
//! a 3x3 one is the same product over nine shifted views of a zero-bordered copy, whose two
//! extra columns per row are computed and dropped. The kernel ([`super::conv_f32_kernel`])
//! holds 6 channels x 64 positions in registers. The bias, a ReLU and a residual add that
//! follow are done as each result is stored. On the default model the convolutions then ran
//! at 25-45 GMAC/s, 3x3 ones fastest.
//!
//! The rewrite runs on the decluttered model, where tract has already folded each batch norm
//! that follows a convolution into its weights and turned 1x1 convolutions into `EinSum`s, and
//! before tract optimizes the rest. Sums run in another order than tract's, so values differ by
//! float rounding (tests: 1e-5 of the range).
//!
//! Two changes to how the kernel reads were tried and measured, with no gain: copying each
//! 1x1 run of 64 positions into one contiguous buffer (the planes lie 16-64 KB apart, so their
//! runs share L1 sets), and cutting the reduction into parts whose input fits in L1, with
//! partial sums stored between parts. Alternated with the current code in one process, 40
//! rounds per layer, neither moved the best time of 1x1 layers (256->256 and 128->256 over
//! 64x64, 64->128 over 128x128) or of 3x3 128->128 ones by more than 5%, except that parts made
//! the 128->256 layer 8% slower.
//!
//! On more than one thread a layer is cut into runs of output positions (see
//! [`DirectConv::tiling`]), which the caller and [`crate::spin_team`]'s helpers take in turn.

use super::conv_f32_kernel::{Block, Kernel, OutPlanes, ROWS};
use super::conv_geometry::{Geometry, Reads, Shape};
use crate::ops::plan_op::PlanOp;
use crate::plan_op;
use crate::spin_team::for_each_task;
use crate::threads::executor_threads;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

/// A convolution of one NCHW image with a square kernel of odd `side`, "same" zero padding
/// (`side / 2`) and stride 1 or 2. Inputs: the image, the packed weights ([`pack_weights`]),
/// the bias padded to whole blocks, and the addend when `with_addend`.
///
/// Stride 2 (the paper's 7x7 stem) splits the bordered input into four phase planes (even
/// and odd rows x even and odd columns): each output position then reads each phase at
/// consecutive positions, as a stride-1 convolution does.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DirectConv {
    pub shape: Shape,
    pub relu: bool,
    pub with_addend: bool,
    /// The output's shape as the graph has it (`[1, C, H, W]` or `[C, H, W]`).
    pub out_shape: TVec<usize>,
    pub kernel: KernelChoice,
}

/// [`Kernel`] as an op field (hashable; the portable loops for tests on any CPU).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KernelChoice(pub bool);

impl Geometry for DirectConv {
    fn shape(&self) -> Shape {
        self.shape
    }
}

impl DirectConv {
    /// The kernel's name (see [`Kernel::name`]).
    pub fn kernel_name(&self) -> &'static str {
        self.kernel().name()
    }

    fn kernel(&self) -> Kernel {
        match Kernel::native() {
            Some(k) if self.kernel.0 => k,
            _ => Kernel::Portable,
        }
    }

    /// The input with a zero border of `pad` around each channel plane, each split into its
    /// `stride x stride` phases; channels are shared out among `threads`.
    fn bordered(&self, x: &[f32], threads: usize) -> anyhow::Result<Vec<f32>> {
        let (h, w, pad, s) = (
            self.shape.height,
            self.shape.width,
            self.pad(),
            self.shape.stride,
        );
        let (row, plane) = (self.padded_row(), self.padded_plane());
        let per_channel = s * s * plane;
        // Reads run on past the last plane through the dropped columns, by less than a row
        // and a kernel side.
        let mut out = vec![0f32; self.shape.in_channels * per_channel + row + self.shape.side];
        let planes = OutPlanes::new(&mut out);
        let fill_channel = |c: usize| {
            let src = &x[c * h * w..(c + 1) * h * w];
            // SAFETY: each task writes its own channel's planes.
            let dst = unsafe { planes.run_mut(c * per_channel, per_channel) };
            for (y, line) in src.chunks_exact(w).enumerate() {
                let (yy, xx) = (y + pad, pad);
                if s == 1 {
                    let at = yy * row + xx;
                    dst[at..at + w].copy_from_slice(line);
                    continue;
                }
                for (x, v) in line.iter().enumerate() {
                    let xx = x + xx;
                    let phase = (yy % s) * s + xx % s;
                    dst[phase * plane + yy / s * row + xx / s] = *v;
                }
            }
        };
        let split = threads > 1 && self.shape.in_channels * h * w >= tuning().parallel_copy;
        let tasks = if split { self.shape.in_channels } else { 1 };
        for_each_task(tasks, &|t| {
            if tasks == 1 {
                (0..self.shape.in_channels).for_each(fill_channel)
            } else {
                fill_channel(t)
            }
        })?;
        Ok(out)
    }

    /// Block `b`'s weights, bias and epilogue over `input`, for `rows` channels.
    fn block<'a>(
        &self,
        args: &BlockArgs<'a>,
        reads: Reads<'a, f32>,
        b: usize,
        rows: usize,
    ) -> Block<'a> {
        let Reads {
            input,
            offsets,
            max_offset,
        } = reads;
        let steps = offsets.len();
        let mut bias = [0f32; ROWS];
        bias.copy_from_slice(&args.bias[b * ROWS..(b + 1) * ROWS]);
        Block {
            input,
            offsets,
            max_offset,
            weights: &args.weights[b * steps * ROWS..(b + 1) * steps * ROWS],
            bias,
            rows: rows.min(ROWS),
            relu: self.relu,
            addend: None,
        }
    }

    /// Positions of a 1x1 layer's tile: a whole number of kernel widths whose input (every
    /// channel) fits in [`Tuning::tile_bytes`], at least one width.
    fn position_tile(&self, width: usize) -> usize {
        let per_position = self.shape.in_channels * std::mem::size_of::<f32>();
        (tuning().tile_bytes / per_position / width).max(1) * width
    }

    /// How one evaluation is cut into tasks for `threads`: runs of output positions (all
    /// blocks inside, so that the run's input is read into this core's caches once for all of
    /// them), and groups of blocks only where positions are too few to go round.
    fn tiling(&self, threads: usize) -> Tiling {
        let blocks = self.shape.out_channels.div_ceil(ROWS);
        let width = self.kernel().width();
        let (out_h, out_w) = self.out_hw();
        // A unit: what a run of positions is a whole number of (kernel widths where the input
        // is read in place, rows of the bordered planes otherwise).
        let (unit, units) = if self.in_place() {
            (width, (out_h * out_w).div_ceil(width))
        } else {
            (self.padded_row(), out_h)
        };
        let (mut per_run, mut groups) = (units, 1);
        let tuning = tuning();
        if threads > 1 && self.macs() >= tuning.parallel_macs {
            let wanted = threads * tuning.tasks_per_thread;
            let min_units = (2 * width).div_ceil(unit);
            let runs = (units / min_units).clamp(1, wanted);
            per_run = units.div_ceil(runs);
            groups = wanted.div_ceil(units.div_ceil(per_run)).min(blocks);
        }
        Tiling {
            run: per_run * unit,
            runs: units.div_ceil(per_run),
            groups,
            blocks,
        }
    }

    /// Task `t` of `tiling`: its blocks over its run of positions, into `out` (the whole output).
    fn fill_tile(&self, args: &BlockArgs, tiling: &Tiling, t: usize, out: OutPlanes) {
        let kernel = self.kernel();
        let width = kernel.width();
        let (out_h, out_w) = self.out_hw();
        let hw = out_h * out_w;
        let (g, r) = (t / tiling.runs, t % tiling.runs);
        let (b0, b1) = (
            g * tiling.blocks / tiling.groups,
            (g + 1) * tiling.blocks / tiling.groups,
        );
        let channels = |b: usize| self.shape.out_channels - b * ROWS;
        if self.in_place() {
            let (q0, q1) = (r * tiling.run, ((r + 1) * tiling.run).min(hw));
            let group: Vec<Block> = (b0..b1)
                .map(|b| Block {
                    addend: args.addend.map(|a| &a[b * ROWS * hw..]),
                    ..self.block(args, args.reads, b, channels(b))
                })
                .collect();
            // Tiles of positions whose input stays in L2; in each, one block after another
            // over the whole tile, so that a block's weights stay in L1 and its output rows
            // (and addend) are written (read) in long runs the prefetchers follow.
            let tile = self.position_tile(width);
            for t0 in (q0..q1).step_by(tile) {
                let t1 = (t0 + tile).min(q1);
                for (block, b) in group.iter().zip(b0..) {
                    for p0 in (t0..t1).step_by(width) {
                        // SAFETY: this task alone writes positions q0..q1 of blocks b0..b1.
                        unsafe {
                            kernel.run(block, p0, width.min(t1 - p0), out.skip(b * ROWS * hw), hw)
                        };
                    }
                }
            }
            return;
        }
        // Whole rows of output, from the bordered copy or from a band this task borders.
        let row = self.padded_row();
        let (y0, y1) = (
            r * tiling.run / row,
            ((r + 1) * tiling.run / row).min(out_h),
        );
        BAND.with_borrow_mut(|band| {
            let mut band_offsets = vec![];
            let input = match args.bands {
                true => {
                    let plane = self.band(args.reads.input, y0, y1, band);
                    band_offsets = self.offsets_over(self.shape.in_channels, plane);
                    Reads::new(&band[..], &band_offsets)
                }
                false => args.reads.from(y0 * row),
            };
            self.fill_rows(args, input, (b0, b1), (y0, y1), out)
        })
    }

    /// The padded rows that output rows `y0..y1` of a stride-1 bordered layer read, with a
    /// zero border, from the raw input `x` into `band` (channel `c` at positions
    /// `c * plane..`, the band's first row holding padded row `y0`; then a row and a kernel
    /// side more for the reads that run on). Returns `plane`.
    fn band(&self, x: &[f32], y0: usize, y1: usize, band: &mut Vec<f32>) -> usize {
        let Shape {
            in_channels,
            height: h,
            width: w,
            side,
            ..
        } = self.shape;
        let (pad, row) = (self.pad(), self.padded_row());
        let (plane, rows) = self.band_rows(y0, y1);
        band.clear();
        band.resize(in_channels * plane + row + side, 0.0);
        for c in 0..in_channels {
            for y in rows.clone() {
                let at = c * plane + (y + pad - y0) * row + pad;
                band[at..at + w].copy_from_slice(&x[(c * h + y) * w..][..w]);
            }
        }
        plane
    }

    /// Blocks `b0..b1` over output rows `y0..y1` of a bordered layer, from `input` (its rows
    /// from `y0` on): whole rows of the bordered planes into a scratch buffer, then copied out
    /// row by row (the columns past the output's width dropped) with the addend.
    fn fill_rows(
        &self,
        args: &BlockArgs,
        input: Reads<f32>,
        (b0, b1): (usize, usize),
        (y0, y1): (usize, usize),
        out: OutPlanes,
    ) {
        let kernel = self.kernel();
        let width = kernel.width();
        let (out_h, out_w) = self.out_hw();
        let hw = out_h * out_w;
        let row = self.padded_row();
        let len = (y1 - y0) * row;
        let channels = |b: usize| self.shape.out_channels - b * ROWS;
        let group: Vec<Block> = (b0..b1)
            .map(|b| self.block(args, input, b, channels(b)))
            .collect();
        let rows_here = (channels(b0)).min((b1 - b0) * ROWS);
        SCRATCH.with_borrow_mut(|scratch| {
            if scratch.len() < rows_here * len {
                scratch.resize(rows_here * len, 0.0);
            }
            let planes = OutPlanes::new(scratch);
            for p0 in (0..len).step_by(width) {
                for (i, block) in group.iter().enumerate() {
                    // SAFETY: the scratch buffer is this task's own.
                    unsafe {
                        kernel.run(
                            block,
                            p0,
                            width.min(len - p0),
                            planes.skip(i * ROWS * len),
                            len,
                        )
                    };
                }
            }
            for (i, c) in (b0 * ROWS..b0 * ROWS + rows_here).enumerate() {
                for y in y0..y1 {
                    let src = &scratch[i * len + (y - y0) * row..][..out_w];
                    let at = c * hw + y * out_w;
                    // SAFETY: this task alone writes rows y0..y1 of channels of blocks b0..b1.
                    let dst = unsafe { out.run_mut(at, out_w) };
                    match args.addend {
                        Some(a) => {
                            for ((d, s), a) in dst.iter_mut().zip(src).zip(&a[at..]) {
                                *d = s + a;
                            }
                        }
                        None => dst.copy_from_slice(src),
                    }
                }
            }
        })
    }
}

thread_local! {
    /// Each thread's scratch buffer for runs of bordered positions, kept between calls.
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    /// Each thread's band of bordered rows ([`DirectConv::band`]).
    static BAND: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// How [`DirectConv::tiling`] cut one evaluation: `runs` runs of `run` positions times
/// `groups` groups of the `blocks` output-channel blocks.
struct Tiling {
    run: usize,
    runs: usize,
    groups: usize,
    blocks: usize,
}

/// The sizes that decide how work is cut (tests shrink them to cut small layers too).
#[derive(Clone, Copy)]
struct Tuning {
    parallel_macs: usize,
    parallel_copy: usize,
    tasks_per_thread: usize,
    /// Input bytes of a 1x1 layer's tile of positions ([`DirectConv::position_tile`]).
    tile_bytes: usize,
}

const TUNING: Tuning = Tuning {
    parallel_macs: PARALLEL_MACS,
    parallel_copy: PARALLEL_COPY,
    tasks_per_thread: TASKS_PER_THREAD,
    tile_bytes: TILE_BYTES,
};

thread_local! {
    /// This thread's sizes: [`TUNING`] unless a test or [`with_conv_cuts`] sets others.
    static THREAD_TUNING: std::cell::Cell<Tuning> = const { std::cell::Cell::new(TUNING) };
}

/// The sizes in force on this thread (the one that evaluates a layer decides how it is cut).
fn tuning() -> Tuning {
    THREAD_TUNING.get()
}

/// How layers are cut, as [`with_conv_cuts`] sets them.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvCuts {
    /// Tasks each thread gets per layer.
    pub tasks_per_thread: usize,
    /// Input bytes of a 1x1 layer's tile of positions.
    pub tile_bytes: usize,
}

impl ConvCuts {
    /// What hgpose ships.
    pub const SHIPPED: ConvCuts = ConvCuts {
        tasks_per_thread: TASKS_PER_THREAD,
        tile_bytes: TILE_BYTES,
    };
}

/// Runs `f` with each layer evaluated on this thread cut as `cuts` says, for
/// `benches/conv_tuning.rs`: on a machine as noisy as a shared VM only settings alternated in
/// one process can be compared.
#[doc(hidden)]
pub fn with_conv_cuts<R>(cuts: ConvCuts, f: impl FnOnce() -> R) -> R {
    let cut = |previous| Tuning {
        tasks_per_thread: cuts.tasks_per_thread.max(1),
        tile_bytes: cuts.tile_bytes,
        ..previous
    };
    with_thread_tuning(cut, f)
}

/// Runs `f` with this thread's sizes set to `change(current)`, then puts the current back.
fn with_thread_tuning<R>(change: impl FnOnce(Tuning) -> Tuning, f: impl FnOnce() -> R) -> R {
    let previous = THREAD_TUNING.get();
    THREAD_TUNING.set(change(previous));
    let out = f();
    THREAD_TUNING.set(previous);
    out
}

/// Multiply-adds below which a convolution stays on one thread: a job on the [`crate::spin_team`]
/// costs a few microseconds to hand out and gather.
const PARALLEL_MACS: usize = 1 << 19;
/// Input values below which the bordered copy stays on one thread.
const PARALLEL_COPY: usize = 1 << 15;
/// Tasks a thread gets. Each task's input comes from the core that wrote it: cut finer, the
/// layers lost more to that than they gained (3x3 32->32 over 32x32 on two threads: 1.47x in
/// two runs, 1.36x in four; the 3x3 64->64 layer over 64x64 ran 0.79x as fast in ten). Whole
/// models on two threads, settings alternated in one process (`cargo bench --bench
/// conv_tuning`): 2, 4 and 8 tasks a thread took 1.04x, 1.07x and 1.11x the median time of one
/// on the default model, and 1.03x, 1.02x and 1.09x on 2x256. Finer tasks did not make up for
/// a helper that falls behind.
const TASKS_PER_THREAD: usize = 1;

/// A quarter of a core's 2 MB L2. Against the order before tiles (every block per kernel
/// width), alternated in one process (`cargo bench --bench conv_tuning`) on this noisy VM, the
/// old order took 1.07x the median time on the default model (1 thread), and 1.09x, 1.03x
/// (1 thread) and 1.03x (2 threads) on 2x256 in three runs; 128 KB and 1 MB tiles were within
/// the noise (±4%) of 512 KB.
const TILE_BYTES: usize = 512 << 10;

struct BlockArgs<'a> {
    /// The input as read in place, or bordered; the raw input when `bands`.
    reads: Reads<'a, f32>,
    weights: &'a [f32],
    bias: &'a [f32],
    addend: Option<&'a [f32]>,
    /// Each task borders the rows it reads ([`DirectConv::band`]).
    bands: bool,
}

/// Weights `[out][steps]` (OIHW flattened) as blocks of [`ROWS`] channels, each step's
/// `ROWS` weights together; channels past the last are zero.
pub fn pack_weights(weights: &[f32], out_channels: usize) -> Vec<f32> {
    let steps = weights.len() / out_channels;
    let blocks = out_channels.div_ceil(ROWS);
    let mut packed = vec![0f32; blocks * steps * ROWS];
    for (o, row) in weights.chunks_exact(steps).enumerate() {
        let (b, r) = (o / ROWS, o % ROWS);
        for (t, w) in row.iter().enumerate() {
            packed[(b * steps + t) * ROWS + r] = *w;
        }
    }
    packed
}

impl PlanOp for DirectConv {
    const NAME: &'static str = "DirectConv";

    fn info_lines(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "{}, relu {}, addend {}, {}",
            self.shape(),
            self.relu,
            self.with_addend,
            self.kernel_name()
        )])
    }

    fn run(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let wanted = 3 + self.with_addend as usize;
        anyhow::ensure!(inputs.len() == wanted, "DirectConv takes {wanted} inputs");
        let hw = self.shape.height * self.shape.width;
        let (out_h, out_w) = self.out_hw();
        let out_hw = out_h * out_w;
        let views: Vec<_> = inputs
            .iter()
            .map(|t| t.try_as_plain_ram())
            .collect::<TractResult<_>>()?;
        let slices: Vec<&[f32]> = views
            .iter()
            .map(|v| v.as_slice::<f32>())
            .collect::<TractResult<_>>()?;
        let (x, weights, bias) = (slices[0], slices[1], slices[2]);
        let addend = slices.get(3).copied();
        let blocks = self.shape.out_channels.div_ceil(ROWS);
        let steps = self.shape.in_channels * self.shape.side * self.shape.side;
        anyhow::ensure!(
            x.len() == self.shape.in_channels * hw
                && weights.len() == blocks * steps * ROWS
                && bias.len() == blocks * ROWS
                && addend.is_none_or(|a| a.len() == self.shape.out_channels * out_hw)
                && self.out_shape.iter().product::<usize>() == self.shape.out_channels * out_hw,
            "DirectConv: inputs do not match {self:?}"
        );
        let threads = executor_threads();
        let tiling = self.tiling(threads);
        // A stride-1 bordered layer whose tasks each have their own rows borders them itself,
        // just before reading them ([`DirectConv::band`]); others read one bordered copy.
        let bands = !self.in_place() && self.shape.stride == 1 && tiling.groups == 1;
        let bordered = match self.in_place() || bands {
            true => None,
            false => Some(self.bordered(x, threads)?),
        };
        let offsets = self.offsets(self.shape.in_channels);
        let args = BlockArgs {
            reads: Reads::new(bordered.as_deref().unwrap_or(x), &offsets),
            weights,
            bias,
            addend,
            bands,
        };
        let mut output = unsafe { Tensor::uninitialized_dt(DatumType::F32, &self.out_shape)? };
        {
            let mut plain = output.try_as_plain_ram_mut()?;
            let out = OutPlanes::new(plain.as_slice_mut::<f32>()?);
            let tasks = tiling.runs * tiling.groups;
            for_each_task(tasks, &|t| self.fill_tile(&args, &tiling, t, out))?;
        }
        Ok(tvec!(output.into_tvalue()))
    }

    fn facts(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(f32::fact(&*self.out_shape)))
    }

    fn costs(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        Ok(tvec!((Cost::FMA(DatumType::F32), self.macs().to_dim())))
    }
}

plan_op!(DirectConv);

mod swap;
#[cfg(test)]
use swap::*;
pub use swap::{available, swap_in};

#[cfg(test)]
mod tests;
