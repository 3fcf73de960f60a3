//! The pixel formats hgpose converts: their fourcc codes, config names and aliases.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The pixel formats hgpose can convert, named by their V4L2 fourcc.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum PixelFormat {
    /// Packed 4:2:2, Y0 U Y1 V (`YUYV`): what almost every USB webcam offers uncompressed.
    Yuyv,
    /// Packed 4:2:2, U Y0 V Y1 (`UYVY`).
    Uyvy,
    /// 4:2:0, a Y plane then one plane of interleaved U,V (`NV12`).
    Nv12,
    /// 4:2:0, a Y plane then one plane of interleaved V,U (`NV21`).
    Nv21,
    /// 4:2:0, three planes Y, U, V (`YU12`, also called I420).
    Yuv420,
    /// 8-bit R, G, B (`RGB3`).
    Rgb24,
    /// 8-bit B, G, R (`BGR3`).
    Bgr24,
    /// 8-bit luma only (`GREY`).
    Grey,
    /// 16-bit little-endian 5:6:5 RGB (`RGBP`).
    Rgb565,
    /// Motion JPEG: every frame a complete JPEG (`MJPG`, also `JPEG`).
    Mjpeg,
}

/// Every format, in the order `hgpose doctor` and error messages list them.
pub const ALL_FORMATS: [PixelFormat; 10] = [
    PixelFormat::Yuyv,
    PixelFormat::Uyvy,
    PixelFormat::Nv12,
    PixelFormat::Nv21,
    PixelFormat::Yuv420,
    PixelFormat::Rgb24,
    PixelFormat::Bgr24,
    PixelFormat::Grey,
    PixelFormat::Rgb565,
    PixelFormat::Mjpeg,
];

impl PixelFormat {
    /// The V4L2 fourcc code.
    pub fn fourcc(self) -> [u8; 4] {
        match self {
            PixelFormat::Yuyv => *b"YUYV",
            PixelFormat::Uyvy => *b"UYVY",
            PixelFormat::Nv12 => *b"NV12",
            PixelFormat::Nv21 => *b"NV21",
            PixelFormat::Yuv420 => *b"YU12",
            PixelFormat::Rgb24 => *b"RGB3",
            PixelFormat::Bgr24 => *b"BGR3",
            PixelFormat::Grey => *b"GREY",
            PixelFormat::Rgb565 => *b"RGBP",
            PixelFormat::Mjpeg => *b"MJPG",
        }
    }

    /// The format for a V4L2 fourcc, `None` for one hgpose cannot convert. `JPEG` is MJPEG too
    /// (some drivers use it) and `YUY2` is YUYV (the Windows/ffmpeg name).
    pub fn from_fourcc(code: &[u8; 4]) -> Option<PixelFormat> {
        match code {
            b"JPEG" => Some(PixelFormat::Mjpeg),
            b"YUY2" => Some(PixelFormat::Yuyv),
            b"I420" => Some(PixelFormat::Yuv420),
            _ => ALL_FORMATS.into_iter().find(|f| &f.fourcc() == code),
        }
    }

    /// The short name used in config files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            PixelFormat::Yuyv => "yuyv",
            PixelFormat::Uyvy => "uyvy",
            PixelFormat::Nv12 => "nv12",
            PixelFormat::Nv21 => "nv21",
            PixelFormat::Yuv420 => "yu12",
            PixelFormat::Rgb24 => "rgb24",
            PixelFormat::Bgr24 => "bgr24",
            PixelFormat::Grey => "grey",
            PixelFormat::Rgb565 => "rgb565",
            PixelFormat::Mjpeg => "mjpeg",
        }
    }

    /// Parses a config name, case-insensitively; the fourcc and common aliases work too
    /// ("YUY2", "i420", "gray", "jpeg"...).
    pub fn from_name(name: &str) -> Option<PixelFormat> {
        let lower = name.trim().to_ascii_lowercase();
        let by_alias = match lower.as_str() {
            "yuyv" | "yuy2" | "yuyv422" => Some(PixelFormat::Yuyv),
            "uyvy" | "uyvy422" => Some(PixelFormat::Uyvy),
            "nv12" => Some(PixelFormat::Nv12),
            "nv21" => Some(PixelFormat::Nv21),
            "yu12" | "i420" | "yuv420" | "yuv420p" => Some(PixelFormat::Yuv420),
            "rgb24" | "rgb3" | "rgb" => Some(PixelFormat::Rgb24),
            "bgr24" | "bgr3" | "bgr" => Some(PixelFormat::Bgr24),
            "grey" | "gray" | "y8" => Some(PixelFormat::Grey),
            "rgb565" | "rgbp" => Some(PixelFormat::Rgb565),
            "mjpeg" | "mjpg" | "jpeg" | "jpg" => Some(PixelFormat::Mjpeg),
            _ => None,
        };
        by_alias.or_else(|| {
            let bytes: [u8; 4] = name.trim().as_bytes().try_into().ok()?;
            PixelFormat::from_fourcc(&bytes)
        })
    }

    /// The fourcc as text, for logs.
    pub fn fourcc_str(self) -> String {
        String::from_utf8_lossy(&self.fourcc()).into_owned()
    }

    /// True for formats whose frames are compressed (their size is not width x height based).
    pub fn is_compressed(self) -> bool {
        self == PixelFormat::Mjpeg
    }

    pub(super) fn frame_name(self) -> String {
        format!("{} frame", self.fourcc_str())
    }
}

impl std::fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.fourcc_str())
    }
}

impl std::str::FromStr for PixelFormat {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        PixelFormat::from_name(s).ok_or_else(|| Error::InvalidArgument(unknown_format(s)))
    }
}

impl TryFrom<String> for PixelFormat {
    type Error = String;

    fn try_from(s: String) -> std::result::Result<Self, String> {
        PixelFormat::from_name(&s).ok_or_else(|| unknown_format(&s))
    }
}

impl From<PixelFormat> for String {
    fn from(f: PixelFormat) -> String {
        f.name().to_string()
    }
}

fn unknown_format(s: &str) -> String {
    let names: Vec<&str> = ALL_FORMATS.iter().map(|f| f.name()).collect();
    format!(
        "unknown pixel format '{s}': use one of {}",
        names.join(", ")
    )
}
