use super::*;
use serde::Deserialize;

/// BT.601 limited range to RGB from the standard's definition (Kr = 0.299, Kb = 0.114),
/// in f64, independent of the fixed-point constants in `yuv.rs`.
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
