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

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::pose::{Keypoint, Pose};

/// Once a condition is on, its confidence threshold drops to this fraction of `min_confidence`.
pub const CONFIDENCE_RELEASE_FACTOR: f32 = 0.8;

/// Default `min_confidence` of every condition; the same as `infer --min-confidence`.
pub const DEFAULT_MIN_CONFIDENCE: f32 = 0.1;

/// Torso length estimated from the head (upper neck to head top) when thorax or pelvis is not
/// seen, as in a camera that shows only the upper body: adult proportions put sternum to pelvis
/// (about 50 cm) near 2.5 times chin to crown (about 20 cm).
pub const TORSO_PER_HEAD: f32 = 2.5;

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

/// Finds `name` if confident enough and at a finite place.
fn joint<'a>(pose: &'a Pose, name: &str, min_confidence: f32) -> Option<&'a Keypoint> {
    pose.keypoints
        .iter()
        .find(|k| k.name == name)
        .filter(|k| k.confidence >= min_confidence && k.x.is_finite() && k.y.is_finite())
}

fn distance(a: &Keypoint, b: &Keypoint) -> f32 {
    (a.x - b.x).hypot(a.y - b.y)
}

/// Torso length in pixels: thorax to pelvis, else [`TORSO_PER_HEAD`] times upper neck to head top.
fn torso_length(pose: &Pose, min_confidence: f32) -> Option<f32> {
    let pair = |a: &str, b: &str| {
        Some(distance(
            joint(pose, a, min_confidence)?,
            joint(pose, b, min_confidence)?,
        ))
        .filter(|d| *d > 0.0)
    };
    pair("thorax", "pelvis").or_else(|| pair("upper_neck", "head_top").map(|d| d * TORSO_PER_HEAD))
}

/// `margin` torso lengths in pixels; `None` when a non-zero margin cannot be measured.
fn margin_px(pose: &Pose, margin: f32, min_confidence: f32) -> Option<f32> {
    if margin == 0.0 {
        Some(0.0)
    } else {
        torso_length(pose, min_confidence).map(|t| t * margin)
    }
}

/// Whether `upper` is above `lower` (image y grows downward) by at least `margin` pixels.
fn above(upper: &Keypoint, lower: &Keypoint, margin: f32) -> bool {
    upper.y < lower.y - margin
}

impl Condition {
    /// Evaluates the condition. `was_true` is its previous result: a condition that was on uses
    /// the lower release threshold (see the module documentation).
    pub fn holds(&self, pose: &Pose, frame_w: u32, frame_h: u32, was_true: bool) -> bool {
        let threshold = |min: f32| {
            if was_true {
                min * CONFIDENCE_RELEASE_FACTOR
            } else {
                min
            }
        };
        match self {
            Condition::PersonPresent {
                min_confidence,
                min_joints,
            } => {
                let min = threshold(*min_confidence);
                let seen = pose
                    .keypoints
                    .iter()
                    .filter(|k| k.confidence >= min && k.x.is_finite() && k.y.is_finite())
                    .count();
                seen >= *min_joints
            }
            Condition::HandsAboveHead {
                margin,
                min_confidence,
            } => {
                let min = threshold(*min_confidence);
                let (Some(l), Some(r), Some(head), Some(m)) = (
                    joint(pose, "l_wrist", min),
                    joint(pose, "r_wrist", min),
                    joint(pose, "head_top", min),
                    margin_px(pose, *margin, min),
                ) else {
                    return false;
                };
                above(l, head, m) && above(r, head, m)
            }
            Condition::JointInZone {
                joint: name,
                zone,
                min_confidence,
            } => {
                if frame_w == 0 || frame_h == 0 {
                    return false;
                }
                let Some(k) = joint(pose, name, threshold(*min_confidence)) else {
                    return false;
                };
                let (fx, fy) = (k.x / frame_w as f32, k.y / frame_h as f32);
                let [x0, y0, x1, y1] = *zone;
                (x0..=x1).contains(&fx) && (y0..=y1).contains(&fy)
            }
            Condition::ArmRaised {
                side,
                margin,
                min_confidence,
            } => {
                let min = threshold(*min_confidence);
                let Some(m) = margin_px(pose, *margin, min) else {
                    return false;
                };
                let raised = |prefix: &str| match (
                    joint(pose, &format!("{prefix}_wrist"), min),
                    joint(pose, &format!("{prefix}_shoulder"), min),
                ) {
                    (Some(wrist), Some(shoulder)) => above(wrist, shoulder, m),
                    _ => false,
                };
                match side {
                    Side::Left => raised("l"),
                    Side::Right => raised("r"),
                    Side::Either => raised("l") || raised("r"),
                }
            }
        }
    }

    /// Checks the settings against the model's joint names; the error's key is relative to
    /// `when` (`zone`, `joint`, ...).
    fn validate(&self, joint_names: &[&str]) -> Result<(), (&'static str, String)> {
        let has = |n: &str| joint_names.contains(&n);
        let check_confidence = |v: f32| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err((
                    "min_confidence",
                    format!(
                        "must be a finite number >= 0 (e.g. {DEFAULT_MIN_CONFIDENCE}), got {v}"
                    ),
                ))
            }
        };
        let check_margin = |v: f32| {
            if v.is_finite() {
                Ok(())
            } else {
                Err((
                    "margin",
                    format!("must be a finite fraction of the torso length (e.g. 0.1), got {v}"),
                ))
            }
        };
        let need = |kind: &str, names: &[&str]| {
            let missing: Vec<&str> = names.iter().copied().filter(|n| !has(n)).collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err((
                    "kind",
                    format!(
                        "{kind} needs the joints {}, which this model does not name ({}); use \
                         person_present or joint_in_zone with a model that has them",
                        missing.join(", "),
                        joint_names.join(", ")
                    ),
                ))
            }
        };
        let need_scale = |kind: &str, margin: f32| {
            let measurable =
                (has("thorax") && has("pelvis")) || (has("upper_neck") && has("head_top"));
            if margin == 0.0 || measurable {
                Ok(())
            } else {
                Err((
                    "margin",
                    format!(
                        "{kind} measures its margin in torso lengths, but this model has neither \
                         thorax and pelvis nor upper_neck and head_top; set margin = 0"
                    ),
                ))
            }
        };
        match self {
            Condition::PersonPresent {
                min_confidence,
                min_joints,
            } => {
                check_confidence(*min_confidence)?;
                if *min_joints == 0 || *min_joints > joint_names.len() {
                    return Err((
                        "min_joints",
                        format!(
                            "must be between 1 and the model's {} joints, got {min_joints}",
                            joint_names.len()
                        ),
                    ));
                }
            }
            Condition::HandsAboveHead {
                margin,
                min_confidence,
            } => {
                check_confidence(*min_confidence)?;
                check_margin(*margin)?;
                need("hands_above_head", &["l_wrist", "r_wrist", "head_top"])?;
                need_scale("hands_above_head", *margin)?;
            }
            Condition::JointInZone {
                joint,
                zone,
                min_confidence,
            } => {
                check_confidence(*min_confidence)?;
                if !has(joint) {
                    return Err((
                        "joint",
                        format!(
                            "{joint:?} is not a joint of this model; use one of {}",
                            joint_names.join(", ")
                        ),
                    ));
                }
                let [x0, y0, x1, y1] = *zone;
                let in_unit = zone.iter().all(|v| (0.0..=1.0).contains(v));
                if !in_unit || x0 >= x1 || y0 >= y1 {
                    return Err((
                        "zone",
                        format!(
                            "must be [x0, y0, x1, y1] as fractions of the frame in [0, 1] with \
                             x0 < x1 and y0 < y1 (e.g. [0.0, 0.0, 0.5, 1.0] for the left half), \
                             got {zone:?}"
                        ),
                    ));
                }
            }
            Condition::ArmRaised {
                side,
                margin,
                min_confidence,
            } => {
                check_confidence(*min_confidence)?;
                check_margin(*margin)?;
                let joints: &[&str] = match side {
                    Side::Left => &["l_wrist", "l_shoulder"],
                    Side::Right => &["r_wrist", "r_shoulder"],
                    Side::Either => &["l_wrist", "l_shoulder", "r_wrist", "r_shoulder"],
                };
                need("arm_raised", joints)?;
                need_scale("arm_raised", *margin)?;
            }
        }
        Ok(())
    }
}

/// Checks every rule: settings in range, joints the model has, unique names, one rule per line.
/// The first mistake is returned with its key (`rules[2].when.zone`).
pub fn validate_rules<S: AsRef<str>>(
    rules: &[RuleConfig],
    joint_names: &[S],
) -> Result<(), RuleConfigError> {
    let names: Vec<&str> = joint_names.iter().map(AsRef::as_ref).collect();
    let err = |i: usize, key: &str, reason: String| RuleConfigError {
        key: format!("rules[{i}].{key}"),
        reason,
    };
    let mut seen_names: HashMap<&str, usize> = HashMap::new();
    let mut seen_lines: HashMap<(Option<&str>, u32), usize> = HashMap::new();
    for (i, rule) in rules.iter().enumerate() {
        if rule.name.trim().is_empty() {
            return Err(err(i, "name", "must not be empty; name the rule".into()));
        }
        if let Some(first) = seen_names.insert(&rule.name, i) {
            return Err(err(
                i,
                "name",
                format!(
                    "{:?} is already the name of rules[{first}]; give each rule its own name",
                    rule.name
                ),
            ));
        }
        if rule.chip.as_deref().is_some_and(|c| c.trim().is_empty()) {
            return Err(err(
                i,
                "chip",
                "must not be empty; give a path such as \"/dev/gpiochip0\" or leave it out".into(),
            ));
        }
        if let Some(first) = seen_lines.insert((rule.chip.as_deref(), rule.line), i) {
            return Err(err(
                i,
                "line",
                format!(
                    "line {} is already driven by rules[{first}]; two rules on one line would \
                     fight, give each its own line",
                    rule.line
                ),
            ));
        }
        match (rule.mode, rule.pulse_ms) {
            (OutputMode::Pulse, None | Some(0)) => {
                return Err(err(
                    i,
                    "pulse_ms",
                    "mode = \"pulse\" needs pulse_ms > 0 (e.g. 200)".into(),
                ))
            }
            (OutputMode::Level, Some(_)) => {
                return Err(err(
                    i,
                    "pulse_ms",
                    "only applies to mode = \"pulse\"; remove it or set mode = \"pulse\"".into(),
                ))
            }
            _ => {}
        }
        rule.when
            .validate(&names)
            .map_err(|(key, reason)| err(i, &format!("when.{key}"), reason))?;
    }
    Ok(())
}

/// What a line command is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandKind {
    /// The rule's output changed (fired or cleared; for pulses, the pulse started).
    Set,
    /// A pulse's time is up.
    PulseEnd,
}

/// Set `line` (on `chip`, or the default chip) to the physical `level` (after `active_low`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineCommand {
    pub rule: String,
    pub chip: Option<String>,
    pub line: u32,
    pub level: bool,
    pub kind: CommandKind,
}

/// A rule turning on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleChange {
    Fired,
    Cleared,
}

/// A rule's state change, for the per-frame JSON record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleEvent {
    pub rule: String,
    pub change: RuleChange,
    /// Milliseconds since start.
    pub at_ms: u64,
}

#[derive(Debug, Clone, Default)]
struct RuleState {
    /// The condition's last result (selects its confidence threshold).
    raw: bool,
    /// Fired and not yet cleared.
    active: bool,
    /// Since when the condition has differed from `active`.
    pending_since: Option<Duration>,
    /// When the running pulse ends.
    pulse_until: Option<Duration>,
}

/// Turns poses over time into line commands; see the module documentation.
#[derive(Debug, Clone)]
pub struct RuleEngine {
    rules: Vec<RuleConfig>,
    states: Vec<RuleState>,
    events: Vec<RuleEvent>,
}

impl RuleEngine {
    /// Validates `rules` against the model's joint names (see [`validate_rules`]).
    pub fn new<S: AsRef<str>>(
        rules: Vec<RuleConfig>,
        joint_names: &[S],
    ) -> Result<Self, RuleConfigError> {
        validate_rules(&rules, joint_names)?;
        let states = vec![RuleState::default(); rules.len()];
        Ok(RuleEngine {
            rules,
            states,
            events: Vec::new(),
        })
    }

    pub fn rules(&self) -> &[RuleConfig] {
        &self.rules
    }

    /// Every rule's line at its idle level: what to set the lines to at start and at exit.
    pub fn idle_commands(&self) -> Vec<LineCommand> {
        self.rules
            .iter()
            .map(|r| command(r, false, CommandKind::Set))
            .collect()
    }

    /// Takes this frame's pose (`None`: no detection) at `now` (time since start) and returns the
    /// line changes it causes; nothing when nothing changes.
    pub fn update(
        &mut self,
        pose: Option<&Pose>,
        frame_w: u32,
        frame_h: u32,
        now: Duration,
    ) -> Vec<LineCommand> {
        self.events.clear();
        let mut commands = Vec::new();
        for (rule, state) in self.rules.iter().zip(&mut self.states) {
            let raw = pose.is_some_and(|p| rule.when.holds(p, frame_w, frame_h, state.raw));
            state.raw = raw;

            if state.pulse_until.is_some_and(|end| now >= end) {
                state.pulse_until = None;
                commands.push(command(rule, false, CommandKind::PulseEnd));
            }

            if raw == state.active {
                state.pending_since = None;
                continue;
            }
            let since = *state.pending_since.get_or_insert(now);
            let wait = Duration::from_millis(if raw { rule.hold_ms } else { rule.release_ms });
            if now.saturating_sub(since) < wait {
                continue;
            }
            state.active = raw;
            state.pending_since = None;
            self.events.push(RuleEvent {
                rule: rule.name.clone(),
                change: if raw {
                    RuleChange::Fired
                } else {
                    RuleChange::Cleared
                },
                at_ms: u64::try_from(now.as_millis()).unwrap_or(u64::MAX),
            });
            tracing::debug!(rule = %rule.name, active = raw, "rule changed");
            match rule.mode {
                OutputMode::Level => commands.push(command(rule, raw, CommandKind::Set)),
                OutputMode::Pulse if raw => {
                    // Firing again while a pulse runs stretches it (the line is already high).
                    if state.pulse_until.is_none() {
                        commands.push(command(rule, true, CommandKind::Set));
                    }
                    let length = Duration::from_millis(rule.pulse_ms.unwrap_or(0));
                    state.pulse_until = Some(now.checked_add(length).unwrap_or(Duration::MAX));
                }
                OutputMode::Pulse => {}
            }
        }
        commands
    }

    /// Names of the rules that have fired and not cleared (for pulse rules too, whatever the
    /// pulse is doing).
    pub fn active_rules(&self) -> Vec<&str> {
        self.rules
            .iter()
            .zip(&self.states)
            .filter(|(_, s)| s.active)
            .map(|(r, _)| r.name.as_str())
            .collect()
    }

    /// The rules that fired or cleared in the latest [`update`](RuleEngine::update).
    pub fn events(&self) -> &[RuleEvent] {
        &self.events
    }
}

/// The command driving `rule`'s line to its logical `active` state.
fn command(rule: &RuleConfig, active: bool, kind: CommandKind) -> LineCommand {
    LineCommand {
        rule: rule.name.clone(),
        chip: rule.chip.clone(),
        line: rule.line,
        level: active != rule.active_low,
        kind,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::JointSet;

    const W: u32 = 640;
    const H: u32 = 480;

    fn names() -> Vec<String> {
        JointSet::mpii16().names
    }

    /// A person standing, facing the camera, arms down; all joints at confidence 0.9.
    /// Torso (thorax 130 -> pelvis 260) is 130 px; head top at y = 60.
    fn standing() -> Pose {
        let at = |name: &str| -> (f32, f32) {
            match name {
                "head_top" => (320.0, 60.0),
                "upper_neck" => (320.0, 110.0),
                "thorax" => (320.0, 130.0),
                "pelvis" => (320.0, 260.0),
                "r_shoulder" => (280.0, 135.0),
                "l_shoulder" => (360.0, 135.0),
                "r_elbow" => (270.0, 190.0),
                "l_elbow" => (370.0, 190.0),
                "r_wrist" => (265.0, 245.0),
                "l_wrist" => (375.0, 245.0),
                "r_hip" => (300.0, 260.0),
                "l_hip" => (340.0, 260.0),
                "r_knee" => (300.0, 350.0),
                "l_knee" => (340.0, 350.0),
                "r_ankle" => (300.0, 440.0),
                "l_ankle" => (340.0, 440.0),
                other => panic!("unknown joint {other}"),
            }
        };
        Pose {
            keypoints: names()
                .into_iter()
                .map(|name| {
                    let (x, y) = at(&name);
                    Keypoint {
                        name,
                        x,
                        y,
                        confidence: 0.9,
                    }
                })
                .collect(),
        }
    }

    fn with(mut pose: Pose, name: &str, x: f32, y: f32, confidence: f32) -> Pose {
        let k = pose
            .keypoints
            .iter_mut()
            .find(|k| k.name == name)
            .expect("joint exists");
        (k.x, k.y, k.confidence) = (x, y, confidence);
        pose
    }

    fn hands_up(y: f32) -> Pose {
        let p = with(standing(), "l_wrist", 350.0, y, 0.9);
        with(p, "r_wrist", 290.0, y, 0.9)
    }

    fn rule(name: &str, when: Condition) -> RuleConfig {
        RuleConfig {
            name: name.into(),
            when,
            line: 17,
            chip: None,
            hold_ms: 0,
            release_ms: 0,
            mode: OutputMode::Level,
            pulse_ms: None,
            active_low: false,
        }
    }

    fn present() -> Condition {
        Condition::PersonPresent {
            min_confidence: 0.5,
            min_joints: 4,
        }
    }

    fn engine(rules: Vec<RuleConfig>) -> RuleEngine {
        RuleEngine::new(rules, &names()).expect("valid rules")
    }

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn holds(c: &Condition, p: &Pose) -> bool {
        c.holds(p, W, H, false)
    }

    #[test]
    fn fires_only_after_hold_ms_and_a_gap_restarts_the_hold() {
        let mut e = engine(vec![RuleConfig {
            hold_ms: 500,
            ..rule("p", present())
        }]);
        let p = standing();
        for t in (0..500).step_by(100) {
            assert!(
                e.update(Some(&p), W, H, ms(t)).is_empty(),
                "fired early at {t}"
            );
        }
        let out = e.update(Some(&p), W, H, ms(500));
        assert_eq!(out.len(), 1);
        assert!(out[0].level && out[0].kind == CommandKind::Set);
        assert_eq!(e.active_rules(), vec!["p"]);
        assert_eq!(e.events()[0].change, RuleChange::Fired);
        assert_eq!(e.events()[0].at_ms, 500);
        // Still true: no repeated command.
        assert!(e.update(Some(&p), W, H, ms(600)).is_empty());

        let mut e = engine(vec![RuleConfig {
            hold_ms: 500,
            ..rule("p", present())
        }]);
        for t in [0, 100, 200, 300] {
            e.update(Some(&p), W, H, ms(t));
        }
        e.update(None, W, H, ms(400)); // gap
        for t in [500, 600, 700, 800, 900] {
            assert!(
                e.update(Some(&p), W, H, ms(t)).is_empty(),
                "hold not restarted at {t}"
            );
        }
        assert_eq!(e.update(Some(&p), W, H, ms(1000)).len(), 1);
    }

    #[test]
    fn clears_only_after_release_ms_of_falsehood() {
        let mut e = engine(vec![RuleConfig {
            release_ms: 300,
            ..rule("p", present())
        }]);
        let p = standing();
        assert_eq!(e.update(Some(&p), W, H, ms(0)).len(), 1);
        // A short dropout does not clear it.
        assert!(e.update(None, W, H, ms(100)).is_empty());
        assert!(e.update(None, W, H, ms(300)).is_empty());
        assert!(e.update(Some(&p), W, H, ms(400)).is_empty());
        assert_eq!(e.active_rules(), vec!["p"]);
        // A long one does, 300 ms after it began.
        assert!(e.update(None, W, H, ms(500)).is_empty());
        assert!(e.update(None, W, H, ms(700)).is_empty());
        let out = e.update(None, W, H, ms(800));
        assert_eq!(out.len(), 1);
        assert!(!out[0].level);
        assert!(e.active_rules().is_empty());
        assert_eq!(e.events()[0].change, RuleChange::Cleared);
    }

    #[test]
    fn confidence_hysteresis_keeps_a_hovering_joint_on() {
        let c = Condition::JointInZone {
            joint: "l_wrist".into(),
            zone: [0.0, 0.0, 1.0, 1.0],
            min_confidence: 0.5,
        };
        let mut e = engine(vec![rule("z", c)]);
        let conf = |v: f32| with(standing(), "l_wrist", 375.0, 245.0, v);
        let steps = [
            (0.45, false, "below the on threshold"),
            (0.50, true, "reaches min_confidence"),
            (0.45, true, "above 0.8 x min stays on"),
            (0.41, true, "still above 0.4"),
            (0.39, false, "below 0.8 x min turns off"),
            (0.45, false, "must reach min_confidence again"),
            (0.55, true, "on again"),
        ];
        for (i, (c, want, why)) in steps.into_iter().enumerate() {
            e.update(Some(&conf(c)), W, H, ms(i as u64 * 100));
            assert_eq!(!e.active_rules().is_empty(), want, "confidence {c}: {why}");
        }
    }

    #[test]
    fn pulse_mode_pulses_once_per_firing() {
        let mut e = engine(vec![RuleConfig {
            mode: OutputMode::Pulse,
            pulse_ms: Some(200),
            ..rule("p", present())
        }]);
        let p = standing();
        let out = e.update(Some(&p), W, H, ms(1000));
        assert_eq!(out.len(), 1);
        assert!(out[0].level && out[0].kind == CommandKind::Set);
        assert!(
            e.update(Some(&p), W, H, ms(1100)).is_empty(),
            "pulse still running"
        );
        let out = e.update(Some(&p), W, H, ms(1200));
        assert_eq!(out.len(), 1);
        assert!(!out[0].level && out[0].kind == CommandKind::PulseEnd);
        // Condition still true: no second pulse; clearing sends nothing.
        assert!(e.update(Some(&p), W, H, ms(1500)).is_empty());
        assert!(e.update(None, W, H, ms(1600)).is_empty());
        assert!(e.active_rules().is_empty());
        // Firing again: a new pulse.
        let out = e.update(Some(&p), W, H, ms(1700));
        assert_eq!(out.len(), 1);
        assert!(out[0].level);
    }

    #[test]
    fn active_low_inverts_the_physical_level() {
        let mut e = engine(vec![RuleConfig {
            active_low: true,
            chip: Some("/dev/gpiochip1".into()),
            line: 5,
            ..rule("p", present())
        }]);
        let idle = e.idle_commands();
        assert!(idle[0].level, "idle active-low line is high");
        let on = e.update(Some(&standing()), W, H, ms(0));
        assert_eq!(
            on,
            vec![LineCommand {
                rule: "p".into(),
                chip: Some("/dev/gpiochip1".into()),
                line: 5,
                level: false,
                kind: CommandKind::Set,
            }]
        );
        let off = e.update(None, W, H, ms(100));
        assert!(off[0].level);
    }

    #[test]
    fn zone_geometry_uses_frame_fractions() {
        let zone = |x0, y0, x1, y1| Condition::JointInZone {
            joint: "l_wrist".into(),
            zone: [x0, y0, x1, y1],
            min_confidence: 0.5,
        };
        // l_wrist at (375, 245) in 640x480: (0.586, 0.510).
        let p = standing();
        assert!(holds(&zone(0.5, 0.5, 0.6, 0.6), &p));
        assert!(!holds(&zone(0.0, 0.0, 0.5, 1.0), &p), "left half");
        assert!(!holds(&zone(0.5, 0.0, 1.0, 0.5), &p), "top half");
        assert!(holds(&zone(0.5, 0.5, 1.0, 1.0), &p), "bottom-right quarter");
        // Same pixel, a frame twice as wide: now in the left half.
        assert!(zone(0.0, 0.0, 0.5, 1.0).holds(&p, 2 * W, H, false));
        // Edges count as inside.
        let edge = with(standing(), "l_wrist", 320.0, 240.0, 0.9);
        assert!(holds(&zone(0.5, 0.5, 1.0, 1.0), &edge));
        assert!(holds(&zone(0.0, 0.0, 0.5, 0.5), &edge));
        // A low-confidence joint is nowhere.
        let faint = with(standing(), "l_wrist", 375.0, 245.0, 0.2);
        assert!(!holds(&zone(0.0, 0.0, 1.0, 1.0), &faint));
        assert!(!zone(0.0, 0.0, 1.0, 1.0).holds(&p, 0, 0, false));
    }

    #[test]
    fn hands_above_head_cases() {
        let c = |margin| Condition::HandsAboveHead {
            margin,
            min_confidence: 0.5,
        };
        // Head top at 60, torso 130 px: margin 0.1 puts the line at 47.
        assert!(!holds(&c(0.1), &standing()), "arms down");
        assert!(holds(&c(0.1), &hands_up(30.0)), "both hands well above");
        assert!(
            !holds(&c(0.1), &hands_up(50.0)),
            "above the head but within the margin"
        );
        assert!(holds(&c(0.0), &hands_up(50.0)), "no margin");
        let one = with(standing(), "l_wrist", 350.0, 30.0, 0.9);
        assert!(!holds(&c(0.1), &one), "only one hand up");
        let faint = with(hands_up(30.0), "r_wrist", 290.0, 30.0, 0.1);
        assert!(!holds(&c(0.1), &faint), "a wrist below min_confidence");
        // No pelvis seen: the torso comes from the head (50 px x 2.5 = 125 px, line at 47.5).
        let upper_body = with(hands_up(45.0), "pelvis", 320.0, 260.0, 0.0);
        assert!(holds(&c(0.1), &upper_body));
        let upper_body = with(hands_up(49.0), "pelvis", 320.0, 260.0, 0.0);
        assert!(!holds(&c(0.1), &upper_body));
        // Nothing to measure the torso with: a non-zero margin cannot hold.
        let blind = with(
            with(hands_up(30.0), "pelvis", 0.0, 0.0, 0.0),
            "upper_neck",
            0.0,
            0.0,
            0.0,
        );
        assert!(!holds(&c(0.1), &blind));
        assert!(holds(&c(0.0), &blind));
    }

    #[test]
    fn arm_raised_follows_the_persons_side() {
        let c = |side| Condition::ArmRaised {
            side,
            margin: 0.1,
            min_confidence: 0.5,
        };
        // Shoulders at 135, margin 13 px: a wrist at 100 is raised.
        let left_up = with(standing(), "l_wrist", 380.0, 100.0, 0.9);
        assert!(holds(&c(Side::Left), &left_up));
        assert!(!holds(&c(Side::Right), &left_up));
        assert!(holds(&c(Side::Either), &left_up));
        assert!(!holds(&c(Side::Either), &standing()));
        let barely = with(standing(), "r_wrist", 260.0, 130.0, 0.9);
        assert!(!holds(&c(Side::Right), &barely), "within the margin");
    }

    #[test]
    fn no_pose_is_a_false_condition() {
        let mut e = engine(vec![rule("p", present())]);
        e.update(Some(&standing()), W, H, ms(0));
        let out = e.update(None, W, H, ms(10));
        assert_eq!(out.len(), 1);
        assert!(!out[0].level);
        let mut few = standing();
        for k in &mut few.keypoints[3..] {
            k.confidence = 0.0;
        }
        let c = present();
        assert!(!holds(&c, &few), "3 joints < min_joints 4");
    }

    fn first_error(rules: Vec<RuleConfig>) -> RuleConfigError {
        RuleEngine::new(rules, &names()).expect_err("invalid rules must be refused")
    }

    #[test]
    fn validation_names_the_rule_and_key() {
        let ok = rule("ok", present());
        let zone = |zone| Condition::JointInZone {
            joint: "l_wrist".into(),
            zone,
            min_confidence: 0.5,
        };
        let e = first_error(vec![
            ok.clone(),
            RuleConfig {
                line: 18,
                ..rule("z", zone([0.6, 0.0, 0.4, 1.0]))
            },
        ]);
        assert_eq!(e.key, "rules[1].when.zone");
        let e = first_error(vec![rule("z", zone([0.0, 0.0, 1.5, 1.0]))]);
        assert_eq!(e.key, "rules[0].when.zone");

        let bad_joint = Condition::JointInZone {
            joint: "left_wrist".into(),
            zone: [0.0, 0.0, 1.0, 1.0],
            min_confidence: 0.5,
        };
        let e = first_error(vec![rule("j", bad_joint)]);
        assert_eq!(e.key, "rules[0].when.joint");
        assert!(e.reason.contains("l_wrist"), "lists the real names: {e}");

        let e = first_error(vec![
            ok.clone(),
            RuleConfig {
                line: 18,
                ..ok.clone()
            },
        ]);
        assert_eq!(e.key, "rules[1].name");

        let e = first_error(vec![ok.clone(), rule("other", present())]);
        assert_eq!(e.key, "rules[1].line", "same line twice");

        let e = first_error(vec![RuleConfig {
            mode: OutputMode::Pulse,
            ..ok.clone()
        }]);
        assert_eq!(e.key, "rules[0].pulse_ms");
        let e = first_error(vec![RuleConfig {
            mode: OutputMode::Pulse,
            pulse_ms: Some(0),
            ..ok.clone()
        }]);
        assert_eq!(e.key, "rules[0].pulse_ms");
        let e = first_error(vec![RuleConfig {
            pulse_ms: Some(100),
            ..ok.clone()
        }]);
        assert_eq!(e.key, "rules[0].pulse_ms");

        let e = first_error(vec![rule(
            "c",
            Condition::PersonPresent {
                min_confidence: -1.0,
                min_joints: 4,
            },
        )]);
        assert_eq!(e.key, "rules[0].when.min_confidence");
        let e = first_error(vec![rule(
            "c",
            Condition::PersonPresent {
                min_confidence: 0.5,
                min_joints: 17,
            },
        )]);
        assert_eq!(e.key, "rules[0].when.min_joints");

        // A model without MPII names cannot watch hands.
        let hands = rule(
            "h",
            Condition::HandsAboveHead {
                margin: 0.1,
                min_confidence: 0.5,
            },
        );
        let custom = JointSet::unnamed(16).names;
        let e = RuleEngine::new(vec![hands], &custom).unwrap_err();
        assert_eq!(e.key, "rules[0].when.kind");
        assert!(e.reason.contains("l_wrist"), "{e}");

        let as_error = e.into_error("boards/pi.toml").to_string();
        assert!(as_error.contains("boards/pi.toml") && as_error.contains("rules[0].when.kind"));
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Board {
        rules: Vec<RuleConfig>,
    }

    #[test]
    fn rules_parse_from_board_toml() {
        let text = r#"
            [[rules]]
            name = "hands_up"
            line = 17
            chip = "/dev/gpiochip0"
            hold_ms = 500
            release_ms = 1000
            mode = "pulse"
            pulse_ms = 200
            when = { kind = "hands_above_head", margin = 0.2, min_confidence = 0.3 }

            [[rules]]
            name = "at_door"
            line = 27
            active_low = true
            [rules.when]
            kind = "joint_in_zone"
            joint = "l_wrist"
            zone = [0.0, 0.0, 0.25, 1.0]

            [[rules]]
            name = "wave"
            line = 22
            when = { kind = "arm_raised", side = "left" }

            [[rules]]
            name = "someone"
            line = 23
            when = { kind = "person_present" }
        "#;
        let board: Board = toml::from_str(text).expect("parses");
        let r = &board.rules;
        assert_eq!(r.len(), 4);
        assert_eq!(r[0].mode, OutputMode::Pulse);
        assert_eq!(r[0].pulse_ms, Some(200));
        assert_eq!(
            r[0].when,
            Condition::HandsAboveHead {
                margin: 0.2,
                min_confidence: 0.3
            }
        );
        assert!(r[1].active_low && r[1].chip.is_none() && r[1].mode == OutputMode::Level);
        assert_eq!(
            r[1].when,
            Condition::JointInZone {
                joint: "l_wrist".into(),
                zone: [0.0, 0.0, 0.25, 1.0],
                min_confidence: DEFAULT_MIN_CONFIDENCE
            }
        );
        assert_eq!(
            r[2].when,
            Condition::ArmRaised {
                side: Side::Left,
                margin: 0.1,
                min_confidence: DEFAULT_MIN_CONFIDENCE
            }
        );
        assert_eq!(
            r[3].when,
            Condition::PersonPresent {
                min_confidence: DEFAULT_MIN_CONFIDENCE,
                min_joints: 4
            }
        );
        RuleEngine::new(board.rules, &names()).expect("valid");
    }

    #[test]
    fn unknown_keys_and_kinds_are_refused() {
        let unknown_rule_key = r#"
            [[rules]]
            name = "a"
            line = 1
            hold = 5
            when = { kind = "person_present" }
        "#;
        let e = toml::from_str::<Board>(unknown_rule_key).err().unwrap();
        assert!(e.to_string().contains("hold"), "{e}");
        let unknown_condition_key = r#"
            [[rules]]
            name = "a"
            line = 1
            when = { kind = "person_present", min_joint = 3 }
        "#;
        let e = toml::from_str::<Board>(unknown_condition_key)
            .err()
            .unwrap();
        assert!(e.to_string().contains("min_joint"), "{e}");
        let unknown_kind = r#"
            [[rules]]
            name = "a"
            line = 1
            when = { kind = "jumping" }
        "#;
        let e = toml::from_str::<Board>(unknown_kind).err().unwrap();
        assert!(e.to_string().contains("jumping"), "{e}");
    }
}
