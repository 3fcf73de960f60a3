//! The NNEF deployment artefact (`hgpose export`): it computes what the ONNX model it came from
//! computes (f32 weights closely, f16 weights within f16 rounding), f16 weights make it about half
//! the size, its sidecar leaves nothing to assume, and a damaged or foreign file is a clear error.

mod common;

use common::*;
use hgpose::model::{export, Contract, Exported, PoseModel, Precision, WeightStorage};
use hgpose::pose::Heatmaps;
use std::path::{Path, PathBuf};

/// f32 artefact vs its ONNX source on the same input (tract runs the same decluttered graph).
const F32_TOLERANCE: f32 = 1e-5;
/// f16 weights computed in f32, vs the f32 source: a fraction of the heatmaps' value range.
/// Weights rounded to 11 significant bits moved heatmaps by 0.26% (default model) and 0.05%
/// (2-stack fixture) of their range when measured.
const F16_WEIGHTS_TOLERANCE: f32 = 0.01;
/// The f32 artefact vs PyTorch, as `fixture_parity.rs` holds tract's ONNX run to.
const PYTORCH_TOLERANCE: f32 = 1e-4;

fn default_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/default/hourglass.onnx")
}

/// Resolves `model` as hgpose does and exports it to `dir/name`.
fn export_to(
    model: &Path,
    sidecar: Option<&Path>,
    dir: &Path,
    name: &str,
    weights: WeightStorage,
) -> Exported {
    let (contract, typed) = PoseModel::resolve(model, sidecar).unwrap();
    export(model, &contract, typed, &dir.join(name), weights)
        .unwrap_or_else(|e| panic!("export {} -> {name}: {e}", model.display()))
}

/// Loads `model` for `precision` and runs it once on `input`.
fn run_as(
    model: &Path,
    sidecar: Option<&Path>,
    precision: Precision,
    input: &[f32],
) -> (PoseModel, Heatmaps) {
    let mut m = PoseModel::load_with_precision(model, sidecar, precision)
        .unwrap_or_else(|e| panic!("{}: {e}", model.display()));
    m.input_mut().copy_from_slice(input);
    let mut out = Heatmaps::zeros(0, 0, 0);
    m.run(&mut out).unwrap();
    (m, out)
}

fn run(model: &Path, sidecar: Option<&Path>, input: &[f32]) -> (Contract, Heatmaps) {
    let (m, out) = run_as(model, sidecar, Precision::F32, input);
    (m.contract().clone(), out)
}

/// Each joint's hottest heatmap pixel.
fn argmaxes(h: &Heatmaps) -> Vec<usize> {
    h.data
        .chunks_exact(h.height * h.width)
        .map(|map| {
            (0..map.len())
                .max_by(|&a, &b| map[a].total_cmp(&map[b]))
                .unwrap()
        })
        .collect()
}

fn value_range(v: &[f32]) -> f32 {
    v.iter().fold(f32::MIN, |a, b| a.max(*b)) - v.iter().fold(f32::MAX, |a, b| a.min(*b))
}

/// The artefact's contract says what the source's did, with nothing assumed.
fn assert_same_contract(source: &Contract, artefact: &Contract) {
    let (a, b) = (&source.input, &artefact.input);
    assert_eq!(
        (a.height, a.width, a.layout, a.channels, a.normalization),
        (b.height, b.width, b.layout, b.channels, b.normalization)
    );
    let (a, b) = (&source.output, &artefact.output);
    assert_eq!(
        (a.kind, a.layout, a.joints, a.height, a.width),
        (b.kind, b.layout, b.joints, b.height, b.width)
    );
    assert_eq!(source.joints, artefact.joints);
    assert!(
        artefact.assumptions.is_empty(),
        "the artefact still assumes: {:?}",
        artefact.assumptions
    );
}

/// Checks an f16-weights artefact against its f32 source: close heatmaps and, wherever the
/// source's hottest pixel clearly wins, the same one.
fn assert_f16_weights_agree(source: &Heatmaps, f16: &Heatmaps, what: &str) -> f32 {
    let range = value_range(&source.data);
    let diff = max_abs_diff(&source.data, &f16.data);
    assert!(
        diff < F16_WEIGHTS_TOLERANCE * range,
        "{what}: f16 weights move heatmaps by {diff} (range {range})"
    );
    let plane = source.height * source.width;
    for (j, (a, b)) in argmaxes(source).iter().zip(argmaxes(f16)).enumerate() {
        let map = &source.data[j * plane..(j + 1) * plane];
        let runner_up = (0..plane)
            .filter(|&i| i != *a)
            .map(|i| map[i])
            .fold(f32::MIN, f32::max);
        // a tie within twice the observed error may go either way
        if map[*a] - runner_up > 2.0 * diff {
            assert_eq!(*a, b, "{what}: joint {j} moved");
        }
    }
    diff / range
}

#[test]
fn default_model_artefacts_compute_what_the_onnx_model_does() {
    let scratch_dir = scratch("nnef-default");
    let dir = scratch_dir.path();
    let (_, input) = read_npy("reference_input_128.npy");
    let (source, expected) = run(&default_model(), None, &input);
    assert!(
        value_range(&expected.data) > 1e-3,
        "flat reference heatmaps"
    );

    let f32 = export_to(
        &default_model(),
        None,
        dir,
        "hg.nnef.tgz",
        WeightStorage::F32,
    );
    let f16 = export_to(
        &default_model(),
        None,
        dir,
        "hg16.nnef.tgz",
        WeightStorage::F16,
    );
    assert_eq!(f32.sidecar, dir.join("hg.nnef.toml"));
    assert!(f32.sidecar.is_file() && f16.sidecar.is_file());
    for e in [&f32, &f16] {
        assert_eq!(std::fs::metadata(&e.path).unwrap().len(), e.bytes);
    }

    // loaded by name alone: the sidecar beside it is found and leaves nothing to assume
    let (c32, h32) = run(&f32.path, None, &input);
    assert_same_contract(&source, &c32);
    assert_eq!(c32.sidecar.as_deref(), Some(f32.sidecar.as_path()));
    let diff = max_abs_diff(&expected.data, &h32.data);
    assert!(
        diff < F32_TOLERANCE,
        "f32 artefact differs from the ONNX model by {diff}"
    );
    assert_eq!(argmaxes(&expected), argmaxes(&h32));

    let (c16, h16) = run(&f16.path, None, &input);
    assert_same_contract(&source, &c16);
    let relative = assert_f16_weights_agree(&expected, &h16, "default model");

    let ratio = f16.bytes as f64 / f32.bytes as f64;
    eprintln!(
        "default model: ONNX {} bytes, f32 artefact {} bytes, f16 artefact {} bytes ({ratio:.3}x); \
         f32 max diff {diff:e}, f16 weights max diff {relative:.2e} of the range",
        std::fs::metadata(default_model()).unwrap().len(),
        f32.bytes,
        f16.bytes
    );
    assert!(ratio < 0.6, "f16 artefact is {ratio:.3}x the f32 one");
}

#[test]
fn fixture_artefacts_match_pytorch() {
    let scratch_dir = scratch("nnef-fixtures");
    let dir = scratch_dir.path();
    let (_, nchw) = read_npy("reference_input.npy");
    let (shape, reference) = read_npy("hg_s2_f32_reference.npy");
    let per_stack = reference.len() / shape[0];
    let stack = |s: usize| &reference[s * per_stack..(s + 1) * per_stack];

    // NHWC input, mean/std normalization and per-stack outputs, from the sidecar beside it
    let model = fixture("hg_s2_f32_nhwc.onnx");
    let input = to_nhwc(&nchw, 256, 256);
    let (source, _) = run(&model, None, &input);
    for weights in [WeightStorage::F32, WeightStorage::F16] {
        let name = format!("nhwc.{}.nnef.tgz", weights.name());
        let e = export_to(&model, None, dir, &name, weights);
        let (c, h) = run(&e.path, None, &input);
        assert_same_contract(&source, &c);
        assert_eq!(
            (c.output.stacks, c.output.stack),
            (1, 0),
            "only the read stack is kept"
        );
        let expected = Heatmaps {
            joints: 16,
            height: 64,
            width: 64,
            data: stack(1).to_vec(),
        };
        match weights {
            WeightStorage::F32 => {
                let diff = max_abs_diff(&expected.data, &h.data);
                assert!(
                    diff < PYTORCH_TOLERANCE,
                    "nhwc f32 artefact vs PyTorch: {diff}"
                );
                assert_eq!(argmaxes(&expected), argmaxes(&h));
            }
            WeightStorage::F16 => {
                let relative = assert_f16_weights_agree(&expected, &h, "nhwc fixture");
                eprintln!("nhwc fixture: f16 weights max diff {relative:.2e} of the range");
            }
        }
    }

    // a stacked output with the first stack selected by a sidecar named on the command line
    let model = fixture("hg_s2_f32_stacked.onnx");
    let sidecar = dir.join("first-stack.toml");
    std::fs::write(&sidecar, "[output]\nstack = 0\n").unwrap();
    let (source, _) = run(&model, Some(&sidecar), &nchw);
    let e = export_to(
        &model,
        Some(&sidecar),
        dir,
        "stacked.nnef.tar",
        WeightStorage::F32,
    );
    assert!(e.sidecar_text.contains("kind = \"stacked\"") && e.sidecar_text.contains("stack = 0"));
    let (c, h) = run(&e.path, None, &nchw);
    assert_same_contract(&source, &c);
    assert_eq!((c.output.stacks, c.output.stack), (2, 0));
    let diff = max_abs_diff(stack(0), &h.data);
    assert!(
        diff < PYTORCH_TOLERANCE,
        "stacked artefact, stack 0, vs PyTorch: {diff}"
    );
}

#[test]
fn an_f16_artefact_computes_in_f32_or_f16_as_asked() {
    let scratch_dir = scratch("nnef-precision");
    let dir = scratch_dir.path();
    let model = fixture("hg_s1_f16_in128.onnx");
    let (_, input) = read_npy("reference_input_128.npy");
    let e = export_to(&model, None, dir, "s1.nnef.tgz", WeightStorage::F16);

    // for f32 (x86, Pi 4) the f16 weights are widened and it computes in f32 kernels
    let (m, h32) = run_as(&e.path, None, Precision::F32, &input);
    assert_eq!(m.precision(), Precision::F32);
    let kernels = m.kernels();
    assert!(
        !kernels.is_empty() && kernels.keys().all(|k| k.contains("f32")),
        "{kernels:?}"
    );
    // for f16 it stays f16 (emulated off fp16 CPUs: one run of a small model), and computes
    // exactly what the f32 ONNX model converted at load computes
    let (m, h16) = run_as(&e.path, None, Precision::F16, &input);
    assert_eq!(m.precision(), Precision::F16);
    let (_, onnx16) = run_as(&model, None, Precision::F16, &input);
    let same = max_abs_diff(&onnx16.data, &h16.data);
    assert!(
        same <= 1e-6 * value_range(&onnx16.data),
        "f16 artefact vs ONNX converted to f16 at load: {same}"
    );
    // f16 activations round differently from f32 ones: the f32 run really was converted
    let range = value_range(&h32.data);
    let diff = max_abs_diff(&h32.data, &h16.data);
    eprintln!(
        "f16 artefact: f16 vs f32 arithmetic {diff:e} (range {range}), vs ONNX at f16 {same:e}"
    );
    assert!(
        diff > 0.0 && diff < 0.02 * range,
        "f16 arithmetic vs f32 on the same f16 weights: {diff} (range {range})"
    );
}

#[test]
fn a_directory_artefact_loads_too() {
    use tract_onnx::WithOnnx;
    let scratch_dir = scratch("nnef-directory");
    let dir = scratch_dir.path();
    let (_, input) = read_npy("reference_input_128.npy");
    let model = fixture("hg_s1_f16_in128.onnx");
    let e = export_to(&model, None, dir, "s1.nnef.tar", WeightStorage::F32);
    // the same graph the tar holds, unpacked (as `hgpose export` writes it: decluttered)
    let (_, typed) = PoseModel::resolve(&model, None).unwrap();
    let unpacked = dir.join("s1.nnef");
    tract_nnef::nnef()
        .with_onnx()
        .write_to_dir(&typed.into_decluttered().unwrap(), &unpacked)
        .unwrap();
    let (c, h) = run(&unpacked, Some(&e.sidecar), &input);
    assert!(c.assumptions.is_empty(), "{:?}", c.assumptions);
    let (_, expected) = run(&e.path, None, &input);
    assert!(max_abs_diff(&expected.data, &h.data) < F32_TOLERANCE);
}

#[test]
fn damaged_or_foreign_artefacts_are_clear_errors() {
    let scratch_dir = scratch("nnef-corrupt");
    let dir = scratch_dir.path();
    let good = export_to(
        &fixture("hg_s1_f16_in128.onnx"),
        None,
        dir,
        "good.nnef.tgz",
        WeightStorage::F32,
    );
    let bytes = std::fs::read(&good.path).unwrap();
    let mut noise = Vec::with_capacity(4096);
    let mut x = 0x2545_f491_u32;
    for _ in 0..4096 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        noise.push(x as u8);
    }
    let mut gzip_noise = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
    gzip_noise.extend_from_slice(&noise);
    let cases: [(&str, Vec<u8>); 4] = [
        ("x.nnef.tgz", noise.clone()),
        ("gzip-noise.nnef.tgz", gzip_noise),
        ("truncated.nnef.tgz", bytes[..bytes.len() / 2].to_vec()),
        ("empty.nnef.tar", Vec::new()),
    ];
    for (name, content) in cases {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        let err = PoseModel::load(&path, Some(&good.sidecar))
            .err()
            .unwrap_or_else(|| panic!("{name} loaded"))
            .to_string();
        assert!(
            err.contains(name) && err.contains("hgpose export"),
            "{name}: {err}"
        );
    }

    // a readable NNEF that is not a pose network: a classifier, written by tract itself
    use tract_onnx::prelude::*;
    let classifier = tract_onnx::onnx()
        .model_for_path(fixture("classifier.onnx"))
        .and_then(|m| m.into_typed())
        .and_then(|m| m.into_decluttered())
        .unwrap();
    let path = dir.join("classifier.nnef.tar");
    let file = std::fs::File::create(&path).unwrap();
    tract_nnef::nnef().write_to_tar(&classifier, file).unwrap();
    let err = PoseModel::load(&path, None).err().unwrap().to_string();
    assert!(
        err.contains("classifier.nnef.tar") && err.contains("heatmap-shaped"),
        "{err}"
    );
}

#[test]
fn cli_export_writes_the_artefact_and_says_what_it_recorded() {
    let scratch_dir = scratch("nnef-cli");
    let dir = scratch_dir.path();
    let model = fixture("hg_s1_f16_in128.onnx");
    let out_path = dir.join("s1.nnef.tgz");
    let (model_s, out_s) = (model.to_str().unwrap(), out_path.to_str().unwrap());
    let out = hgpose(&["export", model_s, "-o", out_s, "--weights", "f16"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for needle in [
        out_s,
        "s1.nnef.toml",
        "f16 weights",
        "605029 bytes",
        "artefact",
        // the ONNX model has no sidecar: what was assumed is listed, then recorded explicitly
        "channel order assumed RGB",
        "channels = \"RGB\"",
        "normalize = \"unit\"",
        "size = [128, 128]",
        "set = \"mpii16\"",
    ] {
        assert!(
            stdout.contains(needle),
            "stdout lacks {needle:?}:\n{stdout}"
        );
    }
    let size = std::fs::metadata(&out_path).unwrap().len();
    assert!(stdout.contains(&format!("{size} bytes")), "{stdout}");

    let info = hgpose(&["info", "--model", out_s]);
    assert!(info.status.success(), "{}", text(&info.stderr));
    assert!(
        text(&info.stdout).contains("assumed:  nothing"),
        "{}",
        text(&info.stdout)
    );
    let photo = sample("astronaut.jpg");
    let infer = hgpose(&["infer", "--model", out_s, photo.to_str().unwrap()]);
    assert!(infer.status.success(), "{}", text(&infer.stderr));
    let record: serde_json::Value = serde_json::from_str(text(&infer.stdout).trim()).unwrap();
    assert_eq!(record["keypoints"].as_array().unwrap().len(), 16);

    // clear failures, no panics
    let junk = dir.join("junk.nnef.tgz");
    std::fs::write(&junk, b"not an archive at all").unwrap();
    let onnx_out = dir.join("s1.onnx");
    let cases: [(&[&str], &[&str]); 3] = [
        (
            &["export", model_s, "-o", onnx_out.to_str().unwrap()],
            &["s1.onnx", ".nnef.tgz"],
        ),
        (
            &["info", "--model", junk.to_str().unwrap()],
            &["junk.nnef.tgz", "hgpose export"],
        ),
        (
            &["export", "absent.onnx", "-o", out_s],
            &["absent.onnx", "no such file"],
        ),
    ];
    for (args, needles) in cases {
        let out = hgpose(args);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
        for n in needles {
            assert!(stderr.contains(n), "{args:?}: stderr lacks {n:?}: {stderr}");
        }
    }
    assert!(!onnx_out.exists());
}
