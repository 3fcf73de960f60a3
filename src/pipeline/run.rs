//! `hgpose run`: the sensor node. Capture, inference and outputs each run on their own thread,
//! joined by one-slot channels ([`super::latest`]) so a slow stage never builds a queue: with a
//! live camera the newest frame wins; with recorded sources (files, videos) the reader waits, so
//! every frame is processed.
//!
//! Everything that can be wrong with the board (model, devices, addresses) is opened before the
//! first frame, so a bad profile fails at start with a clear message; once running, a bad frame
//! or a failing output is logged and counted, and the node keeps going.

use image::RgbImage;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tracing::{info, warn};

use super::board::{BoardConfig, DisplayConfig, SourceConfig};
use super::latest::{latest, LatestReceiver, LatestSender, RecvError};
use super::{Estimator, EstimatorOptions};
use crate::capture::camera::ReconnectingCamera;
use crate::capture::folder::{FileSource, FolderSource, PlaybackOptions};
use crate::capture::mjpeg::MjpegStream;
use crate::capture::trigger::{TriggerEvent, TriggerLine};
use crate::capture::video::VideoSource;
use crate::capture::{Frame, FrameSource};
use crate::error::{Error, Result};
use crate::model::{use_inference_threads, JointSet, PoseModel};
use crate::outputs::display::framebuffer::Framebuffer;
use crate::outputs::display::spi_panel::SpiPanel;
use crate::outputs::display::Display;
use crate::outputs::gpio::{GpioOutputs, OutputLineSpec};
use crate::outputs::rules::RuleEngine;
use crate::outputs::stream::http::HttpServer;
use crate::outputs::stream::jsonl::JsonLinesSink;
use crate::outputs::stream::udp::UdpSink;
use crate::outputs::{FrameRecord, Hud, StreamRecord, TimingMs, ViewRenderer};
use crate::platform::memory::rss_kib;
use crate::pose::smoothing::PoseSmoother;
use crate::pose::tracking::PersonTracker;
use crate::pose::Pose;

/// Limits for a run (the board file says what to run; these say for how long).
#[derive(Debug, Clone, Default)]
pub struct RunLimits {
    /// Stop after this many frames have been emitted.
    pub max_frames: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Log statistics this often.
    pub stats_every: Option<Duration>,
}

/// What a run did, printed at the end (and written with `--stats`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunSummary {
    pub source: String,
    pub model: String,
    pub threads: usize,
    pub seconds: f64,
    pub frames_captured: u64,
    pub frames_emitted: u64,
    /// Frames skipped to stay current (live sources only).
    pub frames_skipped: u64,
    pub fps: f64,
    pub capture_errors: u64,
    pub inference_errors: u64,
    pub output_errors: u64,
    pub triggers: u64,
    /// Mean milliseconds per emitted frame.
    pub mean_ms: TimingMs,
    pub mean_latency_ms: f64,
    /// Most frames ever waiting between two stages (one-slot channels: at most 1 each).
    pub max_waiting: usize,
    pub rss_start_kib: u64,
    pub rss_end_kib: u64,
    pub peak_rss_kib: u64,
}

/// A captured frame on its way to inference.
struct Captured {
    frame: Frame,
    trigger: Option<TriggerEvent>,
}

/// An estimated frame on its way to the outputs.
struct Inferred {
    frame: Frame,
    trigger: Option<TriggerEvent>,
    pose: Pose,
    record: FrameRecord,
    tracking: bool,
}

/// Counters the stages share.
#[derive(Default)]
struct Counters {
    captured: AtomicU64,
    emitted: AtomicU64,
    capture_errors: AtomicU64,
    inference_errors: AtomicU64,
    output_errors: AtomicU64,
    triggers: AtomicU64,
    skipped: AtomicU64,
    max_waiting: AtomicU64,
    timing: Mutex<(TimingMs, f64)>,
}

impl Counters {
    fn note_waiting(&self, n: usize) {
        self.max_waiting.fetch_max(n as u64, Ordering::Relaxed);
    }
}

/// Opens the frame source a board names.
pub fn open_source(config: &SourceConfig, stop: Arc<AtomicBool>) -> Result<Box<dyn FrameSource>> {
    Ok(match config {
        SourceConfig::Camera(camera) => Box::new(ReconnectingCamera::open(camera.clone(), stop)?),
        SourceConfig::Files { path, looping, fps } => {
            let options = PlaybackOptions {
                looping: *looping,
                fps: fps.map(f64::from),
            };
            if path.is_dir() {
                Box::new(FolderSource::open(path, options)?)
            } else {
                Box::new(FileSource::open(path, options)?)
            }
        }
        SourceConfig::Video { path, looping } => Box::new(VideoSource::open(
            path,
            PlaybackOptions {
                looping: *looping,
                fps: None,
            },
        )?),
        SourceConfig::Mjpeg { path } if path == Path::new("-") => {
            Box::new(MjpegStream::from_stdin())
        }
        SourceConfig::Mjpeg { path } => Box::new(MjpegStream::open(path)?),
    })
}

fn open_display(config: &DisplayConfig, gpio_chip: &str) -> Result<Option<Box<dyn Display>>> {
    Ok(match config {
        DisplayConfig::None => None,
        DisplayConfig::Framebuffer { device } => Some(Box::new(Framebuffer::open(device)?)),
        DisplayConfig::Spi(panel) => Some(Box::new(SpiPanel::open(panel, gpio_chip)?)),
        DisplayConfig::Drm { device, connector } => {
            let drm = crate::outputs::display::drm_dumb::DrmDisplay::open;
            Some(Box::new(drm(device, connector.as_deref())?))
        }
        DisplayConfig::Png {
            path,
            every,
            width,
            height,
        } => Some(Box::new(PngSnapshots {
            path: path.clone(),
            every: *every,
            size: (*width, *height),
            shown: 0,
        })),
    })
}

/// The PNG "display": the latest view written to a file every `every` frames.
struct PngSnapshots {
    path: PathBuf,
    every: u64,
    size: (u32, u32),
    shown: u64,
}

impl Display for PngSnapshots {
    fn size(&self) -> (u32, u32) {
        self.size
    }

    fn show(&mut self, view: &RgbImage) -> Result<()> {
        self.shown += 1;
        if !(self.shown - 1).is_multiple_of(self.every) {
            return Ok(());
        }
        // Written beside and renamed, so a reader never sees half a file.
        let partial = self.path.with_extension("partial.png");
        view.save(&partial)
            .and_then(|_| std::fs::rename(&partial, &self.path).map_err(Into::into))
            .map_err(|e| Error::Output {
                path: self.path.clone(),
                reason: e.to_string(),
            })
    }

    fn describe(&self) -> String {
        format!("PNG snapshots to {}", self.path.display())
    }
}

/// Everything the output thread writes to.
struct Outputs {
    json: Option<JsonLinesSink>,
    udp: Option<UdpSink>,
    http: Option<HttpServer>,
    display: Option<Box<dyn Display>>,
    gpio: Option<GpioOutputs>,
    rules: RuleEngine,
    renderer: Option<ViewRenderer>,
    view: RgbImage,
    joints: JointSet,
}

fn seconds_since_epoch(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Runs the node until the source ends, a limit is reached or `stop` is set (SIGINT/SIGTERM).
pub fn run(
    board: &BoardConfig,
    model_path: &Path,
    limits: &RunLimits,
    stop: Arc<AtomicBool>,
) -> Result<RunSummary> {
    let rss_start = rss_kib().map_or(0, |r| r.0);
    let threads = use_inference_threads(board.model.threads);
    let m = &board.model;
    let options = EstimatorOptions {
        flip_test: m.flip_test,
        margin: m.margin,
        precision: m.precision,
    };
    let model = PoseModel::load_with_precision(model_path, m.sidecar.as_deref(), m.precision)?;
    let joints = model.contract().joints.clone();
    let mut estimator = Estimator::new(model, options)?;
    info!(
        "model {} ({} joints), {threads} inference thread(s)",
        model_path.display(),
        joints.len()
    );

    let source = open_source(&board.source, stop.clone())?;
    let source_name = source.describe();
    let live = source.is_live();
    info!("source: {source_name}{}", if live { " (live)" } else { "" });
    let trigger = board
        .trigger
        .as_ref()
        .map(|t| TriggerLine::open(t, &board.gpio.chip))
        .transpose()?;
    if let Some(t) = &trigger {
        info!("sampling on trigger edges from {}", t.describe());
    }
    let outputs = open_outputs(board, &joints)?;

    let counters = Arc::new(Counters::default());
    let (frames_tx, frames_rx) = latest::<Captured>();
    let (poses_tx, poses_rx) = latest::<Inferred>();
    let started = Instant::now();

    let capture = {
        let (stop, counters) = (stop.clone(), counters.clone());
        thread::Builder::new()
            .name("hgpose-capture".into())
            .spawn(move || capture_loop(source, trigger, frames_tx, live, &stop, &counters))
            .map_err(|e| Error::InvalidArgument(format!("cannot start a thread: {e}")))?
    };
    let inference = {
        let (stop, counters) = (stop.clone(), counters.clone());
        let tracking = board.tracking;
        let smoothing = board.smoothing;
        let min_confidence = m.min_confidence;
        thread::Builder::new()
            .name("hgpose-infer".into())
            .spawn(move || {
                let mut tracker = tracking.enabled.then(|| PersonTracker::new(tracking));
                let mut smoother = smoothing
                    .enabled
                    .then(|| PoseSmoother::new(smoothing, min_confidence));
                inference_loop(
                    &mut estimator,
                    &mut tracker,
                    &mut smoother,
                    frames_rx,
                    poses_tx,
                    live,
                    started,
                    &stop,
                    &counters,
                )
            })
            .map_err(|e| Error::InvalidArgument(format!("cannot start a thread: {e}")))?
    };
    let output = {
        let (stop, counters) = (stop.clone(), counters.clone());
        let max_frames = limits.max_frames;
        thread::Builder::new()
            .name("hgpose-output".into())
            .spawn(move || output_loop(outputs, poses_rx, started, max_frames, &stop, &counters))
            .map_err(|e| Error::InvalidArgument(format!("cannot start a thread: {e}")))?
    };

    // The main thread watches the clock and reports until the stages are done.
    let mut last_report = Instant::now();
    let mut last_emitted = 0;
    while !output.is_finished() {
        thread::sleep(Duration::from_millis(50));
        if limits.duration.is_some_and(|d| started.elapsed() >= d) {
            stop.store(true, Ordering::SeqCst);
        }
        if let Some(every) = limits.stats_every {
            if last_report.elapsed() >= every {
                let emitted = counters.emitted.load(Ordering::Relaxed);
                let fps = (emitted - last_emitted) as f64 / last_report.elapsed().as_secs_f64();
                let (rss, peak) = rss_kib().unwrap_or((0, 0));
                info!(
                    "{fps:.1} fps, {emitted} frames, {} skipped, rss {} MiB (peak {} MiB)",
                    frames_skipped(&counters),
                    rss / 1024,
                    peak / 1024
                );
                last_report = Instant::now();
                last_emitted = emitted;
            }
        }
    }
    stop.store(true, Ordering::SeqCst);
    let output_result = output.join();
    let _ = inference.join();
    // A capture blocked on a pipe that never delivers again is left behind rather than hanging
    // shutdown; everything else ends within one frame or poll interval.
    let deadline = Instant::now() + Duration::from_secs(2);
    while !capture.is_finished() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    if capture.is_finished() {
        let _ = capture.join();
    }
    if let Ok(Err(e)) = output_result {
        return Err(e);
    }

    let seconds = started.elapsed().as_secs_f64();
    let emitted = counters.emitted.load(Ordering::Relaxed);
    let (timing, latency) = *counters.timing.lock().unwrap_or_else(|p| p.into_inner());
    let per = |v: f64| if emitted > 0 { v / emitted as f64 } else { 0.0 };
    let (rss_end, peak) = rss_kib().unwrap_or((0, 0));
    Ok(RunSummary {
        source: source_name,
        model: model_path.display().to_string(),
        threads,
        seconds,
        frames_captured: counters.captured.load(Ordering::Relaxed),
        frames_emitted: emitted,
        frames_skipped: frames_skipped(&counters),
        fps: emitted as f64 / seconds.max(1e-9),
        capture_errors: counters.capture_errors.load(Ordering::Relaxed),
        inference_errors: counters.inference_errors.load(Ordering::Relaxed),
        output_errors: counters.output_errors.load(Ordering::Relaxed),
        triggers: counters.triggers.load(Ordering::Relaxed),
        mean_ms: TimingMs {
            preprocess: per(timing.preprocess),
            inference: per(timing.inference),
            decode: per(timing.decode),
            total: per(timing.total),
        },
        mean_latency_ms: per(latency),
        max_waiting: counters.max_waiting.load(Ordering::Relaxed) as usize,
        rss_start_kib: rss_start,
        rss_end_kib: rss_end,
        peak_rss_kib: peak,
    })
}

fn frames_skipped(c: &Counters) -> u64 {
    c.skipped.load(Ordering::Relaxed)
}

fn open_outputs(board: &BoardConfig, joints: &JointSet) -> Result<Outputs> {
    let o = &board.outputs;
    let json = match o.json.as_str() {
        "none" | "" => None,
        "stdout" | "-" => Some(JsonLinesSink::stdout()),
        path => Some(JsonLinesSink::file(Path::new(path), true)?),
    };
    let udp = o.udp.as_deref().map(UdpSink::connect).transpose()?;
    let http = o
        .http
        .as_deref()
        .map(|addr| HttpServer::start(addr, o.http_options.clone()))
        .transpose()?;
    let display = open_display(&board.display, &board.gpio.chip)?;
    if let Some(d) = &display {
        info!("display: {}", d.describe());
    }
    let joint_names = &joints.names;
    let rules = RuleEngine::new(board.rules.clone(), joint_names)
        .map_err(|e| e.into_error("board rules"))?;
    let gpio = if board.rules.is_empty() {
        None
    } else {
        let specs: Vec<OutputLineSpec> = rules
            .idle_commands()
            .into_iter()
            .map(|c| OutputLineSpec {
                chip: c.chip.unwrap_or_else(|| board.gpio.chip.clone()),
                line: c.line,
                initial_level: c.level,
            })
            .collect();
        Some(GpioOutputs::open(&specs, &board.gpio.chip)?)
    };
    let renderer_size = display
        .as_ref()
        .map(|d| d.size())
        .or(http.as_ref().map(|_| (640, 480)));
    Ok(Outputs {
        json,
        udp,
        http,
        display,
        gpio,
        rules,
        renderer: renderer_size.map(|(w, h)| ViewRenderer::new(w, h, board.model.min_confidence)),
        view: RgbImage::new(1, 1),
        joints: joints.clone(),
    })
}

/// Logs an error at most once per `every` (a camera that fails at 30 fps must not flood the log).
struct RateLimitedLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimitedLog {
    fn new() -> Self {
        RateLimitedLog {
            last: None,
            suppressed: 0,
        }
    }

    fn warn(&mut self, what: &str, err: &Error) {
        if self
            .last
            .is_some_and(|t| t.elapsed() < Duration::from_secs(5))
        {
            self.suppressed += 1;
            return;
        }
        if self.suppressed > 0 {
            warn!(
                "{what}: {err} ({} similar errors not shown)",
                self.suppressed
            );
        } else {
            warn!("{what}: {err}");
        }
        self.last = Some(Instant::now());
        self.suppressed = 0;
    }
}

/// Hands `value` on: a live source replaces what the next stage has not taken yet (counted as
/// skipped); a recorded one waits for the slot to empty.
fn send<T>(
    tx: &LatestSender<T>,
    value: T,
    live: bool,
    stop: &AtomicBool,
    counters: &Counters,
) -> bool {
    if !live {
        return tx.send_when_empty(value, stop);
    }
    let before = tx.stats().dropped;
    let sent = tx.send(value);
    let skipped = tx.stats().dropped - before;
    counters.skipped.fetch_add(skipped, Ordering::Relaxed);
    sent
}

fn capture_loop(
    mut source: Box<dyn FrameSource>,
    mut trigger: Option<TriggerLine>,
    tx: LatestSender<Captured>,
    live: bool,
    stop: &AtomicBool,
    counters: &Counters,
) {
    let mut log = RateLimitedLog::new();
    let mut pending_trigger: Option<TriggerEvent> = None;
    while !stop.load(Ordering::SeqCst) {
        if let Some(line) = trigger.as_mut() {
            // A live camera keeps streaming between triggers (so the frame that answers one is
            // fresh); a recorded source is read only when asked.
            if pending_trigger.is_none() {
                match line.wait(if live {
                    Duration::ZERO
                } else {
                    Duration::from_millis(100)
                }) {
                    Ok(Some(event)) => {
                        counters.triggers.fetch_add(1, Ordering::Relaxed);
                        pending_trigger = Some(event);
                    }
                    Ok(None) if !live => continue,
                    Ok(None) => {}
                    Err(e) => {
                        log.warn("trigger", &e);
                        thread::sleep(Duration::from_millis(100));
                        continue;
                    }
                }
            }
        }
        let frame = match source.next_frame() {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                info!("source ended: {}", source.describe());
                break;
            }
            Err(e) => {
                counters.capture_errors.fetch_add(1, Ordering::Relaxed);
                log.warn("capture", &e);
                if live {
                    thread::sleep(Duration::from_millis(50));
                }
                continue;
            }
        };
        counters.captured.fetch_add(1, Ordering::Relaxed);
        let answer = match (&trigger, pending_trigger) {
            (None, _) => Some(None),
            (Some(_), Some(event)) if frame.captured >= event.at => {
                pending_trigger = None;
                Some(Some(event))
            }
            // Between triggers (or a frame from before the edge): keep the camera flowing only.
            (Some(_), _) => None,
        };
        if let Some(trigger) = answer {
            if !send(&tx, Captured { frame, trigger }, live, stop, counters) {
                break;
            }
        }
    }
    tx.close();
}

#[allow(clippy::too_many_arguments)]
fn inference_loop(
    estimator: &mut Estimator,
    tracker: &mut Option<PersonTracker>,
    smoother: &mut Option<PoseSmoother>,
    rx: LatestReceiver<Captured>,
    tx: LatestSender<Inferred>,
    live: bool,
    started: Instant,
    stop: &AtomicBool,
    counters: &Counters,
) {
    let mut log = RateLimitedLog::new();
    loop {
        counters.note_waiting(rx.pending());
        let captured = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(c) => c,
            Err(RecvError::Timeout) if stop.load(Ordering::SeqCst) => break,
            Err(RecvError::Timeout) => continue,
            Err(RecvError::Closed) => break,
        };
        let Captured { frame, trigger } = captured;
        let person = tracker.as_ref().and_then(|t| t.current());
        let estimate = match estimator.estimate(&frame.image, person) {
            Ok(e) => e,
            Err(e) => {
                counters.inference_errors.fetch_add(1, Ordering::Relaxed);
                log.warn("inference", &e);
                continue;
            }
        };
        let (w, h) = frame.image.dimensions();
        let mut pose = estimate.pose;
        if let Some(t) = tracker.as_mut() {
            if t.update(&pose, w, h).is_none() {
                if let Some(s) = smoother.as_mut() {
                    s.reset();
                }
            }
        }
        if let Some(s) = smoother.as_mut() {
            pose = s.smooth(&pose, frame.captured.duration_since(started).as_secs_f64());
        }
        let record = FrameRecord {
            source: frame.origin.clone(),
            width: w,
            height: h,
            crop: estimate.crop.frame_rect(),
            keypoints: pose.keypoints.clone(),
            mean_confidence: pose.mean_confidence(),
            timing_ms: estimate.timing,
        };
        let inferred = Inferred {
            frame,
            trigger,
            pose,
            record,
            tracking: person.is_some(),
        };
        if !send(&tx, inferred, live, stop, counters) {
            break;
        }
    }
    tx.close();
}

fn output_loop(
    mut outputs: Outputs,
    rx: LatestReceiver<Inferred>,
    started: Instant,
    max_frames: Option<u64>,
    stop: &AtomicBool,
    counters: &Counters,
) -> Result<()> {
    let mut log = RateLimitedLog::new();
    let mut fps = FpsMeter::new();
    loop {
        counters.note_waiting(rx.pending());
        let item = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(item) => item,
            Err(RecvError::Timeout) if stop.load(Ordering::SeqCst) => break,
            Err(RecvError::Timeout) => continue,
            Err(RecvError::Closed) => break,
        };
        let now = started.elapsed();
        let (w, h) = item.frame.image.dimensions();
        let commands = outputs.rules.update(Some(&item.pose), w, h, now);
        if let Some(gpio) = outputs.gpio.as_mut() {
            if let Err(e) = gpio.apply(&commands) {
                counters.output_errors.fetch_add(1, Ordering::Relaxed);
                log.warn("gpio", &e);
            }
        }
        let active_rules: Vec<String> = outputs
            .rules
            .active_rules()
            .into_iter()
            .map(str::to_string)
            .collect();
        let latency_ms = item.frame.captured.elapsed().as_secs_f64() * 1e3;
        let rate = fps.tick();
        let record = StreamRecord {
            sequence: item.frame.sequence,
            timestamp: seconds_since_epoch(item.frame.wall_clock),
            latency_ms,
            tracking: item.tracking,
            active_rules: active_rules.clone(),
            trigger: item.trigger,
            frame: item.record,
        };
        {
            let mut t = counters.timing.lock().unwrap_or_else(|p| p.into_inner());
            t.0.preprocess += record.frame.timing_ms.preprocess;
            t.0.inference += record.frame.timing_ms.inference;
            t.0.decode += record.frame.timing_ms.decode;
            t.0.total += record.frame.timing_ms.total;
            t.1 += latency_ms;
        }
        let json = serde_json::to_string(&record).map_err(|e| Error::Output {
            path: "json".into(),
            reason: e.to_string(),
        })?;
        if let Some(sink) = outputs.json.as_mut() {
            if let Err(e) = sink.write_record(&json) {
                if sink.is_broken_pipe() {
                    info!("JSON reader went away; stopping");
                    stop.store(true, Ordering::SeqCst);
                    break;
                }
                counters.output_errors.fetch_add(1, Ordering::Relaxed);
                log.warn("json", &e);
            }
        }
        if let Some(udp) = outputs.udp.as_mut() {
            if let Err(e) = udp.send(&json) {
                counters.output_errors.fetch_add(1, Ordering::Relaxed);
                log.warn("udp", &e);
            }
        }
        if let Some(http) = &outputs.http {
            http.publish(&json);
        }
        if let Some(renderer) = outputs.renderer.as_mut() {
            let hud = Hud {
                fps: rate,
                inference_ms: record.frame.timing_ms.inference as f32,
                active_rules,
            };
            let shown = renderer
                .render(
                    &item.frame.image,
                    Some(&item.pose),
                    &outputs.joints,
                    &hud,
                    &mut outputs.view,
                )
                .and_then(|_| match outputs.display.as_mut() {
                    Some(d) => d.show(&outputs.view),
                    None => Ok(()),
                });
            if let Err(e) = shown {
                counters.output_errors.fetch_add(1, Ordering::Relaxed);
                log.warn("display", &e);
            }
            if let Some(http) = &outputs.http {
                http.publish_frame(&outputs.view);
            }
        }
        let emitted = counters.emitted.fetch_add(1, Ordering::Relaxed) + 1;
        if max_frames.is_some_and(|m| emitted >= m) {
            stop.store(true, Ordering::SeqCst);
            break;
        }
    }
    // Leave the lines in their idle state, not wherever the last rule left them.
    if let Some(gpio) = outputs.gpio.as_mut() {
        let _ = gpio.apply(&outputs.rules.idle_commands());
    }
    Ok(())
}

/// Frames per second over the last second or so, for the status line.
struct FpsMeter {
    window_start: Instant,
    frames: u32,
    rate: f32,
}

impl FpsMeter {
    fn new() -> Self {
        FpsMeter {
            window_start: Instant::now(),
            frames: 0,
            rate: 0.0,
        }
    }

    fn tick(&mut self) -> f32 {
        self.frames += 1;
        let elapsed = self.window_start.elapsed().as_secs_f32();
        if elapsed >= 1.0 {
            self.rate = self.frames as f32 / elapsed;
            self.frames = 0;
            self.window_start = Instant::now();
        }
        self.rate
    }
}
