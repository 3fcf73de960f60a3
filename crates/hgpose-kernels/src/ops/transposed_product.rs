//! Integer matrix products turned around so that they store along the image's pixels, on x86_64.
//!
//! tract makes the longer side of a product its `m` side. For a flattened 1x1 convolution that is
//! the pixels (4096 on a 64x64 map) and `n` the output channels, so each output tile is written
//! down a channel plane's pixels: `m`-contiguous. tract's AVX-512 VNNI kernel stores such tiles
//! an element at a time: a 4096x64x128 product took 1.52 ms stored `m`-contiguous against
//! 0.125 ms `n`-contiguous on this machine (`cargo bench --bench kernels`), and the bundled
//! model's int8 inference went from about 7-9.7 ms to 4.5-6.6 ms. Where the kernel packs both operands alike
//! (`PackedI8K4`, 16 wide on both sides), swapping them is free: the weights become `a`, the
//! packed activations `b`, per-row operations become per-column ones and the store's axes swap.
//! Integer sums come out identical. hgpose's AVX2 kernel (`x86_64::int8_mmm`, 8 wide on both
//! sides) stores either way at one speed, but turning is what lets quantized 1x1 convolutions
//! stay one flat product (`flat_pointwise`) instead of one per image row: the bundled model's
//! int8 inference went from 45 to 38 ms on an AVX2 EPYC (`bench --profile`, one thread).
//! aarch64 (SDOT) was not measured on a board and keeps tract's orientation.

use tract_linalg::mmm::OutputStoreSpec;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::matmul::optimized::{OptMatMul, ProtoFusedSpec};
use tract_onnx::tract_core::ops::matmul::ModePicker;

fn swap_store(store: &OutputStoreSpec) -> OutputStoreSpec {
    match *store {
        OutputStoreSpec::View {
            m_axis,
            n_axis,
            mr,
            nr,
        } => OutputStoreSpec::View {
            m_axis: n_axis,
            n_axis: m_axis,
            mr,
            nr,
        },
        OutputStoreSpec::Strides {
            row_byte_stride,
            col_byte_stride,
            mr,
            nr,
        } => OutputStoreSpec::Strides {
            row_byte_stride: col_byte_stride,
            col_byte_stride: row_byte_stride,
            mr,
            nr,
        },
    }
}

/// The same product with `a` and `b` (and so rows and columns) swapped, for a kernel that packs
/// both alike; `None` where an operation has no swapped form here.
pub fn transposed(op: &OptMatMul) -> Option<OptMatMul> {
    use ProtoFusedSpec::*;
    let micro_ops = op
        .micro_ops
        .iter()
        .map(|spec| {
            Some(match spec {
                AddMatMul {
                    geo,
                    a,
                    b,
                    packings,
                } => {
                    let mut geo = geo.clone();
                    std::mem::swap(&mut geo.c_to_a_axis_mapping, &mut geo.c_to_b_axis_mapping);
                    // A panel extractor unpacks `a` alone: not for swapping.
                    if packings.iter().any(|(_, extractor)| extractor.is_some()) {
                        return None;
                    }
                    AddMatMul {
                        geo,
                        a: b.clone(),
                        b: a.clone(),
                        packings: packings.clone(),
                    }
                }
                BinPerRow(v, bin, map) => BinPerCol(*v, *bin, map.clone()),
                BinPerCol(v, bin, map) => BinPerRow(*v, *bin, map.clone()),
                AddRowColProducts(rows, cols) => AddRowColProducts(*cols, *rows),
                AddUnicast(store, v, map) => AddUnicast(swap_store(store), *v, map.clone()),
                Store(stores) => Store(stores.iter().map(swap_store).collect()),
                BinScalar(..) | LeakyRelu(_) | Scaler(_) => spec.clone(),
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(OptMatMul {
        micro_ops,
        c_m_axis: op.c_n_axis,
        c_n_axis: op.c_m_axis,
        ..op.clone()
    })
}

/// Whether `op` is an integer product that stores `m`-contiguous with one kernel that packs its
/// two operands alike (so that [`transposed`] needs no repacking).
fn stores_down_m(op: &OptMatMul) -> bool {
    let rank = op.c_fact.rank();
    let (Some(m), Some(n)) = (op.c_m_axis, op.c_n_axis) else {
        return false;
    };
    let [mmm] = &op.mmm[..] else {
        return false;
    };
    let alike = op.micro_ops.iter().all(|spec| match spec {
        ProtoFusedSpec::AddMatMul { packings, .. } => packings.iter().all(|(ix, _)| {
            let (a, b) = &mmm.packings()[*ix];
            a.dyn_eq(&**b)
        }),
        _ => true,
    });
    op.c_fact.datum_type == i32::datum_type()
        && matches!(op.mode_picker, ModePicker::Single)
        && m + 1 == rank
        && n + 1 != rank
        && mmm.mr() == mmm.nr()
        && alike
}

/// Whether this CPU runs one of the kernels measured here, tract's AVX-512 VNNI ones or
/// hgpose's AVX2 one: elsewhere products keep tract's orientation (and quantized 1x1
/// convolutions their rows, see `flat_pointwise`). CPUs with AMX count among the VNNI ones:
/// the kernel tier (`x86_64::int8_tier`) keeps their shallow products, the 1x1 convolutions among
/// them, on VNNI, since AMX packs `a` its own way and could not be turned.
pub fn turns_products() -> bool {
    #[cfg(target_arch = "x86_64")]
    return crate::cpu::has_feature("avx512vnni") || crate::x86_64::int8_tier::hgpose_kernel_runs();
    #[cfg(not(target_arch = "x86_64"))]
    return false;
}

/// Turns every integer product of an optimized model that stores `m`-contiguous around (where
/// [`turns_products`]); returns how many.
pub fn swap_in(model: &mut TypedModel) -> TractResult<usize> {
    if !turns_products() {
        return Ok(0);
    }
    let mut swapped = 0;
    for id in 0..model.nodes().len() {
        let Some(op) = model.node(id).op_as::<OptMatMul>() else {
            continue;
        };
        if !stores_down_m(op) {
            continue;
        }
        let Some(turned) = transposed(op) else {
            continue;
        };
        model.node_mut(id).op = Box::new(turned);
        swapped += 1;
    }
    Ok(swapped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_models::{first_output, patterned_input, QuantizedConv};

    /// float -> QuantizeLinear -> QLinearConv 1x1 (32 -> 48 channels, per-channel weight
    /// scales) -> DequantizeLinear, over a 16x16 map: as `quantize` writes convolutions.
    fn quantized_pointwise() -> TypedModel {
        let mut model = QuantizedConv::layer(32, 48, 1, 1, 16, 16, 128).model();
        super::super::flat_pointwise::flatten(&mut model).unwrap();
        model.into_optimized().unwrap()
    }

    fn products(model: &TypedModel) -> Vec<&OptMatMul> {
        model
            .nodes()
            .iter()
            .filter_map(|n| n.op_as::<OptMatMul>())
            .collect()
    }

    /// tract stores the flattened convolution down its pixels; turned around, it stores along
    /// them, gives the same integers, and turning it twice gives tract's op back.
    #[test]
    fn turned_products_compute_tracts_integers() {
        let theirs = quantized_pointwise();
        let down_m: Vec<&OptMatMul> = products(&theirs)
            .into_iter()
            .filter(|op| stores_down_m(op))
            .collect();
        if !turns_products() {
            eprintln!("neither AVX-512 VNNI nor hgpose's AVX2 kernel on this CPU: nothing to turn around here");
            return;
        }
        assert_eq!(
            down_m.len(),
            1,
            "tract makes the 256 pixels m, stored m-contiguous"
        );
        let turned = transposed(down_m[0]).unwrap();
        assert!(!stores_down_m(&turned));
        assert_eq!(&transposed(&turned).unwrap(), down_m[0]);
        let mut ours = theirs.clone();
        assert_eq!(swap_in(&mut ours).unwrap(), 1);
        let input = patterned_input((1, 32, 16, 16));
        let (expected, got) = (first_output(&theirs, &input), first_output(&ours, &input));
        assert!(
            expected.iter().any(|v| *v != expected[0]),
            "a non-constant output"
        );
        assert_eq!(got, expected);
    }
}
