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

    /// A frame source (camera, file, folder, stream) failed or ended badly.
    #[error("capture from {source_name}: {reason}")]
    Capture { source_name: String, reason: String },

    /// A board profile or other configuration file is invalid; `key` names the setting.
    #[error("config {path}: {key}: {reason}")]
    Config {
        path: PathBuf,
        key: String,
        reason: String,
    },

    /// A device (framebuffer, GPIO chip, SPI bus, socket) could not be opened or used.
    #[error("device {device}: {reason}")]
    Device { device: String, reason: String },

    /// Writing an output (JSON, PNG) failed.
    #[error("cannot write {path}: {reason}")]
    Output { path: PathBuf, reason: String },

    /// A step of loading a model failed (`what`), for the cause kept as the source.
    #[error("model {path}: {what}")]
    ModelStep {
        path: PathBuf,
        what: String,
        #[source]
        source: BoxError,
    },
}

/// A cause kept as an error's source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Error {
    pub(crate) fn model(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> Self {
        Error::Model {
            path: path.into(),
            reason: reason.to_string(),
        }
    }

    /// Loading `path` failed at `what`, because of `source`.
    pub(crate) fn model_because(
        path: impl Into<PathBuf>,
        what: impl std::fmt::Display,
        source: impl Into<BoxError>,
    ) -> Self {
        Error::ModelStep {
            path: path.into(),
            what: what.to_string(),
            source: source.into(),
        }
    }

    pub(crate) fn capture(source: impl std::fmt::Display, reason: impl std::fmt::Display) -> Self {
        Error::Capture {
            source_name: source.to_string(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn device(device: impl std::fmt::Display, reason: impl std::fmt::Display) -> Self {
        Error::Device {
            device: device.to_string(),
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
