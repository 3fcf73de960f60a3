//! GPIO output lines driven by the pose rules, through the Linux GPIO character device
//! (linux-embedded-hal's `CdevPin`, i.e. the embedded-hal `OutputPin` trait on /dev/gpiochipN).
//!
//! Every line a rule names is requested once at start-up, so a wrong chip or line number fails
//! before the first frame, not at the moment a rule fires. Lines start inactive.

use embedded_hal::digital::{OutputPin, PinState};
use linux_embedded_hal::CdevPin;
use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::outputs::rules::LineCommand;
use crate::outputs::sink::{Flow, FrameOutput, Sink};
use crate::platform::gpio::request_output;

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

/// The node's `gpio` output: the rule lines, set to what the rules decided on each frame and
/// returned to their idle levels when the run ends (not left wherever the last rule put them).
pub struct RuleLines {
    lines: GpioOutputs,
    idle: Vec<LineCommand>,
}

impl RuleLines {
    /// `idle`: every rule's line at its idle level (`RuleEngine::idle_commands`).
    pub fn new(lines: GpioOutputs, idle: Vec<LineCommand>) -> Self {
        RuleLines { lines, idle }
    }
}

impl Sink for RuleLines {
    fn name(&self) -> &str {
        "gpio"
    }

    fn publish(&mut self, frame: &FrameOutput<'_>) -> Result<Flow> {
        self.lines.apply(frame.commands).map(|()| Flow::Continue)
    }

    fn finish(&mut self) -> Result<()> {
        self.lines.apply(&self.idle)
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
