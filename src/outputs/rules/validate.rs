//! Checking rules before the first frame: settings in range, joints the model has, unique names,
//! one rule per line.

use std::collections::HashMap;

use super::{Condition, OutputMode, RuleConfig, RuleConfigError, Side, DEFAULT_MIN_CONFIDENCE};

impl Condition {
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
