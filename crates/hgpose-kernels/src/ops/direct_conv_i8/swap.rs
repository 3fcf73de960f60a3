//! Finding the quantized convolutions (and the dequantization and add after a 1x1 one) in a
//! decluttered graph, and putting [`DirectConvI8`]s in their place.

use super::*;
use crate::ops::conv_geometry::{conv_shape, pointwise_shape, Shape};
use crate::ops::conv_i8_kernel::{Kernel, ROWS};
use crate::ops::sole_successor;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::cnn::Conv;
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::math::Add;
use tract_onnx::tract_core::ops::quant::DequantizeLinearF32;

/// A quantized convolution found in the decluttered graph.
pub(super) struct Found {
    pub(super) shape: Shape,
    /// The 9 inputs past the image: weights, bias, x0, x scale, w0, w scale, y0, y scale.
    pub(super) params: [OutletId; 8],
}

pub(super) fn params_of(node: &TypedNode) -> Option<[OutletId; 8]> {
    match &node.inputs[..] {
        [_, rest @ ..] => rest.try_into().ok(),
        _ => None,
    }
}

/// A "same"-padded, ungrouped quantized `Conv` with a square odd kernel, stride 1 or 2.
pub(super) fn as_conv(model: &TypedModel, node: &TypedNode) -> Option<Found> {
    node.op_as::<Conv>()?.q_params?;
    Some(Found {
        shape: conv_shape(model, node, DatumType::U8)?,
        params: params_of(node)?,
    })
}

/// A quantized 1x1 convolution as tract's declutter leaves it ([`pointwise_shape`]) over u8.
pub(super) fn as_pointwise(model: &TypedModel, node: &TypedNode) -> Option<Found> {
    node.op_as::<EinSum>()?.q_params?;
    Some(Found {
        shape: pointwise_shape(model, node, DatumType::U8)?,
        params: params_of(node)?,
    })
}

/// A constant input's values as `T` (through tract's casts), when it is a constant.
pub(super) fn constant<T: Datum>(model: &TypedModel, outlet: OutletId) -> Option<Vec<T>> {
    let konst = model.outlet_fact(outlet).ok()?.konst.clone()?;
    let plain = konst.cast_to_dt(konst.datum_type().unquantized()).ok()?;
    let cast = plain.cast_to::<T>().ok()?;
    Some(cast.try_as_plain_ram().ok()?.as_slice::<T>().ok()?.to_vec())
}

/// A [`DirectConvI8`] and its constant inputs: packed weights, corrected bias, multipliers.
pub(super) struct Swap {
    pub(super) op: DirectConvI8,
    pub(super) packed: Vec<i32>,
    pub(super) bias: Vec<i32>,
    pub(super) scales: Vec<f32>,
}

/// The op and its three constant inputs for `found`, when its parameters are what the kernel
/// takes: constant i8 weights of the right shape with zero point 0, one input and one output
/// zero point and scale, one weight scale or one per output channel, a bias or none.
pub(super) fn direct_op(
    model: &TypedModel,
    node: &TypedNode,
    found: &Found,
    kernel: Kernel,
) -> Option<Swap> {
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
pub(super) struct Chain {
    pub(super) last: usize,
    pub(super) addend_of: Option<(usize, usize)>,
}

pub(super) fn chain_after(
    model: &TypedModel,
    id: usize,
    op: &mut DirectConvI8,
    taken: &[usize],
) -> Chain {
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

pub(super) fn swap_in_with(model: &mut TypedModel, kernel: Kernel) -> TractResult<usize> {
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
