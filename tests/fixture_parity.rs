//! tract runs the committed PyTorch exports and agrees with PyTorch's own outputs, whatever the
//! export's shape: one output per stack, one stacked output, NHWC input, a 128-pixel input.

mod common;

use common::*;
use hgpose::model::PoseModel;
use hgpose::pose::Heatmaps;
use std::path::Path;

const TOLERANCE: f32 = 1e-4;

/// Runs `model` (with `sidecar`) on `input` and returns the heatmaps it reads.
fn run(model: &Path, sidecar: &Path, input: &[f32]) -> Heatmaps {
    let mut m = PoseModel::load(model, Some(sidecar)).unwrap();
    m.input_mut().copy_from_slice(input);
    let mut out = Heatmaps::zeros(0, 0, 0);
    m.run(&mut out).unwrap();
    out
}

fn check_all_stacks(model: &str, sidecar_base: &str, input: &[f32], reference: &str, dir: &Path) {
    let (shape, expected) = read_npy(reference);
    let stacks = shape[0];
    let per_stack = expected.len() / stacks;
    let model = copy_model(model, dir);
    for s in 0..stacks {
        let sidecar = dir.join(format!("stack{s}.toml"));
        std::fs::write(&sidecar, format!("{sidecar_base}\n[output]\nstack = {s}\n")).unwrap();
        let got = run(&model, &sidecar, input);
        assert_eq!(got.data.len(), per_stack);
        let diff = max_abs_diff(&got.data, &expected[s * per_stack..(s + 1) * per_stack]);
        assert!(
            diff < TOLERANCE,
            "{}: stack {s} differs from PyTorch by {diff}",
            model.display()
        );
        // the reference is not trivial: heatmaps vary
        let spread = expected.iter().fold(f32::MIN, |a, b| a.max(*b))
            - expected.iter().fold(f32::MAX, |a, b| a.min(*b));
        assert!(spread > 1e-2, "reference heatmaps are flat");
    }
}

#[test]
fn per_stack_export_matches_pytorch() {
    let scratch_dir = scratch("parity-per-stack");
    let dir = scratch_dir.path();
    let (_, input) = read_npy("reference_input.npy");
    check_all_stacks(
        "hg_s2_f32_per_stack.onnx",
        "",
        &input,
        "hg_s2_f32_reference.npy",
        dir,
    );
}

#[test]
fn stacked_export_matches_pytorch() {
    let scratch_dir = scratch("parity-stacked");
    let dir = scratch_dir.path();
    let (_, input) = read_npy("reference_input.npy");
    check_all_stacks(
        "hg_s2_f32_stacked.onnx",
        "",
        &input,
        "hg_s2_f32_reference.npy",
        dir,
    );
}

#[test]
fn nhwc_export_matches_pytorch() {
    let scratch_dir = scratch("parity-nhwc");
    let dir = scratch_dir.path();
    let (_, input) = read_npy("reference_input.npy");
    let nhwc = to_nhwc(&input, 256, 256);
    check_all_stacks(
        "hg_s2_f32_nhwc.onnx",
        "",
        &nhwc,
        "hg_s2_f32_reference.npy",
        dir,
    );
}

#[test]
fn small_input_export_matches_pytorch() {
    let scratch_dir = scratch("parity-128");
    let dir = scratch_dir.path();
    let (_, input) = read_npy("reference_input_128.npy");
    check_all_stacks(
        "hg_s1_f16_in128.onnx",
        "",
        &input,
        "hg_s1_f16_in128_reference.npy",
        dir,
    );
}

#[test]
fn the_input_buffer_is_reused_across_frames() {
    let mut m = PoseModel::load(&fixture("hg_s1_f16_in128.onnx"), None).unwrap();
    let first = m.input_mut().as_ptr();
    let mut out = Heatmaps::zeros(0, 0, 0);
    for _ in 0..3 {
        m.input_mut().fill(0.5);
        m.run(&mut out).unwrap();
    }
    assert_eq!(
        m.input_mut().as_ptr(),
        first,
        "a new input tensor was allocated"
    );
}
