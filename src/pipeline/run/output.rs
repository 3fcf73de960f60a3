//! The output stage: each estimated frame through the rules into one record, then to every sink.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tracing::info;

use super::log::RateLimitedLog;
use super::open::Outputs;
use super::stages::receive;
use super::{Counters, Inferred};
use crate::error::{Error, Result};
use crate::outputs::{Flow, FrameOutput, StreamRecord};
use crate::pipeline::latest::LatestReceiver;

fn seconds_since_epoch(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

pub(super) fn output_loop(
    mut outputs: Outputs,
    rx: LatestReceiver<Inferred>,
    started: Instant,
    max_frames: Option<u64>,
    stop: &AtomicBool,
    counters: &Counters,
) -> Result<()> {
    let mut log = RateLimitedLog::new();
    let mut fps = FpsMeter::new();
    'frames: while let Some(item) = receive(&rx, stop, counters) {
        let now = started.elapsed();
        let (w, h) = item.frame.image.dimensions();
        let commands = outputs.rules.update(Some(&item.pose), w, h, now);
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
            active_rules,
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
        let json = serde_json::to_string(&record).map_err(|e| Error::output_from("json", e))?;
        let frame = FrameOutput {
            image: &item.frame.image,
            pose: &item.pose,
            record: &record,
            json: &json,
            commands: &commands,
            fps: rate,
        };
        for sink in &mut outputs.sinks {
            match sink.publish(&frame) {
                Ok(Flow::Continue) => {}
                Ok(Flow::Stop(why)) => {
                    info!("{why}; stopping");
                    stop.store(true, Ordering::SeqCst);
                    break 'frames;
                }
                Err(e) => {
                    counters.output_errors.fetch_add(1, Ordering::Relaxed);
                    log.warn(sink.name(), &e);
                }
            }
        }
        let emitted = counters.emitted.fetch_add(1, Ordering::Relaxed) + 1;
        if max_frames.is_some_and(|m| emitted >= m) {
            stop.store(true, Ordering::SeqCst);
            break;
        }
    }
    for sink in &mut outputs.sinks {
        let _ = sink.finish();
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
