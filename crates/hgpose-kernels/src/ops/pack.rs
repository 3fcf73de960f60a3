//! A faster stand-in for tract's `OptMatMulPack` of 8-bit activations into the K=4-inner layout
//! (`PackedI8K4`): the 1x1 convolutions of an int8 model on VNNI or SDOT kernels, or hgpose's
//! AVX2 one.
//!
//! tract 0.23 zero-fills the buffer, then stores one byte at a time, 4 bytes apart. That was
//! ~10% of the int8 inference (`bench --profile`). This op writes each 4 x r block of a panel
//! once, from four rows of the input interleaved with SIMD byte shuffles (`im2col`'s).
//! tract packs a 1x1 convolution of an NCHW image row by row (k = channels, mn = columns,
//! batched over the rows), so this op packs one matrix per coordinate of the other axes.

use crate::ops::plan_op::PlanOp;
use crate::plan_op;
use tract_linalg::mmm::{EagerPackedInput, MMMInputValue, PackedExoticFact, PackedMatrixStorage};
use tract_linalg::pack::PackedI8K4;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ndarray::Dimension;
use tract_onnx::tract_core::ops::matmul::pack::{DynPackedExoticFact, OptMatMulPack};

use super::im2col::{interleave4, interleave4_at};

/// Packs the `[k, mn]` matrices of a contiguous 8-bit tensor (all other axes are batch axes)
/// into `PackedI8K4`: panel `p` holds columns `p*r .. p*r+r`; in it, byte `(k/4)*4r + m*4 + k%4`
/// is row `k` of column `p*r+m`; k beyond the rows and columns beyond mn are 0.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FastPackK4 {
    pub k_axis: usize,
    pub mn_axis: usize,
    pub format: PackedI8K4,
    /// What tract's op declares for its output: the batch shape and its packing fact.
    pub output_shape: TVec<usize>,
    pub fact: DynPackedExoticFact,
}

/// One matrix: rows `k` of `mn` bytes, row `i` starting at `x[i * k_stride..]`.
pub fn pack_matrix(x: &[u8], k: usize, mn: usize, k_stride: usize, r: usize, out: &mut [u8]) {
    let panel_len = k.div_ceil(4) * 4 * r;
    let zeros = vec![0u8; r];
    let mut scratch = vec![0u8; 4 * r];
    for (p, panel) in out.chunks_exact_mut(panel_len).enumerate() {
        let n0 = p * r;
        let width = mn.saturating_sub(n0).min(r);
        for (kb, block) in panel.chunks_exact_mut(4 * r).enumerate() {
            if width == r && kb * 4 + 4 <= k {
                let at = [0, 1, 2, 3].map(|kr| (kb * 4 + kr) * k_stride + n0);
                interleave4_at(x, at, block);
                continue;
            }
            let mut rows: [&[u8]; 4] = [&zeros[..]; 4];
            for (kr, (row, dst)) in rows.iter_mut().zip(scratch.chunks_exact_mut(r)).enumerate() {
                let kk = kb * 4 + kr;
                if kk >= k {
                    break;
                }
                let start = kk * k_stride + n0;
                if width == r {
                    *row = &x[start..start + r];
                } else {
                    dst[..width].copy_from_slice(&x[start..start + width]);
                    dst[width..].fill(0);
                    *row = dst;
                }
            }
            interleave4(rows[0], rows[1], rows[2], rows[3], block);
        }
    }
}

impl FastPackK4 {
    fn k_mn(&self, shape: &[usize]) -> (usize, usize) {
        (shape[self.k_axis], shape[self.mn_axis])
    }
}

impl PlanOp for FastPackK4 {
    const NAME: &'static str = "FastPackK4";

    fn run(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = super::first_input(&inputs, "FastPackK4")?;
        let dt = input.datum_type();
        anyhow::ensure!(
            dt.size_of() == 1,
            "FastPackK4 packs 8-bit tensors, not {dt:?}"
        );
        let shape = input.shape();
        let strides = input.strides();
        let (k, mn) = self.k_mn(shape);
        let r = self.format.r;
        let panel_len = self.format.single_panel_len(k);
        let matrix_len = mn.div_ceil(r) * panel_len;
        // Every coordinate of the other axes is one matrix, in the order of the output shape.
        let mut batch_shape: TVec<usize> = shape.into();
        batch_shape[self.k_axis] = 1;
        batch_shape[self.mn_axis] = 1;
        let x = input.as_bytes();
        let mut values: TVec<Box<dyn MMMInputValue>> = tvec!();
        for coord in tract_ndarray::indices(&*batch_shape) {
            let offset: isize = coord
                .as_array_view()
                .iter()
                .zip(strides)
                .map(|(c, s)| *c as isize * s)
                .sum();
            let mut data = unsafe {
                Tensor::uninitialized_aligned_dt(dt, &[matrix_len], self.format.alignment())?
            };
            pack_matrix(
                &x[offset as usize..],
                k,
                mn,
                strides[self.k_axis] as usize,
                r,
                data.as_bytes_mut(),
            );
            values.push(packed_k4(&self.format, k, mn, panel_len, data)?);
        }
        let output = PackedMatrixStorage::new_batched(&self.output_shape, values).into_tensor(dt);
        Ok(tvec!(output.into_tvalue()))
    }

    fn facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let input = super::first_input(inputs, "FastPackK4")?;
        Ok(tvec!(input
            .datum_type
            .fact(&*self.output_shape)
            .with_exotic_fact(self.fact.clone())))
    }
}

plan_op!(FastPackK4);

/// The op for tract's pack node when it packs a fixed-shape 8-bit tensor into `PackedI8K4` with
/// the k axis before the mn axis (rows contiguous), for more than one column.
fn stand_in(pack: &OptMatMulPack, input: &TypedFact, output: &TypedFact) -> Option<FastPackK4> {
    let dims = input.shape.as_concrete()?;
    let fact = output
        .exotic_fact
        .as_ref()?
        .downcast_ref::<DynPackedExoticFact>()?;
    // The axes it packs, from its own axes mapping (its fields are private to tract).
    let mapping = pack.axes_mapping(&[input], &[output]).ok()?;
    let k_axis = *mapping.axis('K').ok()?.inputs[0].first()?;
    let mn_axis = *mapping.axis('M').ok()?.inputs[0].first()?;
    let mn = dims[mn_axis];
    // One packer, or tract's (matrix, vector) pair whose vector form serves only mn == 1.
    let format = match fact.packers.as_slice() {
        [one] => one.downcast_ref::<PackedI8K4>()?,
        [matrix, _vector] if mn > 1 => matrix.downcast_ref::<PackedI8K4>()?,
        _ => return None,
    };
    (input.datum_type.size_of() == 1 && k_axis < mn_axis && mn > 1).then(|| FastPackK4 {
        k_axis,
        mn_axis,
        format: format.clone(),
        output_shape: output.shape.as_concrete().unwrap_or(&[]).into(),
        fact: fact.clone(),
    })
}

/// Replaces tract's `OptMatMulPack` nodes that pack 8-bit activations into `PackedI8K4` with
/// [`FastPackK4`]; returns how many. The output facts must match exactly.
pub fn swap_in(model: &mut TypedModel) -> TractResult<usize> {
    let mut swapped = 0;
    for id in 0..model.nodes().len() {
        let node = model.node(id);
        let Some(pack) = node.op_as::<OptMatMulPack>() else {
            continue;
        };
        let input = model.outlet_fact(node.inputs[0])?;
        let theirs = &node.outputs[0].fact;
        let Some(ours) = stand_in(pack, input, theirs) else {
            continue;
        };
        if theirs.shape.as_concrete().is_none() || ours.output_facts(&[input])?[0] != *theirs {
            continue;
        }
        model.node_mut(id).op = Box::new(ours);
        swapped += 1;
    }
    Ok(swapped)
}

/// The value tract's matrix product takes for one `PackedI8K4` matrix of `k` rows and `mn`
/// columns whose panels (`panel_bytes` each) fill `data`.
pub(super) fn packed_k4(
    format: &PackedI8K4,
    k: usize,
    mn: usize,
    panel_bytes: usize,
    data: Tensor,
) -> TractResult<Box<dyn MMMInputValue>> {
    Ok(Box::new(EagerPackedInput {
        fact: PackedExoticFact {
            format: Box::new(format.clone()),
            k,
            mn: mn.to_dim(),
        },
        packed: data.into_blob()?.into(),
        panel_bytes: if mn > 0 { panel_bytes } else { 0 },
        mn,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packed(t: &TValue) -> Vec<Vec<u8>> {
        let storage = t.try_storage_as::<PackedMatrixStorage>().unwrap();
        storage
            .values()
            .iter()
            .map(|v| {
                let v = v.downcast_ref::<EagerPackedInput>().unwrap();
                v.packed.as_bytes().to_vec()
            })
            .collect()
    }

    /// Against tract's own packing of the same tensors, as `OptMatMulPack` calls it, for both
    /// panel widths, several shapes (NCHW rows as tract packs them, partial last panels, k not a
    /// multiple of 4), over the batch axes.
    #[test]
    fn packs_what_tracts_packer_packs() {
        for r in [8, 16] {
            let format = PackedI8K4::new(r);
            for (shape, k_axis, mn_axis) in [
                (vec![1usize, 64, 8, 64], 1, 3),
                (vec![7, 5, 33], 0, 2),
                (vec![13, 21], 0, 1),
                (vec![1, 3, 2, 17], 1, 3),
            ] {
                let len: usize = shape.iter().product();
                let x: Vec<i8> = (0..len).map(|i| (i * 37 % 251) as u8 as i8).collect();
                let input = Tensor::from_shape(&shape, &x).unwrap();
                let mut output_shape: TVec<usize> = shape.iter().copied().collect();
                output_shape.remove(mn_axis);
                output_shape.remove(k_axis);
                let op = FastPackK4 {
                    k_axis,
                    mn_axis,
                    format: format.clone(),
                    output_shape: output_shape.clone(),
                    fact: DynPackedExoticFact {
                        k: shape[k_axis].to_dim(),
                        mn: shape[mn_axis].to_dim(),
                        packers: vec![Box::new(format.clone())],
                    },
                };
                let ours = op
                    .eval(
                        &EvalContext::out_of_plan(),
                        tvec!(input.clone().into_tvalue()),
                    )
                    .unwrap();
                let ours = packed(&ours[0]);
                // tract: one pack_view per coordinate of the batch axes, in order.
                let mut batch = shape.clone();
                batch[k_axis] = 1;
                batch[mn_axis] = 1;
                let mut theirs = vec![];
                for coord in tract_ndarray::indices(&*batch) {
                    let offset: isize = coord
                        .as_array_view()
                        .iter()
                        .zip(input.strides())
                        .map(|(c, s)| *c as isize * s)
                        .sum();
                    let view = unsafe {
                        TensorView::from_bytes(&input, offset, input.shape(), input.strides())
                    };
                    let v = format.pack_view(&view, k_axis, mn_axis).unwrap();
                    let v = v.downcast_ref::<EagerPackedInput>().unwrap();
                    theirs.push(v.packed.as_bytes().to_vec());
                }
                assert_eq!(ours, theirs, "r={r} {shape:?}");
            }
        }
    }
}
