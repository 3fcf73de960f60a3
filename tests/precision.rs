//! Half precision agrees with f32 where the CPU computes in fp16 natively (Pi 5, Orin; CI runs this
//! file under `qemu-aarch64 -cpu cortex-a76`). Elsewhere tract emulates f16 far too slowly for a
//! test, so the check says loudly that it did not run.

mod common;

use common::*;
use hgpose::capture::load_image;
use hgpose::model::{Precision, Resolved};
use hgpose::pipeline::{Estimator, EstimatorOptions};
use hgpose::platform::CpuInfo;

#[test]
fn f16_keypoints_and_heatmaps_agree_with_f32() {
    let cpu = CpuInfo::detect();
    if !cpu.tract_fp16_kernels {
        eprintln!(
            "SKIPPED f16_keypoints_and_heatmaps_agree_with_f32: {} ({}) has no fp16 kernels in tract; \
             it runs in CI under qemu-aarch64 -cpu cortex-a76",
            cpu.model, cpu.arch
        );
        return;
    }
    let frame = load_image(&sample("astronaut.jpg")).unwrap();
    let model = fixture("hg_s1_f16_in128.onnx");
    let run = |precision| {
        let options = EstimatorOptions {
            precision,
            ..Default::default()
        };
        let mut e = Estimator::load(&model, None, options).unwrap();
        assert_eq!(e.model().precision(), precision);
        let pose = e.estimate(&frame, None).unwrap().pose;
        (pose, e.heatmaps().clone())
    };
    let (p32, h32) = run(Precision::F32);
    let (p16, h16) = run(Precision::F16);
    let peak = h32.data.iter().fold(0.0f32, |a, v| a.max(v.abs()));
    let diff = max_abs_diff(&h32.data, &h16.data);
    assert!(
        diff < 0.02 * peak,
        "f16 heatmaps differ by {diff} (peak {peak})"
    );
    // one heatmap pixel at stride 4 over a 512 -> 128 crop
    let pixel = 4.0 * 512.0 / 128.0;
    let close = p32
        .keypoints
        .iter()
        .zip(&p16.keypoints)
        .filter(|(a, b)| (a.x - b.x).abs() <= pixel && (a.y - b.y).abs() <= pixel)
        .count();
    eprintln!("f16 vs f32: heatmap max diff {diff:.5} (peak {peak:.3}), {close}/16 joints within a heatmap pixel");
    assert!(close >= 14, "only {close} of 16 joints agree");
}

#[test]
fn auto_precision_follows_the_cpu() {
    let cpu = CpuInfo::detect();
    let resolved = Precision::Auto.resolve(&cpu);
    let f16 = matches!(resolved, Resolved::Fixed(Precision::F16, _));
    assert_eq!(f16, cpu.tract_fp16_kernels, "{resolved:?}");
}
