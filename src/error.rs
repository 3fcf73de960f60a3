//! One error type for the library: every variant names the thing that failed and says what to do,
//! so the CLI can print it as is and exit non-zero instead of panicking.

use std::path::PathBuf;

/// Result alias used across hgpose.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An image file could not be read or decoded.
    #[error("cannot read image {path}: {reason}. Give a readable PNG or JPEG file.")]
    Image { path: PathBuf, reason: String },

    /// A model file is missing, is not ONNX, or does not look like a pose network.
    #[error("model {path}: {reason}")]
    Model { path: PathBuf, reason: String },

    /// The TOML sidecar is malformed or contradicts the graph.
    #[error("model contract {path}: {reason}")]
    Contract { path: PathBuf, reason: String },

    /// A caller passed an argument outside its domain (e.g. an empty crop box).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// tract failed while running a loaded model.
    #[error("inference failed: {0}")]
    Inference(String),

    /// Writing an output (JSON, PNG) failed.
    #[error("cannot write {path}: {reason}")]
    Output { path: PathBuf, reason: String },
}

impl Error {
    pub(crate) fn model(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> Self {
        Error::Model {
            path: path.into(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn contract(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> Self {
        Error::Contract {
            path: path.into(),
            reason: reason.to_string(),
        }
    }
}
