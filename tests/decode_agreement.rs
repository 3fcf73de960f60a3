//! Exports of the same weights decode to the same keypoints, whichever way they expose heatmaps;
//! and the flip test is mirror-symmetric.

mod common;

use common::*;
use hgpose::capture::load_image;
use hgpose::pipeline::{Estimator, EstimatorOptions};
use hgpose::pose::{Heatmaps, Pose};
use image::RgbImage;
use std::path::Path;

fn estimate(
    model: &Path,
    sidecar: Option<&Path>,
    frame: &RgbImage,
    options: EstimatorOptions,
) -> Pose {
    estimate_with_heatmaps(model, sidecar, frame, options).0
}

fn estimate_with_heatmaps(
    model: &Path,
    sidecar: Option<&Path>,
    frame: &RgbImage,
    options: EstimatorOptions,
) -> (Pose, Heatmaps) {
    let mut e = Estimator::load(model, sidecar, options).unwrap();
    let pose = e.estimate(frame, None).unwrap().pose;
    (pose, e.heatmaps().clone())
}

/// Same heatmaps (to float rounding) and the same keypoints. Random-weight heatmaps are nearly flat,
/// so a rounding-level difference may flip a quarter-pixel shift where two neighbours tie: such a
/// joint may move by at most one shift step (half a heatmap pixel, `step` frame pixels).
fn assert_same(a: &(Pose, Heatmaps), b: &(Pose, Heatmaps), step: f32, what: &str) {
    let diff = max_abs_diff(&a.1.data, &b.1.data);
    assert!(diff < 1e-4, "{what}: heatmaps differ by {diff}");
    assert_eq!(a.0.keypoints.len(), 16);
    let mut identical = 0;
    for (ka, kb) in a.0.keypoints.iter().zip(&b.0.keypoints) {
        assert_eq!(ka.name, kb.name);
        let d = (ka.x - kb.x).abs().max((ka.y - kb.y).abs());
        assert!(
            d <= step + 1e-3,
            "{what}: {} at ({}, {}) vs ({}, {})",
            ka.name,
            ka.x,
            ka.y,
            kb.x,
            kb.y
        );
        assert!(
            (ka.confidence - kb.confidence).abs() < 1e-4,
            "{what}: {} confidence",
            ka.name
        );
        identical += (d < 1e-3) as usize;
    }
    assert!(
        identical >= 14,
        "{what}: only {identical} of 16 joints identical"
    );
}

#[test]
fn per_stack_stacked_and_nhwc_exports_decode_the_same() {
    let frame = load_image(&sample("astronaut.jpg")).unwrap();
    let opts = EstimatorOptions::default();
    // half a heatmap pixel in frame pixels: stride 4 over a 512 -> 256 crop
    let step = 0.5 * 4.0 * frame.width() as f32 / 256.0;
    let per_stack =
        estimate_with_heatmaps(&fixture("hg_s2_f32_per_stack.onnx"), None, &frame, opts);
    let stacked = estimate_with_heatmaps(&fixture("hg_s2_f32_stacked.onnx"), None, &frame, opts);
    assert_same(&per_stack, &stacked, step, "stacked vs per-stack");

    // the NHWC export's own sidecar asks for mean/std input; give it the per-stack one's [0, 1]
    let scratch_dir = scratch("decode-nhwc");
    let dir = scratch_dir.path();
    let sidecar = dir.join("nhwc-unit.toml");
    std::fs::write(
        &sidecar,
        "[input]\nlayout = \"NHWC\"\nnormalize = \"unit\"\n",
    )
    .unwrap();
    let nhwc = estimate_with_heatmaps(
        &fixture("hg_s2_f32_nhwc.onnx"),
        Some(&sidecar),
        &frame,
        opts,
    );
    assert_same(&per_stack, &nhwc, step, "nhwc vs per-stack");
}

#[test]
fn flip_test_is_mirror_symmetric() {
    let frame = load_image(&sample("astronaut.jpg")).unwrap();
    let mirrored = image::imageops::flip_horizontal(&frame);
    let opts = EstimatorOptions {
        flip_test: true,
        ..Default::default()
    };
    let model = fixture("hg_s2_f32_per_stack.onnx");
    let a = estimate(&model, None, &frame, opts);
    let b = estimate(&model, None, &mirrored, opts);
    let joints = hgpose::model::JointSet::mpii16();
    let perm = joints.flip_permutation();
    let w = frame.width() as f32;
    let mut agree = 0;
    for (j, kb) in b.keypoints.iter().enumerate() {
        let ka = &a.keypoints[perm[j]];
        if (kb.x - (w - ka.x)).abs() < 0.5 && (kb.y - ka.y).abs() < 0.5 {
            agree += 1;
        }
    }
    // resampling the mirrored photo rounds to 8 bits slightly differently, so allow a near-tie or two
    assert!(agree >= 14, "only {agree} of 16 joints mirror");
    let plain = estimate(&model, None, &frame, EstimatorOptions::default());
    assert_ne!(plain, a, "the flip test changed nothing");
}
