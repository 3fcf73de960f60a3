//! Takes residual additions back out of tract's f32 matrix products, on x86_64.
//!
//! tract fuses `conv(x) + skip` into the product's kernel (`AddUnicast`): each output tile
//! reads its part of `skip` (x86 kernels with `vgatherdps`) before storing. On the paper's
//! 2x256 model the four products that carry an add took 5.1-12.7 ms against 2.0-4.5 ms for
//! the same shapes without one, a sixth of the f32 inference (`bench --profile` with
//! `HGPOSE_LOG=hgpose=debug`). Split, the product runs at the plain product's speed and the
//! add is one vectorizable pass of 0.3 ms. The sum is the same float operation on the same
//! operands, so results are bit-identical. aarch64 and armv7 kernels read `skip` with lane
//! loads and were not measured on a board, so they keep tract's fusion.

use crate::ops::plan_op::PlanOp;
use crate::plan_op;
use crate::threads::light_work;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::matmul::optimized::{OptMatMul, ProtoFusedSpec};

/// `a + b` for two f32 tensors of one shape, summed into `a`'s buffer where nothing else holds
/// it (the product it follows has no other reader).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamedAdd;

impl PlanOp for StreamedAdd {
    const NAME: &'static str = "StreamedAdd";

    fn run(&self, _ctx: &EvalContext, mut inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        anyhow::ensure!(inputs.len() == 2, "StreamedAdd takes two inputs");
        let b = inputs.pop().expect("two inputs");
        let mut sum = inputs.pop().expect("two inputs").into_tensor();
        anyhow::ensure!(
            sum.shape() == b.shape(),
            "StreamedAdd adds tensors of one shape"
        );
        {
            let bs = b.try_as_plain_ram()?;
            let bs = bs.as_slice::<f32>()?;
            let mut plain = sum.try_as_plain_ram_mut()?;
            let xs = plain.as_slice_mut::<f32>()?;
            tract_linalg::multithread::par_chunks_mut(
                xs,
                1,
                light_work(bs.len()),
                |first, chunk| {
                    for (x, y) in chunk.iter_mut().zip(&bs[first..]) {
                        *x += *y;
                    }
                    Ok(())
                },
            )?;
        }
        Ok(tvec!(sum.into_tvalue()))
    }

    fn facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let a = super::first_input(inputs, "StreamedAdd")?;
        Ok(tvec!(a.without_value()))
    }
}

plan_op!(StreamedAdd);

/// Where the f32 product `op` ends with an add of its last input (then stores), the product
/// without that add; else `None`.
fn without_fused_add(op: &OptMatMul, inputs: usize) -> Option<OptMatMul> {
    let ops = &op.micro_ops;
    let [.., ProtoFusedSpec::AddUnicast(_, other, map), ProtoFusedSpec::Store(_)] = &ops[..] else {
        return None;
    };
    let identity = map.0.iter().all(|(out, input)| out == input);
    let last_input = *other + 1 == inputs;
    if op.c_fact.datum_type != f32::datum_type() || !identity || !last_input {
        return None;
    }
    let mut plain = op.clone();
    plain.micro_ops.remove(ops.len() - 2);
    Some(plain)
}

/// Splits every f32 product with a fused add into the plain product and a
/// [`StreamedAdd`] (x86_64 only); returns how many.
pub fn swap_in(model: &mut TypedModel) -> TractResult<usize> {
    if !cfg!(target_arch = "x86_64") {
        return Ok(0);
    }
    let mut splits = vec![];
    for node in model.nodes() {
        let Some(op) = node.op_as::<OptMatMul>() else {
            continue;
        };
        if let Some(plain) = without_fused_add(op, node.inputs.len()) {
            splits.push((node.id, plain));
        }
    }
    let mut split = 0;
    for (id, plain) in &splits {
        let node = model.node(*id);
        let mut patch = TypedModelPatch::new(format!("unfuse the add of {}", node.name));
        let taps = patch.taps(model, &node.inputs)?;
        let (skip, operands) = taps.split_last().expect("a fused add has an input");
        let name = format!("{}.product", node.name);
        let product = patch.wire_node(name, plain.clone(), operands)?[0];
        let sum = patch.wire_node(&node.name, StreamedAdd, &[product, *skip])?[0];
        if patch.outlet_fact(sum)? != &node.outputs[0].fact.without_value() {
            continue;
        }
        patch.shunt_outside(model, (*id).into(), sum)?;
        patch.apply(model)?;
        split += 1;
    }
    if split > 0 {
        model.compact()?;
    }
    Ok(split)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_models::{first_output, patterned_input};

    fn fused_adds(model: &TypedModel) -> usize {
        model
            .nodes()
            .iter()
            .filter_map(|n| n.op_as::<OptMatMul>())
            .filter(|op| {
                op.micro_ops
                    .iter()
                    .any(|o| matches!(o, ProtoFusedSpec::AddUnicast(..)))
            })
            .count()
    }

    #[test]
    fn adds_in_place_and_refuses_other_shapes() {
        let a = tensor1(&[1.0f32, 2.0, 3.0]).into_tvalue();
        let b = tensor1(&[0.5f32, -2.0, 4.0]).into_tvalue();
        let out = StreamedAdd
            .eval(&EvalContext::out_of_plan(), tvec!(a, b))
            .unwrap();
        assert_eq!(*out[0], tensor1(&[1.5f32, 0.0, 7.0]));
        let c = tensor1(&[1.0f32, 2.0]).into_tvalue();
        let d = tensor1(&[1.0f32]).into_tvalue();
        let err = StreamedAdd.eval(&EvalContext::out_of_plan(), tvec!(c, d));
        assert!(err.is_err());
    }

    /// The fixture hourglass, optimized as the engine does, then split: the same heatmaps to the bit.
    #[test]
    fn split_products_compute_the_fused_ones_to_the_bit() {
        let model = crate::test_models::fixture_hourglass();
        let model = model.into_optimized().unwrap();
        let fused = fused_adds(&model);
        assert!(fused > 0, "the fixture has residual adds tract fuses");
        let mut split = model.clone();
        let swapped = swap_in(&mut split).unwrap();
        if cfg!(target_arch = "x86_64") {
            assert_eq!(swapped, fused);
            assert_eq!(fused_adds(&split), 0);
        } else {
            assert_eq!(swapped, 0);
        }
        let input = patterned_input((1, 3, 256, 256));
        assert_eq!(first_output(&split, &input), first_output(&model, &input));
    }
}
