//! Displays: a Linux framebuffer, a DRM card, an SPI TFT panel and PNG snapshots. Each takes the
//! finished view (see [`crate::outputs::ViewRenderer`]) at its own resolution, so drawing is
//! written once.

pub mod drm_dumb;
pub mod framebuffer;
pub mod png;
pub mod spi_panel;

use image::RgbImage;

use crate::error::{Error, Result};

/// Views are rendered at the display's size; anything else is a caller's mistake, named here.
pub(crate) fn check_view_size(
    view: &RgbImage,
    size: (u32, u32),
    kind: &str,
    device: &std::path::Path,
) -> Result<()> {
    if view.dimensions() == size {
        return Ok(());
    }
    Err(Error::InvalidArgument(format!(
        "view is {}x{}, {kind} {} is {}x{}",
        view.width(),
        view.height(),
        device.display(),
        size.0,
        size.1
    )))
}

/// A screen that shows rendered views.
pub trait Display: Send {
    /// Width and height in pixels; views are rendered at exactly this size.
    fn size(&self) -> (u32, u32);
    fn show(&mut self, view: &RgbImage) -> Result<()>;
    fn describe(&self) -> String;
}
