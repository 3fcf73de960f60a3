//! The JSON record hgpose prints per frame.

use serde::Serialize;

use crate::pose::Keypoint;
use crate::preprocess::Rect;

/// Milliseconds spent in each stage for one frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct TimingMs {
    pub preprocess: f64,
    pub inference: f64,
    pub decode: f64,
    pub total: f64,
}

/// One frame's result: where it came from, the crop, the keypoints, and the time taken.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FrameRecord {
    pub source: String,
    pub width: u32,
    pub height: u32,
    /// The frame region the network saw.
    pub crop: Rect,
    pub keypoints: Vec<Keypoint>,
    pub mean_confidence: f32,
    pub timing_ms: TimingMs,
}
