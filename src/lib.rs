//! hgpose: Stacked Hourglass human-pose estimation (Newell, Yang, Deng, ECCV 2016) on small boards.
//!
//! The crate follows the data's way through the system, one module per stage:
//! [`capture`] (where frames come from) -> [`preprocess`] (crop, resize, normalize into the input
//! tensor) -> [`model`] (the model contract and tract inference) -> [`pose`] (heatmaps to
//! keypoints) -> [`outputs`] (JSON, drawings). [`pipeline`] joins the stages; [`platform`] says
//! what the board offers.

pub mod capture;
pub mod error;
pub mod model;
pub mod outputs;
pub mod pipeline;
pub mod platform;
pub mod pose;
pub mod preprocess;

pub use error::{Error, Result};

/// Scratch files and folders for the unit tests: `hgpose-<what>-…` in the system's temp folder,
/// removed when dropped.
#[cfg(test)]
pub(crate) mod scratch {
    pub fn dir(what: &str) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix(&format!("hgpose-{what}-"))
            .tempdir()
            .unwrap()
    }

    pub fn file(what: &str) -> tempfile::NamedTempFile {
        tempfile::Builder::new()
            .prefix(&format!("hgpose-{what}-"))
            .tempfile()
            .unwrap()
    }
}
