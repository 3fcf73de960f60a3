//! Opening what a board file names, before the first frame: the frame source, the display and
//! every output, so that a bad profile fails at start with a clear message.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use tracing::info;

use crate::capture::camera::ReconnectingCamera;
use crate::capture::folder::{FileSource, FolderSource, PlaybackOptions};
use crate::capture::mjpeg::MjpegStream;
use crate::capture::video::VideoSource;
use crate::capture::FrameSource;
use crate::error::Result;
use crate::model::JointSet;
use crate::outputs::display::framebuffer::Framebuffer;
use crate::outputs::display::png::PngSnapshots;
use crate::outputs::display::spi_panel::SpiPanel;
use crate::outputs::display::Display;
use crate::outputs::gpio::{GpioOutputs, OutputLineSpec, RuleLines};
use crate::outputs::rules::RuleEngine;
use crate::outputs::stream::http::{HttpRecords, HttpServer};
use crate::outputs::stream::jsonl::JsonLinesSink;
use crate::outputs::stream::udp::UdpSink;
use crate::outputs::{Sink, ViewRenderer, ViewSink};
use crate::pipeline::board::{BoardConfig, DisplayConfig, SourceConfig};

/// Everything the output thread writes to: the rules that decide the GPIO lines, and the sinks
/// in the order each frame reaches them.
pub(super) struct Outputs {
    pub rules: RuleEngine,
    pub sinks: Vec<Box<dyn Sink>>,
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
        } => Some(Box::new(PngSnapshots::new(
            path.clone(),
            *every,
            *width,
            *height,
        ))),
    })
}

/// Opens every output the board names, in this order: JSON lines, UDP, HTTP, display, rules and
/// their GPIO lines. The sinks run in the order gpio, json, udp, http, display (the view): a
/// new output goes into this list where it should run.
pub(super) fn open_outputs(board: &BoardConfig, joints: &JointSet) -> Result<Outputs> {
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
        .map(|addr| HttpServer::start(addr, o.http_options.clone()).map(Arc::new))
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
        let lines = GpioOutputs::open(&specs, &board.gpio.chip)?;
        Some(RuleLines::new(lines, rules.idle_commands()))
    };
    let renderer_size = display
        .as_ref()
        .map(|d| d.size())
        .or(http.as_ref().map(|_| (640, 480)));

    // The order every frame reaches them: the lines first (the rules decided them before the
    // record was made), the streams next, the view (the slowest) last.
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    if let Some(gpio) = gpio {
        sinks.push(Box::new(gpio));
    }
    if let Some(json) = json {
        sinks.push(Box::new(json));
    }
    if let Some(udp) = udp {
        sinks.push(Box::new(udp));
    }
    if let Some(http) = &http {
        sinks.push(Box::new(HttpRecords(Arc::clone(http))));
    }
    if let Some((w, h)) = renderer_size {
        let renderer = ViewRenderer::new(w, h, board.model.min_confidence);
        sinks.push(Box::new(ViewSink::new(
            renderer,
            joints.clone(),
            display,
            http,
        )));
    }
    Ok(Outputs { rules, sinks })
}
