//! Draws a skeleton with embedded-graphics, so the same drawing code serves PNG snapshots here and
//! framebuffers and SPI panels on boards (any `DrawTarget<Color = Rgb888>`).

use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{Circle, Line, PrimitiveStyle};
use image::RgbImage;

use crate::model::JointSet;
use crate::pose::Pose;

/// An `RgbImage` as an embedded-graphics draw target (pixels outside the image are dropped).
pub struct ImageCanvas<'a>(pub &'a mut RgbImage);

impl OriginDimensions for ImageCanvas<'_> {
    fn size(&self) -> Size {
        Size::new(self.0.width(), self.0.height())
    }
}

impl DrawTarget for ImageCanvas<'_> {
    type Color = Rgb888;
    type Error = core::convert::Infallible;

    fn draw_iter<I: IntoIterator<Item = Pixel<Rgb888>>>(
        &mut self,
        pixels: I,
    ) -> Result<(), Self::Error> {
        let (w, h) = (self.0.width() as i32, self.0.height() as i32);
        for Pixel(p, c) in pixels {
            if (0..w).contains(&p.x) && (0..h).contains(&p.y) {
                self.0
                    .put_pixel(p.x as u32, p.y as u32, image::Rgb([c.r(), c.g(), c.b()]));
            }
        }
        Ok(())
    }
}

/// Colour by body side so left/right mix-ups are visible at a glance.
fn side_colour(name: &str) -> Rgb888 {
    if name.starts_with("l_") {
        Rgb888::new(40, 120, 255)
    } else if name.starts_with("r_") {
        Rgb888::new(255, 80, 40)
    } else {
        Rgb888::new(40, 220, 80)
    }
}

/// Draws bones between joints whose confidence reaches `min_confidence`, and a dot on each joint.
/// Line width and dot size scale with the target so the skeleton reads on any resolution.
pub fn draw_pose<D: DrawTarget<Color = Rgb888>>(
    target: &mut D,
    pose: &Pose,
    joints: &JointSet,
    min_confidence: f32,
) -> Result<(), D::Error> {
    let size = target.bounding_box().size;
    let stroke = (size.width.max(size.height) / 200).max(2);
    let point = |i: usize| {
        Point::new(
            pose.keypoints[i].x.floor() as i32,
            pose.keypoints[i].y.floor() as i32,
        )
    };
    let visible = |i: usize| {
        pose.keypoints
            .get(i)
            .is_some_and(|k| k.confidence >= min_confidence)
    };
    for &(a, b) in &joints.edges {
        if visible(a) && visible(b) {
            let colour = side_colour(&pose.keypoints[b].name);
            Line::new(point(a), point(b))
                .into_styled(PrimitiveStyle::with_stroke(colour, stroke))
                .draw(target)?;
        }
    }
    let diameter = stroke * 3;
    for (i, k) in pose.keypoints.iter().enumerate() {
        if visible(i) {
            let centre = point(i);
            Circle::with_center(centre, diameter)
                .into_styled(PrimitiveStyle::with_fill(Rgb888::WHITE))
                .draw(target)?;
            Circle::with_center(centre, diameter.saturating_sub(2).max(1))
                .into_styled(PrimitiveStyle::with_fill(side_colour(&k.name)))
                .draw(target)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pose::Keypoint;

    fn pose(points: &[(f32, f32, f32)], joints: &JointSet) -> Pose {
        Pose {
            keypoints: points
                .iter()
                .zip(&joints.names)
                .map(|(&(x, y, c), n)| Keypoint {
                    name: n.clone(),
                    x,
                    y,
                    confidence: c,
                })
                .collect(),
        }
    }

    #[test]
    fn draws_bones_between_confident_joints_only() {
        let mut joints = JointSet::unnamed(3);
        joints.edges = vec![(0, 1), (1, 2)];
        let p = pose(
            &[(10.5, 10.5, 0.9), (90.5, 10.5, 0.9), (90.5, 90.5, 0.1)],
            &joints,
        );
        let mut img = RgbImage::new(100, 100);
        draw_pose(&mut ImageCanvas(&mut img), &p, &joints, 0.5).unwrap();
        // midpoint of the confident bone is painted, midpoint of the weak one is not
        assert_ne!(img.get_pixel(50, 10).0, [0, 0, 0]);
        assert_eq!(img.get_pixel(90, 50).0, [0, 0, 0]);
        // the weak joint itself is not drawn
        assert_eq!(img.get_pixel(90, 90).0, [0, 0, 0]);
    }

    #[test]
    fn points_off_the_image_are_clipped() {
        let joints = JointSet::mpii16();
        let p = pose(&[(-500.0, 9e6, 1.0); 16], &joints);
        let mut img = RgbImage::new(8, 8);
        draw_pose(&mut ImageCanvas(&mut img), &p, &joints, 0.0).unwrap();
    }
}
