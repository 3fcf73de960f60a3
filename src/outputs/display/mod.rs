//! Displays: a Linux framebuffer and an SPI TFT panel. Both take the finished view (see
//! [`crate::outputs::ViewRenderer`]) at their own resolution, so drawing is written once.

pub mod drm_dumb;
pub mod framebuffer;
pub mod spi_panel;

use image::RgbImage;

use crate::error::Result;

/// A screen that shows rendered views.
pub trait Display: Send {
    /// Width and height in pixels; views are rendered at exactly this size.
    fn size(&self) -> (u32, u32);
    fn show(&mut self, view: &RgbImage) -> Result<()>;
    fn describe(&self) -> String;
}
