//! The one interface every frame source implements, so the pipeline does not care whether frames
//! come from a camera, a folder, a video or a pipe.

use image::RgbImage;
use std::time::{Instant, SystemTime};

use crate::error::Result;

/// One captured frame, converted to RGB.
#[derive(Debug, Clone)]
pub struct Frame {
    pub image: RgbImage,
    /// Monotonic capture time (for latency and the smoothing filter).
    pub captured: Instant,
    /// Wall-clock capture time (for the JSON record).
    pub wall_clock: SystemTime,
    /// Frame number from this source, from 0.
    pub sequence: u64,
    /// Where it came from: a device path, a file name, "stdin".
    pub origin: String,
}

impl Frame {
    pub fn new(image: RgbImage, sequence: u64, origin: impl Into<String>) -> Self {
        Frame {
            image,
            captured: Instant::now(),
            wall_clock: SystemTime::now(),
            sequence,
            origin: origin.into(),
        }
    }
}

/// A source of frames. `Ok(None)` means the source has ended (end of a file or folder); a
/// camera never ends, it errors or reconnects.
pub trait FrameSource: Send {
    fn next_frame(&mut self) -> Result<Option<Frame>>;
    /// A short description for logs, e.g. "/dev/video0 YUYV 640x480 @30".
    fn describe(&self) -> String;
    /// A live source (camera, pipe from a camera) keeps producing whether or not anyone reads:
    /// the pipeline then skips stale frames. Recorded sources (files, folders, videos) wait for
    /// the pipeline instead, so every frame is processed.
    fn is_live(&self) -> bool {
        false
    }
}
