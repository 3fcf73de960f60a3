//! `hgpose run`: the sensor node. Capture, inference and outputs each run on their own thread,
//! joined by one-slot channels ([`super::latest`]) so a slow stage never builds a queue: with a
//! live camera the newest frame wins; with recorded sources (files, videos) the reader waits, so
//! every frame is processed.
//!
//! Everything that can be wrong with the board (model, devices, addresses) is opened before the
//! first frame (`open`), so a bad profile fails at start with a clear message; once running, a
//! bad frame or a failing output is logged and counted, and the node keeps going. The stages are
//! `stages` (capture, inference) and `output`, which hands every frame to the board's
//! outputs, each a [`Sink`](crate::outputs::Sink).

mod log;
mod open;
mod output;
mod stages;

use serde::Serialize;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};
use tracing::info;

use super::board::BoardConfig;
use super::latest::latest;
use super::{Estimator, EstimatorOptions};
use crate::capture::trigger::{TriggerEvent, TriggerLine};
use crate::capture::Frame;
use crate::error::{Error, Result};
use crate::model::{use_inference_threads, PoseModel};
use crate::outputs::{FrameRecord, TimingMs};
use crate::platform::memory::rss_kib;
use crate::pose::smoothing::PoseSmoother;
use crate::pose::tracking::PersonTracker;
use crate::pose::Pose;

use open::open_outputs;
pub use open::open_source;
use output::output_loop;
use stages::{capture_loop, inference_loop};

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
            .map_err(|e| Error::invalid_argument_from("cannot start a thread", e))?
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
            .map_err(|e| Error::invalid_argument_from("cannot start a thread", e))?
    };
    let output = {
        let (stop, counters) = (stop.clone(), counters.clone());
        let max_frames = limits.max_frames;
        thread::Builder::new()
            .name("hgpose-output".into())
            .spawn(move || output_loop(outputs, poses_rx, started, max_frames, &stop, &counters))
            .map_err(|e| Error::invalid_argument_from("cannot start a thread", e))?
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

#[cfg(test)]
mod tests;
