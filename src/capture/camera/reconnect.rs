//! Keeping a camera going: reopening it with exponential backoff when it disappears or fails.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::device::guarded;
use super::stream::{Camera, Fault};
use super::CameraConfig;
use crate::capture::{Frame, FrameSource};
use crate::error::Result;

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
            let device = camera.device().to_path_buf();
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
