//! What hgpose's direct convolutions (f32 [`super::direct_conv`], int8
//! [`super::direct_conv_i8`]) share: the geometry of a "same"-padded square kernel of odd side
//! with stride 1 or 2 over one NCHW image, and how such a convolution is recognised in tract's
//! decluttered graph.
//!
//! The input planes are read bordered (stride 2 splits them into four phase planes, so that
//! each output position reads each phase at consecutive positions), and an output position
//! covers a whole row of the bordered plane, whose extra columns are computed and dropped.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, PaddingSpec};
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::nn::DataFormat;

/// The sizes everything else follows from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shape {
    pub in_channels: usize,
    pub out_channels: usize,
    /// The input's height and width.
    pub height: usize,
    pub width: usize,
    pub side: usize,
    pub stride: usize,
}

/// `3x3/1 64->128 over 64x64`: side, stride, channels and input size, as `--profile` lists
/// the direct convolutions.
impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let Shape {
            in_channels: i,
            out_channels: o,
            height: h,
            width: w,
            side: k,
            stride: s,
        } = self;
        write!(f, "{k}x{k}/{s} {i}->{o} over {h}x{w}")
    }
}

impl Geometry for Shape {
    fn shape(&self) -> Shape {
        *self
    }
}

/// The geometry of a direct convolution, from its [`Shape`].
pub trait Geometry {
    fn shape(&self) -> Shape;

    fn pad(&self) -> usize {
        self.shape().side / 2
    }

    /// Whether output positions are the input's own (1x1, stride 1: no border, no dropped
    /// columns).
    fn in_place(&self) -> bool {
        let s = self.shape();
        s.side == 1 && s.stride == 1
    }

    /// The output's height and width.
    fn out_hw(&self) -> (usize, usize) {
        let s = self.shape();
        let span = |d: usize| (d + 2 * self.pad() - s.side) / s.stride + 1;
        (span(s.height), span(s.width))
    }

    /// Positions in one row of a (phase) plane of the bordered input (the input's width for
    /// a layer read in place).
    fn padded_row(&self) -> usize {
        let s = self.shape();
        (s.width + 2 * self.pad()).div_ceil(s.stride)
    }

    /// Positions in one (phase) plane of the bordered input.
    fn padded_plane(&self) -> usize {
        let s = self.shape();
        (s.height + 2 * self.pad()).div_ceil(s.stride) * self.padded_row()
    }

    /// Where step `t` (input plane, tap row, tap column, in OIHW order) reads, in positions
    /// past the output position, over `planes` bordered input planes (channels, or groups of
    /// channels stored together).
    fn offsets(&self, planes: usize) -> Vec<usize> {
        self.offsets_over(planes, self.padded_plane())
    }

    /// [`Geometry::offsets`] over (phase) planes of `plane` positions each: a band of whole
    /// padded rows rather than the whole bordered input.
    fn offsets_over(&self, planes: usize, plane: usize) -> Vec<usize> {
        let Shape { side, stride, .. } = self.shape();
        let row = self.padded_row();
        let mut offsets = Vec::with_capacity(planes * side * side);
        for c in 0..planes {
            for dy in 0..side {
                for dx in 0..side {
                    let phase = (dy % stride) * stride + dx % stride;
                    offsets.push(
                        (c * stride * stride + phase) * plane + dy / stride * row + dx / stride,
                    );
                }
            }
        }
        offsets
    }

    /// For output rows `y0..y1` of a stride-1 layer: the positions in one plane of the band of
    /// padded rows they read (its first row is padded row `y0`), and the input rows inside it
    /// (input row `y` is the band's row `y + pad - y0`).
    fn band_rows(&self, y0: usize, y1: usize) -> (usize, std::ops::Range<usize>) {
        let (pad, h) = (self.pad(), self.shape().height);
        let plane = (y1 - y0 + 2 * pad) * self.padded_row();
        (plane, y0.saturating_sub(pad)..(y1 + pad).min(h))
    }

    fn macs(&self) -> usize {
        let s = self.shape();
        let (h, w) = self.out_hw();
        s.in_channels * s.side * s.side * s.out_channels * h * w
    }
}

/// The side and stride of an ungrouped NCHW `Conv` with a square odd kernel, "same" explicit
/// padding, no dilation and stride 1 or 2 (whatever its datum types).
pub fn same_padded(conv: &Conv) -> Option<(usize, usize)> {
    let spec = &conv.pool_spec;
    let side = spec.kernel_shape[..].first().copied()?;
    let ones = |v: &Option<TVec<usize>>| v.as_deref().is_none_or(|v| v.iter().all(|x| *x == 1));
    let strides = spec.strides.as_deref().unwrap_or(&[1, 1]);
    let stride = strides.first().copied().unwrap_or(1);
    let pad = side / 2;
    let same = match &spec.padding {
        PaddingSpec::Explicit(before, after) => before.iter().chain(after).all(|p| *p == pad),
        _ => false,
    };
    let plain = matches!(spec.data_format, DataFormat::NCHW | DataFormat::CHW)
        && conv.group == 1
        && conv.kernel_fmt == KernelFormat::OIHW
        && spec.kernel_shape[..] == [side, side]
        && side % 2 == 1
        && strides.iter().all(|s| *s == stride)
        && matches!(stride, 1 | 2)
        && ones(&spec.dilations)
        && same;
    plain.then_some((side, stride))
}

/// The shape of a [`same_padded`] `Conv` node over `dt` images whose output has the size that
/// implies.
pub fn conv_shape(model: &TypedModel, node: &TypedNode, dt: DatumType) -> Option<Shape> {
    let conv = node.op_as::<Conv>()?;
    let (side, stride) = same_padded(conv)?;
    let (in_channels, height, width) = chw_of(model.outlet_fact(node.inputs[0]).ok()?, dt)?;
    let shape = Shape {
        in_channels,
        out_channels: conv.pool_spec.output_channels,
        height,
        width,
        side,
        stride,
    };
    let (out_h, out_w) = shape.out_hw();
    (chw_of(&node.outputs[0].fact, dt)? == (shape.out_channels, out_h, out_w)).then_some(shape)
}

/// The shape of a 1x1 convolution as tract's declutter leaves it: an `EinSum` of a `dt`
/// image `[.., I, H, W]` and `[O, I]` filters (then any quantization parameters) into
/// `[.., O, H, W]`, the leading axes (batch, stack) of 1.
pub fn pointwise_shape(model: &TypedModel, node: &TypedNode, dt: DatumType) -> Option<Shape> {
    let einsum = node.op_as::<EinSum>()?;
    let expr = einsum.axes.to_string();
    let (inputs, output) = expr.split_once("->")?;
    let mut operands = inputs.split(',');
    let (image, filters) = (operands.next()?, operands.next()?);
    if !(image.ends_with("IHW") && filters == "OI" && output.ends_with("OHW")) {
        return None;
    }
    let (in_channels, height, width) = chw_of(model.outlet_fact(node.inputs[0]).ok()?, dt)?;
    let (out_channels, h, w) = chw_of(&node.outputs[0].fact, dt)?;
    ((h, w) == (height, width)).then_some(Shape {
        in_channels,
        out_channels,
        height,
        width,
        side: 1,
        stride: 1,
    })
}

/// C, H, W of a `[.., C, H, W]` fact of type `dt` (or its quantized form) whose leading axes
/// (batch, stack) are all 1.
pub fn chw_of(fact: &TypedFact, dt: DatumType) -> Option<(usize, usize, usize)> {
    if fact.datum_type.unquantized() != dt {
        return None;
    }
    match fact.shape.as_concrete()? {
        [ones @ .., c, h, w] if ones.iter().all(|d| *d == 1) => Some((*c, *h, *w)),
        _ => None,
    }
}

/// What a layer's blocks read: the input as laid out, where each step reads in it (in
/// positions past the output position), and the farthest of those, which bounds the reads.
#[derive(Clone, Copy)]
pub struct Reads<'a, T> {
    pub input: &'a [T],
    pub offsets: &'a [usize],
    pub max_offset: usize,
}

impl<'a, T> Reads<'a, T> {
    pub fn new(input: &'a [T], offsets: &'a [usize]) -> Self {
        let max_offset = offsets.iter().copied().max().unwrap_or(0);
        Reads {
            input,
            offsets,
            max_offset,
        }
    }

    /// The same reads from element `at` of the input on.
    pub fn from(self, at: usize) -> Self {
        Reads {
            input: &self.input[at..],
            ..self
        }
    }
}

/// Output planes the direct convolutions write through a raw pointer, so that threads can fill
/// disjoint positions of the same planes at once (a `&mut` slice each would overlap).
#[derive(Clone, Copy)]
pub struct Planes<'a, T> {
    pub(crate) ptr: *mut T,
    pub(crate) len: usize,
    _borrow: std::marker::PhantomData<&'a mut [T]>,
}

// SAFETY: writes through it are to disjoint positions (`Kernel::run`'s and `run_mut`'s contracts).
unsafe impl<T: Send> Send for Planes<'_, T> {}
unsafe impl<T: Send> Sync for Planes<'_, T> {}

impl<'a, T> Planes<'a, T> {
    pub fn new(out: &'a mut [T]) -> Self {
        Planes {
            ptr: out.as_mut_ptr(),
            len: out.len(),
            _borrow: std::marker::PhantomData,
        }
    }

    /// The planes from `at` on.
    pub fn skip(self, at: usize) -> Self {
        assert!(at <= self.len, "output overrun");
        Planes {
            // SAFETY: within the borrowed slice (asserted).
            ptr: unsafe { self.ptr.add(at) },
            len: self.len - at,
            _borrow: self._borrow,
        }
    }

    /// Values `at..at + n`, to write.
    ///
    /// # Safety
    /// No other thread reads or writes them while the slice lives.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn run_mut(&self, at: usize, n: usize) -> &mut [T] {
        assert!(at + n <= self.len, "output overrun");
        std::slice::from_raw_parts_mut(self.ptr.add(at), n)
    }
}
