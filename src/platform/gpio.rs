//! GPIO lines as the board offers them: opening a chip, finding a line, requesting it as an
//! output, through the Linux GPIO character device (`gpio-cdev`, and linux-embedded-hal's
//! `CdevPin` for the embedded-hal `OutputPin` trait). Capture's trigger lines, the rule outputs
//! and the SPI panel's control lines all open their lines here, so every stage names a wrong
//! chip or line the same way.

use gpio_cdev::{Chip, LineRequestFlags};
use linux_embedded_hal::CdevPin;

use crate::error::{Error, Result};

/// Opens `chip`, naming it and what to check when it fails.
pub fn open_chip(chip: &str) -> Result<Chip> {
    Chip::new(chip).map_err(|e| {
        Error::device(
            chip,
            format!(
                "cannot open the GPIO chip ({e}). Check the board file's gpio chip, that \
                 /dev/gpiochip* exists (`hgpose doctor` lists them) and that this user may use it \
                 (group gpio)"
            ),
        )
    })
}

/// Line `offset` of the chip at `chip`; errors name `name` and the lines the chip has.
pub fn open_line(chip: &str, offset: u32, name: &str) -> Result<gpio_cdev::Line> {
    let mut handle = open_chip(chip)?;
    let lines = handle.num_lines();
    handle.get_line(offset).map_err(|e| {
        Error::device(
            name,
            format!("no such line ({e}); this chip has lines 0..{lines}"),
        )
    })
}

/// Requests line `offset` of `chip` as an output at `level`, held under `consumer`'s name.
pub fn request_output(
    chip: &str,
    offset: u32,
    level: bool,
    consumer: &str,
    name: &str,
) -> Result<CdevPin> {
    let handle = open_line(chip, offset, name)?
        .request(LineRequestFlags::OUTPUT, u8::from(level), consumer)
        .map_err(|e| {
            Error::device(
                name,
                format!("cannot request it as an output ({e}); is another program holding it?"),
            )
        })?;
    CdevPin::new(handle).map_err(|e| Error::device(name, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_chip_is_named_with_what_to_check() {
        let err = open_line("/dev/gpiochip-hgpose-missing", 4, "test line")
            .expect_err("opening a missing chip must fail")
            .to_string();
        assert!(err.contains("/dev/gpiochip-hgpose-missing"), "{err}");
        assert!(err.contains("hgpose doctor"), "{err}");
    }
}
