//! The running node's outputs behind one trait: the output thread of `hgpose run` builds each
//! frame's [`FrameOutput`] once and hands it to every [`Sink`] in turn.

use image::RgbImage;

use crate::error::Result;
use crate::outputs::rules::LineCommand;
use crate::outputs::StreamRecord;
use crate::pose::Pose;

/// One frame as every sink sees it, built once per frame by the output thread.
#[derive(Debug, Clone, Copy)]
pub struct FrameOutput<'a> {
    /// The captured frame.
    pub image: &'a RgbImage,
    /// The pose found in it, in frame pixels.
    pub pose: &'a Pose,
    /// The frame's record: keypoints, timing, latency, active rules, trigger.
    pub record: &'a StreamRecord,
    /// `record` as one compact JSON document (no line breaks), serialized once for every sink.
    pub json: &'a str,
    /// The GPIO line changes the rules decided on this frame; empty when nothing changed.
    pub commands: &'a [LineCommand],
    /// Frames per second over the last second or so, for the status line.
    pub fps: f32,
}

/// What the output loop does after a sink took a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flow {
    /// Go on: the next sink gets the frame.
    Continue,
    /// The consumer is gone (a JSON reader closed its pipe), which ends the run normally: the
    /// loop logs "`why`; stopping", the later sinks do not get this frame, and no error counts.
    Stop(String),
}

/// An output of the running node: a stream, a display, GPIO lines.
///
/// Each frame, the output loop calls [`publish`](Sink::publish) on every sink in the order the
/// sinks were opened; when the run ends (source ended, limit reached, signal, a sink's
/// [`Flow::Stop`]) it calls [`finish`](Sink::finish) on each, in the same order, and then drops
/// them. A failing sink never stops the node: its error is counted in the run's
/// `output_errors` and logged as "`name`: error", at most once per 5 s for all sinks together
/// (the rest are counted as "similar errors not shown").
///
/// **Adding an output**: implement `Sink` for it beside its code in `outputs` (as
/// [`JsonLinesSink`](crate::outputs::stream::jsonl::JsonLinesSink),
/// [`UdpSink`](crate::outputs::stream::udp::UdpSink),
/// [`HttpRecords`](crate::outputs::stream::http::HttpRecords),
/// [`ViewSink`](crate::outputs::ViewSink) and [`RuleLines`](crate::outputs::gpio::RuleLines)
/// do), open it from the board file in `pipeline::run`'s `open_outputs` (so a bad setting fails
/// before the first frame), and push it onto the list there at the place where it should run.
pub trait Sink: Send {
    /// What its warnings start with: `json`, `udp`, `http`, `display`, `gpio`.
    fn name(&self) -> &str;

    /// Hands one frame over. `Err`: counted and warned, and the next sink still gets the frame.
    fn publish(&mut self, frame: &FrameOutput<'_>) -> Result<Flow>;

    /// Ends the run's output (GPIO lines back to idle, say). Its error is not reported: the run
    /// is over. Does nothing unless a sink needs it.
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}
