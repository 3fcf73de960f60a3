//! Folds the ReLU after a 3x3 convolution back into its matrix product.
//!
//! tract lowers a 3x3 convolution to a product over `[1, 1, C, H*W]` and a reshape to
//! `[C, H, W]`. It fuses what follows a product into its kernel only when it follows directly,
//! so with the reshape in between the residual module's middle ReLU ran as a pass of its own
//! (`OptMaxByScalar`: 2.1 ms on the 2x256 model, 2.7% of the default model's f32 inference,
//! `bench --profile`). This moves the max into the product's fused operations, ahead of the
//! store, as tract does for a ReLU that follows directly; the reshape then follows the product.
//! A max is exact, so results are bit-identical.

use super::sole_successor;
use tract_linalg::BinOp;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::binary::OptBinByScalar;
use tract_onnx::tract_core::ops::matmul::optimized::{OptMatMul, ProtoFusedSpec};

/// A reshape between a product and a max by one value: (product, reshape, max, value) nodes.
struct Chain {
    product: usize,
    reshape: usize,
    max: usize,
    floor: OutletId,
}

fn chain_to(model: &TypedModel, max: usize) -> Option<Chain> {
    let node = model.node(max);
    let op = node.op_as::<OptBinByScalar>()?;
    let [value, floor] = node.inputs[..] else {
        return None;
    };
    let floor_fact = model.outlet_fact(floor).ok()?;
    let one_f32 =
        floor_fact.datum_type == f32::datum_type() && floor_fact.shape.volume() == 1.to_dim();
    let reshape = value.node;
    let reshape_node = model.node(reshape);
    let product = reshape_node.inputs.first()?.node;
    let fusable = model.node(product).op_as::<OptMatMul>().is_some_and(|mm| {
        mm.c_fact.datum_type == f32::datum_type()
            && mm
                .mmm
                .iter()
                .all(|k| k.internal_type() == f32::datum_type())
            && matches!(mm.micro_ops.last(), Some(ProtoFusedSpec::Store(_)))
    });
    (op.linalg_op == BinOp::Max
        && one_f32
        && reshape_node.op().name() == "IntoShape"
        && sole_successor(model, reshape) == Some(max)
        && sole_successor(model, product) == Some(reshape)
        && fusable)
        .then_some(Chain {
            product,
            reshape,
            max,
            floor,
        })
}

/// Moves every such max into its product; returns how many.
pub fn swap_in(model: &mut TypedModel) -> TractResult<usize> {
    let chains: Vec<Chain> = (0..model.nodes().len())
        .filter_map(|id| chain_to(model, id))
        .collect();
    for chain in &chains {
        let product = model.node(chain.product);
        let mut fused = product
            .op_as::<OptMatMul>()
            .expect("checked by chain_to")
            .clone();
        let before_store = fused.micro_ops.len() - 1;
        let floor_input = product.inputs.len();
        let max = ProtoFusedSpec::BinScalar(floor_input, BinOp::Max);
        fused.micro_ops.insert(before_store, max);
        let mut patch = TypedModelPatch::new(format!("ReLU into {}", product.name));
        let mut taps = patch.taps(model, &product.inputs)?;
        taps.push(patch.tap_model(model, chain.floor)?);
        let y = patch.wire_node(&product.name, fused, &taps)?[0];
        let reshape = model.node(chain.reshape);
        let y = patch.wire_node(&reshape.name, reshape.op.clone(), &[y])?[0];
        patch.shunt_outside(model, chain.max.into(), y)?;
        patch.apply(model)?;
    }
    if !chains.is_empty() {
        model.compact()?;
    }
    Ok(chains.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_models::{first_output, patterned_input};

    fn standalone_maxes(model: &TypedModel) -> usize {
        let ops = model
            .nodes()
            .iter()
            .filter_map(|n| n.op_as::<OptBinByScalar>());
        ops.filter(|op| op.linalg_op == BinOp::Max).count()
    }

    /// The fixture hourglass, optimized as the engine does: each residual module's middle ReLU
    /// is a pass of its own; folded into the products, the heatmaps are the same to the bit.
    #[test]
    fn folded_relus_give_the_same_heatmaps() {
        let model = crate::test_models::fixture_hourglass();
        let theirs = model.into_optimized().unwrap();
        let before = standalone_maxes(&theirs);
        let mut ours = theirs.clone();
        let folded = swap_in(&mut ours).unwrap();
        assert!(
            folded > 0,
            "the 3x3 convolutions' ReLUs run on their own in tract's plan"
        );
        assert_eq!(standalone_maxes(&ours), before - folded);
        let input = patterned_input((1, 3, 256, 256));
        assert_eq!(first_output(&ours, &input), first_output(&theirs, &input));
    }
}
