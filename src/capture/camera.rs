//! V4L2 cameras (USB webcams, CSI bridges, `vivid`) through the `v4l` crate: open, negotiate a
//! format the driver actually has, stream through mmap buffers, convert to RGB.
//!
//! [`ReconnectingCamera`] keeps a sensor node alive across cable pulls and driver hiccups: it
//! reopens the device with exponential backoff and never panics. `v4l` itself panics on a few
//! odd driver answers (unknown colorspace codes, a failed close); those calls are fenced with
//! `catch_unwind` so a strange driver costs a reconnect, not the process.

use serde::{Deserialize, Serialize};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use v4l::buffer::{Flags as BufferFlags, Type};
use v4l::capability::Flags as CapFlags;
use v4l::framesize::FrameSizeEnum;
use v4l::io::mmap::Stream as MmapStream;
use v4l::io::traits::CaptureStream;
use v4l::video::capture::Parameters;
use v4l::video::Capture;
use v4l::{Device, Format, FourCC};

use crate::capture::convert::{convert, PixelFormat};
use crate::capture::{Frame, FrameSource};
use crate::error::{Error, Result};

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

/// Formats in the order hgpose prefers them for a requested size.
///
/// Above 640x480, MJPEG comes first: uncompressed 4:2:2 at 1280x720x30 needs 55 MB/s, more
/// than USB 2.0 cameras deliver (they drop to 5-10 fps in YUYV), while decoding a 720p JPEG
/// costs ~10 ms on a Cortex-A72. At 640x480 and below the raw formats come first: they fit
/// the bus, cost only a cheap conversion and carry no compression artefacts. Grey is last
/// because the network was trained on colour.
pub fn preference_order(width: u32, height: u32) -> Vec<PixelFormat> {
    use PixelFormat::*;
    let raw = [Yuyv, Uyvy, Nv12, Nv21, Yuv420, Rgb24, Bgr24];
    let mut order = Vec::new();
    if u64::from(width) * u64::from(height) > 640 * 480 {
        order.push(Mjpeg);
        order.extend(raw);
    } else {
        order.extend(raw);
        order.push(Mjpeg);
    }
    order.extend([Rgb565, Grey]);
    order
}

/// Picks the format to ask for among those the camera offers: the preferred one if offered,
/// else the first of [`preference_order`] that is offered. `None` if it offers nothing
/// hgpose can convert.
pub fn choose_format(
    offered: &[PixelFormat],
    preferred: Option<PixelFormat>,
    width: u32,
    height: u32,
) -> Option<PixelFormat> {
    if let Some(p) = preferred.filter(|p| offered.contains(p)) {
        return Some(p);
    }
    preference_order(width, height)
        .into_iter()
        .find(|f| offered.contains(f))
}

/// The frame sizes a camera lists for one format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameSizes {
    Discrete(Vec<(u32, u32)>),
    Stepwise {
        min: (u32, u32),
        max: (u32, u32),
        step: (u32, u32),
    },
    /// The driver does not enumerate sizes.
    Unknown,
}

impl std::fmt::Display for FrameSizes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameSizes::Discrete(sizes) => {
                let list: Vec<String> = sizes.iter().map(|(w, h)| format!("{w}x{h}")).collect();
                f.write_str(&list.join(", "))
            }
            FrameSizes::Stepwise { min, max, step } => write!(
                f,
                "{}x{} to {}x{} in steps of {}x{}",
                min.0, min.1, max.0, max.1, step.0, step.1
            ),
            FrameSizes::Unknown => f.write_str("sizes not listed by the driver"),
        }
    }
}

/// One format a camera offers, for `hgpose doctor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatInfo {
    /// The fourcc as text ("YUYV", "MJPG", "H264").
    pub fourcc: String,
    /// `Some` if hgpose can convert it.
    pub format: Option<PixelFormat>,
    /// The driver's description ("YUYV 4:2:2").
    pub description: String,
    pub sizes: FrameSizes,
}

/// The `/dev/video*` nodes, sorted.
pub fn list_devices() -> Vec<PathBuf> {
    let mut nodes: Vec<PathBuf> = std::fs::read_dir("/dev")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("video"))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    nodes.sort();
    nodes
}

/// The formats and frame sizes a capture device offers.
pub fn list_formats(device: &Path) -> Result<Vec<FormatInfo>> {
    guarded(device, "listing formats", || {
        let dev = open_device(device)?;
        check_capture(device, &dev)?;
        let descriptions = dev
            .enum_formats()
            .map_err(|e| Error::device(device.display(), format!("cannot list formats ({e})")))?;
        Ok(descriptions
            .into_iter()
            .map(|d| FormatInfo {
                fourcc: fourcc_text(&d.fourcc),
                format: PixelFormat::from_fourcc(&d.fourcc.repr),
                description: d.description,
                sizes: frame_sizes(&dev, d.fourcc),
            })
            .collect())
    })
}

fn frame_sizes(dev: &Device, fourcc: FourCC) -> FrameSizes {
    let Ok(sizes) = dev.enum_framesizes(fourcc) else {
        return FrameSizes::Unknown;
    };
    let mut discrete = Vec::new();
    for size in sizes {
        match size.size {
            FrameSizeEnum::Discrete(d) => discrete.push((d.width, d.height)),
            FrameSizeEnum::Stepwise(s) => {
                return FrameSizes::Stepwise {
                    min: (s.min_width, s.min_height),
                    max: (s.max_width, s.max_height),
                    step: (s.step_width, s.step_height),
                }
            }
        }
    }
    if discrete.is_empty() {
        FrameSizes::Unknown
    } else {
        FrameSizes::Discrete(discrete)
    }
}

fn fourcc_text(f: &FourCC) -> String {
    String::from_utf8_lossy(&f.repr).trim_end().to_string()
}

/// Runs `f`, turning a panic inside `v4l` into a device error.
fn guarded<T>(device: &Path, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(Error::device(
            device.display(),
            format!("the v4l library failed while {what} (the driver gave an unexpected answer)"),
        ))
    })
}

fn open_device(path: &Path) -> Result<Device> {
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

fn check_capture(path: &Path, dev: &Device) -> Result<()> {
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

fn io_reason(what: &str, e: &std::io::Error) -> String {
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
enum Fault {
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
fn frame_timeout(fps: Option<f64>) -> Duration {
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

        let described = dev
            .enum_formats()
            .map_err(|e| dev_err(io_reason("listing formats", &e)))?;
        let offered: Vec<PixelFormat> = described
            .iter()
            .filter_map(|d| PixelFormat::from_fourcc(&d.fourcc.repr))
            .collect();
        if let Some(p) = config.format.filter(|p| !offered.contains(p)) {
            tracing::warn!(device = %path.display(), "the camera does not offer {p}; choosing another format");
        }
        let Some(chosen) = choose_format(&offered, config.format, config.width, config.height)
        else {
            let all: Vec<String> = described.iter().map(|d| fourcc_text(&d.fourcc)).collect();
            return Err(dev_err(format!(
                "offers no pixel format hgpose can convert (it offers {}); hgpose converts \
                 YUYV, UYVY, NV12, NV21, YU12, RGB3, BGR3, RGBP, GREY and MJPG",
                if all.is_empty() {
                    "none".to_string()
                } else {
                    all.join(", ")
                }
            )));
        };

        let want = Format::new(config.width, config.height, FourCC::new(&chosen.fourcc()));
        let got = dev
            .set_format(&want)
            .map_err(|e| dev_err(io_reason("setting the format", &e)))?;
        let Some(format) = PixelFormat::from_fourcc(&got.fourcc.repr) else {
            return Err(dev_err(format!(
                "asked for {chosen} but the driver switched to {}, which hgpose cannot convert",
                fourcc_text(&got.fourcc)
            )));
        };
        tracing::info!(
            device = %path.display(),
            "asked for {chosen} {}x{}, got {format} {}x{} ({} bytes per row)",
            config.width, config.height, got.width, got.height, got.stride
        );
        if got.width == 0 || got.height == 0 {
            return Err(dev_err(format!(
                "the driver reports a {}x{} frame size",
                got.width, got.height
            )));
        }

        let fps = match config.fps {
            Some(asked) => match dev.set_params(&Parameters::with_fps(asked)) {
                Ok(p) => {
                    let got = interval_fps(p.interval);
                    tracing::info!(device = %path.display(), "asked for {asked} fps, got {got:?}");
                    got
                }
                Err(e) => {
                    tracing::warn!(device = %path.display(), "cannot set {asked} fps ({e}); using the driver's rate");
                    dev.params().ok().and_then(|p| interval_fps(p.interval))
                }
            },
            None => dev.params().ok().and_then(|p| interval_fps(p.interval)),
        };

        let mut stream = MmapStream::with_buffers(&dev, Type::VideoCapture, config.buffers)
            .map_err(|e| dev_err(io_reason("allocating capture buffers", &e)))?;
        stream.set_timeout(frame_timeout(fps));
        Ok(Camera {
            path: path.to_path_buf(),
            stream: Some(stream),
            device: Some(dev),
            format,
            width: got.width,
            height: got.height,
            stride: got.stride as usize,
            fps,
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

    fn grab(&mut self) -> std::result::Result<Frame, Fault> {
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

fn interval_fps(interval: v4l::Fraction) -> Option<f64> {
    (interval.numerator > 0 && interval.denominator > 0)
        .then(|| f64::from(interval.denominator) / f64::from(interval.numerator))
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

/// Exponential backoff between reconnection attempts.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            next: initial,
        }
    }

    /// The delay before the next attempt; each call doubles the following one, up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    /// Back to the initial delay after a success.
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

impl Default for Backoff {
    /// 0.5 s doubling to a 10 s cap.
    fn default() -> Self {
        Backoff::new(Duration::from_millis(500), Duration::from_secs(10))
    }
}

/// A camera that reopens itself when the device disappears or fails (unplugged, `ENODEV`,
/// `EIO`, stalled), with exponential backoff. It blocks while retrying but watches `stop`,
/// returning `Ok(None)` soon after it is set. With [`report_failures`](Self::report_failures),
/// each failed attempt is returned as an error instead (the next call waits out the backoff).
pub struct ReconnectingCamera {
    config: CameraConfig,
    camera: Option<Camera>,
    stop: Arc<AtomicBool>,
    report_failures: bool,
    backoff: Backoff,
    next_attempt: Option<Instant>,
    sequence: u64,
}

impl ReconnectingCamera {
    /// Connects lazily: the first `next_frame` opens the camera, waiting for it if it is not
    /// there yet (a board that boots before its USB camera enumerates).
    pub fn new(config: CameraConfig, stop: Arc<AtomicBool>) -> Self {
        ReconnectingCamera {
            config,
            camera: None,
            stop,
            report_failures: false,
            backoff: Backoff::default(),
            next_attempt: None,
            sequence: 0,
        }
    }

    /// Opens the camera now, so a wrong device or format fails at startup with a clear error;
    /// later failures reconnect.
    pub fn open(config: CameraConfig, stop: Arc<AtomicBool>) -> Result<Self> {
        let camera = Camera::open(&config)?;
        let mut this = ReconnectingCamera::new(config, stop);
        this.camera = Some(camera);
        Ok(this)
    }

    /// Return an error for each failed reconnection attempt instead of retrying silently.
    pub fn report_failures(mut self, report: bool) -> Self {
        self.report_failures = report;
        self
    }

    /// Sets the backoff (tests use short ones).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The camera, while connected.
    pub fn camera(&self) -> Option<&Camera> {
        self.camera.as_ref()
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Sleeps until `due` in short slices; false if `stop` was set meanwhile.
    fn wait_until(&self, due: Instant) -> bool {
        loop {
            if self.stopped() {
                return false;
            }
            let now = Instant::now();
            if now >= due {
                return true;
            }
            std::thread::sleep((due - now).min(Duration::from_millis(50)));
        }
    }

    fn schedule_retry(&mut self) -> Duration {
        let delay = self.backoff.next_delay();
        self.next_attempt = Some(Instant::now() + delay);
        delay
    }
}

impl FrameSource for ReconnectingCamera {
    fn next_frame(&mut self) -> Result<Option<Frame>> {
        loop {
            if self.stopped() {
                return Ok(None);
            }
            if self.camera.is_none() {
                if let Some(due) = self.next_attempt {
                    if !self.wait_until(due) {
                        return Ok(None);
                    }
                }
                match Camera::open(&self.config) {
                    Ok(camera) => {
                        tracing::info!("camera connected: {}", camera.describe());
                        self.camera = Some(camera);
                        self.next_attempt = None;
                    }
                    Err(e) => {
                        let delay = self.schedule_retry();
                        tracing::warn!("cannot open the camera: {e}; retrying in {delay:.1?}");
                        if self.report_failures {
                            return Err(e);
                        }
                        continue;
                    }
                }
            }
            let Some(camera) = self.camera.as_mut() else {
                continue;
            };
            let device = camera.path.clone();
            match guarded(&device, "capturing a frame", || Ok(camera.grab())) {
                Ok(Ok(mut frame)) => {
                    self.backoff.reset();
                    frame.sequence = self.sequence;
                    self.sequence += 1;
                    return Ok(Some(frame));
                }
                Ok(Err(Fault::Frame(e))) => return Err(e),
                Ok(Err(Fault::Device(e))) | Err(e) => {
                    self.camera = None; // Drop fences v4l's panics.
                    let delay = self.schedule_retry();
                    tracing::warn!("camera failed: {e}; reconnecting in {delay:.1?}");
                    if self.report_failures {
                        return Err(e);
                    }
                }
            }
        }
    }

    fn describe(&self) -> String {
        match &self.camera {
            Some(camera) => format!("{} (reconnecting)", camera.describe()),
            None => format!(
                "{} (disconnected, reconnecting)",
                self.config.device.display()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use PixelFormat::*;

    #[test]
    fn format_choice_follows_preference_and_size() {
        let webcam = [Mjpeg, Yuyv];
        assert_eq!(choose_format(&webcam, None, 640, 480), Some(Yuyv));
        assert_eq!(choose_format(&webcam, None, 1280, 720), Some(Mjpeg));
        assert_eq!(choose_format(&webcam, Some(Yuyv), 1920, 1080), Some(Yuyv));
        // A preferred format the camera lacks falls back to the list.
        assert_eq!(choose_format(&webcam, Some(Nv12), 320, 240), Some(Yuyv));
        assert_eq!(choose_format(&[Grey, Nv12], None, 1280, 720), Some(Nv12));
        assert_eq!(choose_format(&[Grey, Rgb565], None, 320, 240), Some(Rgb565));
        assert_eq!(choose_format(&[], Some(Yuyv), 640, 480), None);
        // Every convertible format is somewhere in both orders, once.
        for (w, h) in [(320, 240), (1920, 1080)] {
            let order = preference_order(w, h);
            for f in crate::capture::convert::ALL_FORMATS {
                assert_eq!(
                    order.iter().filter(|g| **g == f).count(),
                    1,
                    "{f} at {w}x{h}"
                );
            }
        }
    }

    #[test]
    fn missing_device_error_says_where_to_look() {
        let config = CameraConfig {
            device: PathBuf::from("/dev/video-hgpose-missing"),
            ..CameraConfig::default()
        };
        let err = Camera::open(&config).err().unwrap().to_string();
        assert!(
            err.contains("/dev/video-hgpose-missing")
                && err.contains("ls /dev/video*")
                && err.contains("hgpose doctor"),
            "{err}"
        );
        let err = list_formats(&config.device).unwrap_err().to_string();
        assert!(err.contains("/dev/video-hgpose-missing"), "{err}");
    }

    #[test]
    fn a_regular_file_is_not_a_camera() {
        let file = crate::scratch::file("not-a-camera");
        let path = file.path().to_path_buf();
        std::fs::write(&path, b"plain file").unwrap();
        let config = CameraConfig {
            device: path.clone(),
            ..CameraConfig::default()
        };
        let err = Camera::open(&config).err().unwrap().to_string();
        assert!(err.contains("not a V4L2 video device"), "{err}");
    }

    #[test]
    fn config_parses_with_defaults_and_rejects_typos() {
        let c: CameraConfig = toml::from_str(
            "device = \"/dev/video2\"\nwidth = 1280\nheight = 720\nformat = \"MJPG\"",
        )
        .unwrap();
        assert_eq!(c.device, PathBuf::from("/dev/video2"));
        assert_eq!((c.width, c.height, c.format), (1280, 720, Some(Mjpeg)));
        assert_eq!((c.fps, c.buffers), (None, 4));
        assert!(toml::from_str::<CameraConfig>("widht = 5").is_err());
        assert!(toml::from_str::<CameraConfig>("format = \"h264\"").is_err());
        let zero = CameraConfig {
            width: 0,
            ..CameraConfig::default()
        };
        let err = Camera::open(&zero).err().unwrap().to_string();
        assert!(err.contains("0x480"), "{err}");
        let round: CameraConfig = toml::from_str(&toml::to_string(&c).unwrap()).unwrap();
        assert_eq!(round, c);
    }

    #[test]
    fn backoff_doubles_to_the_cap_and_resets() {
        let mut b = Backoff::default();
        let ms: Vec<u128> = (0..7).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(ms, [500, 1000, 2000, 4000, 8000, 10000, 10000]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(500));
    }

    #[test]
    fn reconnecting_camera_reports_or_stops_promptly() {
        let config = CameraConfig {
            device: PathBuf::from("/dev/video-hgpose-missing"),
            ..CameraConfig::default()
        };
        let stop = Arc::new(AtomicBool::new(false));
        let fast = Backoff::new(Duration::from_millis(10), Duration::from_millis(40));
        let mut cam = ReconnectingCamera::new(config.clone(), stop.clone())
            .report_failures(true)
            .with_backoff(fast);
        for _ in 0..3 {
            let err = cam.next_frame().unwrap_err().to_string();
            assert!(err.contains("/dev/video-hgpose-missing"), "{err}");
        }
        assert!(cam.describe().contains("disconnected"));
        assert!(ReconnectingCamera::open(config.clone(), stop.clone()).is_err());

        // Silent mode blocks retrying until stop is set, then ends promptly.
        let mut cam = ReconnectingCamera::new(config, stop.clone());
        let setter = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(300));
                stop.store(true, Ordering::Relaxed);
            })
        };
        let start = Instant::now();
        assert!(cam.next_frame().unwrap().is_none());
        let waited = start.elapsed();
        setter.join().unwrap();
        assert!(
            waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
            "{waited:?}"
        );
    }

    #[test]
    fn frame_timeout_is_at_least_five_seconds() {
        assert_eq!(frame_timeout(None), Duration::from_secs(5));
        assert_eq!(frame_timeout(Some(30.0)), Duration::from_secs(5));
        assert_eq!(frame_timeout(Some(0.1)), Duration::from_secs(30));
    }
}
