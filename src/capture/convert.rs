//! Pixel format conversions from what cameras and pipes deliver to RGB: packed and planar YUV
//! (BT.601 limited range, the webcam default), RGB/BGR, grey, RGB565 and MJPEG.
//!
//! Every function here is pure and checks the buffer against the width, height and row stride
//! before reading it: a driver that hands over a short buffer gets an error, never a panic.
//! The YUV maths is 16.16 fixed point, so a 640x480 frame converts in a few milliseconds on a
//! Cortex-A72 without floating point in the inner loop.

use image::RgbImage;
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

    fn frame_name(self) -> String {
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

/// Converts one frame to RGB.
///
/// `stride` is the number of bytes per row of the first plane (V4L2's `bytesperline`); 0 means
/// tightly packed. Chroma planes of NV12/NV21 use the same stride, YU12's use half of it, as
/// V4L2 lays them out. For MJPEG, `width`, `height` and `stride` are ignored: the JPEG's own
/// size is the truth.
pub fn convert(
    format: PixelFormat,
    data: &[u8],
    width: u32,
    height: u32,
    stride: usize,
) -> Result<RgbImage> {
    if format == PixelFormat::Mjpeg {
        return decode_mjpeg(data);
    }
    let name = format.frame_name();
    if width == 0 || height == 0 {
        return Err(Error::capture(
            name,
            format!(
                "the frame size {width}x{height} has no pixels: the driver reported a bad format"
            ),
        ));
    }
    let (w, h) = (width as usize, height as usize);
    let out_len = w
        .checked_mul(h)
        .and_then(|n| n.checked_mul(3))
        .ok_or_else(|| {
            Error::capture(&name, format!("frame size {width}x{height} is too large"))
        })?;
    let layout = Layout::new(format, w, h, stride)?;
    layout.check(data.len())?;

    let mut out = vec![0u8; out_len];
    match format {
        PixelFormat::Yuyv => packed_422(data, &mut out, &layout, [0, 1, 2, 3]),
        PixelFormat::Uyvy => packed_422(data, &mut out, &layout, [1, 0, 3, 2]),
        PixelFormat::Nv12 => semi_planar_420(data, &mut out, &layout, false),
        PixelFormat::Nv21 => semi_planar_420(data, &mut out, &layout, true),
        PixelFormat::Yuv420 => planar_420(data, &mut out, &layout),
        PixelFormat::Rgb24 => rows_map::<3>(data, &mut out, &layout, |p| [p[0], p[1], p[2]]),
        PixelFormat::Bgr24 => rows_map::<3>(data, &mut out, &layout, |p| [p[2], p[1], p[0]]),
        PixelFormat::Grey => rows_map::<1>(data, &mut out, &layout, |p| [p[0], p[0], p[0]]),
        PixelFormat::Rgb565 => rows_map::<2>(data, &mut out, &layout, |p| {
            let v = u16::from_le_bytes([p[0], p[1]]);
            let r = ((v >> 11) & 0x1f) as u8;
            let g = ((v >> 5) & 0x3f) as u8;
            let b = (v & 0x1f) as u8;
            // Replicating the top bits fills the low ones, so 0x1f maps to 255 exactly.
            [
                (r << 3) | (r >> 2),
                (g << 2) | (g >> 4),
                (b << 3) | (b >> 2),
            ]
        }),
        PixelFormat::Mjpeg => unreachable!("handled above"),
    }
    RgbImage::from_raw(width, height, out)
        .ok_or_else(|| Error::capture(name, "internal error: RGB buffer size mismatch"))
}

/// Decodes one MJPEG frame (a complete JPEG) to RGB.
pub fn decode_mjpeg(data: &[u8]) -> Result<RgbImage> {
    let corrupt = |why: String| {
        Error::capture(
            "MJPEG frame",
            format!(
                "the camera delivered a corrupt MJPEG frame ({} bytes: {why}); it is skipped. \
                 If this keeps happening check the cable and USB bandwidth, or ask for an \
                 uncompressed format (format = \"yuyv\")",
                data.len()
            ),
        )
    };
    if data.len() < 4 || data[0] != 0xFF || data[1] != 0xD8 {
        return Err(corrupt("it does not start with a JPEG SOI marker".into()));
    }
    let image = image::load_from_memory_with_format(data, image::ImageFormat::Jpeg)
        .map_err(|e| corrupt(e.to_string()))?;
    if image.width() == 0 || image.height() == 0 {
        return Err(corrupt("it has no pixels".into()));
    }
    Ok(image.into_rgb8())
}

/// Where each plane lives and how many bytes each row needs, computed and checked once.
struct Layout {
    width: usize,
    height: usize,
    /// Bytes from one row of the first plane to the next.
    stride: usize,
    /// Start and stride of the chroma plane(s), for the 4:2:0 formats.
    chroma: Option<Chroma>,
    format: PixelFormat,
}

struct Chroma {
    offset: usize,
    stride: usize,
    /// For YU12, where the V plane starts.
    second_offset: usize,
}

impl Layout {
    fn new(format: PixelFormat, width: usize, height: usize, stride: usize) -> Result<Layout> {
        let name = format.frame_name();
        let row_bytes = Self::row_bytes(format, width);
        let stride = if stride == 0 { row_bytes } else { stride };
        if stride < row_bytes {
            return Err(Error::capture(
                name,
                format!(
                    "the driver reports {stride} bytes per row, less than the {row_bytes} a \
                     {width}-pixel row needs: the format negotiation went wrong"
                ),
            ));
        }
        let too_large = || Error::capture(&name, "frame layout too large");
        let luma = stride.checked_mul(height).ok_or_else(too_large)?;
        let chroma_rows = height.div_ceil(2);
        let chroma = match format {
            PixelFormat::Nv12 | PixelFormat::Nv21 => Some(Chroma {
                offset: luma,
                stride,
                second_offset: 0,
            }),
            PixelFormat::Yuv420 => {
                let cstride = stride.div_ceil(2).max(width.div_ceil(2));
                let plane = cstride.checked_mul(chroma_rows).ok_or_else(too_large)?;
                Some(Chroma {
                    offset: luma,
                    stride: cstride,
                    second_offset: luma.checked_add(plane).ok_or_else(too_large)?,
                })
            }
            _ => None,
        };
        Ok(Layout {
            width,
            height,
            stride,
            chroma,
            format,
        })
    }

    /// Bytes one row of the first plane needs.
    fn row_bytes(format: PixelFormat, width: usize) -> usize {
        match format {
            PixelFormat::Yuyv | PixelFormat::Uyvy => width.div_ceil(2) * 4,
            PixelFormat::Rgb24 | PixelFormat::Bgr24 => width * 3,
            PixelFormat::Rgb565 => width * 2,
            _ => width,
        }
    }

    /// The smallest buffer that holds every byte the conversion reads.
    fn min_len(&self) -> usize {
        let row_bytes = Self::row_bytes(self.format, self.width);
        let plane_end = |offset: usize, stride: usize, rows: usize, row: usize| {
            offset
                .saturating_add(stride.saturating_mul(rows - 1))
                .saturating_add(row)
        };
        let half_w = self.width.div_ceil(2);
        let half_h = self.height.div_ceil(2);
        match &self.chroma {
            None => plane_end(0, self.stride, self.height, row_bytes),
            Some(c) if self.format == PixelFormat::Yuv420 => {
                plane_end(c.second_offset, c.stride, half_h, half_w)
            }
            Some(c) => plane_end(c.offset, c.stride, half_h, 2 * half_w),
        }
    }

    fn check(&self, len: usize) -> Result<()> {
        let need = self.min_len();
        if len < need {
            return Err(Error::capture(
                self.format.frame_name(),
                format!(
                    "the driver delivered a short buffer: {}x{} {} with {} bytes per row needs \
                     {need} bytes, got {len}; the frame is skipped",
                    self.width,
                    self.height,
                    self.format.fourcc_str(),
                    self.stride
                ),
            ));
        }
        Ok(())
    }
}

// BT.601 limited range ("studio swing") to full-range RGB, 16.16 fixed point:
// R = 1.164(Y-16) + 1.596(V-128), G = 1.164(Y-16) - 0.392(U-128) - 0.813(V-128),
// B = 1.164(Y-16) + 2.017(U-128), each coefficient rounded to the nearest 1/65536.
const Y_GAIN: i32 = 76309;
const R_V: i32 = 104597;
const G_U: i32 = 25675;
const G_V: i32 = 53279;
const B_U: i32 = 132201;
const HALF: i32 = 1 << 15;

/// The chroma terms shared by the pixels of one 2x1 or 2x2 block.
#[derive(Clone, Copy)]
struct ChromaTerms {
    r: i32,
    g: i32,
    b: i32,
}

#[inline(always)]
fn chroma_terms(u: u8, v: u8) -> ChromaTerms {
    let d = u as i32 - 128;
    let e = v as i32 - 128;
    ChromaTerms {
        r: R_V * e + HALF,
        g: HALF - G_U * d - G_V * e,
        b: B_U * d + HALF,
    }
}

#[inline(always)]
fn yuv_pixel(y: u8, c: ChromaTerms, out: &mut [u8]) {
    let l = (y as i32 - 16) * Y_GAIN;
    out[0] = ((l + c.r) >> 16).clamp(0, 255) as u8;
    out[1] = ((l + c.g) >> 16).clamp(0, 255) as u8;
    out[2] = ((l + c.b) >> 16).clamp(0, 255) as u8;
}

/// YUYV/UYVY: `order` gives the byte positions of Y0, U, Y1, V within each 4-byte pair.
fn packed_422(data: &[u8], out: &mut [u8], layout: &Layout, order: [usize; 4]) {
    let [y0, u, y1, v] = order;
    let w = layout.width;
    for (row, dst) in out.chunks_exact_mut(w * 3).enumerate() {
        let src = &data[row * layout.stride..][..w.div_ceil(2) * 4];
        let mut pairs = dst.chunks_exact_mut(6);
        for (px, s) in (&mut pairs).zip(src.chunks_exact(4)) {
            let c = chroma_terms(s[u], s[v]);
            yuv_pixel(s[y0], c, &mut px[..3]);
            yuv_pixel(s[y1], c, &mut px[3..]);
        }
        let rest = pairs.into_remainder();
        if !rest.is_empty() {
            // Odd width: the last pair's first pixel only.
            let s = &src[src.len() - 4..];
            yuv_pixel(s[y0], chroma_terms(s[u], s[v]), rest);
        }
    }
}

/// NV12 (U first) and NV21 (V first).
fn semi_planar_420(data: &[u8], out: &mut [u8], layout: &Layout, v_first: bool) {
    let Some(chroma) = &layout.chroma else { return };
    let w = layout.width;
    let (ui, vi) = if v_first { (1, 0) } else { (0, 1) };
    for (row, dst) in out.chunks_exact_mut(w * 3).enumerate() {
        let luma = &data[row * layout.stride..][..w];
        let uv = &data[chroma.offset + (row / 2) * chroma.stride..][..2 * w.div_ceil(2)];
        for (x, px) in dst.chunks_exact_mut(3).enumerate() {
            let pair = &uv[(x / 2) * 2..];
            yuv_pixel(luma[x], chroma_terms(pair[ui], pair[vi]), px);
        }
    }
}

/// YU12 / I420: separate U and V planes at half resolution.
fn planar_420(data: &[u8], out: &mut [u8], layout: &Layout) {
    let Some(chroma) = &layout.chroma else { return };
    let w = layout.width;
    let half_w = w.div_ceil(2);
    for (row, dst) in out.chunks_exact_mut(w * 3).enumerate() {
        let luma = &data[row * layout.stride..][..w];
        let u = &data[chroma.offset + (row / 2) * chroma.stride..][..half_w];
        let v = &data[chroma.second_offset + (row / 2) * chroma.stride..][..half_w];
        for (x, px) in dst.chunks_exact_mut(3).enumerate() {
            yuv_pixel(luma[x], chroma_terms(u[x / 2], v[x / 2]), px);
        }
    }
}

/// Formats with whole bytes per pixel: `N` source bytes map to one RGB pixel.
fn rows_map<const N: usize>(
    data: &[u8],
    out: &mut [u8],
    layout: &Layout,
    pixel: impl Fn(&[u8]) -> [u8; 3],
) {
    let w = layout.width;
    for (row, dst) in out.chunks_exact_mut(w * 3).enumerate() {
        let src = &data[row * layout.stride..][..w * N];
        for (px, s) in dst.chunks_exact_mut(3).zip(src.chunks_exact(N)) {
            px.copy_from_slice(&pixel(s));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// BT.601 limited range to RGB from the standard's definition (Kr = 0.299, Kb = 0.114),
    /// in f64, independent of the fixed-point constants above.
    fn reference(y: u8, u: u8, v: u8) -> [u8; 3] {
        let (kr, kb) = (0.299, 0.114);
        let kg = 1.0 - kr - kb;
        let yn = (y as f64 - 16.0) / 219.0;
        let pb = (u as f64 - 128.0) / 224.0;
        let pr = (v as f64 - 128.0) / 224.0;
        let r = yn + 2.0 * (1.0 - kr) * pr;
        let b = yn + 2.0 * (1.0 - kb) * pb;
        let g = (yn - kr * r - kb * b) / kg;
        [r, g, b].map(|c| (c * 255.0).round().clamp(0.0, 255.0) as u8)
    }

    /// Full-range RGB to limited-range YUV, the inverse of `reference`, to build test pixels.
    fn to_yuv(rgb: [u8; 3]) -> (u8, u8, u8) {
        let [r, g, b] = rgb.map(|c| c as f64 / 255.0);
        let y = 0.299 * r + 0.587 * g + 0.114 * b;
        let pb = (b - y) / (2.0 * (1.0 - 0.114));
        let pr = (r - y) / (2.0 * (1.0 - 0.299));
        let q = |x: f64| x.round().clamp(0.0, 255.0) as u8;
        (
            q(16.0 + 219.0 * y),
            q(128.0 + 224.0 * pb),
            q(128.0 + 224.0 * pr),
        )
    }

    fn close(got: &[u8], want: [u8; 3], what: &str) {
        for i in 0..3 {
            assert!(
                (got[i] as i32 - want[i] as i32).abs() <= 1,
                "{what}: got {got:?}, want {want:?}"
            );
        }
    }

    /// Known triples: black, white, grey, the primaries and secondaries, and extremes that clip.
    fn triples() -> Vec<(u8, u8, u8)> {
        let mut t = vec![
            (16, 128, 128),
            (235, 128, 128),
            (126, 128, 128),
            (0, 0, 0),
            (255, 255, 255),
        ];
        for rgb in [
            [255, 0, 0],
            [0, 255, 0],
            [0, 0, 255],
            [255, 255, 0],
            [0, 255, 255],
            [255, 0, 255],
            [30, 200, 90],
        ] {
            t.push(to_yuv(rgb));
        }
        t
    }

    #[test]
    fn reference_formula_matches_textbook_values() {
        // Sanity of the independent reference itself: black, white, and BT.601 red
        // (Y=81, U=90, V=240 in the standard's tables) is pure red within rounding.
        assert_eq!(reference(16, 128, 128), [0, 0, 0]);
        assert_eq!(reference(235, 128, 128), [255, 255, 255]);
        close(&reference(81, 90, 240), [255, 0, 0], "red");
        close(&reference(145, 54, 34), [0, 255, 0], "green");
        close(&reference(41, 240, 110), [0, 0, 255], "blue");
    }

    #[test]
    fn yuyv_and_uyvy_match_bt601() {
        for (y, u, v) in triples() {
            let want = reference(y, u, v);
            let yuyv = convert(PixelFormat::Yuyv, &[y, u, y, v], 2, 1, 0).unwrap();
            close(&yuyv.as_raw()[..3], want, &format!("YUYV {y}/{u}/{v}"));
            close(
                &yuyv.as_raw()[3..],
                want,
                &format!("YUYV {y}/{u}/{v} second"),
            );
            let uyvy = convert(PixelFormat::Uyvy, &[u, y, v, y], 2, 1, 0).unwrap();
            close(&uyvy.as_raw()[..3], want, &format!("UYVY {y}/{u}/{v}"));
        }
        // The two luma samples of a pair are used separately.
        let img = convert(PixelFormat::Yuyv, &[16, 128, 235, 128], 2, 1, 0).unwrap();
        assert_eq!(img.as_raw().as_slice(), &[0, 0, 0, 255, 255, 255]);
    }

    #[test]
    fn yuyv_honours_stride_and_odd_width() {
        // 3x2 image, pairs: row 0 black|white, row 1 red; 4 padding bytes per row.
        let (ry, ru, rv) = to_yuv([255, 0, 0]);
        let mut data = vec![
            16, 128, 16, 128, 235, 128, 235, 128, 0xAA, 0xAA, 0xAA, 0xAA, //
            ry, ru, ry, rv, ry, ru, ry, rv, 0xAA, 0xAA, 0xAA, 0xAA,
        ];
        let img = convert(PixelFormat::Yuyv, &data, 3, 2, 12).unwrap();
        assert_eq!(img.dimensions(), (3, 2));
        assert_eq!(img.get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(img.get_pixel(1, 0).0, [0, 0, 0]);
        assert_eq!(img.get_pixel(2, 0).0, [255, 255, 255]);
        for x in 0..3 {
            close(&img.get_pixel(x, 1).0, reference(ry, ru, rv), "red row");
        }
        // The last row needs no padding; one byte less than its pixels is an error.
        data.truncate(20);
        assert!(convert(PixelFormat::Yuyv, &data, 3, 2, 12).is_ok());
        data.truncate(19);
        let err = convert(PixelFormat::Yuyv, &data, 3, 2, 12)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("short buffer") && err.contains("YUYV"),
            "{err}"
        );
    }

    #[test]
    fn nv12_nv21_and_yu12_use_the_right_chroma_sample() {
        // 4x2 image, left 2x2 block red, right block blue; stride 6 (2 padding bytes).
        let red = to_yuv([255, 0, 0]);
        let blue = to_yuv([0, 0, 255]);
        let stride = 6;
        let mut nv12 = vec![0u8; stride * 3];
        let mut nv21 = vec![0u8; stride * 3];
        for row in 0..2 {
            for x in 0..4 {
                let y = if x < 2 { red.0 } else { blue.0 };
                nv12[row * stride + x] = y;
                nv21[row * stride + x] = y;
            }
        }
        let uv = 2 * stride;
        nv12[uv..uv + 4].copy_from_slice(&[red.1, red.2, blue.1, blue.2]);
        nv21[uv..uv + 4].copy_from_slice(&[red.2, red.1, blue.2, blue.1]);
        // YU12: chroma stride is half the luma stride (3).
        let mut yu12 = nv12[..uv].to_vec();
        yu12.extend_from_slice(&[red.1, blue.1, 0, red.2, blue.2, 0]);

        for (format, data) in [
            (PixelFormat::Nv12, &nv12),
            (PixelFormat::Nv21, &nv21),
            (PixelFormat::Yuv420, &yu12),
        ] {
            let img = convert(format, data, 4, 2, stride).unwrap();
            for y in 0..2 {
                for x in 0..4 {
                    let want = if x < 2 {
                        reference(red.0, red.1, red.2)
                    } else {
                        reference(blue.0, blue.1, blue.2)
                    };
                    close(&img.get_pixel(x, y).0, want, &format!("{format} {x},{y}"));
                }
            }
            let short = &data[..data.len() - 3];
            let err = convert(format, short, 4, 2, stride)
                .unwrap_err()
                .to_string();
            assert!(err.contains("short buffer"), "{format}: {err}");
        }
    }

    #[test]
    fn rgb_bgr_grey_rgb565_with_stride() {
        let rgb = [
            10, 20, 30, 40, 50, 60, 0, 0, 70, 80, 90, 100, 110, 120, 0, 0,
        ];
        let img = convert(PixelFormat::Rgb24, &rgb, 2, 2, 8).unwrap();
        assert_eq!(
            img.as_raw().as_slice(),
            &[10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120]
        );
        let img = convert(PixelFormat::Bgr24, &rgb, 2, 2, 8).unwrap();
        assert_eq!(img.get_pixel(0, 0).0, [30, 20, 10]);
        assert_eq!(img.get_pixel(1, 1).0, [120, 110, 100]);

        let grey = [0, 255, 9, 128, 7, 9];
        let img = convert(PixelFormat::Grey, &grey, 2, 2, 3).unwrap();
        assert_eq!(img.get_pixel(1, 0).0, [255, 255, 255]);
        assert_eq!(img.get_pixel(0, 1).0, [128, 128, 128]);

        // RGB565 little endian: pure red 0xF800, pure green 0x07E0, blue 0x001F, one mid value.
        let px = [0xF800u16, 0x07E0, 0x001F, (16 << 11) | (32 << 5) | 8];
        let data: Vec<u8> = px.iter().flat_map(|v| v.to_le_bytes()).collect();
        let img = convert(PixelFormat::Rgb565, &data, 4, 1, 0).unwrap();
        assert_eq!(img.get_pixel(0, 0).0, [255, 0, 0]);
        assert_eq!(img.get_pixel(1, 0).0, [0, 255, 0]);
        assert_eq!(img.get_pixel(2, 0).0, [0, 0, 255]);
        let want = [16.0 / 31.0, 32.0 / 63.0, 8.0 / 31.0].map(|f: f64| (f * 255.0).round() as u8);
        close(&img.get_pixel(3, 0).0, want, "rgb565 mid");
    }

    #[test]
    fn bad_geometry_is_an_error_not_a_panic() {
        assert!(convert(PixelFormat::Rgb24, &[0; 12], 0, 4, 0).is_err());
        let err = convert(PixelFormat::Rgb24, &[0; 100], 4, 4, 5)
            .unwrap_err()
            .to_string();
        assert!(err.contains("bytes per row"), "{err}");
        assert!(convert(PixelFormat::Grey, &[], 1, 1, 0).is_err());
        assert!(convert(PixelFormat::Nv12, &[0; 5], u32::MAX, u32::MAX, 0).is_err());
    }

    #[test]
    fn fourcc_and_names_round_trip() {
        for f in ALL_FORMATS {
            assert_eq!(PixelFormat::from_fourcc(&f.fourcc()), Some(f));
            assert_eq!(PixelFormat::from_name(f.name()), Some(f));
            assert_eq!(PixelFormat::from_name(&f.fourcc_str()), Some(f));
            assert_eq!(f.name().parse::<PixelFormat>().unwrap(), f);
        }
        assert_eq!(PixelFormat::from_name("YUYV"), Some(PixelFormat::Yuyv));
        assert_eq!(PixelFormat::from_name("Gray"), Some(PixelFormat::Grey));
        assert_eq!(PixelFormat::from_fourcc(b"JPEG"), Some(PixelFormat::Mjpeg));
        assert_eq!(PixelFormat::from_fourcc(b"H264"), None);
        let err = "h264".parse::<PixelFormat>().unwrap_err().to_string();
        assert!(err.contains("h264") && err.contains("yuyv"), "{err}");
    }

    fn jpeg_of(img: &RgbImage, quality: u8) -> Vec<u8> {
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, quality)
            .encode_image(img)
            .unwrap();
        bytes
    }

    #[test]
    fn mjpeg_round_trip_and_corrupt_frames() {
        let img = RgbImage::from_fn(32, 24, |x, y| {
            image::Rgb([(x * 8) as u8, (y * 10) as u8, 128])
        });
        let bytes = jpeg_of(&img, 95);
        let back = convert(PixelFormat::Mjpeg, &bytes, 999, 999, 0).unwrap();
        assert_eq!(back.dimensions(), (32, 24));
        let worst = img
            .as_raw()
            .iter()
            .zip(back.as_raw())
            .map(|(a, b)| (*a as i32 - *b as i32).abs())
            .max()
            .unwrap();
        assert!(worst <= 16, "JPEG error {worst} too large");

        for bad in [
            &b"not a jpeg at all"[..],
            &[0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x02, 1, 2, 3][..],
            &[],
        ] {
            let err = decode_mjpeg(bad).unwrap_err();
            assert!(matches!(err, Error::Capture { .. }));
            assert!(err.to_string().contains("corrupt MJPEG frame"), "{err}");
        }
    }

    #[test]
    fn pixel_format_deserializes_from_config_names() {
        #[derive(Deserialize)]
        struct C {
            format: PixelFormat,
        }
        let c: C = toml::from_str("format = \"NV12\"").unwrap();
        assert_eq!(c.format, PixelFormat::Nv12);
        let err = toml::from_str::<C>("format = \"h264\"")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("unknown pixel format"), "{err}");
    }
}
