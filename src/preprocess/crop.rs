//! The crop: which part of the frame the network sees, and the exact mapping between frame and
//! network-input coordinates that lets keypoints go back to the frame.
//!
//! Coordinates are continuous pixels: pixel `(i, j)` covers `[i, i+1) x [j, j+1)`, so its centre is
//! `(i + 0.5, j + 0.5)`. The same convention holds in the frame, the input and the heatmaps, which
//! makes every mapping a pure scale and offset.

use serde::Serialize;

use crate::error::{Error, Result};

/// An axis-aligned rectangle in frame pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rect {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
}

impl Rect {
    pub fn new(x: f32, y: f32, w: f32, h: f32) -> Self {
        Rect { x, y, w, h }
    }

    pub fn center(&self) -> (f32, f32) {
        (self.x + self.w / 2.0, self.y + self.h / 2.0)
    }

    /// Parses `x,y,w,h` (as the CLI's `--box` takes it).
    pub fn parse(text: &str) -> Result<Self> {
        let parts: Vec<f32> = text
            .split(',')
            .map(|p| p.trim().parse::<f32>())
            .collect::<Result<_, _>>()
            .map_err(|_| {
                Error::InvalidArgument(format!("box {text:?} is not x,y,w,h in pixels"))
            })?;
        match parts.as_slice() {
            [x, y, w, h] if *w > 0.0 && *h > 0.0 && parts.iter().all(|v| v.is_finite()) => {
                Ok(Rect::new(*x, *y, *w, *h))
            }
            _ => Err(Error::InvalidArgument(format!(
                "box {text:?} must be x,y,w,h with a positive width and height"
            ))),
        }
    }
}

/// Frame <-> network input mapping for one crop: `input = (frame - origin) * scale`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CropTransform {
    /// Frame position of the input's top-left corner.
    pub origin_x: f32,
    pub origin_y: f32,
    /// Input pixels per frame pixel.
    pub scale: f32,
    pub input_w: usize,
    pub input_h: usize,
}

/// Context around a person box is a fraction of its size on each side, from 0 to 10.
pub fn check_margin(margin: f32) -> Result<()> {
    if !(0.0..=10.0).contains(&margin) {
        return Err(Error::InvalidArgument(format!(
            "crop margin {margin} must be between 0 and 10"
        )));
    }
    Ok(())
}

impl CropTransform {
    /// The crop that shows `region` whole, centred, with `margin` (a fraction of its size) added on
    /// every side, at the input's aspect ratio (the short side gets more context, never distortion).
    pub fn around(region: Rect, margin: f32, input_w: usize, input_h: usize) -> Result<Self> {
        if !(region.w > 0.0 && region.h > 0.0 && region.w.is_finite() && region.h.is_finite()) {
            return Err(Error::InvalidArgument(format!(
                "crop region {region:?} is empty"
            )));
        }
        check_margin(margin)?;
        let (cx, cy) = region.center();
        let (w, h) = (
            region.w * (1.0 + 2.0 * margin),
            region.h * (1.0 + 2.0 * margin),
        );
        let scale = (input_w as f32 / w).min(input_h as f32 / h);
        Ok(CropTransform {
            origin_x: cx - input_w as f32 / (2.0 * scale),
            origin_y: cy - input_h as f32 / (2.0 * scale),
            scale,
            input_w,
            input_h,
        })
    }

    /// The default crop: the whole frame, centred, padded to the input's aspect ratio.
    pub fn whole_frame(frame_w: u32, frame_h: u32, input_w: usize, input_h: usize) -> Result<Self> {
        Self::around(
            Rect::new(0.0, 0.0, frame_w as f32, frame_h as f32),
            0.0,
            input_w,
            input_h,
        )
    }

    pub fn frame_to_input(&self, x: f32, y: f32) -> (f32, f32) {
        (
            (x - self.origin_x) * self.scale,
            (y - self.origin_y) * self.scale,
        )
    }

    pub fn input_to_frame(&self, u: f32, v: f32) -> (f32, f32) {
        (
            u / self.scale + self.origin_x,
            v / self.scale + self.origin_y,
        )
    }

    /// The crop's extent in the frame (may reach outside it; that part is padded).
    pub fn frame_rect(&self) -> Rect {
        Rect::new(
            self.origin_x,
            self.origin_y,
            self.input_w as f32 / self.scale,
            self.input_h as f32 / self.scale,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_landscape_frame_is_centred_with_vertical_padding() {
        let t = CropTransform::whole_frame(640, 480, 256, 256).unwrap();
        assert!((t.scale - 0.4).abs() < 1e-6);
        let r = t.frame_rect();
        assert!((r.x - 0.0).abs() < 1e-4 && (r.w - 640.0).abs() < 1e-3);
        assert!((r.y + 80.0).abs() < 1e-4 && (r.h - 640.0).abs() < 1e-3);
        // the frame centre lands on the input centre
        let (u, v) = t.frame_to_input(320.0, 240.0);
        assert!((u - 128.0).abs() < 1e-4 && (v - 128.0).abs() < 1e-4);
    }

    #[test]
    fn round_trip_is_exact() {
        let t = CropTransform::around(Rect::new(100.0, 50.0, 80.0, 200.0), 0.25, 256, 192).unwrap();
        for &(x, y) in &[(0.0, 0.0), (123.4, 321.9), (639.5, 479.5)] {
            let (u, v) = t.frame_to_input(x, y);
            let (x2, y2) = t.input_to_frame(u, v);
            assert!((x - x2).abs() < 1e-3 && (y - y2).abs() < 1e-3);
        }
        // the person box, margin included, fits in the input
        let (u0, v0) = t.frame_to_input(100.0 - 20.0, 50.0 - 50.0);
        let (u1, v1) = t.frame_to_input(180.0 + 20.0, 250.0 + 50.0);
        assert!(
            u0 >= -1e-3 && v0 >= -1e-3 && u1 <= 256.001 && v1 <= 192.001,
            "{u0} {v0} {u1} {v1}"
        );
    }

    #[test]
    fn bad_boxes_are_errors() {
        assert!(Rect::parse("1,2,3").is_err());
        assert!(Rect::parse("1,2,0,4").is_err());
        assert!(Rect::parse("a,b,c,d").is_err());
        assert_eq!(
            Rect::parse(" 1, 2,3 ,4").unwrap(),
            Rect::new(1.0, 2.0, 3.0, 4.0)
        );
        assert!(CropTransform::around(Rect::new(0.0, 0.0, 0.0, 10.0), 0.1, 256, 256).is_err());
        assert!(CropTransform::around(Rect::new(0.0, 0.0, 10.0, 10.0), -1.0, 256, 256).is_err());
    }
}
