//! A faster stand-in for tract's max pooling in the hourglass's down-sampling: 2x2 windows at
//! stride 2, no padding, NCHW, f32 or u8 (the int8 companion pools on quantized tensors).
//!
//! tract 0.23 vectorizes only its stride-1 2x2 pool; at stride 2 it walks each output pixel with
//! bounds checks, which was 9-19% of the f32 inference time (`bench --profile`). This op reads two
//! input rows at a time into one output row, a loop the compiler vectorizes, and splits the
//! channel planes over tract's threads. It is swapped in after tract optimizes the model.

use crate::ops::plan_op::PlanOp;
use crate::plan_op;
use crate::threads::light_work;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::{OptMaxPool, PaddingSpec};
use tract_onnx::tract_core::ops::nn::DataFormat;

/// Max over each 2x2 window at stride 2 of an NCHW tensor (odd last rows/columns dropped, as
/// unpadded pooling does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FastMaxPool2x2;

/// One channel plane: `input` is `h x w`, `output` is `h/2 x w/2`.
pub fn pool_plane<T: Copy + PartialOrd>(input: &[T], w: usize, output: &mut [T]) {
    let ow = w / 2;
    if ow == 0 {
        return;
    }
    for (oy, out_row) in output.chunks_exact_mut(ow).enumerate() {
        let top = &input[2 * oy * w..2 * oy * w + 2 * ow];
        let bottom = &input[(2 * oy + 1) * w..(2 * oy + 1) * w + 2 * ow];
        for ((o, t), b) in out_row
            .iter_mut()
            .zip(top.chunks_exact(2))
            .zip(bottom.chunks_exact(2))
        {
            let m1 = if t[1] > t[0] { t[1] } else { t[0] };
            let m2 = if b[1] > b[0] { b[1] } else { b[0] };
            *o = if m2 > m1 { m2 } else { m1 };
        }
    }
}

fn pool<T: Datum + Copy + PartialOrd>(input: &Tensor) -> TractResult<Tensor> {
    let shape = input.shape();
    let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3]);
    let (oh, ow) = (h / 2, w / 2);
    let mut output = unsafe { Tensor::uninitialized_dt(T::datum_type(), &[n, c, oh, ow])? };
    let plain = input.try_as_plain_ram()?;
    let xs = plain.as_slice::<T>()?;
    let mut out_plain = output.try_as_plain_ram_mut()?;
    let ys = out_plain.as_slice_mut::<T>()?;
    let plane = oh * ow;
    if plane > 0 {
        tract_linalg::multithread::par_chunks_mut(
            ys,
            plane,
            light_work(xs.len()),
            |first, chunk| {
                // `first` counts planes (rows of `plane` elements), not elements.
                for (i, out) in chunk.chunks_exact_mut(plane).enumerate() {
                    let p = first + i;
                    pool_plane(&xs[p * h * w..(p + 1) * h * w], w, out);
                }
                Ok(())
            },
        )?;
    }
    Ok(output)
}

impl PlanOp for FastMaxPool2x2 {
    const NAME: &'static str = "FastMaxPool2x2";

    fn run(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = super::first_input(&inputs, "FastMaxPool2x2")?;
        anyhow::ensure!(input.rank() == 4, "FastMaxPool2x2 takes NCHW tensors");
        let output = match input.datum_type() {
            DatumType::F32 => pool::<f32>(input)?,
            DatumType::U8 => pool::<u8>(input)?,
            dt => anyhow::bail!("FastMaxPool2x2 does not pool {dt:?}"),
        };
        Ok(tvec!(output.into_tvalue()))
    }

    fn facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let input = super::first_input(inputs, "FastMaxPool2x2")?;
        let dims = input
            .shape
            .as_concrete()
            .filter(|d| d.len() == 4)
            .ok_or_else(|| anyhow::anyhow!("FastMaxPool2x2 needs a fixed NCHW shape"))?;
        let shape = [dims[0], dims[1], dims[2] / 2, dims[3] / 2];
        Ok(tvec!(input.datum_type.fact(shape)))
    }
}

plan_op!(FastMaxPool2x2);

/// True for tract's pools that [`FastMaxPool2x2`] computes exactly.
fn is_plain_2x2_stride_2(pool: &OptMaxPool, input: &TypedFact) -> bool {
    let spec = &pool.pool_spec;
    let no_padding = match &spec.padding {
        PaddingSpec::Valid => true,
        PaddingSpec::Explicit(before, after) => before.iter().chain(after).all(|p| *p == 0),
        PaddingSpec::ExplicitOnnxPool(before, after, ceil) => {
            !ceil && before.iter().chain(after).all(|p| *p == 0)
        }
        _ => false,
    };
    pool.with_index_outputs.is_none()
        && spec.data_format == DataFormat::NCHW
        && spec.kernel_shape[..] == [2, 2]
        && spec.strides.as_deref().is_some_and(|s| s == [2, 2])
        && spec.dilations.as_deref().is_none_or(|d| d == [1, 1])
        && no_padding
        && matches!(input.datum_type, DatumType::F32 | DatumType::U8)
        && input.shape.as_concrete().is_some_and(|d| d.len() == 4)
}

/// Replaces tract's 2x2 stride-2 max pools of an optimized model with [`FastMaxPool2x2`];
/// returns how many. Only pools whose output fact is exactly the new op's are replaced.
pub fn swap_in(model: &mut TypedModel) -> TractResult<usize> {
    let mut swapped = 0;
    for id in 0..model.nodes().len() {
        let node = model.node(id);
        let Some(pool) = node.op_as::<OptMaxPool>() else {
            continue;
        };
        let input = model.outlet_fact(node.inputs[0])?;
        if !is_plain_2x2_stride_2(pool, input) {
            continue;
        }
        let ours = FastMaxPool2x2.output_facts(&[input])?;
        let theirs = &node.outputs[0].fact;
        if ours[0].shape != theirs.shape || ours[0].datum_type != theirs.datum_type {
            continue;
        }
        model.node_mut(id).op = Box::new(FastMaxPool2x2);
        swapped += 1;
    }
    Ok(swapped)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Straightforward reference: every window, every tap.
    fn reference(x: &[f32], h: usize, w: usize) -> Vec<f32> {
        let mut out = vec![];
        for oy in 0..h / 2 {
            for ox in 0..w / 2 {
                let taps = [(0, 0), (0, 1), (1, 0), (1, 1)];
                let m = taps
                    .iter()
                    .map(|(dy, dx)| x[(2 * oy + dy) * w + 2 * ox + dx])
                    .fold(f32::MIN, f32::max);
                out.push(m);
            }
        }
        out
    }

    #[test]
    fn plane_matches_a_window_by_window_reference() {
        for (h, w) in [(4, 4), (5, 7), (64, 64), (2, 3), (1, 8)] {
            let x: Vec<f32> = (0..h * w).map(|i| ((i * 37 % 101) as f32) - 50.0).collect();
            let mut out = vec![0.0; (h / 2) * (w / 2)];
            pool_plane(&x, w, &mut out);
            assert_eq!(out, reference(&x, h, w), "{h}x{w}");
        }
    }

    /// Pools a [2, 24, 32, 34] u8 tensor and checks every plane against the reference.
    fn check_tensor_pooling() {
        let (n, c, h, w) = (2, 24, 32, 34);
        let x: Vec<u8> = (0..n * c * h * w).map(|i| (i * 29 % 251) as u8).collect();
        let input = Tensor::from_shape(&[n, c, h, w], &x).unwrap();
        let out = FastMaxPool2x2
            .eval(&EvalContext::out_of_plan(), tvec!(input.into_tvalue()))
            .unwrap();
        assert_eq!(out[0].shape(), &[n, c, h / 2, w / 2]);
        let ys = out[0].try_as_plain_ram().unwrap();
        let ys = ys.as_slice::<u8>().unwrap();
        let (hw, ohw) = (h * w, (h / 2) * (w / 2));
        for p in 0..n * c {
            let plane: Vec<f32> = x[p * hw..(p + 1) * hw].iter().map(|v| *v as f32).collect();
            let want: Vec<u8> = reference(&plane, h, w).iter().map(|v| *v as u8).collect();
            assert_eq!(&ys[p * ohw..(p + 1) * ohw], &want[..], "plane {p}");
        }
    }

    #[test]
    fn tensors_pool_per_plane_on_one_thread() {
        check_tensor_pooling();
    }

    #[test]
    fn tensors_pool_per_plane_split_over_threads() {
        crate::threads::on_two_threads(check_tensor_pooling);
    }
}
