//! The crop follows the person: the joints found in one frame give the box the next frame is
//! cropped to, so the network sees the person large even when they fill a small part of the frame.
//!
//! The box is the bounding box of the confident joints, padded (joints are skeleton points, the
//! body reaches past them, and the person moves before the next frame), grown to a minimum size,
//! kept inside the frame, and blended with the previous box so the crop does not jump with the
//! joints' jitter. After `lost_after` frames in a row without enough confident joints the tracker
//! gives up and the caller crops the whole frame again, where the person can be found anew.

use serde::Deserialize;

use super::Pose;
use crate::preprocess::Rect;

/// The box is never smaller than this fraction of the frame's shorter side: a box around one or
/// two close joints would otherwise blow noise up to the network's whole input.
pub const MIN_BOX_FRACTION: f32 = 0.2;

/// Tracker settings (a board file's `[tracking]` table).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrackerParams {
    /// Off: every frame is cropped whole (for scenes where the person fills the frame).
    pub enabled: bool,
    /// Joints below this confidence (heatmap peak) are ignored. 0.1 matches `infer`'s default
    /// `--min-confidence`.
    pub min_confidence: f32,
    /// Fewer confident joints than this is a frame without a person. 4 keeps a stray peak or two
    /// from steering the crop, while a half-visible person still counts.
    pub min_joints: usize,
    /// Added on each side, as a fraction of the box's width (left, right) and height (top,
    /// bottom). 0.15 covers the head and hands past their joints and a little movement.
    pub padding: f32,
    /// Consecutive frames without a person before tracking resets. 5 (about half a second at
    /// 10 fps) rides out a missed frame or a quick occlusion.
    pub lost_after: u32,
    /// Weight of the previous box in the blend, in [0, 1): 0 follows the joints at once, 0.5
    /// moves the box half-way to the new one each frame.
    pub smoothing: f32,
}

impl Default for TrackerParams {
    fn default() -> Self {
        TrackerParams {
            enabled: true,
            min_confidence: 0.1,
            min_joints: 4,
            padding: 0.15,
            lost_after: 5,
            smoothing: 0.5,
        }
    }
}

impl TrackerParams {
    /// Checks every value is usable; the message names the field and the accepted range.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.min_confidence.is_finite() && self.min_confidence >= 0.0) {
            return Err(format!(
                "min_confidence must be a finite number >= 0 (e.g. 0.1), got {}",
                self.min_confidence
            ));
        }
        if self.min_joints == 0 {
            return Err("min_joints must be at least 1 (e.g. 4), got 0".into());
        }
        if !(self.padding.is_finite() && (0.0..=2.0).contains(&self.padding)) {
            return Err(format!(
                "padding must be a fraction between 0 and 2 (e.g. 0.15), got {}",
                self.padding
            ));
        }
        if self.lost_after == 0 {
            return Err("lost_after must be at least 1 frame (e.g. 5), got 0".into());
        }
        if !(self.smoothing.is_finite() && (0.0..1.0).contains(&self.smoothing)) {
            return Err(format!(
                "smoothing must be in [0, 1) (e.g. 0.5; 1 would never move), got {}",
                self.smoothing
            ));
        }
        Ok(())
    }
}

/// Follows one person from frame to frame; see the module documentation.
#[derive(Debug, Clone)]
pub struct PersonTracker {
    params: TrackerParams,
    current: Option<Rect>,
    /// Frame size `current` belongs to: a new size invalidates it.
    frame: (u32, u32),
    missed: u32,
}

impl PersonTracker {
    pub fn new(params: TrackerParams) -> Self {
        PersonTracker {
            params,
            current: None,
            frame: (0, 0),
            missed: 0,
        }
    }

    /// Takes this frame's pose and returns the box to crop the next frame to (frame pixels), or
    /// `None` when there is no person to follow: crop the whole frame then.
    ///
    /// A frame without enough confident joints keeps the previous box until `lost_after` such
    /// frames in a row, then tracking resets.
    pub fn update(&mut self, pose: &Pose, frame_w: u32, frame_h: u32) -> Option<Rect> {
        if frame_w == 0 || frame_h == 0 {
            self.reset();
            return None;
        }
        if self.frame != (frame_w, frame_h) {
            self.reset();
            self.frame = (frame_w, frame_h);
        }
        let Some(measured) = self.measure(pose, frame_w as f32, frame_h as f32) else {
            self.missed = self.missed.saturating_add(1);
            if self.missed >= self.params.lost_after {
                self.reset();
            }
            return self.current;
        };
        self.missed = 0;
        let next = match self.current {
            Some(prev) => blend(prev, measured, self.params.smoothing),
            None => measured,
        };
        self.current = Some(next);
        self.current
    }

    /// The box of this frame's confident joints, padded, at least the minimum size, inside the
    /// frame; `None` when too few joints are confident.
    fn measure(&self, pose: &Pose, fw: f32, fh: f32) -> Option<Rect> {
        let p = &self.params;
        let mut n = 0usize;
        let (mut x0, mut y0) = (f32::INFINITY, f32::INFINITY);
        let (mut x1, mut y1) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
        for k in &pose.keypoints {
            if k.confidence >= p.min_confidence && k.x.is_finite() && k.y.is_finite() {
                n += 1;
                x0 = x0.min(k.x);
                y0 = y0.min(k.y);
                x1 = x1.max(k.x);
                y1 = y1.max(k.y);
            }
        }
        if n < p.min_joints {
            return None;
        }
        let (pad_x, pad_y) = ((x1 - x0) * p.padding, (y1 - y0) * p.padding);
        let min_side = MIN_BOX_FRACTION * fw.min(fh);
        let (ax, bx) = fit_axis(x0 - pad_x, x1 + pad_x, fw, min_side);
        let (ay, by) = fit_axis(y0 - pad_y, y1 + pad_y, fh, min_side);
        Some(Rect::new(ax, ay, bx - ax, by - ay))
    }

    pub fn is_tracking(&self) -> bool {
        self.current.is_some()
    }

    /// The box the next frame should be cropped to, if tracking.
    pub fn current(&self) -> Option<Rect> {
        self.current
    }

    /// Drops the person: the next frame is cropped whole.
    pub fn reset(&mut self) {
        self.current = None;
        self.missed = 0;
    }
}

/// Fits `[lo, hi]` into `[0, extent]` with a length of at least `min_len` (or the whole extent):
/// cut to the frame first, then grown around its centre and shifted back inside if needed.
fn fit_axis(lo: f32, hi: f32, extent: f32, min_len: f32) -> (f32, f32) {
    let min_len = min_len.min(extent);
    let (mut a, mut b) = (lo.clamp(0.0, extent), hi.clamp(0.0, extent));
    if b - a < min_len {
        let c = (a + b) / 2.0;
        a = c - min_len / 2.0;
        b = c + min_len / 2.0;
        if a < 0.0 {
            b -= a;
            a = 0.0;
        }
        if b > extent {
            a = (a - (b - extent)).max(0.0);
            b = extent;
        }
    }
    (a, b)
}

/// `prev * weight + next * (1 - weight)`, edge by edge. Both boxes lie in the frame, so the blend
/// does too.
fn blend(prev: Rect, next: Rect, weight: f32) -> Rect {
    let mix = |a: f32, b: f32| a * weight + b * (1.0 - weight);
    let (x0, y0) = (mix(prev.x, next.x), mix(prev.y, next.y));
    let x1 = mix(prev.x + prev.w, next.x + next.w);
    let y1 = mix(prev.y + prev.h, next.y + next.h);
    Rect::new(x0, y0, x1 - x0, y1 - y0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pose::Keypoint;

    fn pose(points: &[(f32, f32, f32)]) -> Pose {
        Pose {
            keypoints: points
                .iter()
                .enumerate()
                .map(|(i, &(x, y, confidence))| Keypoint {
                    name: format!("joint_{i}"),
                    x,
                    y,
                    confidence,
                })
                .collect(),
        }
    }

    /// Four confident joints spanning x 200..300, y 100..400.
    fn person() -> Pose {
        pose(&[
            (200.0, 100.0, 0.9),
            (300.0, 100.0, 0.9),
            (200.0, 400.0, 0.9),
            (300.0, 400.0, 0.9),
        ])
    }

    fn no_smoothing() -> TrackerParams {
        TrackerParams {
            smoothing: 0.0,
            ..TrackerParams::default()
        }
    }

    fn inside_frame(r: &Rect, fw: f32, fh: f32) -> bool {
        r.x >= 0.0 && r.y >= 0.0 && r.x + r.w <= fw + 1e-3 && r.y + r.h <= fh + 1e-3
    }

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() < 1e-3
    }

    #[test]
    fn box_contains_confident_joints_plus_padding() {
        let params = no_smoothing();
        let mut t = PersonTracker::new(params);
        let r = t.update(&person(), 640, 480).expect("a person is tracked");
        // span 100 x 300, padding on each side
        let (px, py) = (100.0 * params.padding, 300.0 * params.padding);
        assert!(close(r.x, 200.0 - px), "{r:?}");
        assert!(close(r.x + r.w, 300.0 + px), "{r:?}");
        assert!(close(r.y, 100.0 - py), "{r:?}");
        assert!(close(r.y + r.h, 400.0 + py), "{r:?}");
        assert!(t.is_tracking());
        assert_eq!(t.current(), Some(r));
    }

    #[test]
    fn low_confidence_joints_are_ignored() {
        let mut p = person();
        p.keypoints.push(Keypoint {
            name: "stray".into(),
            x: 620.0,
            y: 10.0,
            confidence: 0.05,
        });
        let mut t = PersonTracker::new(no_smoothing());
        let r = t.update(&p, 640, 480).unwrap();
        assert!(
            r.x + r.w < 400.0 && r.y > 50.0,
            "the stray joint moved the box: {r:?}"
        );
        // Too few confident joints: no person at all.
        let few = pose(&[(10.0, 10.0, 0.9), (50.0, 50.0, 0.9), (90.0, 90.0, 0.01)]);
        let mut t = PersonTracker::new(no_smoothing());
        assert_eq!(t.update(&few, 640, 480), None);
        assert!(!t.is_tracking());
    }

    #[test]
    fn resets_after_lost_after_bad_frames_and_not_before() {
        let params = TrackerParams {
            lost_after: 3,
            ..no_smoothing()
        };
        let mut t = PersonTracker::new(params);
        let r = t.update(&person(), 640, 480).unwrap();
        let empty = pose(&[]);
        assert_eq!(
            t.update(&empty, 640, 480),
            Some(r),
            "1st bad frame keeps the box"
        );
        assert_eq!(
            t.update(&empty, 640, 480),
            Some(r),
            "2nd bad frame keeps the box"
        );
        assert_eq!(t.update(&empty, 640, 480), None, "3rd bad frame resets");
        assert!(!t.is_tracking());
        assert_eq!(t.current(), None);

        // A good frame in between restarts the count.
        let mut t = PersonTracker::new(params);
        t.update(&person(), 640, 480);
        t.update(&empty, 640, 480);
        t.update(&empty, 640, 480);
        t.update(&person(), 640, 480);
        t.update(&empty, 640, 480);
        assert!(t.update(&empty, 640, 480).is_some(), "count restarted");
    }

    #[test]
    fn smoothing_moves_the_box_part_way() {
        let params = TrackerParams {
            smoothing: 0.5,
            ..TrackerParams::default()
        };
        let mut t = PersonTracker::new(params);
        let first = t.update(&person(), 640, 480).unwrap();
        let shifted = pose(
            &person()
                .keypoints
                .iter()
                .map(|k| (k.x + 100.0, k.y, k.confidence))
                .collect::<Vec<_>>(),
        );
        let target = PersonTracker::new(no_smoothing())
            .update(&shifted, 640, 480)
            .unwrap();
        let second = t.update(&shifted, 640, 480).unwrap();
        assert!(
            second.x > first.x && second.x < target.x,
            "{first:?} {second:?} {target:?}"
        );
        assert!(close(second.x, 0.5 * first.x + 0.5 * target.x));
        assert!(close(second.w, first.w));
        // Held still, it converges to the target.
        for _ in 0..30 {
            t.update(&shifted, 640, 480);
        }
        assert!(close(t.current().unwrap().x, target.x));
    }

    #[test]
    fn boxes_stay_inside_the_frame() {
        let mut t = PersonTracker::new(TrackerParams::default());
        // A person at the bottom-right corner, partly outside.
        let corner = pose(&[
            (600.0, 420.0, 0.9),
            (660.0, 420.0, 0.9),
            (600.0, 500.0, 0.9),
            (660.0, 500.0, 0.9),
        ]);
        for p in [person(), corner.clone(), corner, person()] {
            let r = t.update(&p, 640, 480).unwrap();
            assert!(inside_frame(&r, 640.0, 480.0), "{r:?}");
            assert!(r.w > 0.0 && r.h > 0.0, "{r:?}");
        }
    }

    #[test]
    fn tiny_boxes_grow_to_the_minimum_size() {
        let mut t = PersonTracker::new(no_smoothing());
        let tight = pose(&[
            (5.0, 5.0, 0.9),
            (6.0, 5.0, 0.9),
            (5.0, 6.0, 0.9),
            (6.0, 6.0, 0.9),
        ]);
        let r = t.update(&tight, 640, 480).unwrap();
        let min_side = MIN_BOX_FRACTION * 480.0;
        assert!(r.w >= min_side - 1e-3 && r.h >= min_side - 1e-3, "{r:?}");
        assert!(inside_frame(&r, 640.0, 480.0), "{r:?}");
        assert!(r.x <= 5.0 && r.y <= 5.0, "joints must stay inside: {r:?}");
    }

    #[test]
    fn a_new_frame_size_drops_the_old_box() {
        let params = TrackerParams {
            smoothing: 0.9,
            ..TrackerParams::default()
        };
        let mut t = PersonTracker::new(params);
        t.update(&person(), 640, 480);
        let small = pose(&[
            (10.0, 10.0, 0.9),
            (60.0, 10.0, 0.9),
            (10.0, 90.0, 0.9),
            (60.0, 90.0, 0.9),
        ]);
        let r = t.update(&small, 100, 100).unwrap();
        assert!(inside_frame(&r, 100.0, 100.0), "{r:?}");
        assert_eq!(t.update(&small, 0, 0), None);
    }

    #[test]
    fn validate_names_the_field() {
        assert!(TrackerParams::default().validate().is_ok());
        let cases = [
            (
                TrackerParams {
                    min_confidence: f32::NAN,
                    ..Default::default()
                },
                "min_confidence",
            ),
            (
                TrackerParams {
                    min_joints: 0,
                    ..Default::default()
                },
                "min_joints",
            ),
            (
                TrackerParams {
                    padding: -0.1,
                    ..Default::default()
                },
                "padding",
            ),
            (
                TrackerParams {
                    lost_after: 0,
                    ..Default::default()
                },
                "lost_after",
            ),
            (
                TrackerParams {
                    smoothing: 1.0,
                    ..Default::default()
                },
                "smoothing",
            ),
        ];
        for (p, field) in cases {
            let msg = p.validate().unwrap_err();
            assert!(msg.starts_with(field), "{msg}");
        }
    }

    #[test]
    fn params_deserialize_with_defaults_and_reject_unknown_keys() {
        let p: TrackerParams = toml::from_str("lost_after = 9").unwrap();
        assert_eq!(p.lost_after, 9);
        assert_eq!(p.padding, TrackerParams::default().padding);
        let err = toml::from_str::<TrackerParams>("lost = 9").unwrap_err();
        assert!(err.to_string().contains("lost"), "{err}");
    }
}
