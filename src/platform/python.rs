//! The Python side of hgpose (model tooling under `models/`): which interpreter runs it and where
//! its package is. Used by the development commands that need onnx/onnxruntime (`hgpose quantize`,
//! `hgpose bench --ort`); inference itself never needs Python.

use std::path::{Path, PathBuf};

/// The Python that has the model tooling: $HGPOSE_PYTHON, else the repository's .venv, else python3.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("HGPOSE_PYTHON") {
        return p.into();
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    if venv.is_file() {
        return venv;
    }
    "python3".into()
}

/// The folder holding the `hourglass` Python package (`models/` of the source tree).
pub fn models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
}
