//! The rules over time: the hold and release hysteresis, pulses, and the line commands and
//! events they produce.

use std::time::Duration;

use serde::Serialize;

use super::{validate_rules, OutputMode, RuleConfig, RuleConfigError};
use crate::pose::Pose;

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
