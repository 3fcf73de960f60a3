//! GPIO output lines driven by the pose rules, through the Linux GPIO character device
//! (linux-embedded-hal's `CdevPin`, i.e. the embedded-hal `OutputPin` trait on /dev/gpiochipN).
//!
//! Every line a rule names is requested once at start-up, so a wrong chip or line number fails
//! before the first frame, not at the moment a rule fires. Lines start inactive.

use embedded_hal::digital::{OutputPin, PinState};
use gpio_cdev::{Chip, LineRequestFlags};
use linux_embedded_hal::CdevPin;
use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::outputs::rules::LineCommand;

/// Shown as the line's consumer in `gpioinfo`, so people can see who holds it.
const CONSUMER: &str = "hgpose";

/// One output line: where it is and its initial (inactive) physical level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputLineSpec {
    pub chip: String,
    pub line: u32,
    pub initial_level: bool,
}

/// The output lines hgpose holds, keyed by (chip path, line offset).
pub struct GpioOutputs {
    pins: BTreeMap<(String, u32), CdevPin>,
    default_chip: String,
}

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

impl GpioOutputs {
    /// Requests every line in `specs` as an output at its initial level.
    pub fn open(specs: &[OutputLineSpec], default_chip: &str) -> Result<Self> {
        let mut pins = BTreeMap::new();
        for spec in specs {
            let key = (spec.chip.clone(), spec.line);
            if pins.contains_key(&key) {
                continue;
            }
            let name = format!("{} line {}", spec.chip, spec.line);
            let pin = request_output(&spec.chip, spec.line, spec.initial_level, CONSUMER, &name)?;
            pins.insert(key, pin);
        }
        Ok(GpioOutputs {
            pins,
            default_chip: default_chip.to_string(),
        })
    }

    /// Sets the lines the rule engine asked for. A failing line is reported, the others still set.
    pub fn apply(&mut self, commands: &[LineCommand]) -> Result<()> {
        let mut first_error = None;
        for command in commands {
            let chip = command.chip.as_deref().unwrap_or(&self.default_chip);
            let key = (chip.to_string(), command.line);
            let Some(pin) = self.pins.get_mut(&key) else {
                first_error.get_or_insert(Error::device(
                    format!("{chip} line {}", command.line),
                    format!(
                        "rule {} drives a line that was not opened at start",
                        command.rule
                    ),
                ));
                continue;
            };
            if let Err(e) = pin.set_state(PinState::from(command.level)) {
                first_error.get_or_insert(Error::device(
                    format!("{chip} line {}", command.line),
                    format!("cannot set it for rule {} ({e:?})", command.rule),
                ));
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    pub fn len(&self) -> usize {
        self.pins.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pins.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_chip_is_named_with_what_to_check() {
        let spec = OutputLineSpec {
            chip: "/dev/gpiochip-does-not-exist".into(),
            line: 3,
            initial_level: false,
        };
        let err = GpioOutputs::open(&[spec], "/dev/gpiochip-does-not-exist")
            .err()
            .expect("opening a missing chip must fail");
        let text = err.to_string();
        assert!(text.contains("/dev/gpiochip-does-not-exist"), "{text}");
        assert!(text.contains("hgpose doctor"), "{text}");
    }
}
