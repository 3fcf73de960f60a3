use super::*;
use crate::model::JointSet;
use crate::pose::{Keypoint, Pose};
use serde::Deserialize;
use std::time::Duration;

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
