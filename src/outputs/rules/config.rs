//! What a board file says: the `[[rules]]` tables and the conditions they watch, as serde reads
//! them, and the error that names a mistake by its key.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

use super::DEFAULT_MIN_CONFIDENCE;
use crate::error::Error;

fn default_min_confidence() -> f32 {
    DEFAULT_MIN_CONFIDENCE
}

fn default_min_joints() -> usize {
    4
}

fn default_margin() -> f32 {
    0.1
}

/// Which arm `arm_raised` looks at: the person's own side, as the MPII `l_`/`r_` joints are
/// labelled (a person facing the camera has their left arm on the image's right).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Left,
    Right,
    #[default]
    Either,
}

/// What a rule watches. `kind` selects the condition; the other keys are its settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    /// At least `min_joints` joints reach `min_confidence`.
    PersonPresent {
        #[serde(default = "default_min_confidence")]
        min_confidence: f32,
        #[serde(default = "default_min_joints")]
        min_joints: usize,
    },
    /// Both wrists above the head top by `margin` torso lengths (0 = just above; negative lets
    /// the wrists sit that far below it). Needs both wrists and the head top confident, and, for a
    /// non-zero margin, thorax and pelvis or the upper neck to measure the torso.
    HandsAboveHead {
        #[serde(default = "default_margin")]
        margin: f32,
        #[serde(default = "default_min_confidence")]
        min_confidence: f32,
    },
    /// `joint` lies in `zone` = `[x0, y0, x1, y1]`, fractions of the frame (0,0 top-left, edges
    /// included).
    JointInZone {
        joint: String,
        zone: [f32; 4],
        #[serde(default = "default_min_confidence")]
        min_confidence: f32,
    },
    /// A wrist above its shoulder by `margin` torso lengths, on `side` (default `either`).
    ArmRaised {
        #[serde(default)]
        side: Side,
        #[serde(default = "default_margin")]
        margin: f32,
        #[serde(default = "default_min_confidence")]
        min_confidence: f32,
    },
}

/// How a rule drives its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputMode {
    /// Active while the rule is active.
    #[default]
    Level,
    /// One `pulse_ms` pulse each time the rule fires.
    Pulse,
}

/// One `[[rules]]` table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub name: String,
    pub when: Condition,
    /// GPIO line offset on the chip.
    pub line: u32,
    /// GPIO chip path; the board's default chip when absent.
    #[serde(default)]
    pub chip: Option<String>,
    #[serde(default)]
    pub hold_ms: u64,
    #[serde(default)]
    pub release_ms: u64,
    #[serde(default)]
    pub mode: OutputMode,
    /// Pulse length; required for `mode = "pulse"`, refused otherwise.
    #[serde(default)]
    pub pulse_ms: Option<u64>,
    /// The line is driven low when active (and high when idle).
    #[serde(default)]
    pub active_low: bool,
}

/// A configuration mistake: `key` says where (`rules[2].when.zone`), `reason` what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleConfigError {
    pub key: String,
    pub reason: String,
}

impl fmt::Display for RuleConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.reason)
    }
}

impl std::error::Error for RuleConfigError {}

impl RuleConfigError {
    /// The crate error for the board file at `path`.
    pub fn into_error(self, path: impl Into<PathBuf>) -> Error {
        Error::Config {
            path: path.into(),
            key: self.key,
            reason: self.reason,
        }
    }
}
