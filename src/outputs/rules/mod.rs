//! GPIO pose rules: "when this pose condition holds, drive that line". Pure logic: this module
//! decides levels from poses and time; `outputs::gpio` sets the lines.
//!
//! A board file lists rules as `[[rules]]` tables:
//!
//! ```toml
//! [[rules]]
//! name = "hands_up"
//! line = 17                 # GPIO line offset on the chip
//! chip = "/dev/gpiochip0"   # optional: the board's default chip otherwise
//! hold_ms = 500             # the condition must hold this long before the rule fires
//! release_ms = 1000         # and be false this long before it clears
//! mode = "pulse"            # "level" (default): high while active; "pulse": one pulse per firing
//! pulse_ms = 200
//! active_low = false
//! when = { kind = "hands_above_head", margin = 0.1, min_confidence = 0.3 }
//!
//! [[rules]]
//! name = "at_door"
//! line = 27
//! [rules.when]
//! kind = "joint_in_zone"
//! joint = "l_wrist"
//! zone = [0.0, 0.0, 0.25, 1.0]   # x0, y0, x1, y1 as fractions of the frame
//! ```
//!
//! Two kinds of hysteresis keep lines from chattering. In time: a rule fires only after its
//! condition has held for `hold_ms` without a break, and clears only after it has been false for
//! `release_ms`. In confidence: a condition with a `min_confidence` turns on when its joints reach
//! `min_confidence` but, once on, stays on until they drop below
//! `min_confidence * CONFIDENCE_RELEASE_FACTOR` (0.8), so a joint hovering at the threshold does not
//! flicker.
//!
//! One job per file: `config.rs` (what a board file says), `validate.rs` (checked before the
//! first frame), `condition.rs` (a condition on one pose, with the confidence hysteresis) and
//! `engine.rs` (the time hysteresis, pulses, line commands).

mod condition;
mod config;
mod engine;
mod validate;

pub use config::{Condition, OutputMode, RuleConfig, RuleConfigError, Side};
pub use engine::{CommandKind, LineCommand, RuleChange, RuleEngine, RuleEvent};
pub use validate::validate_rules;

/// Once a condition is on, its confidence threshold drops to this fraction of `min_confidence`.
pub const CONFIDENCE_RELEASE_FACTOR: f32 = 0.8;

/// Default `min_confidence` of every condition; the same as `infer --min-confidence`.
pub const DEFAULT_MIN_CONFIDENCE: f32 = 0.1;

/// Torso length estimated from the head (upper neck to head top) when thorax or pelvis is not
/// seen, as in a camera that shows only the upper body: adult proportions put sternum to pelvis
/// (about 50 cm) near 2.5 times chin to crown (about 20 cm).
pub const TORSO_PER_HEAD: f32 = 2.5;

#[cfg(test)]
mod tests;
