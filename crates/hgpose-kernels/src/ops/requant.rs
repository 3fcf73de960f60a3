//! A fused stand-in for the per-channel requantization tract 0.23 leaves after an int8
//! convolution with one weight scale per output channel.
//!
//! With a single weight scale tract folds the requantization into its integer matrix product.
//! With one per channel it wires five generic ops over the i32 accumulators instead (`Scale`
//! by the channel's multiplier with ties-to-even rounding, `Add` the output zero point, `Max`,
//! `Min`, `Cast` to 8 bits), each a full pass in unvectorized code: 10x the whole per-tensor
//! inference on the bundled model (`bench --profile`). Per-channel scales are what keeps int8
//! accurate on networks whose channels differ in range (depthwise convolutions), so this op
//! does the five in one vectorizable pass, with the same arithmetic as tract's (the same f32
//! product, rounded ties to even, then the integer add and clamp). It takes the place of the
//! chain's last node after tract optimizes the model; the others are then dead.

use super::sole_successor;
use crate::ops::plan_op::PlanOp;
use crate::plan_op;
use crate::threads::light_work;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::cast::Cast;
use tract_onnx::tract_core::ops::math::{Add, Max, Min};
use tract_onnx::tract_core::ops::quant::Scale;

/// `clamp(round_ties_even(acc * scale[channel]) + zero_point, lo, hi)` stored in 8 bits.
#[derive(Debug, Clone, PartialEq)]
pub struct FastRequantI32 {
    /// One multiplier per index of `axis` (or one for all).
    pub scales: Vec<f32>,
    pub axis: usize,
    pub zero_point: i32,
    pub lo: i32,
    pub hi: i32,
    /// The 8-bit type tract's chain ends in (u8, i8 or their quantized forms).
    pub output_dt: DatumType,
}

impl Eq for FastRequantI32 {}

fn requant(acc: &[i32], out: &mut [u8], scale: f32, zero_point: i32, lo: i32, hi: i32) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        unsafe {
            crate::x86_64::elementwise::requant_run_avx2(acc, out, scale, zero_point, lo, hi)
        };
        return;
    }
    crate::generic::elementwise::requant_run(acc, out, scale, zero_point, lo, hi);
}

impl PlanOp for FastRequantI32 {
    const NAME: &'static str = "FastRequantI32";

    fn run(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = super::first_input(&inputs, "FastRequantI32")?;
        let shape = input.shape();
        anyhow::ensure!(
            self.axis < shape.len()
                && (self.scales.len() == 1 || self.scales.len() == shape[self.axis]),
            "FastRequantI32: {} scales for shape {shape:?} on axis {}",
            self.scales.len(),
            self.axis
        );
        let plain = input.try_as_plain_ram()?;
        let acc = plain.as_slice::<i32>()?;
        let mut output = unsafe { Tensor::uninitialized_dt(self.output_dt, shape)? };
        // Runs of `inner` accumulators share a channel; channels repeat every `channels` runs.
        let inner: usize = shape[self.axis + 1..].iter().product();
        let channels = shape[self.axis];
        let out = output.as_bytes_mut();
        if inner > 0 {
            let len = out.len();
            tract_linalg::multithread::par_chunks_mut(
                out,
                inner,
                light_work(len),
                |first, chunk| {
                    // `first` counts runs (rows of `inner` bytes).
                    for (i, run) in chunk.chunks_exact_mut(inner).enumerate() {
                        let r = first + i;
                        let scale = self.scales[if self.scales.len() == 1 {
                            0
                        } else {
                            r % channels
                        }];
                        let acc = &acc[r * inner..(r + 1) * inner];
                        requant(acc, run, scale, self.zero_point, self.lo, self.hi);
                    }
                    Ok(())
                },
            )?;
        }
        Ok(tvec!(output.into_tvalue()))
    }

    fn facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let input = super::first_input(inputs, "FastRequantI32")?;
        Ok(tvec!(self.output_dt.fact(input.shape.clone())))
    }
}

plan_op!(FastRequantI32);

/// The constant scalar on one side of a binary node, and the outlet on the other.
fn scalar_and_wire(model: &TypedModel, node: &TypedNode) -> Option<(i32, OutletId)> {
    let [a, b] = node.inputs[..] else {
        return None;
    };
    for (konst, wire) in [(a, b), (b, a)] {
        let fact = model.outlet_fact(konst).ok()?;
        if let Some(k) = fact.konst.as_ref().or(fact.uniform.as_ref()) {
            if k.len() == 1 && k.datum_type() == DatumType::I32 {
                return Some((
                    *k.try_as_plain_ram().ok()?.as_slice::<i32>().ok()?.first()?,
                    wire,
                ));
            }
        }
    }
    None
}

fn bin_is<T: tract_onnx::tract_core::ops::binary::BinMiniOp>(node: &TypedNode) -> bool {
    node.op_as::<TypedBinOp>().is_some_and(|b| b.0.is::<T>())
}

/// Matches `Scale(scales, acc) -> [Add(zero point)] -> Max(lo), Min(hi) -> Cast(8 bits)` from
/// the `Scale` node; returns the op and the id of the `Cast` it replaces.
fn chain_from(model: &TypedModel, scale_node: usize) -> Option<(FastRequantI32, usize, OutletId)> {
    let node = model.node(scale_node);
    if !bin_is::<Scale>(node) {
        return None;
    }
    let [scales, acc] = node.inputs[..] else {
        return None;
    };
    let acc_fact = model.outlet_fact(acc).ok()?;
    let scales_fact = model.outlet_fact(scales).ok()?;
    if acc_fact.datum_type != DatumType::I32 || scales_fact.datum_type != DatumType::F32 {
        return None;
    }
    let shape = acc_fact.shape.as_concrete()?;
    let scales_tensor = scales_fact.konst.as_ref()?;
    // The scales vary along one axis at most (per output channel), broadcast along the others.
    let sdims = scales_tensor.shape();
    if sdims.len() != shape.len() {
        return None;
    }
    let varying: Vec<usize> = (0..sdims.len()).filter(|a| sdims[*a] > 1).collect();
    let axis = match varying[..] {
        [] => 0,
        [a] if sdims[a] == shape[a] => a,
        _ => return None,
    };
    let scales: Vec<f32> = scales_tensor
        .try_as_plain_ram()
        .ok()?
        .as_slice::<f32>()
        .ok()?
        .to_vec();
    // Positive, finite multipliers (what a quantizer writes) keep the arithmetic above exact.
    if !scales.iter().all(|s| s.is_finite() && *s > 0.0) {
        return None;
    }

    let mut next = sole_successor(model, scale_node)?;
    let mut zero_point = 0;
    if bin_is::<Add>(model.node(next)) {
        let (zp, wire) = scalar_and_wire(model, model.node(next))?;
        if wire.node != scale_node {
            return None;
        }
        zero_point = zp;
        next = sole_successor(model, next)?;
    }
    // The clamp: a Max and a Min with constant bounds, in either order.
    let (mut lo, mut hi) = (None, None);
    for _ in 0..2 {
        let clamp = model.node(next);
        let (bound, _) = scalar_and_wire(model, clamp)?;
        if bin_is::<Max>(clamp) && lo.is_none() {
            lo = Some(bound);
        } else if bin_is::<Min>(clamp) && hi.is_none() {
            hi = Some(bound);
        } else {
            return None;
        }
        next = sole_successor(model, next)?;
    }
    let (lo, hi) = (lo?, hi?);
    let cast_id = next;
    let cast = model.node(cast_id).op_as::<Cast>()?;
    let output_dt = cast.to;
    let (min8, max8) = match output_dt.unquantized() {
        DatumType::U8 => (0, 255),
        DatumType::I8 => (-128, 127),
        _ => return None,
    };
    // Clamped inside the 8-bit range, so the cast keeps the value.
    if lo < min8 || hi > max8 || lo > hi {
        return None;
    }
    let op = FastRequantI32 {
        scales,
        axis,
        zero_point,
        lo,
        hi,
        output_dt,
    };
    Some((op, cast_id, acc))
}

/// Replaces each per-channel requantization chain of an optimized model with one
/// [`FastRequantI32`] at the chain's `Cast`, fed by the accumulators; returns how many.
pub fn swap_in(model: &mut TypedModel) -> TractResult<usize> {
    let mut swapped = 0;
    for id in 0..model.nodes().len() {
        let Some((op, cast_id, acc)) = chain_from(model, id) else {
            continue;
        };
        let ours = op.output_facts(&[model.outlet_fact(acc)?])?;
        if ours[0] != model.node(cast_id).outputs[0].fact {
            continue;
        }
        model.add_edge(acc, InletId::new(cast_id, 0))?;
        model.node_mut(cast_id).op = Box::new(op);
        swapped += 1;
    }
    Ok(swapped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::ops::math::round_ties_to_even;

    /// tract's chain, element by element, as its ops compute it.
    fn tracts(acc: i32, scale: f32, zp: i32, lo: i32, hi: i32) -> u8 {
        let v = acc as f32;
        let scaled = (round_ties_to_even(v.abs() * scale) * v.signum()) as i32;
        (scaled + zp).max(lo).min(hi) as u8
    }

    #[test]
    fn same_values_as_tracts_scale_add_clamp_chain() {
        let mut accs: Vec<i32> = (-70_000..70_000).step_by(7).collect();
        // exact ties for the scales below, zero, and large accumulators
        accs.extend([
            0,
            1,
            -1,
            3,
            -3,
            5,
            -5,
            1 << 24,
            -(1 << 24),
            123_456_789,
            -123_456_789,
        ]);
        for (scale, zp, lo, hi) in [
            (0.5f32, 0, 0, 255),
            (0.5, 128, 0, 255),
            (0.0031, 17, 0, 255),
            (0.25, -3, -128, 127),
            (1.7e-4, 0, -128, 127),
        ] {
            let mut out = vec![0u8; accs.len()];
            requant(&accs, &mut out, scale, zp, lo, hi);
            for (a, o) in accs.iter().zip(&out) {
                assert_eq!(
                    *o,
                    tracts(*a, scale, zp, lo, hi),
                    "acc {a} scale {scale} zp {zp}"
                );
            }
        }
    }

    #[test]
    fn channels_take_their_own_scale_over_threads() {
        let (channels, inner) = (6, 1000);
        let acc: Vec<i32> = (0..channels * inner)
            .map(|i| (i as i32 % 997) * 37 - 15_000)
            .collect();
        let scales: Vec<f32> = (0..channels).map(|c| 0.001 * (c as f32 + 1.0)).collect();
        let op = FastRequantI32 {
            scales: scales.clone(),
            axis: 1,
            zero_point: 10,
            lo: 0,
            hi: 255,
            output_dt: DatumType::U8,
        };
        let input = Tensor::from_shape(&[1, channels, inner], &acc).unwrap();
        let out = crate::threads::on_two_threads(|| {
            op.eval(&EvalContext::out_of_plan(), tvec!(input.into_tvalue()))
                .unwrap()
        });
        let out = out[0].as_bytes();
        for (i, (a, o)) in acc.iter().zip(out).enumerate() {
            assert_eq!(*o, tracts(*a, scales[i / inner], 10, 0, 255), "element {i}");
        }
    }
}
