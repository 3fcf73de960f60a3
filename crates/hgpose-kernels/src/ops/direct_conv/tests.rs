use super::*;
use crate::test_models::patterned_input;
use crate::threads::on_two_threads;
use tract_onnx::tract_core::ops::cnn::Conv;
use tract_onnx::tract_core::ops::cnn::{KernelFormat, PaddingSpec, PoolSpec};
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::nn::DataFormat;

fn pattern(n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * 7919) % 101) as f32 / 50.0 - 1.0) * scale)
        .collect()
}

/// conv (side x side / stride, c -> o over h x w), + per-channel constant, ReLU, + skip:
/// tract's graph, decluttered.
fn residual_tail(side: usize, stride: usize, c: usize, o: usize, h: usize, w: usize) -> TypedModel {
    let mut model = TypedModel::default();
    let x = model.add_source("x", f32::fact([1, c, h, w])).unwrap();
    let pad = side / 2;
    let spec = PoolSpec::new(
        DataFormat::NCHW,
        tvec![side, side],
        PaddingSpec::Explicit(tvec![pad, pad], tvec![pad, pad]),
        None,
        Some(tvec![stride, stride]),
        c,
        o,
    );
    let conv = Conv::new(spec, KernelFormat::OIHW, 1, None);
    let k = Tensor::from_shape(&[o, c, side, side], &pattern(o * c * side * side, 0.3));
    let k = model.add_const("k", k.unwrap()).unwrap();
    let b = model.add_const("b", tensor1(&pattern(o, 0.5))).unwrap();
    let y = model.wire_node("conv", conv, &[x, k, b]).unwrap()[0];
    let shift = Tensor::from_shape(&[1, o, 1, 1], &pattern(o, 0.2)).unwrap();
    let shift = model.add_const("shift.k", shift).unwrap();
    let add = tract_onnx::tract_core::ops::math::add();
    let y = model.wire_node("shift", add.clone(), &[y, shift]).unwrap()[0];
    let zero = model.add_const("zero", tensor4(&[[[[0f32]]]])).unwrap();
    let max = tract_onnx::tract_core::ops::math::max();
    let y = model.wire_node("relu", max, &[y, zero]).unwrap()[0];
    let out = model.outlet_fact(y).unwrap().clone();
    let skip_in = model.add_source("skip", out).unwrap();
    let y = model.wire_node("sum", add, &[y, skip_in]).unwrap()[0];
    model.select_output_outlets(&[y]).unwrap();
    model.into_decluttered().unwrap()
}

fn run(model: &TypedModel, c: usize, h: usize, w: usize) -> Vec<f32> {
    let x = patterned_input((1, c, h, w));
    let skip_shape = model
        .input_fact(1)
        .unwrap()
        .shape
        .as_concrete()
        .unwrap()
        .to_vec();
    let n = skip_shape.iter().product();
    let skip = Tensor::from_shape(&skip_shape, &pattern(n, 1.0)).unwrap();
    let plan = model.clone().into_runnable().unwrap();
    let out = plan
        .run(tvec!(x.into_tvalue(), skip.into_tvalue()))
        .unwrap();
    out[0]
        .try_as_plain_ram()
        .unwrap()
        .as_slice::<f32>()
        .unwrap()
        .to_vec()
}

fn compare(
    side: usize,
    stride: usize,
    (c, o, h, w): (usize, usize, usize, usize),
    kernel: KernelChoice,
) {
    let theirs = residual_tail(side, stride, c, o, h, w);
    let mut ours = theirs.clone();
    assert_eq!(swap_in_with(&mut ours, kernel).unwrap(), 1);
    let ops: Vec<_> = ours.nodes().iter().map(|n| n.op().name()).collect();
    assert!(
        !ops.iter()
            .any(|op| op == "Add" || op == "Max" || op == "Conv"),
        "bias, ReLU and skip are taken in: {ops:?}"
    );
    let expected = run(&theirs.into_optimized().unwrap(), c, h, w);
    let ours = ours.into_optimized().unwrap();
    let range = expected.iter().fold(0f32, |m, x| m.max(x.abs()));
    assert!(range > 0.0);
    // As it runs on one and two threads, and on two with every layer cut into many tasks
    // (the bordered copy too), which the caller and a helper share.
    let cut = Tuning {
        parallel_macs: 0,
        parallel_copy: 0,
        tasks_per_thread: 64,
        ..TUNING
    };
    // And with 1x1 layers' tiles of 4 KB of input: one or a few kernel widths, the last
    // one partial.
    let narrow_tiles = Tuning {
        tile_bytes: 4096,
        ..TUNING
    };
    let runs = [
        run(&ours, c, h, w),
        on_two_threads(|| run(&ours, c, h, w)),
        with_tuning(cut, || on_two_threads(|| run(&ours, c, h, w))),
        with_tuning(narrow_tiles, || run(&ours, c, h, w)),
    ];
    for got in runs {
        let worst = expected
            .iter()
            .zip(&got)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            worst <= 1e-5 * range,
            "{side}x{side}/{stride} {c}->{o} {h}x{w} {kernel:?}: off by {worst} (range {range})"
        );
    }
}

fn with_tuning<R>(tuning: Tuning, f: impl FnOnce() -> R) -> R {
    with_thread_tuning(|_| tuning, f)
}

#[test]
fn tasks_cover_every_block_and_position_once() {
    let conv = |side, c, o, h, w| DirectConv {
        shape: Shape {
            in_channels: c,
            out_channels: o,
            height: h,
            width: w,
            side,
            stride: 1,
        },
        relu: false,
        with_addend: false,
        out_shape: tvec![o, h, w],
        kernel: KernelChoice(true),
    };
    for op in [
        conv(3, 64, 64, 64, 64),
        conv(1, 64, 128, 64, 64),
        conv(3, 32, 32, 8, 8),
        conv(1, 32, 13, 5, 3),
    ] {
        for threads in [1, 2, 4] {
            for tasks_per_thread in [1, 3, 64] {
                let tuning = Tuning {
                    parallel_macs: 0,
                    parallel_copy: 0,
                    tasks_per_thread,
                    ..TUNING
                };
                let tiling = with_tuning(tuning, || op.tiling(threads));
                let (unit, units) = match op.in_place() {
                    true => (
                        op.kernel().width(),
                        (op.shape.height * op.shape.width).div_ceil(op.kernel().width()),
                    ),
                    false => (op.padded_row(), op.shape.height),
                };
                assert_eq!(tiling.run % unit, 0);
                assert!(tiling.runs * tiling.run >= units * unit);
                assert!(
                    (tiling.runs - 1) * tiling.run < units * unit,
                    "no empty run"
                );
                assert!(tiling.groups >= 1 && tiling.groups <= tiling.blocks);
                let tasks = tiling.runs * tiling.groups;
                if threads > 1 {
                    assert!(
                        tasks >= threads.min(units * tiling.blocks),
                        "{op:?} on {threads}: {tasks} tasks"
                    );
                }
            }
        }
    }
}

/// Shapes with partial channel blocks, tails shorter than a vector, and rows of 1 to 33.
const SHAPES: [(usize, usize, usize, usize); 5] = [
    (8, 16, 33, 20),
    (5, 7, 9, 1),
    (3, 13, 4, 4),
    (16, 6, 2, 2),
    (4, 32, 64, 9),
];

#[test]
fn three_by_three_convolutions_match_tract() {
    for shape in SHAPES {
        compare(3, 1, shape, KernelChoice(true));
        compare(3, 1, shape, KernelChoice(false));
    }
}

#[test]
fn one_by_one_convolutions_match_tract() {
    for shape in SHAPES {
        compare(1, 1, shape, KernelChoice(true));
        compare(1, 1, shape, KernelChoice(false));
    }
}

/// The paper's stem (7x7, stride 2) and odd sizes, through the phase planes.
#[test]
fn strided_convolutions_match_tract() {
    for shape in [(3, 64, 32, 32), (3, 7, 13, 9), (5, 8, 6, 7)] {
        compare(7, 2, shape, KernelChoice(true));
        compare(7, 2, shape, KernelChoice(false));
        compare(3, 2, shape, KernelChoice(true));
    }
}

#[test]
fn weights_are_packed_six_channels_a_step() {
    let weights: Vec<f32> = (0..7 * 2).map(|i| i as f32).collect();
    let packed = pack_weights(&weights, 7);
    assert_eq!(packed.len(), 2 * 2 * ROWS);
    assert_eq!(&packed[..ROWS], &[0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
    assert_eq!(&packed[ROWS..2 * ROWS], &[1.0, 3.0, 5.0, 7.0, 9.0, 11.0]);
    assert_eq!(
        &packed[2 * ROWS..3 * ROWS],
        &[12.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    );
}

/// The fixture hourglass (256x256) with every convolution swapped: heatmaps within float
/// rounding of tract's.
#[test]
fn the_fixture_hourglass_matches_tract() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/fixtures");
    let typed = tract_onnx::onnx()
        .model_for_path(root.join("hg_s2_f32_stacked.onnx"))
        .unwrap()
        .into_typed()
        .unwrap()
        .into_decluttered()
        .unwrap();
    let mut ours = typed.clone();
    let swapped = swap_in_with(&mut ours, KernelChoice(true)).unwrap();
    let convs = typed
        .nodes()
        .iter()
        .filter(|n| n.op_is::<Conv>() || n.op_is::<EinSum>())
        .count();
    let left: Vec<String> = ours
        .nodes()
        .iter()
        .filter(|n| n.op_is::<Conv>() || n.op_is::<EinSum>())
        .map(|n| {
            format!(
                "{} {:?} <- {:?}",
                n.name,
                n.op(),
                ours.node_input_facts(n.id)
            )
        })
        .collect();
    assert_eq!(swapped, convs, "the 7x7 stem included; left: {left:#?}");
    let input = patterned_input((1, 3, 256, 256));
    let first = |m: TypedModel| crate::test_models::first_output(&m, &input);
    let expected = first(typed.into_optimized().unwrap());
    let got = first(ours.into_optimized().unwrap());
    let range = expected.iter().fold(0f32, |m, x| m.max(x.abs()));
    let worst = expected
        .iter()
        .zip(&got)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(worst <= 1e-4 * range, "off by {worst} (range {range})");
}
