//! Evaluating a condition on one pose, with the confidence hysteresis (see the `rules` module's
//! documentation).

use super::{Condition, Side, CONFIDENCE_RELEASE_FACTOR, TORSO_PER_HEAD};
use crate::pose::{Keypoint, Pose};

/// Finds `name` if confident enough and at a finite place.
fn joint<'a>(pose: &'a Pose, name: &str, min_confidence: f32) -> Option<&'a Keypoint> {
    pose.keypoints
        .iter()
        .find(|k| k.name == name)
        .filter(|k| k.confidence >= min_confidence && k.x.is_finite() && k.y.is_finite())
}

fn distance(a: &Keypoint, b: &Keypoint) -> f32 {
    (a.x - b.x).hypot(a.y - b.y)
}

/// Torso length in pixels: thorax to pelvis, else [`TORSO_PER_HEAD`] times upper neck to head top.
fn torso_length(pose: &Pose, min_confidence: f32) -> Option<f32> {
    let pair = |a: &str, b: &str| {
        Some(distance(
            joint(pose, a, min_confidence)?,
            joint(pose, b, min_confidence)?,
        ))
        .filter(|d| *d > 0.0)
    };
    pair("thorax", "pelvis").or_else(|| pair("upper_neck", "head_top").map(|d| d * TORSO_PER_HEAD))
}

/// `margin` torso lengths in pixels; `None` when a non-zero margin cannot be measured.
fn margin_px(pose: &Pose, margin: f32, min_confidence: f32) -> Option<f32> {
    if margin == 0.0 {
        Some(0.0)
    } else {
        torso_length(pose, min_confidence).map(|t| t * margin)
    }
}

/// Whether `upper` is above `lower` (image y grows downward) by at least `margin` pixels.
fn above(upper: &Keypoint, lower: &Keypoint, margin: f32) -> bool {
    upper.y < lower.y - margin
}

impl Condition {
    /// Evaluates the condition. `was_true` is its previous result: a condition that was on uses
    /// the lower release threshold (see the module documentation).
    pub fn holds(&self, pose: &Pose, frame_w: u32, frame_h: u32, was_true: bool) -> bool {
        let threshold = |min: f32| {
            if was_true {
                min * CONFIDENCE_RELEASE_FACTOR
            } else {
                min
            }
        };
        match self {
            Condition::PersonPresent {
                min_confidence,
                min_joints,
            } => {
                let min = threshold(*min_confidence);
                let seen = pose
                    .keypoints
                    .iter()
                    .filter(|k| k.confidence >= min && k.x.is_finite() && k.y.is_finite())
                    .count();
                seen >= *min_joints
            }
            Condition::HandsAboveHead {
                margin,
                min_confidence,
            } => {
                let min = threshold(*min_confidence);
                let (Some(l), Some(r), Some(head), Some(m)) = (
                    joint(pose, "l_wrist", min),
                    joint(pose, "r_wrist", min),
                    joint(pose, "head_top", min),
                    margin_px(pose, *margin, min),
                ) else {
                    return false;
                };
                above(l, head, m) && above(r, head, m)
            }
            Condition::JointInZone {
                joint: name,
                zone,
                min_confidence,
            } => {
                if frame_w == 0 || frame_h == 0 {
                    return false;
                }
                let Some(k) = joint(pose, name, threshold(*min_confidence)) else {
                    return false;
                };
                let (fx, fy) = (k.x / frame_w as f32, k.y / frame_h as f32);
                let [x0, y0, x1, y1] = *zone;
                (x0..=x1).contains(&fx) && (y0..=y1).contains(&fy)
            }
            Condition::ArmRaised {
                side,
                margin,
                min_confidence,
            } => {
                let min = threshold(*min_confidence);
                let Some(m) = margin_px(pose, *margin, min) else {
                    return false;
                };
                let raised = |prefix: &str| match (
                    joint(pose, &format!("{prefix}_wrist"), min),
                    joint(pose, &format!("{prefix}_shoulder"), min),
                ) {
                    (Some(wrist), Some(shoulder)) => above(wrist, shoulder, m),
                    _ => false,
                };
                match side {
                    Side::Left => raised("l"),
                    Side::Right => raised("r"),
                    Side::Either => raised("l") || raised("r"),
                }
            }
        }
    }
}
