//! An open, streaming camera: mmap buffers dequeued one frame at a time, checked and converted
//! to RGB, stamped with the driver's capture time.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use v4l::buffer::{Flags as BufferFlags, Type};
use v4l::io::mmap::Stream as MmapStream;
use v4l::io::traits::CaptureStream;
use v4l::Device;

use super::device::{check_capture, guarded, io_reason, open_device};
use super::formats::negotiate;
use super::CameraConfig;
use crate::capture::convert::{convert, PixelFormat};
use crate::capture::{Frame, FrameSource};
use crate::error::{Error, Result};

/// An open, streaming V4L2 camera.
pub struct Camera {
    path: PathBuf,
    // Declared (and dropped, in `Drop`) before the device, inside `catch_unwind`.
    stream: Option<MmapStream<'static>>,
    device: Option<Device>,
    format: PixelFormat,
    width: u32,
    height: u32,
    stride: usize,
    fps: Option<f64>,
    sequence: u64,
    /// A timed-out dequeue left a buffer queued that `next()` would queue again.
    requeue_pending: bool,
    last_driver_sequence: Option<u32>,
}

/// Why a grab failed: a bad frame (skip it) or a failing device (reopen it).
pub(super) enum Fault {
    Frame(Error),
    Device(Error),
}

impl Fault {
    fn into_error(self) -> Error {
        match self {
            Fault::Frame(e) | Fault::Device(e) => e,
        }
    }
}

/// How long to wait for a frame before the camera counts as stalled.
pub(super) fn frame_timeout(fps: Option<f64>) -> Duration {
    let interval = fps.filter(|f| *f > 0.0).map(|f| 1.0 / f).unwrap_or(0.0);
    Duration::from_secs_f64((interval * 3.0).clamp(5.0, 60.0))
}

impl Camera {
    /// Opens the device, negotiates format, size and rate, and starts streaming.
    pub fn open(config: &CameraConfig) -> Result<Camera> {
        config.validate()?;
        guarded(&config.device, "opening the camera", || {
            Camera::open_inner(config)
        })
    }

    fn open_inner(config: &CameraConfig) -> Result<Camera> {
        let path = config.device.as_path();
        let dev_err = |reason: String| Error::device(path.display(), reason);
        let dev = open_device(path)?;
        check_capture(path, &dev)?;

        let got = negotiate(&dev, config)?;

        let mut stream = MmapStream::with_buffers(&dev, Type::VideoCapture, config.buffers)
            .map_err(|e| dev_err(io_reason("allocating capture buffers", &e)))?;
        stream.set_timeout(frame_timeout(got.fps));
        Ok(Camera {
            path: path.to_path_buf(),
            stream: Some(stream),
            device: Some(dev),
            format: got.format,
            width: got.width,
            height: got.height,
            stride: got.stride,
            fps: got.fps,
            sequence: 0,
            requeue_pending: false,
            last_driver_sequence: None,
        })
    }

    /// The device node.
    pub fn device(&self) -> &Path {
        &self.path
    }

    /// The negotiated pixel format.
    pub fn format(&self) -> PixelFormat {
        self.format
    }

    /// The negotiated frame size.
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// The frame rate the driver reports, if it reports one.
    pub fn fps(&self) -> Option<f64> {
        self.fps
    }

    pub(super) fn grab(&mut self) -> std::result::Result<Frame, Fault> {
        let path = self.path.display().to_string();
        let Some(stream) = self.stream.as_mut() else {
            return Err(Fault::Device(Error::capture(
                &path,
                "the camera is not streaming",
            )));
        };
        let transient = |e: &std::io::Error| {
            matches!(
                e.kind(),
                std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::Interrupted
                    | std::io::ErrorKind::WouldBlock
            )
        };
        let fault = |e: std::io::Error| {
            let reason = if e.kind() == std::io::ErrorKind::TimedOut {
                "no frame arrived in time: the camera stalled".to_string()
            } else {
                io_reason("capturing a frame", &e)
            };
            if e.kind() == std::io::ErrorKind::Interrupted {
                Fault::Frame(Error::capture(&path, "interrupted by a signal"))
            } else {
                Fault::Device(Error::capture(&path, reason))
            }
        };
        if self.requeue_pending {
            // Take back the buffer that is still queued, so `next()` can queue it again.
            CaptureStream::dequeue(stream).map_err(fault)?;
            self.requeue_pending = false;
        }
        let (buffer, meta) = match CaptureStream::next(stream) {
            Ok(x) => x,
            Err(e) => {
                self.requeue_pending = transient(&e);
                return Err(fault(e));
            }
        };
        if let Some(last) = self.last_driver_sequence {
            let gap = meta.sequence.wrapping_sub(last);
            if gap > 1 && gap < 1000 {
                tracing::debug!(device = %path, "the driver dropped {} frames", gap - 1);
            }
        }
        self.last_driver_sequence = Some(meta.sequence);
        if meta.flags.contains(BufferFlags::ERROR) {
            return Err(Fault::Frame(Error::capture(
                &path,
                "the driver marked the frame as corrupt; it is skipped",
            )));
        }
        let used = match meta.bytesused as usize {
            0 => buffer.len(),
            n => n.min(buffer.len()),
        };
        let image = convert(
            self.format,
            &buffer[..used],
            self.width,
            self.height,
            self.stride,
        )
        .map_err(|e| {
            Fault::Frame(match e {
                Error::Capture { reason, .. } => Error::capture(&path, reason),
                other => other,
            })
        })?;
        let age = capture_age(meta.timestamp, meta.flags);
        let mut frame = Frame::new(image, self.sequence, path);
        if let Some(age) = age {
            frame.captured = Instant::now().checked_sub(age).unwrap_or(frame.captured);
            frame.wall_clock = SystemTime::now()
                .checked_sub(age)
                .unwrap_or(frame.wall_clock);
        }
        self.sequence += 1;
        Ok(frame)
    }
}

/// How long ago the driver stamped the buffer, when it stamps with the monotonic clock (the
/// clock `Instant` uses on Linux); `None` for other clocks or implausible values.
fn capture_age(stamp: v4l::Timestamp, flags: BufferFlags) -> Option<Duration> {
    let source = flags.bits() & BufferFlags::TIMESTAMP_MASK.bits();
    if source != BufferFlags::TIMESTAMP_MONOTONIC.bits() {
        return None;
    }
    let sec = u64::try_from(stamp.sec).ok()?;
    let usec = u32::try_from(stamp.usec).ok()?;
    let stamped = Duration::from_secs(sec) + Duration::from_micros(u64::from(usec));
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) } != 0 {
        return None;
    }
    let now = Duration::from_secs(u64::try_from(now.tv_sec).ok()?)
        + Duration::from_nanos(u64::try_from(now.tv_nsec).ok()?);
    now.checked_sub(stamped)
        .filter(|age| *age < Duration::from_secs(10))
}

impl FrameSource for Camera {
    fn next_frame(&mut self) -> Result<Option<Frame>> {
        let path = self.path.clone();
        guarded(&path, "capturing a frame", || {
            self.grab().map(Some).map_err(Fault::into_error)
        })
    }

    fn describe(&self) -> String {
        let fps = self.fps.map(|f| format!(" @{f:.0}")).unwrap_or_default();
        format!(
            "{} {} {}x{}{fps}",
            self.path.display(),
            self.format,
            self.width,
            self.height
        )
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        let stream = self.stream.take();
        let device = self.device.take();
        // v4l panics in Drop if stopping the stream fails with anything but ENODEV.
        if catch_unwind(AssertUnwindSafe(move || {
            drop(stream);
            drop(device);
        }))
        .is_err()
        {
            tracing::warn!(device = %self.path.display(), "closing the camera failed; its buffers may leak");
        }
    }
}
