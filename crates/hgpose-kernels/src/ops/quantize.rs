//! A faster stand-in for tract's `QuantizeLinearU8` (f32 -> u8 requantization between an int8
//! model's float ops and its integer convolutions).
//!
//! tract 0.23 rounds each element through a branchy bit-level `round_ties_to_even` that does not
//! vectorize: on the int8 hourglass it was a fifth of inference time (`bench --profile`). This op
//! computes the same values (ties to even, saturating to 0..=255, NaN to the zero point) with a
//! clamp and the 1.5 * 2^23 rounding trick, which the compiler turns into SIMD, and splits the
//! tensor over tract's threads as tract does. It is swapped in after tract optimizes the model.

use crate::generic::elementwise;
pub use crate::generic::elementwise::BatchNorm;
use crate::ops::plan_op::PlanOp;
use crate::plan_op;
use crate::threads::light_work;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_core::ops::quant::QuantizeLinearU8;

/// `clamp(round_ties_even(x * scale) + zero_point, 0, 255)`, as tract's `QuantizeLinearU8`.
#[derive(Debug, Clone, PartialEq)]
pub struct FastQuantizeU8 {
    /// Multiplier (the reciprocal of the ONNX scale, as tract stores it).
    pub scale: f32,
    pub zero_point: u8,
}

impl Eq for FastQuantizeU8 {}

/// One chunk of the op, with the widest SIMD this CPU has (chosen at run time, as tract does).
pub fn quantize_u8(xs: &[f32], ys: &mut [u8], scale: f32, zero_point: u8) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        unsafe { crate::x86_64::elementwise::quantize_u8_avx2(xs, ys, scale, zero_point) };
        return;
    }
    elementwise::quantize_u8(xs, ys, scale, zero_point);
}

/// [`quantize_u8`] of `batch_norm` of `xs`, in one pass: the same bytes as running the two
/// ops one after the other (each element computed by their own code), without the f32
/// tensor between them.
pub fn batch_norm_quantize_u8(
    xs: &[f32],
    ys: &mut [u8],
    batch_norm: BatchNorm,
    scale: f32,
    zero_point: u8,
) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bw") {
        // SAFETY: the CPU has AVX-512F and BW, checked just above.
        unsafe {
            crate::x86_64::elementwise::batch_norm_quantize_u8_avx512(
                xs, ys, batch_norm, scale, zero_point,
            )
        };
        return;
    }
    elementwise::batch_norm_quantize_u8(xs, ys, batch_norm, scale, zero_point);
}

impl PlanOp for FastQuantizeU8 {
    const NAME: &'static str = "FastQuantizeU8";

    fn info_lines(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "scale: {} zero_point: {}",
            self.scale, self.zero_point
        )])
    }

    fn run(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = super::first_input(&inputs, "FastQuantizeU8")?;
        let plain = input.try_as_plain_ram()?;
        let xs = plain.as_slice::<f32>()?;
        let mut output = unsafe { Tensor::uninitialized_dt(DatumType::U8, input.shape())? };
        let mut out_plain = output.try_as_plain_ram_mut()?;
        let ys = out_plain.as_slice_mut::<u8>()?;
        let len = ys.len();
        tract_linalg::multithread::par_chunks_mut(ys, 1, light_work(len), |first, chunk| {
            quantize_u8(
                &xs[first..first + chunk.len()],
                chunk,
                self.scale,
                self.zero_point,
            );
            Ok(())
        })?;
        Ok(tvec!(output.into_tvalue()))
    }

    fn facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let mut fact = (*super::first_input(inputs, "FastQuantizeU8")?).clone();
        fact.datum_type = DatumType::U8;
        fact.konst = None;
        fact.uniform = None;
        Ok(tvec!(fact))
    }
}

plan_op!(FastQuantizeU8);

/// Replaces every f32-input `QuantizeLinearU8` of an optimized model with [`FastQuantizeU8`];
/// returns how many. The output facts (u8, same shape) are unchanged, so the plan is too.
pub fn swap_in(model: &mut TypedModel) -> TractResult<usize> {
    let mut swapped = 0;
    for id in 0..model.nodes().len() {
        let Some(q) = model
            .node(id)
            .op_as::<ElementWiseOp>()
            .and_then(|e| e.0.downcast_ref::<QuantizeLinearU8>())
            .map(|q| FastQuantizeU8 {
                scale: q.scale,
                zero_point: q.zero_point,
            })
        else {
            continue;
        };
        let input = model.node(id).inputs[0];
        if model.outlet_fact(input)?.datum_type != DatumType::F32 {
            continue;
        }
        model.node_mut(id).op = Box::new(q);
        swapped += 1;
    }
    Ok(swapped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::ops::quant::quantize_linear_f32_u8;

    #[test]
    fn same_values_as_tracts_quantize_linear() {
        let mut xs: Vec<f32> = (-4000..4000).map(|i| i as f32 * 0.37).collect();
        // exact ties, both signs, and values that saturate
        // (not beyond i32: tract's own adds the zero point to a saturated i32 and wraps around)
        xs.extend([
            0.5,
            1.5,
            2.5,
            -0.5,
            -1.5,
            -2.5,
            1e6,
            -1e6,
            255.5,
            -0.0,
            f32::NAN,
        ]);
        for (scale, zp) in [(1.0f32, 0u8), (0.5, 128), (3.7, 17), (1.0 / 0.013, 255)] {
            let mut ys = vec![0u8; xs.len()];
            quantize_u8(&xs, &mut ys, scale, zp);
            for (x, y) in xs.iter().zip(&ys) {
                assert_eq!(
                    *y,
                    quantize_linear_f32_u8(*x, scale, i32::from(zp)),
                    "x {x} scale {scale} zp {zp}"
                );
            }
        }
    }

    /// The fused pass gives the bytes of the batch norm op then the quantization op, on
    /// values that round to ties, saturate, or are NaN, with and without the ReLU.
    #[test]
    fn batch_norm_then_quantize_in_one_pass_gives_the_same_bytes() {
        use super::super::scale_shift::FastScaleShift;
        let mut xs: Vec<f32> = (-3000..3000).map(|i| i as f32 * 0.173).collect();
        xs.extend([0.5, 1.5, -2.5, 1e6, -1e6, -0.0, f32::NAN, f32::INFINITY]);
        for floored in [true, false] {
            for (s, t, scale, zp) in [
                (1.0, 0.0, 1.0, 0u8),
                (0.7, -0.3, 41.3, 0),
                (1.3, 2.0, 3.0, 131),
            ] {
                let floor = 0.0;
                let op = FastScaleShift {
                    period: xs.len(),
                    floored,
                };
                let mut normed = vec![0f32; xs.len()];
                op.fill(&xs, &[s], &[t], floor, 0, &mut normed);
                let mut expected = vec![0u8; xs.len()];
                quantize_u8(&normed, &mut expected, scale, zp);
                let bn = BatchNorm {
                    scale: s,
                    shift: t,
                    floor: floored.then_some(floor),
                };
                let mut fused = vec![0u8; xs.len()];
                batch_norm_quantize_u8(&xs, &mut fused, bn, scale, zp);
                assert_eq!(
                    fused, expected,
                    "floored {floored} s {s} t {t} scale {scale} zp {zp}"
                );
                elementwise::batch_norm_quantize_u8(&xs, &mut fused, bn, scale, zp);
                assert_eq!(fused, expected, "portable");
            }
        }
    }

    #[test]
    fn the_op_splits_over_threads_without_moving_values() {
        let xs: Vec<f32> = (0..100_000)
            .map(|i| (i % 977) as f32 * 0.31 - 150.0)
            .collect();
        let op = FastQuantizeU8 {
            scale: 0.7,
            zero_point: 100,
        };
        let input = Tensor::from_shape(&[1, 100, 1000], &xs).unwrap();
        let out = crate::threads::on_two_threads(|| {
            op.eval(&EvalContext::out_of_plan(), tvec!(input.into_tvalue()))
                .unwrap()
        });
        let ys = out[0].try_as_plain_ram().unwrap();
        let ys = ys.as_slice::<u8>().unwrap();
        for (x, y) in xs.iter().zip(ys) {
            assert_eq!(*y, quantize_linear_f32_u8(*x, 0.7, 100), "x {x}");
        }
    }
}
