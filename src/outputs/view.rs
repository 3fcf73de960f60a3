//! The picture a person sees: the frame scaled to the screen (letterboxed, aspect kept), the
//! skeleton drawn at screen resolution (so lines stay crisp on a small panel), per-joint
//! confidence bars and a status line with fps. Framebuffer, SPI panel, PNG snapshots and the HTTP
//! preview all show this same view.

use embedded_graphics::mono_font::ascii::{FONT_6X10, FONT_9X15};
use embedded_graphics::mono_font::MonoTextStyle;
use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{PrimitiveStyle, Rectangle};
use embedded_graphics::text::{Baseline, Text};
use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;
use std::sync::Arc;

use super::display::Display;
use super::draw::{draw_pose, ImageCanvas};
use super::sink::{Flow, FrameOutput, Sink};
use super::stream::http::HttpServer;
use crate::error::{Error, Result};
use crate::model::JointSet;
use crate::pose::Pose;

/// What the status line says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hud {
    pub fps: f32,
    pub inference_ms: f32,
    /// Names of the rules active now.
    pub active_rules: Vec<String>,
}

/// Where the frame lands on the screen: `screen = frame * scale + offset`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    pub scale: f32,
    pub offset_x: u32,
    pub offset_y: u32,
    pub width: u32,
    pub height: u32,
}

impl Letterbox {
    /// The largest placement of a `fw x fh` frame inside `sw x sh`, centred.
    pub fn fit(fw: u32, fh: u32, sw: u32, sh: u32) -> Self {
        let scale = (sw as f32 / fw.max(1) as f32).min(sh as f32 / fh.max(1) as f32);
        let width = ((fw as f32 * scale).round() as u32).clamp(1, sw.max(1));
        let height = ((fh as f32 * scale).round() as u32).clamp(1, sh.max(1));
        Letterbox {
            scale,
            offset_x: (sw - width) / 2,
            offset_y: (sh - height) / 2,
            width,
            height,
        }
    }

    pub fn map(&self, x: f32, y: f32) -> (f32, f32) {
        (
            x * self.scale + self.offset_x as f32,
            y * self.scale + self.offset_y as f32,
        )
    }
}

/// Renders views at one screen size, reusing its resizer and buffers frame after frame.
pub struct ViewRenderer {
    width: u32,
    height: u32,
    resizer: Resizer,
    scaled: RgbImage,
    min_confidence: f32,
}

impl ViewRenderer {
    pub fn new(width: u32, height: u32, min_confidence: f32) -> Self {
        ViewRenderer {
            width,
            height,
            resizer: Resizer::new(),
            scaled: RgbImage::new(1, 1),
            min_confidence,
        }
    }

    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// Draws the view of `frame` with `pose` into `screen` (resized to the renderer's size).
    pub fn render(
        &mut self,
        frame: &RgbImage,
        pose: Option<&Pose>,
        joints: &JointSet,
        hud: &Hud,
        screen: &mut RgbImage,
    ) -> Result<()> {
        if screen.dimensions() != (self.width, self.height) {
            *screen = RgbImage::new(self.width, self.height);
        } else {
            screen.fill(0);
        }
        let fit = Letterbox::fit(frame.width(), frame.height(), self.width, self.height);
        if self.scaled.dimensions() != (fit.width, fit.height) {
            self.scaled = RgbImage::new(fit.width, fit.height);
        }
        if frame.dimensions() == (fit.width, fit.height) {
            self.scaled.copy_from_slice(frame.as_raw());
        } else {
            let options =
                ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
            self.resizer
                .resize(frame, &mut self.scaled, &options)
                .map_err(|e| Error::InvalidArgument(format!("cannot scale the frame: {e}")))?;
        }
        image::imageops::replace(
            screen,
            &self.scaled,
            fit.offset_x as i64,
            fit.offset_y as i64,
        );

        let mut canvas = ImageCanvas(screen);
        if let Some(pose) = pose {
            let mut on_screen = pose.clone();
            for k in &mut on_screen.keypoints {
                (k.x, k.y) = fit.map(k.x, k.y);
            }
            let _ = draw_pose(&mut canvas, &on_screen, joints, self.min_confidence);
            draw_confidence_bars(&mut canvas, pose, self.min_confidence);
        }
        draw_status(&mut canvas, pose, hud);
        Ok(())
    }
}

/// The node's view as an output: rendered once per frame, shown on the display and handed to the
/// HTTP server's snapshot and preview, whichever of the two the board has.
pub struct ViewSink {
    renderer: ViewRenderer,
    joints: JointSet,
    view: RgbImage,
    // Before `display`: the server (when this holds its last reference) stops before the display
    // closes, as it always has.
    preview: Option<Arc<HttpServer>>,
    display: Option<Box<dyn Display>>,
}

impl ViewSink {
    pub fn new(
        renderer: ViewRenderer,
        joints: JointSet,
        display: Option<Box<dyn Display>>,
        preview: Option<Arc<HttpServer>>,
    ) -> Self {
        ViewSink {
            renderer,
            joints,
            view: RgbImage::new(1, 1),
            preview,
            display,
        }
    }
}

impl Sink for ViewSink {
    fn name(&self) -> &str {
        "display"
    }

    /// The view goes to the preview even when rendering or showing it failed; the error is
    /// reported under the display's name.
    fn publish(&mut self, frame: &FrameOutput<'_>) -> Result<Flow> {
        let hud = Hud {
            fps: frame.fps,
            inference_ms: frame.record.frame.timing_ms.inference as f32,
            active_rules: frame.record.active_rules.clone(),
        };
        let shown = self
            .renderer
            .render(
                frame.image,
                Some(frame.pose),
                &self.joints,
                &hud,
                &mut self.view,
            )
            .and_then(|_| match self.display.as_mut() {
                Some(d) => d.show(&self.view),
                None => Ok(()),
            });
        if let Some(http) = &self.preview {
            http.publish_frame(&self.view);
        }
        shown.map(|()| Flow::Continue)
    }
}

/// One thin bar per joint along the bottom edge: height is confidence, grey below the threshold.
fn draw_confidence_bars(canvas: &mut ImageCanvas<'_>, pose: &Pose, min_confidence: f32) {
    let size = canvas.size();
    let n = pose.keypoints.len().max(1) as u32;
    let bar_w = (size.width / 4 / n).max(2);
    let max_h = (size.height / 8).max(8);
    for (i, k) in pose.keypoints.iter().enumerate() {
        let h = ((k.confidence.clamp(0.0, 1.0) * max_h as f32).round() as u32).max(1);
        let colour = if k.confidence >= min_confidence {
            Rgb888::new(60, 220, 90)
        } else {
            Rgb888::new(110, 110, 110)
        };
        let x = 4 + i as i32 * (bar_w as i32 + 1);
        let y = size.height as i32 - 4 - h as i32;
        let _ = Rectangle::new(Point::new(x, y), Size::new(bar_w, h))
            .into_styled(PrimitiveStyle::with_fill(colour))
            .draw(canvas);
    }
}

/// "12.3 fps  48 ms  conf 0.61  [rule]" on a dark band at the top.
fn draw_status(canvas: &mut ImageCanvas<'_>, pose: Option<&Pose>, hud: &Hud) {
    let size = canvas.size();
    let font = if size.width >= 480 {
        &FONT_9X15
    } else {
        &FONT_6X10
    };
    let line_h = font.character_size.height + 4;
    let _ = Rectangle::new(Point::zero(), Size::new(size.width, line_h))
        .into_styled(PrimitiveStyle::with_fill(Rgb888::new(0, 0, 0)))
        .draw(canvas);
    let confidence = pose.map_or("no person".to_string(), |p| {
        format!("conf {:.2}", p.mean_confidence())
    });
    let mut text = format!(
        "{:.1} fps  {:.0} ms  {}",
        hud.fps, hud.inference_ms, confidence
    );
    for rule in &hud.active_rules {
        text.push_str(&format!("  [{rule}]"));
    }
    let style = MonoTextStyle::new(font, Rgb888::new(255, 255, 255));
    let _ = Text::with_baseline(&text, Point::new(3, 2), style, Baseline::Top).draw(canvas);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::JointSet;
    use crate::pose::Keypoint;

    #[test]
    fn letterbox_keeps_aspect_and_centres() {
        let f = Letterbox::fit(640, 480, 1280, 800);
        assert!((f.scale - 800.0 / 480.0).abs() < 1e-6);
        assert_eq!((f.width, f.height), (1067, 800));
        assert_eq!((f.offset_x, f.offset_y), ((1280 - 1067) / 2, 0));
        let (x, y) = f.map(640.0, 480.0);
        assert!((x - (f.offset_x + f.width) as f32).abs() < 1.0 && (y - 800.0).abs() < 1e-3);
        let tall = Letterbox::fit(100, 400, 240, 240);
        assert_eq!((tall.width, tall.height), (60, 240));
        assert_eq!(tall.offset_x, 90);
    }

    #[test]
    fn renders_the_scaled_frame_the_skeleton_and_the_status_band() {
        let joints = JointSet::mpii16();
        let frame = RgbImage::from_pixel(320, 240, image::Rgb([200, 200, 200]));
        let keypoints = joints
            .names
            .iter()
            .enumerate()
            .map(|(i, name)| Keypoint {
                name: name.clone(),
                x: 100.0 + 5.0 * i as f32,
                y: 60.0 + 8.0 * i as f32,
                confidence: 0.9,
            })
            .collect();
        let pose = Pose { keypoints };
        let mut renderer = ViewRenderer::new(640, 480, 0.2);
        let mut screen = RgbImage::new(1, 1);
        let hud = Hud {
            fps: 12.5,
            inference_ms: 40.0,
            active_rules: vec!["wave".into()],
        };
        renderer
            .render(&frame, Some(&pose), &joints, &hud, &mut screen)
            .unwrap();
        assert_eq!(screen.dimensions(), (640, 480));
        // The frame (grey) fills the screen below the status band.
        assert_eq!(screen.get_pixel(600, 300).0, [200, 200, 200]);
        // The status band is dark with white text somewhere in it.
        let band_has_text = (0..300).any(|x| screen.get_pixel(x, 8).0 == [255, 255, 255]);
        assert!(band_has_text);
        // A joint dot lands at twice its frame position (scale 2).
        let k = &pose.keypoints[8];
        let p = screen.get_pixel((k.x * 2.0) as u32, (k.y * 2.0) as u32).0;
        assert_ne!(p, [200, 200, 200], "no joint drawn at the scaled position");
    }
}
