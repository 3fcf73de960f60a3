//! MJPEG frames: each one a complete JPEG, decoded whole.

use image::RgbImage;

use crate::error::{Error, Result};

/// Decodes one MJPEG frame (a complete JPEG) to RGB.
pub fn decode_mjpeg(data: &[u8]) -> Result<RgbImage> {
    let corrupt = |why: String| {
        Error::capture(
            "MJPEG frame",
            format!(
                "the camera delivered a corrupt MJPEG frame ({} bytes: {why}); it is skipped. \
                 If this keeps happening check the cable and USB bandwidth, or ask for an \
                 uncompressed format (format = \"yuyv\")",
                data.len()
            ),
        )
    };
    if data.len() < 4 || data[0] != 0xFF || data[1] != 0xD8 {
        return Err(corrupt("it does not start with a JPEG SOI marker".into()));
    }
    let image = image::load_from_memory_with_format(data, image::ImageFormat::Jpeg)
        .map_err(|e| corrupt(e.to_string()))?;
    if image.width() == 0 || image.height() == 0 {
        return Err(corrupt("it has no pixels".into()));
    }
    Ok(image.into_rgb8())
}
