//! V4L2 cameras (USB webcams, CSI bridges, `vivid`) through the `v4l` crate: open, negotiate a
//! format the driver actually has, stream through mmap buffers, convert to RGB.
//!
//! [`ReconnectingCamera`] keeps a sensor node alive across cable pulls and driver hiccups: it
//! reopens the device with exponential backoff and never panics. `v4l` itself panics on a few
//! odd driver answers (unknown colorspace codes, a failed close); those calls are fenced with
//! `catch_unwind` so a strange driver costs a reconnect, not the process.

//!
//! One job per file: `device.rs` opens a node and checks it can capture, `formats.rs` lists and
//! negotiates formats, `stream.rs` streams an open [`Camera`], `reconnect.rs` keeps one going.

mod device;
mod formats;
mod reconnect;
mod stream;

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

use crate::capture::convert::PixelFormat;
use crate::error::{Error, Result};

pub use formats::{
    choose_format, list_devices, list_formats, preference_order, FormatInfo, FrameSizes,
};
pub use reconnect::{Backoff, ReconnectingCamera};
pub use stream::Camera;

/// How a camera is opened; the `[camera]` table of a board profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CameraConfig {
    /// The V4L2 device node.
    pub device: PathBuf,
    /// Requested frame size; the driver may give the nearest size it has.
    pub width: u32,
    pub height: u32,
    /// Requested frame rate; `None` keeps the driver's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fps: Option<u32>,
    /// Preferred pixel format; `None` (or one the camera lacks) picks by [`preference_order`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<PixelFormat>,
    /// mmap buffers to stream with: more absorbs jitter, fewer keeps latency low.
    pub buffers: u32,
}

impl Default for CameraConfig {
    fn default() -> Self {
        CameraConfig {
            device: PathBuf::from("/dev/video0"),
            width: 640,
            height: 480,
            fps: None,
            format: None,
            buffers: 4,
        }
    }
}

impl CameraConfig {
    /// Checks the values before any device is touched.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, reason: String| {
            Err(Error::InvalidArgument(format!("camera {key}: {reason}")))
        };
        if !(1..=16384).contains(&self.width) || !(1..=16384).contains(&self.height) {
            return bad(
                "size",
                format!(
                    "{}x{} is not a camera frame size (e.g. 640x480)",
                    self.width, self.height
                ),
            );
        }
        if !(1..=32).contains(&self.buffers) {
            return bad(
                "buffers",
                format!("{} is outside 1..=32 (4 is usual)", self.buffers),
            );
        }
        if self.fps == Some(0) {
            return bad(
                "fps",
                "0 frames per second; leave it out for the driver's default".into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
