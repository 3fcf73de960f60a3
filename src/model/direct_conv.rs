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
//! extra columns per row are computed and dropped. The kernel ([`super::f32_conv_kernel`])
//! holds 6 channels x 64 positions in registers. The bias, a ReLU and a residual add that
//! follow are done as each result is stored. On the default model the convolutions then ran
//! at 25-45 GMAC/s, 3x3 ones fastest.
//!
//! The rewrite runs on the decluttered model, where tract has already folded each batch norm
//! that follows a convolution into its weights and turned 1x1 convolutions into `EinSum`s, and
//! before tract optimizes the rest. Sums run in another order than tract's, so values differ by
//! float rounding (tests: 1e-5 of the range).

use super::f32_conv_kernel::{Block, Kernel, ROWS};
use tract_linalg::multithread::{current_tract_executor, Executor};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, PaddingSpec};
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::nn::DataFormat;

/// A convolution of one NCHW image with a square kernel of odd `side`, "same" zero padding
/// (`side / 2`) and stride 1 or 2. Inputs: the image, the packed weights ([`pack_weights`]),
/// the bias padded to whole blocks, and the addend when `with_addend`.
///
/// Stride 2 (the paper's 7x7 stem) splits the bordered input into four phase planes (even
/// and odd rows x even and odd columns): each output position then reads each phase at
/// consecutive positions, as a stride-1 convolution does.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DirectConv {
    pub in_channels: usize,
    pub out_channels: usize,
    /// The input's height and width.
    pub height: usize,
    pub width: usize,
    pub side: usize,
    pub stride: usize,
    pub relu: bool,
    pub with_addend: bool,
    /// The output's shape as the graph has it (`[1, C, H, W]` or `[C, H, W]`).
    pub out_shape: TVec<usize>,
    pub kernel: KernelChoice,
}

/// [`Kernel`] as an op field (hashable; the portable loops for tests on any CPU).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KernelChoice(pub bool);

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

    fn pad(&self) -> usize {
        self.side / 2
    }

    /// Whether the input is read where it lies (a plain 1x1 convolution).
    fn in_place(&self) -> bool {
        self.side == 1 && self.stride == 1
    }

    /// The output's height and width.
    fn out_hw(&self) -> (usize, usize) {
        let span = |d: usize| (d + 2 * self.pad() - self.side) / self.stride + 1;
        (span(self.height), span(self.width))
    }

    /// Values in one row of a (phase) plane of the bordered input, and in one such plane.
    fn padded_row(&self) -> usize {
        (self.width + 2 * self.pad()).div_ceil(self.stride)
    }

    fn padded_plane(&self) -> usize {
        (self.height + 2 * self.pad()).div_ceil(self.stride) * self.padded_row()
    }

    /// Where step `t` (input channel, tap row, tap column, in OIHW order) reads, relative to
    /// the output position.
    fn offsets(&self) -> Vec<usize> {
        let s = self.stride;
        let (row, plane) = if self.in_place() {
            (self.width, self.height * self.width)
        } else {
            (self.padded_row(), self.padded_plane())
        };
        let mut offsets = Vec::with_capacity(self.in_channels * self.side * self.side);
        for c in 0..self.in_channels {
            for dy in 0..self.side {
                for dx in 0..self.side {
                    let phase = (dy % s) * s + dx % s;
                    offsets.push((c * s * s + phase) * plane + dy / s * row + dx / s);
                }
            }
        }
        offsets
    }

    fn macs(&self) -> usize {
        let (h, w) = self.out_hw();
        self.in_channels * self.side * self.side * self.out_channels * h * w
    }

    /// The input with a zero border of `pad` around each channel plane, each split into its
    /// `stride x stride` phases.
    fn bordered(&self, x: &[f32]) -> Vec<f32> {
        let (h, w, pad, s) = (self.height, self.width, self.pad(), self.stride);
        let (row, plane) = (self.padded_row(), self.padded_plane());
        // Reads run on past the last plane through the dropped columns, by less than a row
        // and a kernel side.
        let mut out = vec![0f32; self.in_channels * s * s * plane + row + self.side];
        for (dst, src) in out.chunks_mut(s * s * plane).zip(x.chunks_exact(h * w)) {
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
        }
        out
    }

    /// Block `b`'s weights, bias and epilogue over `args.input`, for `rows` channels.
    fn block<'a>(&self, args: &BlockArgs<'a>, b: usize, rows: usize) -> Block<'a> {
        let steps = args.offsets.len();
        let mut bias = [0f32; ROWS];
        bias.copy_from_slice(&args.bias[b * ROWS..(b + 1) * ROWS]);
        Block {
            input: args.input,
            offsets: args.offsets,
            max_offset: args.max_offset,
            weights: &args.weights[b * steps * ROWS..(b + 1) * steps * ROWS],
            bias,
            rows,
            relu: self.relu,
            addend: None,
        }
    }

    /// Fills the output planes of the blocks from `first` on (`chunk`: their channels'
    /// planes, whole). Positions outside, blocks inside: one run of input positions, read
    /// for the first block, is still in L1 for the others.
    fn fill_group(&self, args: &BlockArgs, first: usize, chunk: &mut [f32]) {
        let kernel = self.kernel();
        let width = kernel.width();
        let (out_h, out_w) = self.out_hw();
        let hw = out_h * out_w;
        let channels = chunk.len() / hw;
        let blocks = channels.div_ceil(ROWS);
        let addend = args
            .addend
            .map(|a| &a[first * ROWS * hw..first * ROWS * hw + chunk.len()]);
        let rows = |b: usize| (channels - b * ROWS).min(ROWS);
        let mut group: Vec<Block> = (0..blocks)
            .map(|b| self.block(args, first + b, rows(b)))
            .collect();
        if self.in_place() {
            for (b, block) in group.iter_mut().enumerate() {
                block.addend = addend.map(|a| &a[b * ROWS * hw..]);
            }
            for p0 in (0..hw).step_by(width) {
                for (b, block) in group.iter().enumerate() {
                    let out = &mut chunk[b * ROWS * hw..];
                    kernel.run(block, p0, width.min(hw - p0), out, hw);
                }
            }
            return;
        }
        // Positions over whole rows of the bordered planes (those past the output's width are
        // dropped), into a scratch buffer, then copied out row by row with the addend.
        let row = self.padded_row();
        let len = out_h * row;
        let mut scratch = vec![0f32; channels * len];
        for p0 in (0..len).step_by(width) {
            for (b, block) in group.iter().enumerate() {
                let out = &mut scratch[b * ROWS * len..];
                kernel.run(block, p0, width.min(len - p0), out, len);
            }
        }
        for r in 0..channels {
            for y in 0..out_h {
                let src = &scratch[r * len + y * row..][..out_w];
                let at = r * hw + y * out_w;
                let dst = &mut chunk[at..at + out_w];
                match addend {
                    Some(a) => {
                        for ((d, s), a) in dst.iter_mut().zip(src).zip(&a[at..]) {
                            *d = s + a;
                        }
                    }
                    None => dst.copy_from_slice(src),
                }
            }
        }
    }
}

struct BlockArgs<'a> {
    input: &'a [f32],
    offsets: &'a [usize],
    max_offset: usize,
    weights: &'a [f32],
    bias: &'a [f32],
    addend: Option<&'a [f32]>,
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

impl Op for DirectConv {
    fn name(&self) -> StaticName {
        "DirectConv".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "{}x{}/{} {}->{} over {}x{}, relu {}, addend {}, {}",
            self.side,
            self.side,
            self.stride,
            self.in_channels,
            self.out_channels,
            self.height,
            self.width,
            self.relu,
            self.with_addend,
            self.kernel_name()
        )])
    }

    op_as_typed_op!();
}

impl EvalOp for DirectConv {
    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let wanted = 3 + self.with_addend as usize;
        anyhow::ensure!(inputs.len() == wanted, "DirectConv takes {wanted} inputs");
        let hw = self.height * self.width;
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
        let blocks = self.out_channels.div_ceil(ROWS);
        let steps = self.in_channels * self.side * self.side;
        anyhow::ensure!(
            x.len() == self.in_channels * hw
                && weights.len() == blocks * steps * ROWS
                && bias.len() == blocks * ROWS
                && addend.is_none_or(|a| a.len() == self.out_channels * out_hw)
                && self.out_shape.iter().product::<usize>() == self.out_channels * out_hw,
            "DirectConv: inputs do not match {self:?}"
        );
        let bordered = (!self.in_place()).then(|| self.bordered(x));
        let offsets = self.offsets();
        let args = BlockArgs {
            input: bordered.as_deref().unwrap_or(x),
            max_offset: offsets.iter().copied().max().unwrap_or(0),
            offsets: &offsets,
            weights,
            bias,
            addend,
        };
        let mut output = unsafe { Tensor::uninitialized_dt(DatumType::F32, &self.out_shape)? };
        {
            let mut plain = output.try_as_plain_ram_mut()?;
            let out = plain.as_slice_mut::<f32>()?;
            let blocks = self.out_channels.div_ceil(ROWS);
            let fill = |(g, chunk): (usize, &mut [f32]), per_group: usize| {
                self.fill_group(&args, g * per_group, chunk)
            };
            match current_tract_executor() {
                // Waking the pool costs about as much as 2 M multiply-adds here: 1x1 64->32
                // over 32x32 ran 0.55-0.64x as fast on two threads as on one, 3x3 32->32 1.1x,
                // 3x3 64->64 1.4-1.55x. One block a task: rayon evens out the threads' shares
                // (two halves of 11 blocks ran 0.83-1.42x).
                Executor::MultiThread(pool)
                    if pool.current_num_threads() > 1 && self.macs() >= 1 << 22 =>
                {
                    use rayon::prelude::*;
                    pool.install(|| {
                        out.par_chunks_mut(ROWS * out_hw)
                            .enumerate()
                            .for_each(|c| fill(c, 1))
                    })
                }
                _ => fill((0, out), blocks),
            }
        }
        Ok(tvec!(output.into_tvalue()))
    }

    op_out_of_plan!();
}

impl TypedOp for DirectConv {
    as_op!();

    fn output_facts(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(f32::fact(&*self.out_shape)))
    }

    fn cost(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        Ok(tvec!((Cost::FMA(DatumType::F32), self.macs().to_dim())))
    }
}

/// A convolution found in the decluttered graph: its geometry, weights (OIHW) and bias.
struct Found {
    input: OutletId,
    in_channels: usize,
    out_channels: usize,
    height: usize,
    width: usize,
    side: usize,
    stride: usize,
    weights: Arc<Tensor>,
    bias: Vec<f32>,
}

/// C, H, W of an f32 `[.., C, H, W]` fact whose leading axes (batch, stack) are all 1.
fn chw(fact: &TypedFact) -> Option<(usize, usize, usize)> {
    if fact.datum_type != DatumType::F32 {
        return None;
    }
    match fact.shape.as_concrete()? {
        [ones @ .., c, h, w] if ones.iter().all(|d| *d == 1) => Some((*c, *h, *w)),
        _ => None,
    }
}

fn konst(model: &TypedModel, outlet: OutletId) -> Option<Arc<Tensor>> {
    let fact = model.outlet_fact(outlet).ok()?;
    (fact.datum_type == DatumType::F32)
        .then(|| fact.konst.clone())
        .flatten()
}

fn values(t: &Tensor) -> Option<Vec<f32>> {
    Some(t.try_as_plain_ram().ok()?.as_slice::<f32>().ok()?.to_vec())
}

/// A stride-1, "same"-padded, ungrouped f32 convolution with constant weights and bias.
fn as_conv(model: &TypedModel, node: &TypedNode) -> Option<Found> {
    let conv = node.op_as::<Conv>()?;
    let spec = &conv.pool_spec;
    let side = spec.kernel_shape[..].first().copied()?;
    let ones = |v: &Option<TVec<usize>>| v.as_deref().is_none_or(|v| v.iter().all(|x| *x == 1));
    let strides = spec.strides.as_deref().unwrap_or(&[1, 1]);
    let stride = strides.first().copied().unwrap_or(1);
    if strides.iter().any(|s| *s != stride) {
        return None;
    }
    let pad = side / 2;
    let same = match &spec.padding {
        PaddingSpec::Explicit(before, after) => before.iter().chain(after).all(|p| *p == pad),
        _ => false,
    };
    let nchw = matches!(spec.data_format, DataFormat::NCHW | DataFormat::CHW);
    let plain = nchw
        && conv.group == 1
        && conv.q_params.is_none()
        && conv.kernel_fmt == KernelFormat::OIHW
        && spec.kernel_shape[..] == [side, side]
        && side % 2 == 1
        && matches!(stride, 1 | 2)
        && ones(&spec.dilations)
        && same
        && node.inputs.len() == 3;
    if !plain {
        return None;
    }
    let (in_channels, height, width) = chw(model.outlet_fact(node.inputs[0]).ok()?)?;
    let weights = konst(model, node.inputs[1])?;
    let out_channels = spec.output_channels;
    if weights.shape() != [out_channels, in_channels, side, side] {
        return None;
    }
    let out = chw(&node.outputs[0].fact)?;
    let span = |d: usize| (d + 2 * pad - side) / stride + 1;
    if out != (spec.output_channels, span(height), span(width)) {
        return None;
    }
    let bias = values(&*konst(model, node.inputs[2])?)?;
    let bias = match bias.len() {
        1 => vec![bias[0]; out_channels],
        n if n == out_channels => bias,
        _ => return None,
    };
    Some(Found {
        input: node.inputs[0],
        in_channels,
        out_channels,
        height,
        width,
        side,
        stride,
        weights,
        bias,
    })
}

/// A 1x1 convolution as tract's declutter leaves it: `EinSum` of an `[.., I, H, W]` image and
/// constant `[O, I]` weights into `[.., O, H, W]` (leading axes of 1).
fn as_pointwise(model: &TypedModel, node: &TypedNode) -> Option<Found> {
    let einsum = node.op_as::<EinSum>()?;
    let expr = einsum.axes.to_string();
    let (inputs, output) = expr.split_once("->")?;
    let (image, filters) = inputs.split_once(',')?;
    // Image and output may carry unit axes ahead (batch, stack): `chw` checks they are 1.
    let known = image.ends_with("IHW")
        && filters == "OI"
        && output.ends_with("OHW")
        && einsum.q_params.is_none()
        && einsum.operating_dt == DatumType::F32
        && node.inputs.len() == 2;
    if !known {
        return None;
    }
    let (in_channels, height, width) = chw(model.outlet_fact(node.inputs[0]).ok()?)?;
    let weights = konst(model, node.inputs[1])?;
    let out_channels = weights.shape().first().copied()?;
    let (o, h, w) = chw(&node.outputs[0].fact)?;
    if weights.shape() != [out_channels, in_channels] || (o, h, w) != (out_channels, height, width)
    {
        return None;
    }
    Some(Found {
        input: node.inputs[0],
        in_channels,
        out_channels,
        height,
        width,
        side: 1,
        stride: 1,
        weights,
        bias: vec![0.0; out_channels],
    })
}

/// The node that alone reads `node`'s output, when that output is not a model output.
fn sole_successor(model: &TypedModel, node: usize) -> Option<usize> {
    let outputs = model.output_outlets().ok()?;
    match &model.node(node).outputs[..] {
        [output] if output.successors.len() == 1 && !outputs.contains(&node.into()) => {
            Some(output.successors[0].node)
        }
        _ => None,
    }
}

/// What follows a convolution and is done as its results are stored.
#[derive(Default)]
struct Epilogue {
    /// The last node taken in (its output becomes the op's).
    last: usize,
    relu: bool,
    addend: Option<OutletId>,
}

/// A binary op's name and its other input, for a node reading `from` in one slot.
fn binary(model: &TypedModel, node: usize, from: usize) -> Option<(&'static str, OutletId)> {
    let node = model.node(node);
    let bin = node.op_as::<TypedBinOp>()?;
    let [a, b] = node.inputs[..] else {
        return None;
    };
    let other = match (a.node == from, b.node == from) {
        (true, false) => b,
        (false, true) => a,
        _ => return None,
    };
    Some((bin.0.name(), other))
}

/// Takes in the chain after `found` (node `id`): adds of a per-channel constant (into the
/// bias), then a ReLU, then an add of a same-shaped tensor.
fn epilogue(model: &TypedModel, id: usize, found: &mut Found) -> Epilogue {
    let mut epi = Epilogue {
        last: id,
        ..Default::default()
    };
    while let Some(next) = sole_successor(model, epi.last) {
        let Some((name, other)) = binary(model, next, epi.last) else {
            break;
        };
        let out_fact = &model.node(epi.last).outputs[0].fact;
        let next_fact = &model.node(next).outputs[0].fact;
        let Ok(other_fact) = model.outlet_fact(other) else {
            break;
        };
        if next_fact.shape != out_fact.shape || next_fact.datum_type != DatumType::F32 {
            break;
        }
        let rank = out_fact.rank();
        match (name, konst(model, other)) {
            ("Add", Some(k)) if !epi.relu && epi.addend.is_none() => {
                // Broadcast from the right: only the third axis from the end (C) may be > 1.
                let per_channel = k.rank() <= rank
                    && k.shape().iter().rev().enumerate().all(|(from_end, d)| {
                        *d == 1 || (from_end == 2 && *d == found.out_channels)
                    });
                let Some(v) = values(&k).filter(|_| per_channel) else {
                    break;
                };
                for (o, b) in found.bias.iter_mut().enumerate() {
                    *b += if v.len() == 1 { v[0] } else { v[o] };
                }
            }
            ("Max", Some(k)) if !epi.relu && epi.addend.is_none() => {
                if values(&k).as_deref() != Some(&[0.0]) {
                    break;
                }
                epi.relu = true;
            }
            ("Add", None) if epi.addend.is_none() && other_fact.shape == out_fact.shape => {
                if other_fact.datum_type != DatumType::F32 {
                    break;
                }
                epi.addend = Some(other);
            }
            _ => break,
        }
        epi.last = next;
    }
    epi
}

/// Whether [`swap_in`] does anything here: a native kernel, and not turned off with
/// `HGPOSE_DIRECT_CONV=0` (to time tract's own convolutions against; `=avx2` picks the AVX2
/// kernel on AVX-512 CPUs).
pub fn available() -> bool {
    Kernel::native().is_some() && std::env::var("HGPOSE_DIRECT_CONV").as_deref() != Ok("0")
}

/// Replaces the f32 1x1 and 3x3 convolutions of a decluttered model (and the bias, ReLU and
/// residual add after each) with [`DirectConv`] where this CPU has a native kernel; returns
/// how many.
pub fn swap_in(model: &mut TypedModel) -> TractResult<usize> {
    if !available() {
        return Ok(0);
    }
    swap_in_with(model, KernelChoice(true))
}

/// The first convolution [`swap_in`] takes, its epilogue and its output shape.
fn next_conv(model: &TypedModel) -> Option<(usize, Found, Epilogue, TVec<usize>)> {
    model.nodes().iter().find_map(|node| {
        let mut found = as_conv(model, node).or_else(|| as_pointwise(model, node))?;
        let epi = epilogue(model, node.id, &mut found);
        let shape = model.node(epi.last).outputs[0].fact.shape.as_concrete()?;
        Some((node.id, found, epi, shape.into()))
    })
}

fn swap_in_with(model: &mut TypedModel, kernel: KernelChoice) -> TractResult<usize> {
    let mut swapped = 0;
    // One at a time, the graph compacted after each: nodes taken in would otherwise linger as
    // readers and stop the next convolution's epilogue at a value they still read.
    while let Some((id, found, epi, out_shape)) = next_conv(model) {
        let weights = values(&found.weights).context("DirectConv: weights not f32")?;
        let weights = &weights[..];
        let packed = pack_weights(weights, found.out_channels);
        let mut bias = found.bias.clone();
        bias.resize(found.out_channels.div_ceil(ROWS) * ROWS, 0.0);
        let op = DirectConv {
            in_channels: found.in_channels,
            out_channels: found.out_channels,
            height: found.height,
            width: found.width,
            side: found.side,
            stride: found.stride,
            relu: epi.relu,
            with_addend: epi.addend.is_some(),
            out_shape,
            kernel,
        };
        let name = model.node(id).name.clone();
        let mut patch = TypedModelPatch::new(format!("direct conv {name}"));
        let mut inputs = tvec![patch.tap_model(model, found.input)?];
        inputs.push(patch.add_const(format!("{name}.packed"), tensor1(&packed))?);
        inputs.push(patch.add_const(format!("{name}.bias_blocks"), tensor1(&bias))?);
        if let Some(addend) = epi.addend {
            inputs.push(patch.tap_model(model, addend)?);
        }
        let wire = patch.wire_node(format!("{name}.direct"), op, &inputs)?[0];
        patch.shunt_outside(model, OutletId::new(epi.last, 0), wire)?;
        patch.apply(model)?;
        model.compact()?;
        swapped += 1;
    }
    Ok(swapped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_models::patterned_input;
    use crate::model::threads::on_two_threads;
    use tract_onnx::tract_core::ops::cnn::PoolSpec;

    fn pattern(n: usize, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 7919) % 101) as f32 / 50.0 - 1.0) * scale)
            .collect()
    }

    /// conv (side x side / stride, c -> o over h x w), + per-channel constant, ReLU, + skip:
    /// tract's graph, decluttered.
    fn residual_tail(
        side: usize,
        stride: usize,
        c: usize,
        o: usize,
        h: usize,
        w: usize,
    ) -> TypedModel {
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([1, c, h, w])).unwrap();
        let pad = side / 2;
        let spec = PoolSpec::new(
            DataFormat::NCHW,
            tvec![side, side],
            PaddingSpec::Explicit(tvec![pad, pad], tvec![pad, pad]),
            None,
            Some(tvec![stride, stride]),
            c,
            o,
        );
        let conv = Conv::new(spec, KernelFormat::OIHW, 1, None);
        let k = Tensor::from_shape(&[o, c, side, side], &pattern(o * c * side * side, 0.3));
        let k = model.add_const("k", k.unwrap()).unwrap();
        let b = model.add_const("b", tensor1(&pattern(o, 0.5))).unwrap();
        let y = model.wire_node("conv", conv, &[x, k, b]).unwrap()[0];
        let shift = Tensor::from_shape(&[1, o, 1, 1], &pattern(o, 0.2)).unwrap();
        let shift = model.add_const("shift.k", shift).unwrap();
        let add = tract_onnx::tract_core::ops::math::add();
        let y = model.wire_node("shift", add.clone(), &[y, shift]).unwrap()[0];
        let zero = model.add_const("zero", tensor4(&[[[[0f32]]]])).unwrap();
        let max = tract_onnx::tract_core::ops::math::max();
        let y = model.wire_node("relu", max, &[y, zero]).unwrap()[0];
        let out = model.outlet_fact(y).unwrap().clone();
        let skip_in = model.add_source("skip", out).unwrap();
        let y = model.wire_node("sum", add, &[y, skip_in]).unwrap()[0];
        model.select_output_outlets(&[y]).unwrap();
        model.into_decluttered().unwrap()
    }

    fn run(model: &TypedModel, c: usize, h: usize, w: usize) -> Vec<f32> {
        let x = patterned_input((1, c, h, w));
        let skip_shape = model
            .input_fact(1)
            .unwrap()
            .shape
            .as_concrete()
            .unwrap()
            .to_vec();
        let n = skip_shape.iter().product();
        let skip = Tensor::from_shape(&skip_shape, &pattern(n, 1.0)).unwrap();
        let plan = model.clone().into_runnable().unwrap();
        let out = plan
            .run(tvec!(x.into_tvalue(), skip.into_tvalue()))
            .unwrap();
        out[0]
            .try_as_plain_ram()
            .unwrap()
            .as_slice::<f32>()
            .unwrap()
            .to_vec()
    }

    fn compare(
        side: usize,
        stride: usize,
        (c, o, h, w): (usize, usize, usize, usize),
        kernel: KernelChoice,
    ) {
        let theirs = residual_tail(side, stride, c, o, h, w);
        let mut ours = theirs.clone();
        assert_eq!(swap_in_with(&mut ours, kernel).unwrap(), 1);
        let ops: Vec<_> = ours.nodes().iter().map(|n| n.op().name()).collect();
        assert!(
            !ops.iter()
                .any(|op| op == "Add" || op == "Max" || op == "Conv"),
            "bias, ReLU and skip are taken in: {ops:?}"
        );
        let expected = run(&theirs.into_optimized().unwrap(), c, h, w);
        let ours = ours.into_optimized().unwrap();
        let range = expected.iter().fold(0f32, |m, x| m.max(x.abs()));
        assert!(range > 0.0);
        for got in [run(&ours, c, h, w), on_two_threads(|| run(&ours, c, h, w))] {
            let worst = expected
                .iter()
                .zip(&got)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                worst <= 1e-5 * range,
                "{side}x{side}/{stride} {c}->{o} {h}x{w} {kernel:?}: off by {worst} (range {range})"
            );
        }
    }

    /// Shapes with partial channel blocks, tails shorter than a vector, and rows of 1 to 33.
    const SHAPES: [(usize, usize, usize, usize); 5] = [
        (8, 16, 33, 20),
        (5, 7, 9, 1),
        (3, 13, 4, 4),
        (16, 6, 2, 2),
        (4, 32, 64, 9),
    ];

    #[test]
    fn three_by_three_convolutions_match_tract() {
        for shape in SHAPES {
            compare(3, 1, shape, KernelChoice(true));
            compare(3, 1, shape, KernelChoice(false));
        }
    }

    #[test]
    fn one_by_one_convolutions_match_tract() {
        for shape in SHAPES {
            compare(1, 1, shape, KernelChoice(true));
            compare(1, 1, shape, KernelChoice(false));
        }
    }

    /// The paper's stem (7x7, stride 2) and odd sizes, through the phase planes.
    #[test]
    fn strided_convolutions_match_tract() {
        for shape in [(3, 64, 32, 32), (3, 7, 13, 9), (5, 8, 6, 7)] {
            compare(7, 2, shape, KernelChoice(true));
            compare(7, 2, shape, KernelChoice(false));
            compare(3, 2, shape, KernelChoice(true));
        }
    }

    #[test]
    fn weights_are_packed_six_channels_a_step() {
        let weights: Vec<f32> = (0..7 * 2).map(|i| i as f32).collect();
        let packed = pack_weights(&weights, 7);
        assert_eq!(packed.len(), 2 * 2 * ROWS);
        assert_eq!(&packed[..ROWS], &[0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(&packed[ROWS..2 * ROWS], &[1.0, 3.0, 5.0, 7.0, 9.0, 11.0]);
        assert_eq!(
            &packed[2 * ROWS..3 * ROWS],
            &[12.0, 0.0, 0.0, 0.0, 0.0, 0.0]
        );
    }

    /// The fixture hourglass (256x256) with every convolution swapped: heatmaps within float
    /// rounding of tract's.
    #[test]
    fn the_fixture_hourglass_matches_tract() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/fixtures");
        let typed = tract_onnx::onnx()
            .model_for_path(root.join("hg_s2_f32_stacked.onnx"))
            .unwrap()
            .into_typed()
            .unwrap()
            .into_decluttered()
            .unwrap();
        let mut ours = typed.clone();
        let swapped = swap_in_with(&mut ours, KernelChoice(true)).unwrap();
        let convs = typed
            .nodes()
            .iter()
            .filter(|n| n.op_is::<Conv>() || n.op_is::<EinSum>())
            .count();
        let left: Vec<String> = ours
            .nodes()
            .iter()
            .filter(|n| n.op_is::<Conv>() || n.op_is::<EinSum>())
            .map(|n| {
                format!(
                    "{} {:?} <- {:?}",
                    n.name,
                    n.op(),
                    ours.node_input_facts(n.id)
                )
            })
            .collect();
        assert_eq!(swapped, convs, "the 7x7 stem included; left: {left:#?}");
        let input = patterned_input((1, 3, 256, 256));
        let first = |m: TypedModel| crate::model::test_models::first_output(&m, &input);
        let expected = first(typed.into_optimized().unwrap());
        let got = first(ours.into_optimized().unwrap());
        let range = expected.iter().fold(0f32, |m, x| m.max(x.abs()));
        let worst = expected
            .iter()
            .zip(&got)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(worst <= 1e-4 * range, "off by {worst} (range {range})");
    }
}
