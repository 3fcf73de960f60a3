//! Finding the f32 convolutions (and the bias, ReLU and residual add after each) in a
//! decluttered graph, and putting [`DirectConv`]s in their place.

use super::*;
use crate::ops::conv_f32_kernel::ROWS;
use crate::ops::conv_geometry::{conv_shape, pointwise_shape, Shape};
use crate::ops::sole_successor;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::cnn::Conv;
use tract_onnx::tract_core::ops::einsum::EinSum;

/// A convolution found in the decluttered graph: its geometry, weights (OIHW) and bias.
pub(super) struct Found {
    pub(super) input: OutletId,
    pub(super) shape: Shape,
    pub(super) weights: Arc<Tensor>,
    pub(super) bias: Vec<f32>,
}

pub(super) fn konst(model: &TypedModel, outlet: OutletId) -> Option<Arc<Tensor>> {
    let fact = model.outlet_fact(outlet).ok()?;
    (fact.datum_type == DatumType::F32)
        .then(|| fact.konst.clone())
        .flatten()
}

pub(super) fn values(t: &Tensor) -> Option<Vec<f32>> {
    Some(t.try_as_plain_ram().ok()?.as_slice::<f32>().ok()?.to_vec())
}

/// A "same"-padded, ungrouped f32 convolution with constant weights and bias.
pub(super) fn as_conv(model: &TypedModel, node: &TypedNode) -> Option<Found> {
    let conv = node.op_as::<Conv>()?;
    if conv.q_params.is_some() || node.inputs.len() != 3 {
        return None;
    }
    let shape = conv_shape(model, node, DatumType::F32)?;
    let Shape {
        in_channels: i,
        out_channels: o,
        side: k,
        ..
    } = shape;
    let weights = konst(model, node.inputs[1])?;
    if weights.shape() != [o, i, k, k] {
        return None;
    }
    let bias = values(&*konst(model, node.inputs[2])?)?;
    let bias = match bias.len() {
        1 => vec![bias[0]; o],
        n if n == o => bias,
        _ => return None,
    };
    Some(Found {
        input: node.inputs[0],
        shape,
        weights,
        bias,
    })
}

/// A 1x1 convolution as tract's declutter leaves it ([`pointwise_shape`]), in f32 with
/// constant weights.
pub(super) fn as_pointwise(model: &TypedModel, node: &TypedNode) -> Option<Found> {
    let einsum = node.op_as::<EinSum>()?;
    if einsum.q_params.is_some() || einsum.operating_dt != DatumType::F32 || node.inputs.len() != 2
    {
        return None;
    }
    let shape = pointwise_shape(model, node, DatumType::F32)?;
    let weights = konst(model, node.inputs[1])?;
    if weights.shape() != [shape.out_channels, shape.in_channels] {
        return None;
    }
    Some(Found {
        input: node.inputs[0],
        shape,
        weights,
        bias: vec![0.0; shape.out_channels],
    })
}

/// What follows a convolution and is done as its results are stored.
#[derive(Default)]
pub(super) struct Epilogue {
    /// The last node taken in (its output becomes the op's).
    pub(super) last: usize,
    pub(super) relu: bool,
    pub(super) addend: Option<OutletId>,
}

/// A binary op's name and its other input, for a node reading `from` in one slot.
pub(super) fn binary(
    model: &TypedModel,
    node: usize,
    from: usize,
) -> Option<(&'static str, OutletId)> {
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
pub(super) fn epilogue(model: &TypedModel, id: usize, found: &mut Found) -> Epilogue {
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
                        *d == 1 || (from_end == 2 && *d == found.shape.out_channels)
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
pub(super) fn next_conv(model: &TypedModel) -> Option<(usize, Found, Epilogue, TVec<usize>)> {
    model.nodes().iter().find_map(|node| {
        let mut found = as_conv(model, node).or_else(|| as_pointwise(model, node))?;
        let epi = epilogue(model, node.id, &mut found);
        let shape = model.node(epi.last).outputs[0].fact.shape.as_concrete()?;
        Some((node.id, found, epi, shape.into()))
    })
}

pub(super) fn swap_in_with(model: &mut TypedModel, kernel: KernelChoice) -> TractResult<usize> {
    let mut swapped = 0;
    // One at a time, the graph compacted after each: nodes taken in would otherwise linger as
    // readers and stop the next convolution's epilogue at a value they still read.
    while let Some((id, found, epi, out_shape)) = next_conv(model) {
        let weights = values(&found.weights).context("DirectConv: weights not f32")?;
        let weights = &weights[..];
        let packed = pack_weights(weights, found.shape.out_channels);
        let mut bias = found.bias.clone();
        bias.resize(found.shape.out_channels.div_ceil(ROWS) * ROWS, 0.0);
        let op = DirectConv {
            shape: found.shape,
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
