//! Pixel formats: which one hgpose asks a camera for, negotiating it with the driver, and what
//! each camera offers (for `hgpose doctor`).

use std::path::{Path, PathBuf};

use v4l::framesize::FrameSizeEnum;
use v4l::video::capture::Parameters;
use v4l::video::Capture;
use v4l::{Device, Format, FourCC};

use super::device::{check_capture, guarded, io_reason, open_device};
use super::CameraConfig;
use crate::capture::convert::PixelFormat;
use crate::error::{Error, Result};

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

/// What the driver agreed to.
pub(super) struct Negotiated {
    pub format: PixelFormat,
    pub width: u32,
    pub height: u32,
    /// Bytes per row of the first plane.
    pub stride: usize,
    pub fps: Option<f64>,
}

/// Chooses a format the camera offers (see [`choose_format`]), asks for it at the configured
/// size and rate, and returns what the driver gave; errors name the device and what it offers.
pub(super) fn negotiate(dev: &Device, config: &CameraConfig) -> Result<Negotiated> {
    let path = config.device.as_path();
    let dev_err = |reason: String| Error::device(path.display(), reason);
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
    let Some(chosen) = choose_format(&offered, config.format, config.width, config.height) else {
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
    Ok(Negotiated {
        format,
        width: got.width,
        height: got.height,
        stride: got.stride as usize,
        fps,
    })
}

fn interval_fps(interval: v4l::Fraction) -> Option<f64> {
    (interval.numerator > 0 && interval.denominator > 0)
        .then(|| f64::from(interval.denominator) / f64::from(interval.numerator))
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

pub(super) fn fourcc_text(f: &FourCC) -> String {
    String::from_utf8_lossy(&f.repr).trim_end().to_string()
}
