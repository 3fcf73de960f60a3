//! Pose: heatmaps to keypoints. Decoding is the paper's: per-joint argmax, a quarter-pixel shift
//! toward the higher neighbour, the peak value as confidence; then back to frame pixels.

mod decode;
mod keypoints;
pub mod smoothing;
pub mod tracking;

/// What the network gives, the input of decoding (defined with the model that produces it).
pub use crate::model::Heatmaps;
pub use decode::{decode_peaks, Peak};
pub use keypoints::{Keypoint, Pose};
