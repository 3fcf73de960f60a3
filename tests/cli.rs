//! The `hgpose` binary end to end: JSON and drawings on a real photo, `info`, `bench`, and clear
//! errors with a non-zero exit (never a panic) for every kind of bad input.

mod common;

use common::*;
use std::path::Path;
use std::process::Output;

/// Asserts a clean failure: non-zero exit, no panic, and an error that mentions every `needle`.
fn assert_fails_with(out: &Output, needles: &[&str]) {
    let stderr = text(&out.stderr);
    assert!(
        !out.status.success(),
        "expected failure, got success; stderr: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "panicked: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "stderr lacks {n:?}: {stderr}");
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn infer_prints_json_and_draws_the_skeleton() {
    let scratch_dir = scratch("cli-infer");
    let dir = scratch_dir.path();
    let drawn = dir.join("drawn.png");
    let model = fixture("hg_s2_f32_per_stack.onnx");
    let photo = sample("astronaut.jpg");
    let out = hgpose(&[
        "infer",
        "--model",
        path(&model),
        "--draw",
        path(&drawn),
        "--min-confidence",
        "-1e9",
        path(&photo),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let record: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(record["width"], 512);
    let keypoints = record["keypoints"].as_array().unwrap();
    assert_eq!(keypoints.len(), 16);
    assert_eq!(keypoints[9]["name"], "head_top");
    for k in keypoints {
        let (x, y) = (k["x"].as_f64().unwrap(), k["y"].as_f64().unwrap());
        assert!(
            (0.0..=512.0).contains(&x) && (0.0..=512.0).contains(&y),
            "{k}"
        );
        assert!(k["confidence"].as_f64().unwrap().is_finite());
    }
    assert!(record["timing_ms"]["inference"].as_f64().unwrap() > 0.0);

    let original = image::open(&photo).unwrap().to_rgb8();
    let drawing = image::open(&drawn).unwrap().to_rgb8();
    assert_eq!(drawing.dimensions(), original.dimensions());
    let changed = original
        .pixels()
        .zip(drawing.pixels())
        .filter(|(a, b)| a != b)
        .count();
    assert!(changed > 200, "only {changed} pixels drawn");
}

#[test]
fn several_images_draw_into_a_folder_and_a_bad_one_does_not_stop_the_rest() {
    let scratch_dir = scratch("cli-many");
    let dir = scratch_dir.path();
    let bad = dir.join("broken.jpg");
    std::fs::write(&bad, b"\xff\xd8\xff\xe0 not really a jpeg").unwrap();
    let photo = sample("astronaut.jpg");
    let drawn = dir.join("drawn");
    let model = fixture("hg_s1_f16_in128.onnx");
    let out = hgpose(&[
        "infer",
        "-m",
        path(&model),
        "--draw",
        path(&drawn),
        path(&bad),
        path(&photo),
    ]);
    assert_fails_with(&out, &["broken.jpg", "1 of 2 image(s) failed"]);
    assert_eq!(
        text(&out.stdout).lines().count(),
        1,
        "the good image still gives its record"
    );
    assert!(drawn.join("astronaut.pose.png").is_file());
}

#[test]
fn info_reports_the_contract_and_the_assumptions() {
    let out = hgpose(&["info", "--model", path(&fixture("hg_s2_f32_stacked.onnx"))]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(s.contains("Stacked, 2 stack(s), reading stack 1"), "{s}");
    assert!(s.contains("normalization assumed"), "{s}");
    assert!(s.contains("MPII-16"), "{s}");

    let out = hgpose(&[
        "info",
        "--json",
        "--model",
        path(&fixture("hg_s2_f32_nhwc.onnx")),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["input"]["layout"], "NHWC");
    assert_eq!(v["input"]["normalization"]["kind"], "mean_std");
    assert_eq!(v["assumptions"].as_array().unwrap().len(), 0);
}

#[test]
fn bench_reports_a_median() {
    let out = hgpose(&[
        "bench",
        "--json",
        "--runs",
        "3",
        "--warmup",
        "1",
        "--model",
        path(&fixture("hg_s1_f16_in128.onnx")),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let median = v["median_ms"].as_f64().unwrap();
    assert!(
        median > 0.0
            && median >= v["min_ms"].as_f64().unwrap()
            && median <= v["max_ms"].as_f64().unwrap()
    );
    assert_eq!(v["runs"], 3);
    assert_eq!(v["precision"], "f32");
    let kernels = v["kernels"].as_object().unwrap();
    assert!(
        kernels
            .keys()
            .any(|k| k.contains("mmm_f32") || k.contains("conv_f32")),
        "no f32 matmul or convolution kernel named: {kernels:?}"
    );
    if let Ok(expected) = std::env::var("HGPOSE_EXPECT_KERNEL") {
        // CI names the kernel family the emulated CPU must get (e.g. arm64simd, not SVE)
        assert!(
            kernels.keys().any(|k| k.contains(&expected)),
            "{expected} not among {kernels:?}"
        );
    }
}

#[test]
fn missing_and_corrupt_images_are_clear_errors() {
    let scratch_dir = scratch("cli-images");
    let dir = scratch_dir.path();
    let model = fixture("hg_s1_f16_in128.onnx");
    let missing = dir.join("nowhere.png");
    assert_fails_with(
        &hgpose(&["infer", "-m", path(&model), path(&missing)]),
        &["nowhere.png"],
    );
    let corrupt = dir.join("half.png");
    let mut bytes = Vec::new();
    image::open(sample("astronaut.jpg"))
        .unwrap()
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .unwrap();
    std::fs::write(&corrupt, &bytes[..bytes.len() / 3]).unwrap();
    assert_fails_with(
        &hgpose(&["infer", "-m", path(&model), path(&corrupt)]),
        &["half.png", "corrupt"],
    );
}

#[test]
fn wrong_models_are_clear_errors() {
    let scratch_dir = scratch("cli-models");
    let dir = scratch_dir.path();
    let photo = sample("astronaut.jpg");

    let missing = dir.join("absent.onnx");
    assert_fails_with(
        &hgpose(&["infer", "-m", path(&missing), path(&photo)]),
        &["absent.onnx", "no such file"],
    );

    let not_onnx = dir.join("weights.onnx");
    std::fs::write(&not_onnx, "this is a text file, not a protobuf").unwrap();
    assert_fails_with(
        &hgpose(&["infer", "-m", path(&not_onnx), path(&photo)]),
        &["weights.onnx", "not a readable ONNX model"],
    );

    let classifier = fixture("classifier.onnx");
    assert_fails_with(
        &hgpose(&["info", "-m", path(&classifier)]),
        &["classifier.onnx", "heatmap-shaped", "logits"],
    );

    let model = copy_model("hg_s2_f32_per_stack.onnx", dir);
    std::fs::write(model.with_extension("toml"), "[input]\nlayout = \"NHWC\"\n").unwrap();
    assert_fails_with(
        &hgpose(&["infer", "-m", path(&model), path(&photo)]),
        &["input.layout", "contradicts the graph"],
    );

    std::fs::write(
        model.with_extension("toml"),
        "[output]\nkind = \"stacked\"\n",
    )
    .unwrap();
    assert_fails_with(&hgpose(&["info", "-m", path(&model)]), &["output.kind"]);

    std::fs::write(model.with_extension("toml"), "[input\nsize = 3").unwrap();
    assert_fails_with(&hgpose(&["info", "-m", path(&model)]), &[".toml"]);
}

#[test]
fn bad_arguments_are_clear_errors() {
    let model = fixture("hg_s1_f16_in128.onnx");
    let photo = sample("astronaut.jpg");
    assert_fails_with(
        &hgpose(&["infer", "-m", path(&model), "--box", "1,2,3", path(&photo)]),
        &["x,y,w,h"],
    );
    assert_fails_with(
        &hgpose(&["infer", "-m", path(&model), "--margin", "-2", path(&photo)]),
        &["margin"],
    );
}

#[test]
fn doctor_reports_this_machine() {
    let out = hgpose(&["doctor", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["cpu"]["arch"], std::env::consts::ARCH);
    assert!(v["cpu"]["cores"].as_u64().unwrap() >= 1);
    assert!(["f32 or int8", "f16"].contains(&v["auto_precision"].as_str().unwrap()));
    assert!(!v["auto_reason"].as_str().unwrap().is_empty());
    let out = hgpose(&["doctor"]);
    assert!(text(&out.stdout).contains("auto"));
}

#[test]
fn closed_stdout_is_not_a_crash() {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = hgpose_command()
        .args(["infer", "-m", path(&fixture("hg_s1_f16_in128.onnx"))])
        .args([path(&sample("astronaut.jpg")); 3])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away, like `| head -0`
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(status.success(), "{stderr}");
}

#[test]
fn numbers_out_of_range_are_refused_not_panics() {
    for duration in ["-1", "NaN", "inf", "0", "1e300"] {
        let arg = format!("--duration={duration}");
        assert_fails_with(&hgpose(&["run", &arg, "--check"]), &["--duration"]);
    }
    assert_fails_with(
        &hgpose(&["run", "--stats-every=inf", "--check"]),
        &["--stats-every"],
    );
    assert_fails_with(
        &hgpose(&["run", "--threads", "100000", "--check"]),
        &["100000 threads is not plausible"],
    );
    assert_fails_with(
        &hgpose(&["bench", "--threads", "1,100000"]),
        &["100000 threads is not plausible"],
    );
}

#[test]
fn a_drawing_never_overwrites_its_input() {
    let scratch_dir = scratch("cli-draw-input");
    let photo = scratch_dir.path().join("photo.jpg");
    std::fs::copy(sample("astronaut.jpg"), &photo).unwrap();
    let before = std::fs::read(&photo).unwrap();
    let model = fixture("hg_s1_f16_in128.onnx");
    let out = hgpose(&[
        "infer",
        "-m",
        path(&model),
        "--draw",
        path(&photo),
        path(&photo),
    ]);
    assert_fails_with(&out, &["would overwrite the input image"]);
    assert_eq!(std::fs::read(&photo).unwrap(), before, "the photo changed");
}

#[test]
fn loop_applies_to_the_boards_own_source() {
    let scratch_dir = scratch("cli-loop");
    let board = sample_board(scratch_dir.path());
    let summary = scratch_dir.path().join("summary.json");
    let out = hgpose(&[
        "run",
        "--board",
        path(&board),
        "--loop",
        "--stats-every",
        "0",
        "--max-frames",
        "3",
        "--summary",
        path(&summary),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    // The profile's folder holds one photo: three frames only if it started again.
    assert_eq!(summary["frames_emitted"], 3, "{summary}");
    assert!(
        summary["source"].as_str().unwrap().contains("looping"),
        "{summary}"
    );
}
