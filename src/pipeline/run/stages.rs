//! The capture and inference stages, and how every stage hands values on and takes them in.

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};
use tracing::info;

use super::log::RateLimitedLog;
use super::{Captured, Counters, Inferred};
use crate::capture::trigger::{TriggerEvent, TriggerLine};
use crate::capture::FrameSource;
use crate::outputs::FrameRecord;
use crate::pipeline::latest::{LatestReceiver, LatestSender, RecvError};
use crate::pipeline::Estimator;
use crate::pose::smoothing::PoseSmoother;
use crate::pose::tracking::PersonTracker;

/// Hands `value` on: a live source replaces what the next stage has not taken yet (counted as
/// skipped); a recorded one waits for the slot to empty.
pub(super) fn send<T>(
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

pub(super) fn capture_loop(
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
pub(super) fn inference_loop(
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
    while let Some(captured) = receive(&rx, stop, counters) {
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

/// The next value from the stage before, waiting for it; `None` once that stage closed its end
/// or, while nothing arrives, `stop` is set. How full the slot was is noted on every look.
pub(super) fn receive<T>(
    rx: &LatestReceiver<T>,
    stop: &AtomicBool,
    counters: &Counters,
) -> Option<T> {
    loop {
        counters.note_waiting(rx.pending());
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(value) => return Some(value),
            Err(RecvError::Timeout) if stop.load(Ordering::SeqCst) => return None,
            Err(RecvError::Timeout) => continue,
            Err(RecvError::Closed) => return None,
        }
    }
}
