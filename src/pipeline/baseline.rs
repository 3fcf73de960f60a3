//! The ONNX Runtime baseline for `hgpose bench --ort`: the same model file timed by ONNX Runtime
//! (CPU provider, same thread count) through its Python package, so hgpose's speed is reported as
//! a ratio against a well-known runtime measured in the same run, on the same machine.
//!
//! ONNX Runtime is a C++ library; its Rust bindings (`ort`) download prebuilt binaries at build
//! time, which neither this build machine nor a board's offline build can do. The Python wheel
//! installs from PyPI like the rest of the model tooling (`models/requirements.txt`).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};
use crate::platform::python::{models_dir, python};

/// What the baseline script reports (milliseconds).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrtReport {
    pub runtime: String,
    pub threads: usize,
    pub cold_start_ms: f64,
    pub median_ms: f64,
    pub min_ms: f64,
    pub p90_ms: f64,
    pub max_ms: f64,
    pub runs: usize,
    /// The file timed (hgpose fills it in: the float model, or its int8 companion).
    #[serde(default)]
    pub model: String,
}

fn script() -> Result<PathBuf> {
    Ok(models_dir()?.join("hourglass/ort_bench.py"))
}

/// Times `model` on ONNX Runtime with `threads` threads.
pub fn ort_baseline(model: &Path, threads: usize, warmup: usize, runs: usize) -> Result<OrtReport> {
    let python = python();
    let unavailable = |reason: String| {
        Error::InvalidArgument(format!(
            "the ONNX Runtime baseline is unavailable ({reason}); install it with \
             `pip install onnxruntime` or point HGPOSE_PYTHON at a Python that has it"
        ))
    };
    let out = Command::new(&python)
        .arg(script()?)
        .arg("--model")
        .arg(model)
        .args(["--threads", &threads.to_string()])
        .args(["--runs", &runs.to_string()])
        .args(["--warmup", &warmup.to_string()])
        .output()
        .map_err(|e| unavailable(format!("cannot start {}: {e}", python.display())))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().last().unwrap_or("").to_string();
        return Err(unavailable(last));
    }
    let mut report: OrtReport = serde_json::from_slice(&out.stdout)
        .map_err(|e| unavailable(format!("unexpected output from the baseline script: {e}")))?;
    report.model = model.display().to_string();
    Ok(report)
}

/// Whether ONNX Runtime runs int8 convolutions with AVX2's saturating `vpmaddubsw` here (x86_64
/// without a VNNI dot product).
pub fn ort_int8_saturates() -> bool {
    use crate::platform::has_feature;
    cfg!(target_arch = "x86_64")
        && has_feature("avx2")
        && !has_feature("avx512vnni")
        && !has_feature("avxvnni")
}
