//! Pixel format conversions from what cameras and pipes deliver to RGB: packed and planar YUV
//! (BT.601 limited range, the webcam default), RGB/BGR, grey, RGB565 and MJPEG.
//!
//! Every function here is pure and checks the buffer against the width, height and row stride
//! before reading it: a driver that hands over a short buffer gets an error, never a panic.
//! The YUV maths is 16.16 fixed point, so a 640x480 frame converts in a few milliseconds on a
//! Cortex-A72 without floating point in the inner loop.

//!
//! One job per file: `format.rs` names the formats, `layout.rs` checks a frame's planes against
//! its buffer, `yuv.rs` and `rgb.rs` convert the raw formats, `mjpeg.rs` decodes JPEG frames.

mod format;
mod layout;
mod mjpeg;
mod rgb;
mod yuv;

use image::RgbImage;

use crate::error::{Error, Result};
use layout::Layout;
use rgb::{rgb565, rows_map};
use yuv::{packed_422, planar_420, semi_planar_420};

pub use format::{PixelFormat, ALL_FORMATS};
pub use mjpeg::decode_mjpeg;

/// Converts one frame to RGB.
///
/// `stride` is the number of bytes per row of the first plane (V4L2's `bytesperline`); 0 means
/// tightly packed. Chroma planes of NV12/NV21 use the same stride, YU12's use half of it, as
/// V4L2 lays them out. For MJPEG, `width`, `height` and `stride` are ignored: the JPEG's own
/// size is the truth.
pub fn convert(
    format: PixelFormat,
    data: &[u8],
    width: u32,
    height: u32,
    stride: usize,
) -> Result<RgbImage> {
    if format == PixelFormat::Mjpeg {
        return decode_mjpeg(data);
    }
    let name = format.frame_name();
    if width == 0 || height == 0 {
        return Err(Error::capture(
            name,
            format!(
                "the frame size {width}x{height} has no pixels: the driver reported a bad format"
            ),
        ));
    }
    let (w, h) = (width as usize, height as usize);
    let out_len = w
        .checked_mul(h)
        .and_then(|n| n.checked_mul(3))
        .ok_or_else(|| {
            Error::capture(&name, format!("frame size {width}x{height} is too large"))
        })?;
    let layout = Layout::new(format, w, h, stride)?;
    layout.check(data.len())?;

    let mut out = vec![0u8; out_len];
    match format {
        PixelFormat::Yuyv => packed_422(data, &mut out, &layout, [0, 1, 2, 3]),
        PixelFormat::Uyvy => packed_422(data, &mut out, &layout, [1, 0, 3, 2]),
        PixelFormat::Nv12 => semi_planar_420(data, &mut out, &layout, false),
        PixelFormat::Nv21 => semi_planar_420(data, &mut out, &layout, true),
        PixelFormat::Yuv420 => planar_420(data, &mut out, &layout),
        PixelFormat::Rgb24 => rows_map::<3>(data, &mut out, &layout, |p| [p[0], p[1], p[2]]),
        PixelFormat::Bgr24 => rows_map::<3>(data, &mut out, &layout, |p| [p[2], p[1], p[0]]),
        PixelFormat::Grey => rows_map::<1>(data, &mut out, &layout, |p| [p[0], p[0], p[0]]),
        PixelFormat::Rgb565 => rows_map::<2>(data, &mut out, &layout, rgb565),
        PixelFormat::Mjpeg => unreachable!("handled above"),
    }
    RgbImage::from_raw(width, height, out)
        .ok_or_else(|| Error::capture(name, "internal error: RGB buffer size mismatch"))
}

#[cfg(test)]
mod tests;
