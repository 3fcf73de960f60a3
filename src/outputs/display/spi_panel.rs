//! An SPI TFT panel (ST7789 or ILI9341 class) through linux-embedded-hal's spidev and GPIO
//! character device, driven by the `mipidsi` crate (a maintained driver for these controllers).
//!
//! Panels are small and SPI is slow (a 240x240 RGB565 frame is 115 KB, ~30 ms at 32 MHz), so
//! the view is sent once per shown frame in one `set_pixels` burst.

use embedded_graphics::pixelcolor::Rgb565;
use embedded_graphics::prelude::RgbColor;
use image::RgbImage;
use linux_embedded_hal::spidev::{SpiModeFlags, SpidevOptions};
use linux_embedded_hal::{CdevPin, Delay, SpidevDevice};
use mipidsi::interface::SpiInterface;
use mipidsi::models::{ILI9341Rgb565, ST7789};
use mipidsi::options::{ColorInversion, Orientation, Rotation};
use serde::Deserialize;

use super::Display;
use crate::error::{Error, Result};

/// Panel controllers hgpose knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PanelModel {
    St7789,
    Ili9341,
}

/// `[display]` settings for an SPI panel.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpiPanelConfig {
    pub model: PanelModel,
    /// e.g. /dev/spidev0.0
    pub spi: String,
    #[serde(default = "default_speed")]
    pub speed_hz: u32,
    /// GPIO chip for the data/command and reset lines.
    pub chip: Option<String>,
    pub dc_line: u32,
    pub reset_line: Option<u32>,
    pub width: u16,
    pub height: u16,
    #[serde(default)]
    pub rotation_degrees: i32,
    /// Many ST7789 modules need colour inversion on.
    #[serde(default)]
    pub invert_colors: bool,
}

fn default_speed() -> u32 {
    32_000_000
}

type Interface = SpiInterface<'static, SpidevDevice, CdevPin>;

/// The reset line, where the panel has one wired (some modules tie reset high): one pin type
/// either way, so the driver type does not depend on the wiring.
struct ResetPin(Option<CdevPin>);

impl embedded_hal::digital::ErrorType for ResetPin {
    type Error = linux_embedded_hal::CdevPinError;
}

impl embedded_hal::digital::OutputPin for ResetPin {
    fn set_low(&mut self) -> std::result::Result<(), Self::Error> {
        self.0.as_mut().map_or(Ok(()), |p| p.set_low())
    }

    fn set_high(&mut self) -> std::result::Result<(), Self::Error> {
        self.0.as_mut().map_or(Ok(()), |p| p.set_high())
    }
}

enum Driver {
    St7789(mipidsi::Display<Interface, ST7789, ResetPin>),
    Ili9341(mipidsi::Display<Interface, ILI9341Rgb565, ResetPin>),
}

pub struct SpiPanel {
    driver: Driver,
    width: u32,
    height: u32,
    name: String,
}

fn output_line(chip: &str, line: u32, what: &str) -> Result<CdevPin> {
    let name = format!("{chip} line {line} ({what})");
    crate::platform::gpio::request_output(chip, line, true, "hgpose-panel", &name)
}

impl SpiPanel {
    pub fn open(config: &SpiPanelConfig, default_chip: &str) -> Result<Self> {
        let name = format!("{:?} panel on {}", config.model, config.spi);
        let mut spi = SpidevDevice::open(&config.spi).map_err(|e| {
            Error::device(
                &config.spi,
                format!(
                    "cannot open the SPI device ({e:?}); enable SPI (raspi-config / dtparam=spi=on) \
                     and check the board file's display.spi"
                ),
            )
        })?;
        let options = SpidevOptions::new()
            .bits_per_word(8)
            .max_speed_hz(config.speed_hz)
            .mode(SpiModeFlags::SPI_MODE_0)
            .build();
        spi.0
            .configure(&options)
            .map_err(|e| Error::device(&config.spi, format!("cannot configure SPI ({e})")))?;
        let chip = config.chip.as_deref().unwrap_or(default_chip);
        let dc = output_line(chip, config.dc_line, "panel data/command")?;
        let rst = config
            .reset_line
            .map(|l| output_line(chip, l, "panel reset"))
            .transpose()?;
        let rotation = Rotation::try_from_degree(config.rotation_degrees).map_err(|_| {
            Error::InvalidArgument(format!(
                "display.rotation_degrees = {} must be 0, 90, 180 or 270",
                config.rotation_degrees
            ))
        })?;
        let buffer: &'static mut [u8] = Box::leak(vec![0u8; 4096].into_boxed_slice());
        let interface = SpiInterface::new(spi, dc, buffer);
        let inversion = if config.invert_colors {
            ColorInversion::Inverted
        } else {
            ColorInversion::Normal
        };
        let orientation = Orientation::new().rotate(rotation);
        let init_error = |e: &dyn std::fmt::Debug| {
            Error::device(&name, format!("panel initialisation failed ({e:?})"))
        };
        let mut delay = Delay;
        macro_rules! build {
            ($model:expr) => {{
                mipidsi::Builder::new($model, interface)
                    .display_size(config.width, config.height)
                    .invert_colors(inversion)
                    .orientation(orientation)
                    .reset_pin(ResetPin(rst))
                    .init(&mut delay)
                    .map_err(|e| init_error(&e))?
            }};
        }
        let driver = match config.model {
            PanelModel::St7789 => Driver::St7789(build!(ST7789)),
            PanelModel::Ili9341 => Driver::Ili9341(build!(ILI9341Rgb565)),
        };
        let (width, height) = if rotation.is_vertical() {
            (config.height as u32, config.width as u32)
        } else {
            (config.width as u32, config.height as u32)
        };
        Ok(SpiPanel {
            driver,
            width,
            height,
            name,
        })
    }
}

fn to_rgb565(view: &RgbImage) -> impl Iterator<Item = Rgb565> + '_ {
    view.pixels().map(|p| {
        Rgb565::new(
            p.0[0] >> (8 - Rgb565::MAX_R.count_ones()),
            p.0[1] >> (8 - Rgb565::MAX_G.count_ones()),
            p.0[2] >> (8 - Rgb565::MAX_B.count_ones()),
        )
    })
}

impl Display for SpiPanel {
    fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    fn show(&mut self, view: &RgbImage) -> Result<()> {
        let (x1, y1) = (self.width as u16 - 1, self.height as u16 - 1);
        let result = match &mut self.driver {
            Driver::St7789(d) => d.set_pixels(0, 0, x1, y1, to_rgb565(view)),
            Driver::Ili9341(d) => d.set_pixels(0, 0, x1, y1, to_rgb565(view)),
        };
        result.map_err(|e| Error::device(&self.name, format!("SPI write failed ({e:?})")))
    }

    fn describe(&self) -> String {
        format!("{} ({}x{})", self.name, self.width, self.height)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rgb565_keeps_the_top_bits() {
        let img = RgbImage::from_pixel(1, 1, image::Rgb([255, 128, 8]));
        let c = to_rgb565(&img).next().unwrap();
        assert_eq!((c.r(), c.g(), c.b()), (31, 32, 1));
    }

    #[test]
    fn config_reads_and_rejects_unknown_keys() {
        let ok: SpiPanelConfig = toml::from_str(
            "model = \"st7789\"\nspi = \"/dev/spidev0.0\"\ndc_line = 25\nwidth = 240\nheight = 240",
        )
        .unwrap();
        assert_eq!(ok.model, PanelModel::St7789);
        assert_eq!(ok.speed_hz, 32_000_000);
        let bad = toml::from_str::<SpiPanelConfig>(
            "model = \"st7789\"\nspi = \"/dev/spidev0.0\"\ndc_line = 25\nwidth = 240\nheight = 240\ncolour = 1",
        );
        assert!(bad.unwrap_err().to_string().contains("colour"));
    }

    #[test]
    fn a_missing_spi_device_says_how_to_enable_it() {
        let c: SpiPanelConfig = toml::from_str(
            "model = \"ili9341\"\nspi = \"/dev/spidev9.9\"\ndc_line = 1\nwidth = 320\nheight = 240",
        )
        .unwrap();
        let err = SpiPanel::open(&c, "/dev/gpiochip0")
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("/dev/spidev9.9") && err.contains("spi"),
            "{err}"
        );
    }
}
