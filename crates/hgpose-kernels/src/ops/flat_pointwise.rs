//! 1x1 convolutions over one flat row of pixels instead of H rows.
//!
//! tract 0.23 lowers a 1x1 convolution of an NCHW image to one matrix product per image row
//! (k = channels, n = the row's W pixels, batched over H), so the hourglass's 1x1 convolutions
//! ran as thousands of small products with a pack each. Reshaping the input to `[N, C, 1, H*W]`
//! and the output back makes each one a single product over all pixels: measured 8% faster in
//! f32 on the bundled model (`bench --profile`; the same model with the reshapes written into
//! the ONNX graph). Quantized ones stay flat only where their products are then turned around
//! ([`KeepAxes`], `transposed_product`). The values are the same products, summed in the same
//! order per output pixel. Applied to the typed model before tract optimizes it.

use crate::ops::plan_op::PlanOp;
use crate::plan_op;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::change_axes::AxisOp;
use tract_onnx::tract_core::ops::cnn::{Conv, PaddingSpec};
use tract_onnx::tract_core::ops::nn::DataFormat;

/// The input's H and W when `conv` is a plain 1x1 convolution of a fixed-shape NCHW image of
/// more than one row: stride 1, no dilation, no padding.
fn pointwise_rows(conv: &Conv, input: &TypedFact) -> Option<(usize, usize)> {
    let spec = &conv.pool_spec;
    let ones = |v: &Option<TVec<usize>>| v.as_deref().is_none_or(|v| v.iter().all(|x| *x == 1));
    let no_padding = match &spec.padding {
        PaddingSpec::Valid => true,
        PaddingSpec::Explicit(before, after) => before.iter().chain(after).all(|p| *p == 0),
        PaddingSpec::ExplicitOnnxPool(before, after, _) => {
            before.iter().chain(after).all(|p| *p == 0)
        }
        _ => false,
    };
    let dims = input.shape.as_concrete()?;
    let &[_, _, h, w] = dims else {
        return None;
    };
    (spec.data_format == DataFormat::NCHW
        && spec.kernel_shape[..] == [1, 1]
        && ones(&spec.strides)
        && ones(&spec.dilations)
        && no_padding
        && h > 1)
        .then_some((h, w))
}

/// Passes its input through, and keeps tract's optimizer from moving an axis change across it.
///
/// Around a quantized convolution tract pushes the flattening reshapes through the integer
/// product's requantization back into the product, which then runs per image row again
/// (`c_shape` `[1, C, H, W]` in the node lines of `bench --profile` with
/// `HGPOSE_LOG=hgpose=debug`). Between the reshapes and the convolution these keep it flat.
/// They cost nothing at run time: the value is handed on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeepAxes;

impl PlanOp for KeepAxes {
    const NAME: &'static str = "KeepAxes";

    fn run(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        Ok(inputs)
    }

    fn facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let input = super::first_input(inputs, "KeepAxes")?;
        Ok(tvec!(input.without_value()))
    }
}

plan_op!(KeepAxes);

/// Rewrites every such convolution of `model` to run over `[N, C, 1, H*W]`; returns how many.
pub fn flatten(model: &mut TypedModel) -> TractResult<usize> {
    let mut flattened = 0;
    for id in model.eval_order()? {
        let node = model.node(id);
        let Some(conv) = node.op_as::<Conv>() else {
            continue;
        };
        let input = model.outlet_fact(node.inputs[0])?;
        let Some((h, w)) = pointwise_rows(conv, input) else {
            continue;
        };
        let rows = tvec!(h.to_dim(), w.to_dim());
        let flat = tvec!(1.to_dim(), (h * w).to_dim());
        let mut patch = TypedModelPatch::new("flatten 1x1 convolution");
        let mut taps = patch.taps(model, &node.inputs)?;
        taps[0] = patch.wire_node(
            format!("{}.flat_input", node.name),
            AxisOp::Reshape(2, rows.clone(), flat.clone()),
            &[taps[0]],
        )?[0];
        // Kept flat only where the integer product is then turned around to store along the
        // pixels: flat and m-contiguous it was slower than tract's per-row products.
        let keep_flat = conv.q_params.is_some() && super::transposed_product::turns_products();
        if keep_flat {
            let name = format!("{}.keep_flat_input", node.name);
            taps[0] = patch.wire_node(name, KeepAxes, &[taps[0]])?[0];
        }
        let mut y = patch.wire_node(format!("{}.flat", node.name), conv.clone(), &taps)?[0];
        if keep_flat {
            y = patch.wire_node(format!("{}.keep_flat_output", node.name), KeepAxes, &[y])?[0];
        }
        let y = patch.wire_node(
            format!("{}.rows_output", node.name),
            AxisOp::Reshape(2, flat, rows),
            &[y],
        )?[0];
        patch.shunt_outside(model, id.into(), y)?;
        patch.apply(model)?;
        flattened += 1;
    }
    Ok(flattened)
}
