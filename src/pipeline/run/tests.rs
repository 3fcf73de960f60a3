use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use image::RgbImage;

use super::open::Outputs;
use super::output::output_loop;
use super::{Counters, Inferred};
use crate::capture::Frame;
use crate::error::{Error, Result};
use crate::outputs::rules::RuleEngine;
use crate::outputs::{Flow, FrameOutput, FrameRecord, Sink, TimingMs};
use crate::pipeline::latest::latest;
use crate::pose::Pose;
use crate::preprocess::Rect;

/// What the sinks saw, in order: `name:sequence` per frame, `name:finish` at the end.
type Seen = Arc<Mutex<Vec<String>>>;

/// Records every call; fails on the frames in `fail`, stops on `stop_at`.
struct Probe {
    name: &'static str,
    seen: Seen,
    fail: Vec<u64>,
    stop_at: Option<u64>,
}

impl Probe {
    fn boxed(name: &'static str, seen: &Seen) -> Box<Probe> {
        Box::new(Probe {
            name,
            seen: Arc::clone(seen),
            fail: Vec::new(),
            stop_at: None,
        })
    }
}

impl Sink for Probe {
    fn name(&self) -> &str {
        self.name
    }

    fn publish(&mut self, frame: &FrameOutput<'_>) -> Result<Flow> {
        let sequence = frame.record.sequence;
        assert!(frame.json.contains(&format!("\"sequence\":{sequence}")));
        self.seen
            .lock()
            .unwrap()
            .push(format!("{}:{sequence}", self.name));
        if self.fail.contains(&sequence) {
            return Err(Error::InvalidArgument("probe failure".into()));
        }
        if self.stop_at == Some(sequence) {
            return Ok(Flow::Stop("probe is done".into()));
        }
        Ok(Flow::Continue)
    }

    fn finish(&mut self) -> Result<()> {
        self.seen
            .lock()
            .unwrap()
            .push(format!("{}:finish", self.name));
        Ok(())
    }
}

fn inferred(sequence: u64) -> Inferred {
    Inferred {
        frame: Frame::new(RgbImage::new(8, 6), sequence, "probe"),
        trigger: None,
        pose: Pose {
            keypoints: Vec::new(),
        },
        record: FrameRecord {
            source: "probe".into(),
            width: 8,
            height: 6,
            crop: Rect::new(0.0, 0.0, 8.0, 6.0),
            keypoints: Vec::new(),
            mean_confidence: 0.0,
            timing_ms: TimingMs::default(),
        },
        tracking: false,
    }
}

/// Runs the output loop over `frames` frames through `sinks`; returns the counters and whether
/// the loop asked the run to stop.
fn run_outputs(
    sinks: Vec<Box<dyn Sink>>,
    frames: u64,
    max_frames: Option<u64>,
) -> (Arc<Counters>, bool) {
    let (tx, rx) = latest::<Inferred>();
    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Counters::default());
    let producer = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            for sequence in 0..frames {
                if !tx.send_when_empty(inferred(sequence), &stop) {
                    break;
                }
            }
            tx.close();
        })
    };
    let outputs = Outputs {
        rules: RuleEngine::new(Vec::new(), &Vec::<String>::new()).unwrap(),
        sinks,
    };
    output_loop(outputs, rx, Instant::now(), max_frames, &stop, &counters).unwrap();
    let stopped = stop.load(Ordering::SeqCst);
    stop.store(true, Ordering::SeqCst);
    producer.join().unwrap();
    (counters, stopped)
}

fn seen(seen: &Seen) -> Vec<String> {
    seen.lock().unwrap().clone()
}

#[test]
fn every_sink_gets_every_frame_in_order_then_finishes_once() {
    let log = Seen::default();
    let sinks: Vec<Box<dyn Sink>> = vec![Probe::boxed("a", &log), Probe::boxed("b", &log)];
    let (counters, stopped) = run_outputs(sinks, 3, None);
    assert_eq!(
        seen(&log),
        ["a:0", "b:0", "a:1", "b:1", "a:2", "b:2", "a:finish", "b:finish"]
    );
    assert_eq!(counters.emitted.load(Ordering::Relaxed), 3);
    assert_eq!(counters.output_errors.load(Ordering::Relaxed), 0);
    assert!(!stopped, "the source ended; nothing asked to stop");
}

#[test]
fn a_failing_sink_is_counted_and_the_next_one_still_gets_the_frame() {
    let log = Seen::default();
    let mut failing = Probe::boxed("a", &log);
    failing.fail = vec![0, 2];
    let sinks: Vec<Box<dyn Sink>> = vec![failing, Probe::boxed("b", &log)];
    let (counters, _) = run_outputs(sinks, 3, None);
    assert_eq!(
        seen(&log),
        ["a:0", "b:0", "a:1", "b:1", "a:2", "b:2", "a:finish", "b:finish"]
    );
    assert_eq!(counters.emitted.load(Ordering::Relaxed), 3);
    assert_eq!(counters.output_errors.load(Ordering::Relaxed), 2);
}

#[test]
fn a_stop_ends_the_run_before_the_later_sinks_and_every_sink_still_finishes() {
    let log = Seen::default();
    let mut stopping = Probe::boxed("a", &log);
    stopping.stop_at = Some(1);
    let sinks: Vec<Box<dyn Sink>> = vec![stopping, Probe::boxed("b", &log)];
    let (counters, stopped) = run_outputs(sinks, 5, None);
    assert_eq!(seen(&log), ["a:0", "b:0", "a:1", "a:finish", "b:finish"]);
    assert!(stopped);
    assert_eq!(
        counters.emitted.load(Ordering::Relaxed),
        1,
        "frame 1 was not emitted"
    );
    assert_eq!(counters.output_errors.load(Ordering::Relaxed), 0);
}

#[test]
fn max_frames_stops_after_the_last_frame_reached_every_sink() {
    let log = Seen::default();
    let sinks: Vec<Box<dyn Sink>> = vec![Probe::boxed("a", &log), Probe::boxed("b", &log)];
    let (counters, stopped) = run_outputs(sinks, 5, Some(2));
    assert_eq!(
        seen(&log),
        ["a:0", "b:0", "a:1", "b:1", "a:finish", "b:finish"]
    );
    assert!(stopped);
    assert_eq!(counters.emitted.load(Ordering::Relaxed), 2);
}
