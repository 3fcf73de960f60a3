//! A faster stand-in for tract's `DequantizeLinearF32` on u8 tensors (an int8 convolution's
//! output going back to float for the residual adds and batch norms).
//!
//! tract 0.23 converts element by element in a loop built for the baseline CPU (SSE2 on x86),
//! which was ~10% of the int8 hourglass's inference (`bench --profile`). This op computes the same
//! values, `(x - zero_point) as f32 * scale` (the same integer subtraction and the same single
//! rounding multiply, so the same bits), with the widest SIMD the CPU has, and splits the tensor
//! over tract's threads. It is swapped in after tract optimizes the model.

use crate::ops::plan_op::PlanOp;
use crate::plan_op;
use crate::threads::light_work;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::quant::DequantizeLinearF32;

/// `(x - zero_point) as f32 * scale` for u8 `x`, as tract's `DequantizeLinearF32`.
#[derive(Debug, Clone, PartialEq)]
pub struct FastDequantizeU8 {
    pub scale: f32,
    pub zero_point: i32,
}

impl Eq for FastDequantizeU8 {}

/// One chunk of the op, with the widest SIMD this CPU has (chosen at run time, as tract does).
pub fn dequantize_u8(xs: &[u8], ys: &mut [f32], scale: f32, zero_point: i32) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        unsafe { crate::x86_64::elementwise::dequantize_u8_avx2(xs, ys, scale, zero_point) };
        return;
    }
    crate::generic::elementwise::dequantize_u8(xs, ys, scale, zero_point);
}

impl PlanOp for FastDequantizeU8 {
    const NAME: &'static str = "FastDequantizeU8";

    fn info_lines(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "scale: {} zero_point: {}",
            self.scale, self.zero_point
        )])
    }

    fn run(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = super::first_input(&inputs, "FastDequantizeU8")?;
        let plain = input.try_as_plain_ram()?;
        let xs = plain.as_slice::<u8>()?;
        let mut output = unsafe { Tensor::uninitialized_dt(DatumType::F32, input.shape())? };
        let mut out_plain = output.try_as_plain_ram_mut()?;
        let ys = out_plain.as_slice_mut::<f32>()?;
        let len = ys.len();
        tract_linalg::multithread::par_chunks_mut(ys, 1, light_work(len), |first, chunk| {
            let xs = &xs[first..first + chunk.len()];
            dequantize_u8(xs, chunk, self.scale, self.zero_point);
            Ok(())
        })?;
        Ok(tvec!(output.into_tvalue()))
    }

    fn facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let input = super::first_input(inputs, "FastDequantizeU8")?;
        Ok(tvec!(f32::datum_type().fact(input.shape.clone())))
    }
}

plan_op!(FastDequantizeU8);

/// Replaces every u8-input `DequantizeLinearF32` of an optimized model with
/// [`FastDequantizeU8`]; returns how many. The output facts (f32, same shape) are unchanged.
pub fn swap_in(model: &mut TypedModel) -> TractResult<usize> {
    let mut swapped = 0;
    for id in 0..model.nodes().len() {
        let node = model.node(id);
        let Some(d) = node.op_as::<DequantizeLinearF32>() else {
            continue;
        };
        let ours = FastDequantizeU8 {
            scale: d.scale,
            zero_point: d.zero_point,
        };
        let input = model.outlet_fact(node.inputs[0])?;
        if input.datum_type.unquantized() != DatumType::U8
            || ours.output_facts(&[input])?[0] != node.outputs[0].fact
        {
            continue;
        }
        model.node_mut(id).op = Box::new(ours);
        swapped += 1;
    }
    Ok(swapped)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// tract's op on the same tensor: every u8 value, several scales and zero points.
    #[test]
    fn same_bits_as_tracts_dequantize_linear() {
        let xs: Vec<u8> = (0..=255u8).cycle().take(4096 + 7).collect();
        for (scale, zp) in [(1.0f32, 0), (0.013, 128), (0.37, 17), (1e-3, 255)] {
            let input = Tensor::from_shape(&[1, xs.len()], &xs).unwrap();
            let theirs = DequantizeLinearF32 {
                scale,
                zero_point: zp,
            }
            .eval(
                &EvalContext::out_of_plan(),
                tvec!(input.clone().into_tvalue()),
            )
            .unwrap();
            let ours = FastDequantizeU8 {
                scale,
                zero_point: zp,
            }
            .eval(&EvalContext::out_of_plan(), tvec!(input.into_tvalue()))
            .unwrap();
            let bits = |t: &TValue| -> Vec<u32> {
                let plain = t.try_as_plain_ram().unwrap();
                plain
                    .as_slice::<f32>()
                    .unwrap()
                    .iter()
                    .map(|v| v.to_bits())
                    .collect()
            };
            assert_eq!(bits(&ours[0]), bits(&theirs[0]), "scale {scale} zp {zp}");
        }
    }

    #[test]
    fn the_op_splits_over_threads_without_moving_values() {
        let xs: Vec<u8> = (0..100_000).map(|i| (i % 253) as u8).collect();
        let op = FastDequantizeU8 {
            scale: 0.05,
            zero_point: 90,
        };
        let input = Tensor::from_shape(&[1, 100, 1000], &xs).unwrap();
        let out = crate::threads::on_two_threads(|| {
            op.eval(&EvalContext::out_of_plan(), tvec!(input.into_tvalue()))
                .unwrap()
        });
        let ys = out[0].try_as_plain_ram().unwrap();
        let ys = ys.as_slice::<f32>().unwrap();
        for (x, y) in xs.iter().zip(ys) {
            assert_eq!(*y, (i32::from(*x) - 90) as f32 * 0.05, "x {x}");
        }
    }
}
