//! Resize the crop and write it, normalized, into the input tensor's memory in the model's layout
//! and channel order. Buffers are kept between frames so steady-state frames allocate nothing.

use fast_image_resize::images::CroppedImageMut;
use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;

use super::CropTransform;
use crate::error::{Error, Result};
use crate::model::{ChannelOrder, InputSpec, Layout};

/// Turns frames into input tensors for one model.
pub struct Preprocessor {
    spec: InputSpec,
    resizer: Resizer,
    /// The crop at input resolution, before normalization.
    crop: RgbImage,
}

impl Preprocessor {
    pub fn new(spec: &InputSpec) -> Self {
        Preprocessor {
            spec: spec.clone(),
            resizer: Resizer::new(),
            crop: RgbImage::new(spec.width as u32, spec.height as u32),
        }
    }

    /// The crop as the network sees it (before normalization), for debugging and drawing.
    pub fn crop_image(&self) -> &RgbImage {
        &self.crop
    }

    /// Fills `out` (the input tensor's values, `height * width * 3` of them) from `frame` seen
    /// through `crop`. With `mirror` the crop is flipped left-right (for the flip test).
    pub fn fill(
        &mut self,
        frame: &RgbImage,
        crop: &CropTransform,
        mirror: bool,
        out: &mut [f32],
    ) -> Result<()> {
        let (w, h) = (self.spec.width, self.spec.height);
        if out.len() != w * h * 3 {
            return Err(Error::InvalidArgument(format!(
                "input buffer holds {} values, the model takes {}",
                out.len(),
                w * h * 3
            )));
        }
        if crop.input_w != w || crop.input_h != h {
            return Err(Error::InvalidArgument(format!(
                "crop is for a {}x{} input, the model takes {w}x{h}",
                crop.input_w, crop.input_h
            )));
        }
        self.resize_crop(frame, crop)?;
        self.write_tensor(mirror, out);
        Ok(())
    }

    fn resize_crop(&mut self, frame: &RgbImage, crop: &CropTransform) -> Result<()> {
        self.crop.fill(0);
        let (fw, fh) = (frame.width() as f32, frame.height() as f32);
        if fw == 0.0 || fh == 0.0 {
            return Err(Error::InvalidArgument("the frame is empty".into()));
        }
        // The part of the input that shows the frame, snapped inward to whole input pixels; the
        // source rectangle is then derived from those pixels so the mapping stays exact.
        let (u0, v0) = crop.frame_to_input(0.0, 0.0);
        let (u1, v1) = crop.frame_to_input(fw, fh);
        let snap_in = |lo: f32, hi: f32, max: usize| {
            let a = (lo - 1e-3).ceil().clamp(0.0, max as f32) as u32;
            let b = (hi + 1e-3).floor().clamp(0.0, max as f32) as u32;
            (a, b)
        };
        let (du0, du1) = snap_in(u0, u1, crop.input_w);
        let (dv0, dv1) = snap_in(v0, v1, crop.input_h);
        if du1 <= du0 || dv1 <= dv0 {
            return Ok(()); // the crop lies wholly outside the frame: all padding
        }
        let (sx0, sy0) = crop.input_to_frame(du0 as f32, dv0 as f32);
        let (sx1, sy1) = crop.input_to_frame(du1 as f32, dv1 as f32);
        let (sx0, sy0) = (sx0.max(0.0) as f64, sy0.max(0.0) as f64);
        let (sx1, sy1) = (sx1.min(fw) as f64, sy1.min(fh) as f64);
        let options = ResizeOptions::new()
            .resize_alg(ResizeAlg::Convolution(FilterType::Bilinear))
            .crop(sx0, sy0, sx1 - sx0, sy1 - sy0);
        let mut dst = CroppedImageMut::new(&mut self.crop, du0, dv0, du1 - du0, dv1 - dv0)
            .map_err(|e| Error::InvalidArgument(format!("crop does not fit the input: {e}")))?;
        self.resizer
            .resize(frame, &mut dst, &options)
            .map_err(|e| Error::InvalidArgument(format!("cannot resize the frame: {e}")))
    }

    fn write_tensor(&self, mirror: bool, out: &mut [f32]) {
        let (w, h) = (self.spec.width, self.spec.height);
        let (scale, offset) = self.spec.normalization.scale_offset();
        let order = match self.spec.channels {
            ChannelOrder::RGB => [0, 1, 2],
            ChannelOrder::BGR => [2, 1, 0],
        };
        let pixels = self.crop.as_raw();
        for y in 0..h {
            for x in 0..w {
                let sx = if mirror { w - 1 - x } else { x };
                let px = &pixels[(y * w + sx) * 3..][..3];
                for (c, &src) in order.iter().enumerate() {
                    let value = px[src] as f32 * scale[c] + offset[c];
                    let index = match self.spec.layout {
                        Layout::NCHW => (c * h + y) * w + x,
                        Layout::NHWC => (y * w + x) * 3 + c,
                    };
                    out[index] = value;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Normalization;

    fn spec(layout: Layout, channels: ChannelOrder, normalization: Normalization) -> InputSpec {
        InputSpec {
            name: "input".into(),
            height: 64,
            width: 64,
            layout,
            channels,
            normalization,
        }
    }

    fn solid(w: u32, h: u32, rgb: [u8; 3]) -> RgbImage {
        RgbImage::from_pixel(w, h, image::Rgb(rgb))
    }

    #[test]
    fn landscape_frame_is_padded_top_and_bottom() {
        let s = spec(Layout::NCHW, ChannelOrder::RGB, Normalization::Unit);
        let mut pre = Preprocessor::new(&s);
        let frame = solid(128, 64, [255, 128, 0]);
        let crop = CropTransform::whole_frame(128, 64, 64, 64).unwrap();
        let mut out = vec![0.0; 64 * 64 * 3];
        pre.fill(&frame, &crop, false, &mut out).unwrap();
        // rows 16..48 show the frame, the rest is black padding
        let at = |c: usize, y: usize, x: usize| out[(c * 64 + y) * 64 + x];
        assert!((at(0, 32, 10) - 1.0).abs() < 1e-6);
        assert!((at(1, 32, 10) - 128.0 / 255.0).abs() < 1e-6);
        assert_eq!(at(2, 32, 10), 0.0);
        assert_eq!(at(0, 5, 10), 0.0);
        assert_eq!(at(0, 60, 10), 0.0);
        assert!((at(0, 16, 0) - 1.0).abs() < 1e-6 && (at(0, 47, 63) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn nhwc_bgr_mean_std_layout() {
        let n = Normalization::MeanStd {
            mean: [0.5, 0.5, 0.5],
            std: [0.5, 0.5, 0.5],
        };
        let s = spec(Layout::NHWC, ChannelOrder::BGR, n);
        let mut pre = Preprocessor::new(&s);
        let frame = solid(64, 64, [255, 0, 51]);
        let crop = CropTransform::whole_frame(64, 64, 64, 64).unwrap();
        let mut out = vec![0.0; 64 * 64 * 3];
        pre.fill(&frame, &crop, false, &mut out).unwrap();
        let px = &out[(10 * 64 + 7) * 3..][..3];
        // BGR: blue first
        assert!((px[0] - (51.0 / 255.0 - 0.5) / 0.5).abs() < 1e-5);
        assert!((px[1] + 1.0).abs() < 1e-5);
        assert!((px[2] - 1.0).abs() < 1e-5);
    }

    #[test]
    fn mirror_flips_columns() {
        let s = spec(Layout::NCHW, ChannelOrder::RGB, Normalization::Raw);
        let mut pre = Preprocessor::new(&s);
        let mut frame = solid(64, 64, [0, 0, 0]);
        for y in 0..64 {
            for x in 0..8 {
                frame.put_pixel(x, y, image::Rgb([200, 0, 0]));
            }
        }
        let crop = CropTransform::whole_frame(64, 64, 64, 64).unwrap();
        let (mut plain, mut mirrored) = (vec![0.0; 64 * 64 * 3], vec![0.0; 64 * 64 * 3]);
        pre.fill(&frame, &crop, false, &mut plain).unwrap();
        pre.fill(&frame, &crop, true, &mut mirrored).unwrap();
        for y in 0..64 {
            for x in 0..64 {
                assert_eq!(plain[y * 64 + x], mirrored[y * 64 + 63 - x]);
            }
        }
        assert_eq!(mirrored[63], 200.0);
    }

    #[test]
    fn crop_outside_the_frame_is_all_padding() {
        let s = spec(Layout::NCHW, ChannelOrder::RGB, Normalization::Unit);
        let mut pre = Preprocessor::new(&s);
        let frame = solid(32, 32, [255, 255, 255]);
        let crop = CropTransform::around(
            crate::preprocess::Rect::new(500.0, 500.0, 10.0, 10.0),
            0.0,
            64,
            64,
        )
        .unwrap();
        let mut out = vec![1.0; 64 * 64 * 3];
        pre.fill(&frame, &crop, false, &mut out).unwrap();
        assert!(out.iter().all(|v| *v == 0.0));
        assert!(pre.fill(&frame, &crop, false, &mut [0.0; 5]).is_err());
    }
}
