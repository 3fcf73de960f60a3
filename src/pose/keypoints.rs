//! Keypoints in frame pixels: what every output stage consumes.

use serde::Serialize;

use super::Peak;
use crate::model::JointSet;
use crate::preprocess::CropTransform;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Keypoint {
    pub name: String,
    /// Frame pixels, origin at the image's top-left corner.
    pub x: f32,
    pub y: f32,
    pub confidence: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pose {
    pub keypoints: Vec<Keypoint>,
}

impl Pose {
    /// Maps heatmap peaks to the frame: heatmap -> input by the stride, input -> frame by the crop.
    pub fn from_peaks(
        peaks: &[Peak],
        joints: &JointSet,
        stride: f32,
        crop: &CropTransform,
    ) -> Self {
        let keypoints = peaks
            .iter()
            .zip(&joints.names)
            .map(|(p, name)| {
                let (x, y) = crop.input_to_frame(p.x * stride, p.y * stride);
                Keypoint {
                    name: name.clone(),
                    x,
                    y,
                    confidence: p.confidence,
                }
            })
            .collect();
        Pose { keypoints }
    }

    pub fn mean_confidence(&self) -> f32 {
        if self.keypoints.is_empty() {
            return 0.0;
        }
        self.keypoints.iter().map(|k| k.confidence).sum::<f32>() / self.keypoints.len() as f32
    }
}
