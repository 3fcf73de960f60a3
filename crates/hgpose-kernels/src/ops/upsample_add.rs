//! The hourglass's merge in one pass: `skip + upsample2x(low)`, f32 NCHW.
//!
//! At every level an hourglass adds its skip branch to the nearest-neighbour upsampling of the
//! level below. tract runs that as two ops: `NearestUpsample` writes the upsampled tensor, then
//! `OptAddUnicast` reads it back, and on two threads splits any add of more than 32768
//! elements over its rayon pool, whose sleeping threads cost more to wake than the add. On the
//! default model at two threads the 8 adds took 0.062 ms against 0.021 on one (`bench
//! --profile`). [`UpsampleAdd`] reads each row of `low` once per output row pair and adds it,
//! duplicated, into the skip branch's buffer, which it takes over. The sums are the same float
//! additions on the same operands, so results are bit-identical.

use super::sole_successor;
use super::unfused_add::StreamedAdd;
use crate::ops::plan_op::PlanOp;
use crate::plan_op;
use crate::threads::light_work;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::OptBinUnicast;
use tract_onnx::tract_core::ops::nn::NearestUpsample;

/// `skip + upsample2x(low)` for `skip` `[N, C, 2H, 2W]` and `low` `[N, C, H, W]`, f32.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpsampleAdd;

/// Adds `low` (`h x w`), each value repeated over a 2x2 square, into `plane` (`2h x 2w`).
pub fn add_upsampled_plane(plane: &mut [f32], low: &[f32], w: usize) {
    if w == 0 {
        return;
    }
    for (y, row) in plane.chunks_exact_mut(2 * w).enumerate() {
        let src = &low[(y / 2) * w..(y / 2 + 1) * w];
        for (pair, v) in row.chunks_exact_mut(2).zip(src) {
            pair[0] += *v;
            pair[1] += *v;
        }
    }
}

impl PlanOp for UpsampleAdd {
    const NAME: &'static str = "UpsampleAdd";

    fn run(&self, _ctx: &EvalContext, mut inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        anyhow::ensure!(inputs.len() == 2, "UpsampleAdd takes skip and low");
        let low = inputs.pop().expect("two inputs");
        let mut sum = inputs.pop().expect("two inputs").into_tensor();
        let (s, l) = (sum.shape(), low.shape());
        anyhow::ensure!(
            s.len() == 4
                && l.len() == 4
                && s[..2] == l[..2]
                && s[2] == 2 * l[2]
                && s[3] == 2 * l[3],
            "UpsampleAdd: skip {s:?} is not twice low {l:?} in height and width"
        );
        let (h, w) = (l[2], l[3]);
        let (plane, low_plane) = (4 * h * w, h * w);
        if plane > 0 {
            let lows = low.try_as_plain_ram()?;
            let lows = lows.as_slice::<f32>()?;
            let mut plain = sum.try_as_plain_ram_mut()?;
            let xs = plain.as_slice_mut::<f32>()?;
            tract_linalg::multithread::par_chunks_mut(
                xs,
                plane,
                light_work(xs.len()),
                |first, chunk| {
                    // `first` counts planes (rows of `plane` elements), not elements.
                    for (i, out) in chunk.chunks_exact_mut(plane).enumerate() {
                        let p = first + i;
                        add_upsampled_plane(out, &lows[p * low_plane..(p + 1) * low_plane], w);
                    }
                    Ok(())
                },
            )?;
        }
        Ok(tvec!(sum.into_tvalue()))
    }

    fn facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let skip = super::first_input(inputs, "UpsampleAdd")?;
        Ok(tvec!(skip.without_value()))
    }
}

plan_op!(UpsampleAdd);

/// The node id of the f32 2x2 nearest upsample feeding `outlet`, read only by `add`.
fn upsample_into(model: &TypedModel, outlet: OutletId, add: usize) -> Option<usize> {
    let node = model.node(outlet.node);
    let up = node.op_as::<NearestUpsample>()?;
    let fact = model.outlet_fact(node.inputs[0]).ok()?;
    let plain = up.scales[..] == [1, 1, 2, 2] && fact.datum_type == f32::datum_type();
    (plain && fact.shape.as_concrete().is_some() && sole_successor(model, node.id) == Some(add))
        .then_some(node.id)
}

/// True for tract's unicast f32 add and for hgpose's [`StreamedAdd`] (an add taken out of a
/// matrix product).
fn is_f32_add(node: &TypedNode) -> bool {
    let tracts = node
        .op_as::<OptBinUnicast>()
        .is_some_and(|op| op.binop.name() == "Add");
    let ours = node.op_as::<StreamedAdd>().is_some();
    (tracts || ours)
        && node.inputs.len() == 2
        && node.outputs[0].fact.datum_type == f32::datum_type()
}

/// Replaces each f32 `add(x, NearestUpsample 2x(low))` of an optimized model (either order)
/// with [`UpsampleAdd`]`(x, low)`; returns how many.
pub fn swap_in(model: &mut TypedModel) -> TractResult<usize> {
    let mut merges = vec![];
    for node in model.nodes() {
        if !is_f32_add(node) {
            continue;
        }
        let out = &node.outputs[0].fact;
        for (up_side, skip_side) in [(1, 0), (0, 1)] {
            let skip = node.inputs[skip_side];
            if model.outlet_fact(skip)?.shape != out.shape {
                continue;
            }
            if let Some(up) = upsample_into(model, node.inputs[up_side], node.id) {
                merges.push((node.id, skip, up));
                break;
            }
        }
    }
    let mut swapped = 0;
    for (id, skip, up) in &merges {
        let node = model.node(*id);
        let low = model.node(*up).inputs[0];
        let mut patch = TypedModelPatch::new(format!("merge the upsample into {}", node.name));
        let taps = patch.taps(model, &[*skip, low])?;
        let sum = patch.wire_node(&node.name, UpsampleAdd, &taps)?[0];
        if patch.outlet_fact(sum)? != &node.outputs[0].fact.without_value() {
            continue;
        }
        patch.shunt_outside(model, (*id).into(), sum)?;
        patch.apply(model)?;
        swapped += 1;
    }
    if swapped > 0 {
        model.compact()?;
    }
    Ok(swapped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_models::{first_output, patterned_input};

    #[test]
    fn adds_each_low_value_over_its_two_by_two_square() {
        let low = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]; // 2 x 3
        let mut plane: Vec<f32> = (0..24).map(|i| i as f32 * 0.5).collect(); // 4 x 6
        let before = plane.clone();
        add_upsampled_plane(&mut plane, &low, 3);
        for y in 0..4 {
            for x in 0..6 {
                let i = y * 6 + x;
                assert_eq!(plane[i], before[i] + low[(y / 2) * 3 + x / 2], "({y}, {x})");
            }
        }
    }

    fn count(model: &TypedModel, name: &str) -> usize {
        let names = model.nodes().iter().map(|n| n.op().name());
        names.filter(|n| n == name).count()
    }

    /// `skip + up(low)` (or `up(low) + skip`), optimized by tract, then merged: the same sums
    /// to the bit, on one thread and split over two.
    #[test]
    fn a_merge_in_either_order_computes_tracts_sum_to_the_bit() {
        use tract_onnx::tract_core::ops::math::add;
        for upsample_first in [false, true] {
            let mut model = TypedModel::default();
            let skip = model.add_source("skip", f32::fact([1, 3, 8, 10])).unwrap();
            let low = model.add_source("low", f32::fact([1, 3, 4, 5])).unwrap();
            let scales = tvec![1, 1, 2, 2];
            let up = model
                .wire_node("up", NearestUpsample { scales }, &[low])
                .unwrap()[0];
            let operands = if upsample_first {
                [up, skip]
            } else {
                [skip, up]
            };
            let sum = model.wire_node("add", add(), &operands).unwrap()[0];
            model.select_output_outlets(&[sum]).unwrap();
            let model = model.into_optimized().unwrap();
            let mut merged = model.clone();
            assert_eq!(
                swap_in(&mut merged).unwrap(),
                1,
                "upsample first: {upsample_first}"
            );
            assert_eq!(count(&merged, "NearestUpsample"), 0);
            let inputs = || {
                let skip = patterned_input((1, 3, 8, 10));
                let low = patterned_input((1, 3, 4, 5));
                tvec!(skip.into_tvalue(), low.into_tvalue())
            };
            let run = |m: &TypedModel| {
                let plan = SimplePlan::new(m.clone()).unwrap();
                plan.run(inputs()).unwrap().remove(0).into_tensor()
            };
            let want = run(&model);
            assert_eq!(run(&merged), want);
            let two = crate::threads::on_two_threads(|| run(&merged));
            assert_eq!(two, want);
        }
    }

    /// The fixture hourglass, optimized, its adds taken out of the products (x86_64, as the
    /// engine does), then merged: the same heatmaps to the bit. Alone, tract chains most of
    /// its merges with the residual add before them (`OptBinChain`); those stay as they are
    /// (the engine's own convolutions take the residual adds, leaving every merge plain).
    #[test]
    fn merged_hourglass_computes_tracts_heatmaps_to_the_bit() {
        let model = crate::test_models::fixture_hourglass();
        let mut model = model.into_optimized().unwrap();
        super::super::unfused_add::swap_in(&mut model).unwrap();
        let ups = count(&model, "NearestUpsample");
        let mut merged = model.clone();
        let swapped = swap_in(&mut merged).unwrap();
        assert!(swapped > 0);
        assert_eq!(count(&merged, "UpsampleAdd"), swapped);
        assert_eq!(count(&merged, "NearestUpsample"), ups - swapped);
        let input = patterned_input((1, 3, 256, 256));
        assert_eq!(first_output(&merged, &input), first_output(&model, &input));
        let on_two = crate::threads::on_two_threads(|| first_output(&merged, &input));
        assert_eq!(on_two, first_output(&model, &input));
    }

    #[test]
    fn mismatched_shapes_are_an_error_not_a_panic() {
        let skip = Tensor::zero::<f32>(&[1, 2, 4, 5]).unwrap().into_tvalue();
        let low = Tensor::zero::<f32>(&[1, 2, 2, 2]).unwrap().into_tvalue();
        let out = UpsampleAdd.eval(&EvalContext::out_of_plan(), tvec!(skip, low));
        assert!(out.is_err());
    }
}
