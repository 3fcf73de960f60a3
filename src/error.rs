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

    // The variants below keep the error behind them as their `source()` instead of flattening
    // it into the text. Their own text is the context alone; the cause follows through the
    // source chain, which `{:#}` of an `anyhow::Error` (the CLI's error line) and [`Chain`]
    // (the node's warnings) print as "context: cause", the text the flat variants give.
    /// [`Error::InvalidArgument`], keeping its cause.
    #[error("invalid argument: {context}")]
    InvalidArgumentFrom {
        context: String,
        #[source]
        source: BoxError,
    },

    /// [`Error::Device`], keeping its cause.
    #[error("device {device}: {context}")]
    DeviceFrom {
        device: String,
        context: String,
        #[source]
        source: BoxError,
    },

    /// [`Error::Output`], keeping its cause.
    #[error("cannot write {path}")]
    OutputFrom {
        path: PathBuf,
        #[source]
        source: BoxError,
    },
}

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

/// The cause an error variant keeps (see [`Error::DeviceFrom`] and its siblings).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

impl Error {
    /// An [`Error::InvalidArgument`] "`context`: `source`" that keeps `source`.
    pub(crate) fn invalid_argument_from(
        context: impl std::fmt::Display,
        source: impl Into<BoxError>,
    ) -> Self {
        Error::InvalidArgumentFrom {
            context: context.to_string(),
            source: source.into(),
        }
    }

    /// An [`Error::Device`] "`context`: `source`" that keeps `source`.
    pub(crate) fn device_from(
        device: impl std::fmt::Display,
        context: impl std::fmt::Display,
        source: impl Into<BoxError>,
    ) -> Self {
        Error::DeviceFrom {
            device: device.to_string(),
            context: context.to_string(),
            source: source.into(),
        }
    }

    /// An [`Error::Output`] whose reason is `source`, kept.
    pub(crate) fn output_from(path: impl Into<PathBuf>, source: impl Into<BoxError>) -> Self {
        Error::OutputFrom {
            path: path.into(),
            source: source.into(),
        }
    }

    /// This error and its causes, "error: cause: cause", as `{:#}` shows an `anyhow::Error`.
    pub fn chain(&self) -> Chain<'_> {
        Chain(self)
    }
}

/// Shows an error followed by each of its sources, joined by ": " (see [`Error::chain`]).
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(c) = cause {
            write!(f, ": {c}")?;
            cause = c.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod chain_tests {
    use super::*;

    /// Each variant that keeps its cause reads, through its chain, as the flat variant did.
    #[test]
    fn a_kept_cause_reads_as_the_flattened_text_did() {
        let io = || std::io::Error::new(std::io::ErrorKind::AddrInUse, "address in use");
        let cases = [
            (
                Error::invalid_argument_from("cannot start a thread", io()),
                Error::InvalidArgument(format!("cannot start a thread: {}", io())),
            ),
            (
                Error::device_from("udp h:1", "cannot send", io()),
                Error::device("udp h:1", format!("cannot send: {}", io())),
            ),
            (
                Error::output_from("json", io()),
                Error::Output {
                    path: "json".into(),
                    reason: io().to_string(),
                },
            ),
        ];
        for (kept, flat) in cases {
            assert_eq!(kept.chain().to_string(), flat.to_string());
            assert_eq!(format!("{:#}", anyhow::Error::from(kept)), flat.to_string());
            assert_eq!(flat.chain().to_string(), flat.to_string());
        }
        let kept = Error::output_from("x.jsonl", io());
        let cause = std::error::Error::source(&kept).expect("the cause is kept");
        let io_cause = cause.downcast_ref::<std::io::Error>().expect("as itself");
        assert_eq!(io_cause.kind(), std::io::ErrorKind::AddrInUse);
    }
}
