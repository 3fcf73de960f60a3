//! Opening a V4L2 node and checking that it can capture, with errors that say what to do; and
//! the fence around `v4l`'s panics.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use v4l::capability::Flags as CapFlags;
use v4l::Device;

use crate::error::{Error, Result};

/// Runs `f`, turning a panic inside `v4l` into a device error.
pub(super) fn guarded<T>(device: &Path, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(Error::device(
            device.display(),
            format!("the v4l library failed while {what} (the driver gave an unexpected answer)"),
        ))
    })
}

pub(super) fn open_device(path: &Path) -> Result<Device> {
    Device::with_path(path).map_err(|e| {
        let reason = match e.kind() {
            std::io::ErrorKind::NotFound => {
                "no such camera: is it plugged in and its driver loaded? `ls /dev/video*` lists \
                 the cameras, `hgpose doctor` shows what each one offers"
                    .to_string()
            }
            std::io::ErrorKind::PermissionDenied => {
                "permission denied: add your user to the `video` group (sudo usermod -aG video \
                 $USER, then log in again)"
                    .to_string()
            }
            _ => format!("cannot open it ({e}); run `hgpose doctor` to check the cameras"),
        };
        Error::device(path.display(), reason)
    })
}

pub(super) fn check_capture(path: &Path, dev: &Device) -> Result<()> {
    let caps = dev.query_caps().map_err(|e| {
        Error::device(
            path.display(),
            format!("is not a V4L2 video device ({e}); give a /dev/videoN node (`ls /dev/video*`)"),
        )
    })?;
    let flags = caps.capabilities;
    if !flags.contains(CapFlags::VIDEO_CAPTURE) {
        let reason = if flags.contains(CapFlags::VIDEO_CAPTURE_MPLANE) {
            format!(
                "{} ({}) is a multi-planar capture device, which hgpose does not stream from; \
                 pipe MJPEG instead (e.g. `rpicam-vid -t 0 --codec mjpeg -o - | hgpose ... \
                 stdin`)",
                caps.card, caps.driver
            )
        } else {
            format!(
                "{} ({}) is not a video capture node (boards often expose codec and metadata \
                 nodes too); try another /dev/videoN, `hgpose doctor` lists them",
                caps.card, caps.driver
            )
        };
        return Err(Error::device(path.display(), reason));
    }
    if !flags.contains(CapFlags::STREAMING) {
        return Err(Error::device(
            path.display(),
            format!(
                "{} ({}) does not support streaming I/O",
                caps.card, caps.driver
            ),
        ));
    }
    Ok(())
}

pub(super) fn io_reason(what: &str, e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::EBUSY) => format!(
            "{what} failed: the camera is busy, another program is using it (close it, or \
             `fuser /dev/video*` shows which)"
        ),
        Some(libc::ENODEV) => {
            format!("{what} failed: the camera was unplugged or its driver reset")
        }
        _ => format!("{what} failed ({e})"),
    }
}
