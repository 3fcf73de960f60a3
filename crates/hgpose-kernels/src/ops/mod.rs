//! The ops that take the place of tract's, and the passes that put them into a graph or plan.
//! The tract-facing structure of each op is portable; its element loops call the kernel chosen
//! for this CPU (`crate::x86_64`, `crate::aarch64`, `crate::arm`) or the portable one
//! (`crate::generic`).

pub mod conv_f32_kernel;
pub mod conv_geometry;
pub mod conv_i8_kernel;
pub mod dequantize;
pub mod direct_conv;
pub mod direct_conv_i8;
pub mod flat_pointwise;
pub mod im2col;
pub mod pack;
pub mod plan_op;
pub mod pool;
pub mod quantize;
pub mod quantize_into_conv;
pub mod relu_into_product;
pub mod requant;
pub mod scale_shift;
pub mod transposed_product;
pub mod unfused_add;
pub mod upsample_add;

/// The first input of one of hgpose's own ops (`op` names it in the error tract would otherwise
/// meet as an index out of bounds).
fn first_input<'a, T>(inputs: &'a [T], op: &str) -> anyhow::Result<&'a T> {
    inputs
        .first()
        .ok_or_else(|| anyhow::anyhow!("{op} was given no input"))
}

/// The one node that reads `node`'s only output, when that output is not also one of the model's
/// outputs (whose value must then stay as it is): what a rewrite may fuse `node` into.
pub(crate) fn sole_successor(
    model: &tract_onnx::prelude::TypedModel,
    node: usize,
) -> Option<usize> {
    let outputs = model.output_outlets().ok()?;
    match &model.node(node).outputs[..] {
        [output] if output.successors.len() == 1 && !outputs.contains(&node.into()) => {
            Some(output.successors[0].node)
        }
        _ => None,
    }
}
