use super::*;
use crate::test_models::{first_output, patterned_input, QuantizedConv};
use crate::threads::on_two_threads;
use tract_onnx::tract_core::ops::cnn::Conv;

/// The layer decluttered as the engine has it, and the same with its convolution swapped
/// for [`DirectConvI8`] on `kernel`.
fn theirs_and_ours(layer: &QuantizedConv, kernel: Kernel) -> (TypedModel, TypedModel) {
    let theirs = layer.model().into_decluttered().unwrap();
    let mut ours = theirs.clone();
    assert_eq!(
        swap_in_with(&mut ours, kernel).unwrap(),
        1,
        "the layer is taken"
    );
    let op = ours
        .nodes()
        .iter()
        .find_map(|n| n.op_as::<DirectConvI8>())
        .unwrap();
    // 1x1 layers take in the dequantization (and the residual add) after them.
    assert_eq!(op.dequantize.is_some(), layer.side == 1);
    assert_eq!(op.with_addend, layer.residual);
    let remain = |name: &str| ours.nodes().iter().any(|n| n.op.name() == name);
    assert_eq!(remain("DequantizeLinearF32"), layer.side != 1, "{ours}");
    assert!(!remain("Add"), "{ours}");
    (theirs, ours)
}

fn kernels() -> Vec<Kernel> {
    let mut kernels = vec![Kernel::Portable];
    match Kernel::native() {
        Some(native) => kernels.push(native),
        None => eprintln!("no AVX-512 VNNI here: only the portable int8 loops are checked"),
    }
    kernels
}

/// Every shape the hourglass has (1x1 over `EinSum`, 3x3, the 7x7 stride-2 stem), with
/// channels that are not whole quads or blocks, odd map sizes and input zero points of 0
/// and not 0 (the border then holds it), gives tract's outputs exactly, on one thread and
/// on two; 1x1 layers dequantize as they store, and add the residual that follows.
#[test]
fn gives_tracts_outputs_for_every_layer_shape() {
    let residual = QuantizedConv {
        residual: true,
        ..QuantizedConv::layer(24, 24, 1, 1, 10, 12, 5)
    };
    let layers = [
        residual,
        QuantizedConv::layer(32, 48, 1, 1, 16, 16, 128),
        QuantizedConv::layer(13, 10, 1, 1, 9, 7, 0),
        QuantizedConv::layer(13, 10, 3, 1, 9, 7, 3),
        QuantizedConv::layer(32, 32, 3, 1, 8, 8, 0),
        QuantizedConv::layer(64, 20, 3, 1, 5, 21, 200),
        QuantizedConv::layer(3, 8, 7, 2, 20, 18, 0),
        QuantizedConv::layer(5, 7, 3, 2, 11, 9, 17),
    ];
    for kernel in kernels() {
        for l in &layers {
            let (theirs, ours) = theirs_and_ours(l, kernel);
            let input = patterned_input((
                1,
                l.in_channels as usize,
                l.height as usize,
                l.width as usize,
            ));
            let expected = first_output(&theirs, &input);
            assert!(
                expected.iter().any(|v| *v != expected[0]),
                "a non-constant output"
            );
            let what = format!(
                "{kernel:?} {}x{}/{} {}->{} over {}x{}",
                l.side, l.side, l.stride, l.in_channels, l.out_channels, l.height, l.width
            );
            assert_eq!(first_output(&ours, &input), expected, "{what}");
            let two = on_two_threads(|| first_output(&ours, &input));
            assert_eq!(two, expected, "{what}, two threads");
        }
    }
}

/// Weights with a zero point other than 0 are left to tract (the kernel folds only the
/// input's zero point).
#[test]
fn leaves_asymmetric_weights_to_tract() {
    let mut decluttered = QuantizedConv::layer(8, 8, 3, 1, 6, 6, 0)
        .model()
        .into_decluttered()
        .unwrap();
    let conv = decluttered
        .nodes()
        .iter()
        .find(|n| n.op_is::<Conv>())
        .unwrap()
        .id;
    let konst = decluttered
        .add_const("w0_nonzero", tensor1(&[1i8; 8]))
        .unwrap();
    decluttered.add_edge(konst, InletId::new(conv, 5)).unwrap();
    assert_eq!(decluttered.node(conv).inputs.len(), 9);
    assert_eq!(decluttered.node(conv).inputs[5], konst);
    assert_eq!(swap_in_with(&mut decluttered, Kernel::Portable).unwrap(), 0);
}

#[test]
fn packs_weights_by_quads_of_input_channels() {
    // 2 output channels, 5 input channels (2 quads), 1x1: w[o][c] = 10o + c.
    let weights: Vec<i8> = (0..2)
        .flat_map(|o| (0..5).map(move |c| (10 * o + c) as i8))
        .collect();
    let packed = pack_weights(&weights, 2, 5, 1);
    assert_eq!(packed.len(), 2 * ROWS);
    let bytes = |v: i32| v.to_le_bytes().map(|b| b as i8);
    assert_eq!(bytes(packed[0]), [0, 1, 2, 3]); // quad 0, channel 0
    assert_eq!(bytes(packed[1]), [10, 11, 12, 13]); // quad 0, channel 1
    assert_eq!(bytes(packed[2]), [0; 4]); // quad 0, channel 2 (missing)
    assert_eq!(bytes(packed[ROWS]), [4, 0, 0, 0]); // quad 1, channel 0
    assert_eq!(bytes(packed[ROWS + 1]), [14, 0, 0, 0]);
}

#[test]
fn interleaves_lines_of_any_length() {
    for n in [1, 15, 16, 17, 40] {
        let lines: Vec<Vec<u8>> = (0..4)
            .map(|j| (0..n).map(|i| (i * 4 + j) as u8).collect())
            .collect();
        let refs: Vec<&[u8]> = lines.iter().map(|l| &l[..]).collect();
        let mut out = vec![0u8; 4 * n];
        interleave(&refs, &mut out);
        assert_eq!(
            out,
            (0..4 * n).map(|v| v as u8).collect::<Vec<_>>(),
            "n {n}"
        );
        let mut three = vec![9u8; 4 * n];
        interleave(&refs[..3], &mut three);
        assert!(three
            .chunks(4)
            .enumerate()
            .all(|(i, q)| q == [(4 * i) as u8, (4 * i + 1) as u8, (4 * i + 2) as u8, 9]));
    }
}
