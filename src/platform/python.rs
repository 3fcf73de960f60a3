//! The Python side of hgpose (model tooling under `models/`): which interpreter runs it and where
//! its package is. Used by the development commands that need onnx/onnxruntime (`hgpose quantize`,
//! `hgpose bench --ort`); inference itself never needs Python.

use std::path::{Path, PathBuf};

use crate::error::Error;

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

/// The folder holding the `hourglass` Python package: $HGPOSE_MODELS_DIR, else `models/` of the
/// source tree this binary was built from, else `models/` under the working directory. A binary
/// copied elsewhere (or built from a clone since deleted) still finds a checkout it is run in.
pub fn models_dir() -> Result<PathBuf, Error> {
    let candidates: Vec<PathBuf> = match std::env::var_os("HGPOSE_MODELS_DIR") {
        Some(dir) => vec![dir.into()],
        None => vec![
            Path::new(env!("CARGO_MANIFEST_DIR")).join("models"),
            PathBuf::from("models"),
        ],
    };
    candidates
        .iter()
        .find(|dir| dir.join("hourglass").is_dir())
        .map(|dir| std::path::absolute(dir).unwrap_or_else(|_| dir.clone()))
        .ok_or_else(|| {
            let tried: Vec<String> = candidates.iter().map(|d| d.display().to_string()).collect();
            Error::InvalidArgument(format!(
                "the model tooling (the `hourglass` Python package) is not in {}; run hgpose from \
                 a checkout of the repository or set HGPOSE_MODELS_DIR to its `models` folder",
                tried.join(" or ")
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_dir_is_found_from_the_source_tree() {
        let dir = models_dir().expect("the source tree has models/hourglass");
        assert!(dir.is_absolute(), "{}", dir.display());
        assert!(dir.join("hourglass/quantize.py").is_file());
    }
}
