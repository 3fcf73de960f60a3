//! The JSON record hgpose prints per frame.

use serde::Serialize;

use crate::capture::trigger::TriggerEvent;
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

/// One frame of a running node (`hgpose run`): the frame record plus when, how late, what the
/// tracker and rules did, and the trigger edge that asked for it, if any.
#[derive(Debug, Clone, Serialize)]
pub struct StreamRecord {
    #[serde(flatten)]
    pub frame: FrameRecord,
    /// Frame number from the source.
    pub sequence: u64,
    /// Capture time, seconds since the Unix epoch.
    pub timestamp: f64,
    /// Capture to emit, milliseconds.
    pub latency_ms: f64,
    /// Whether the crop followed the person (false: whole frame).
    pub tracking: bool,
    pub active_rules: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger: Option<TriggerEvent>,
}
