//! Where each plane of a raw frame lives, checked against the buffer once before any pixel is
//! read.

use super::PixelFormat;
use crate::error::{Error, Result};

/// Where each plane lives and how many bytes each row needs, computed and checked once.
pub(super) struct Layout {
    pub(super) width: usize,
    pub(super) height: usize,
    /// Bytes from one row of the first plane to the next.
    pub(super) stride: usize,
    /// Start and stride of the chroma plane(s), for the 4:2:0 formats.
    pub(super) chroma: Option<Chroma>,
    pub(super) format: PixelFormat,
}

pub(super) struct Chroma {
    pub(super) offset: usize,
    pub(super) stride: usize,
    /// For YU12, where the V plane starts.
    pub(super) second_offset: usize,
}

impl Layout {
    pub(super) fn new(
        format: PixelFormat,
        width: usize,
        height: usize,
        stride: usize,
    ) -> Result<Layout> {
        let name = format.frame_name();
        let row_bytes = Self::row_bytes(format, width);
        let stride = if stride == 0 { row_bytes } else { stride };
        if stride < row_bytes {
            return Err(Error::capture(
                name,
                format!(
                    "the driver reports {stride} bytes per row, less than the {row_bytes} a \
                     {width}-pixel row needs: the format negotiation went wrong"
                ),
            ));
        }
        let too_large = || Error::capture(&name, "frame layout too large");
        let luma = stride.checked_mul(height).ok_or_else(too_large)?;
        let chroma_rows = height.div_ceil(2);
        let chroma = match format {
            PixelFormat::Nv12 | PixelFormat::Nv21 => Some(Chroma {
                offset: luma,
                stride,
                second_offset: 0,
            }),
            PixelFormat::Yuv420 => {
                let cstride = stride.div_ceil(2).max(width.div_ceil(2));
                let plane = cstride.checked_mul(chroma_rows).ok_or_else(too_large)?;
                Some(Chroma {
                    offset: luma,
                    stride: cstride,
                    second_offset: luma.checked_add(plane).ok_or_else(too_large)?,
                })
            }
            _ => None,
        };
        Ok(Layout {
            width,
            height,
            stride,
            chroma,
            format,
        })
    }

    /// Bytes one row of the first plane needs.
    fn row_bytes(format: PixelFormat, width: usize) -> usize {
        match format {
            PixelFormat::Yuyv | PixelFormat::Uyvy => width.div_ceil(2) * 4,
            PixelFormat::Rgb24 | PixelFormat::Bgr24 => width * 3,
            PixelFormat::Rgb565 => width * 2,
            _ => width,
        }
    }

    /// The smallest buffer that holds every byte the conversion reads.
    fn min_len(&self) -> usize {
        let row_bytes = Self::row_bytes(self.format, self.width);
        let plane_end = |offset: usize, stride: usize, rows: usize, row: usize| {
            offset
                .saturating_add(stride.saturating_mul(rows - 1))
                .saturating_add(row)
        };
        let half_w = self.width.div_ceil(2);
        let half_h = self.height.div_ceil(2);
        match &self.chroma {
            None => plane_end(0, self.stride, self.height, row_bytes),
            Some(c) if self.format == PixelFormat::Yuv420 => {
                plane_end(c.second_offset, c.stride, half_h, half_w)
            }
            Some(c) => plane_end(c.offset, c.stride, half_h, 2 * half_w),
        }
    }

    pub(super) fn check(&self, len: usize) -> Result<()> {
        let need = self.min_len();
        if len < need {
            return Err(Error::capture(
                self.format.frame_name(),
                format!(
                    "the driver delivered a short buffer: {}x{} {} with {} bytes per row needs \
                     {need} bytes, got {len}; the frame is skipped",
                    self.width,
                    self.height,
                    self.format.fourcc_str(),
                    self.stride
                ),
            ));
        }
        Ok(())
    }
}
