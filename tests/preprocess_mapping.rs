//! The crop/resize path maps frame points to the heatmap and back within half a frame pixel, both
//! in the arithmetic and in the pixels actually written into the input tensor.

use hgpose::model::{ChannelOrder, InputSpec, Layout, Normalization};
use hgpose::preprocess::{CropTransform, Preprocessor, Rect};
use image::{Rgb, RgbImage};

const STRIDE: f32 = 4.0; // input pixels per heatmap pixel for the paper's network

/// A frame with a bright Gaussian blob centred at continuous `(cx, cy)`.
fn blob_frame(w: u32, h: u32, cx: f32, cy: f32, sigma: f32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
        let v = 255.0 * (-(dx * dx + dy * dy) / (2.0 * sigma * sigma)).exp();
        Rgb([v.round() as u8; 3])
    })
}

/// Intensity-weighted centroid of the first channel of an NCHW tensor, in input coordinates.
fn centroid(values: &[f32], w: usize, h: usize) -> (f32, f32) {
    let (mut sx, mut sy, mut s) = (0.0f64, 0.0f64, 0.0f64);
    for y in 0..h {
        for x in 0..w {
            let v = values[y * w + x] as f64;
            sx += v * (x as f64 + 0.5);
            sy += v * (y as f64 + 0.5);
            s += v;
        }
    }
    ((sx / s) as f32, (sy / s) as f32)
}

fn spec() -> InputSpec {
    InputSpec {
        name: "input".into(),
        height: 256,
        width: 256,
        layout: Layout::NCHW,
        channels: ChannelOrder::RGB,
        normalization: Normalization::Unit,
    }
}

#[test]
fn point_to_heatmap_and_back_is_within_half_a_frame_pixel() {
    let crops = [
        CropTransform::whole_frame(640, 480, 256, 256).unwrap(),
        CropTransform::whole_frame(333, 517, 256, 256).unwrap(),
        CropTransform::around(Rect::new(210.0, 40.0, 120.0, 300.0), 0.25, 256, 256).unwrap(),
    ];
    for crop in crops {
        for &(x, y) in &[(0.5, 0.5), (320.25, 240.75), (250.0, 300.0), (100.1, 200.9)] {
            let (u, v) = crop.frame_to_input(x, y);
            let (hx, hy) = (u / STRIDE, v / STRIDE);
            let (x2, y2) = crop.input_to_frame(hx * STRIDE, hy * STRIDE);
            assert!(
                (x - x2).abs() < 0.5 && (y - y2).abs() < 0.5,
                "{x},{y} -> {x2},{y2}"
            );
        }
    }
}

#[test]
fn blob_written_into_the_tensor_maps_back_to_where_it_was_drawn() {
    let mut pre = Preprocessor::new(&spec());
    let mut tensor = vec![0.0f32; 3 * 256 * 256];
    let cases = [
        (640, 480, None, (200.3, 310.7)),
        (480, 640, None, (250.6, 120.2)),
        (
            640,
            480,
            Some(Rect::new(150.0, 200.0, 140.0, 220.0)),
            (221.4, 301.8),
        ),
        // a person box hanging off the frame's edge: the crop is padded there
        (
            640,
            480,
            Some(Rect::new(560.0, 300.0, 120.0, 200.0)),
            (600.2, 420.6),
        ),
    ];
    for (w, h, person, (cx, cy)) in cases {
        let frame = blob_frame(w, h, cx, cy, 12.0);
        let crop = match person {
            Some(r) => CropTransform::around(r, 0.25, 256, 256).unwrap(),
            None => CropTransform::whole_frame(w, h, 256, 256).unwrap(),
        };
        pre.fill(&frame, &crop, false, &mut tensor).unwrap();
        let (u, v) = centroid(&tensor[..256 * 256], 256, 256);
        let (x, y) = crop.input_to_frame(u, v);
        assert!(
            (x - cx).abs() < 0.5 && (y - cy).abs() < 0.5,
            "{w}x{h} {person:?}: drew ({cx}, {cy}), found ({x}, {y})"
        );
    }
}

#[test]
fn mirrored_blob_lands_mirrored_about_the_crop_centre() {
    let mut pre = Preprocessor::new(&spec());
    let mut tensor = vec![0.0f32; 3 * 256 * 256];
    let frame = blob_frame(640, 480, 200.0, 240.0, 10.0);
    let crop = CropTransform::whole_frame(640, 480, 256, 256).unwrap();
    pre.fill(&frame, &crop, true, &mut tensor).unwrap();
    let (u, _) = centroid(&tensor[..256 * 256], 256, 256);
    let (x, _) = crop.input_to_frame(256.0 - u, 0.0);
    assert!((x - 200.0).abs() < 0.5, "{x}");
}
