//! Keypoint smoothing with the One-Euro filter (Casiez, Roussel, Vogel, CHI 2012).
//!
//! Decoded joints jitter by a few pixels from frame to frame even when the person stands still
//! (heatmap peaks move by whole heatmap cells). A fixed low-pass filter removes the jitter but makes
//! fast moves lag; the One-Euro filter adapts its cutoff to the speed: slow signals are smoothed
//! hard, fast ones are followed closely. Each step is an exponential smoothing
//! `x̂ = x̂_prev + α (x − x̂_prev)` with `α = 1 / (1 + τ/Δt)`, `τ = 1 / (2π f_c)` and
//! `f_c = min_cutoff + beta · |ẋ̂|`, where `ẋ̂` is the speed, itself smoothed at `d_cutoff`.
//! Because `0 < α ≤ 1` every step moves toward the input without passing it: no overshoot.

use serde::Deserialize;

use super::{Keypoint, Pose};

/// One-Euro parameters, shared by every coordinate of every joint.
///
/// The defaults are chosen for joint coordinates in frame pixels at 5-30 frames per second:
///
/// - `min_cutoff = 1.0` Hz: at rest the smoothing factor is 0.17 at 30 fps, 0.39 at 10 fps and
///   0.56 at 5 fps, which cuts the spread of frame-to-frame jitter to about 0.3x, 0.5x and 0.6x
///   of its raw size, while a joint that stops settles within about half a second (time constant
///   0.16 s). Lower values smooth more but make slow moves visibly late.
/// - `beta = 0.01` per pixel: a joint moving at 100 px/s (a slow arm move at 640x480) raises the
///   cutoff to 2 Hz, one crossing a 640-pixel frame in a second raises it to about 7 Hz, where the
///   filter follows within a frame or two. Jitter of a few pixels per frame, once its speed is
///   smoothed, raises the cutoff by only a fraction of a hertz. `beta` is per pixel, so scale it
///   inversely with the frame size (half for 1280x960).
/// - `d_cutoff = 1.0` Hz: the value the paper recommends for the speed estimate.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OneEuroParams {
    /// Off: keypoints go out as the network gave them.
    pub enabled: bool,
    /// Cutoff frequency at rest, in hertz: lower removes more jitter and lags more.
    pub min_cutoff: f32,
    /// How fast the cutoff rises with speed, in hertz per (pixel per second): higher lags less on
    /// fast moves. 0 makes the filter a plain low-pass at `min_cutoff`.
    pub beta: f32,
    /// Cutoff frequency for the speed estimate, in hertz.
    pub d_cutoff: f32,
}

impl Default for OneEuroParams {
    fn default() -> Self {
        OneEuroParams {
            enabled: true,
            min_cutoff: 1.0,
            beta: 0.01,
            d_cutoff: 1.0,
        }
    }
}

impl OneEuroParams {
    /// Checks every value is usable; the message names the field and the accepted range.
    ///
    /// `beta` may be 0 (a plain low-pass, as the paper's tuning procedure starts); the cutoffs must
    /// be positive, since a zero cutoff would freeze the output.
    pub fn validate(&self) -> Result<(), String> {
        let positive = |name: &str, v: f32| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(format!(
                    "{name} must be a positive number of hertz (e.g. 1.0), got {v}"
                ))
            }
        };
        positive("min_cutoff", self.min_cutoff)?;
        positive("d_cutoff", self.d_cutoff)?;
        if !(self.beta.is_finite() && self.beta >= 0.0) {
            return Err(format!(
                "beta must be a finite number >= 0 (e.g. 0.01), got {}",
                self.beta
            ));
        }
        Ok(())
    }
}

/// Smoothing factor of an exponential filter with cutoff `cutoff` Hz sampled every `dt` s.
fn alpha(cutoff: f64, dt: f64) -> f64 {
    let tau = 1.0 / (2.0 * std::f64::consts::PI * cutoff);
    1.0 / (1.0 + tau / dt)
}

/// Filter state once the first sample has been seen.
#[derive(Debug, Clone, Copy)]
struct State {
    value: f64,
    speed: f64,
    t: f64,
}

/// A One-Euro filter for one scalar signal. Computes in f64 so long runs (large timestamps) keep
/// their precision.
#[derive(Debug, Clone)]
pub struct OneEuroFilter {
    params: OneEuroParams,
    state: Option<State>,
}

impl OneEuroFilter {
    pub fn new(params: OneEuroParams) -> Self {
        OneEuroFilter {
            params,
            state: None,
        }
    }

    /// Filters `value` sampled at `t_seconds`. The first sample (and the first after [`reset`])
    /// is returned as is. A sample whose time is not after the previous one (`dt <= 0`), or a
    /// non-finite value or time, leaves the state alone and returns the previous output.
    ///
    /// [`reset`]: OneEuroFilter::reset
    pub fn filter(&mut self, value: f32, t_seconds: f64) -> f32 {
        let x = f64::from(value);
        let Some(prev) = self.state else {
            if x.is_finite() && t_seconds.is_finite() {
                self.state = Some(State {
                    value: x,
                    speed: 0.0,
                    t: t_seconds,
                });
            }
            return value;
        };
        let dt = t_seconds - prev.t;
        if !(x.is_finite() && dt.is_finite() && dt > 0.0) {
            return prev.value as f32;
        }
        let p = &self.params;
        let raw_speed = (x - prev.value) / dt;
        let speed = prev.speed + alpha(f64::from(p.d_cutoff), dt) * (raw_speed - prev.speed);
        let cutoff = f64::from(p.min_cutoff) + f64::from(p.beta) * speed.abs();
        let smoothed = prev.value + alpha(cutoff, dt) * (x - prev.value);
        self.state = Some(State {
            value: smoothed,
            speed,
            t: t_seconds,
        });
        smoothed as f32
    }

    /// Forgets the past: the next sample starts the filter afresh.
    pub fn reset(&mut self) {
        self.state = None;
    }

    /// Whether the filter has a previous sample.
    pub fn is_primed(&self) -> bool {
        self.state.is_some()
    }
}

/// The x and y filters of one joint, with the name they belong to.
#[derive(Debug, Clone)]
struct JointFilters {
    name: String,
    x: OneEuroFilter,
    y: OneEuroFilter,
}

/// Smooths whole poses: one x and one y filter per joint, matched by joint name.
///
/// A joint below `min_confidence` is passed through unfiltered and its filters are reset, so when
/// it is seen again it starts where it is instead of gliding in from where it was last seen.
#[derive(Debug, Clone)]
pub struct PoseSmoother {
    params: OneEuroParams,
    /// Joints below this confidence are not smoothed (and restart their filters).
    pub min_confidence: f32,
    joints: Vec<JointFilters>,
}

impl PoseSmoother {
    pub fn new(params: OneEuroParams, min_confidence: f32) -> Self {
        PoseSmoother {
            params,
            min_confidence,
            joints: Vec::new(),
        }
    }

    /// Returns `pose` with the x, y of its confident joints smoothed; names and confidences are
    /// kept. `t_seconds` is the frame's capture time (monotonic).
    pub fn smooth(&mut self, pose: &Pose, t_seconds: f64) -> Pose {
        let same_joints = self.joints.len() == pose.keypoints.len()
            && self
                .joints
                .iter()
                .zip(&pose.keypoints)
                .all(|(j, k)| j.name == k.name);
        if !same_joints {
            // A different joint set (new model): start over rather than mix up joints.
            self.joints = pose
                .keypoints
                .iter()
                .map(|k| JointFilters {
                    name: k.name.clone(),
                    x: OneEuroFilter::new(self.params),
                    y: OneEuroFilter::new(self.params),
                })
                .collect();
        }
        let keypoints = pose
            .keypoints
            .iter()
            .zip(&mut self.joints)
            .map(|(k, f)| {
                let seen =
                    k.confidence >= self.min_confidence && k.x.is_finite() && k.y.is_finite();
                if !seen {
                    f.x.reset();
                    f.y.reset();
                    return k.clone();
                }
                Keypoint {
                    name: k.name.clone(),
                    x: f.x.filter(k.x, t_seconds),
                    y: f.y.filter(k.y, t_seconds),
                    confidence: k.confidence,
                }
            })
            .collect();
        Pose { keypoints }
    }

    /// Forgets every joint's past, e.g. when the tracker lost the person.
    pub fn reset(&mut self) {
        for f in &mut self.joints {
            f.x.reset();
            f.y.reset();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Minimal linear congruential generator (Numerical Recipes constants) for repeatable noise.
    struct Lcg(u32);

    impl Lcg {
        /// Uniform in [-1, 1).
        fn next(&mut self) -> f32 {
            self.0 = self.0.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (self.0 >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        }
    }

    fn variance(v: &[f32]) -> f32 {
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / v.len() as f32
    }

    #[test]
    fn a_constant_signal_stays_constant() {
        let mut f = OneEuroFilter::new(OneEuroParams::default());
        for i in 0..200 {
            let out = f.filter(123.25, i as f64 / 30.0);
            assert!((out - 123.25).abs() < 1e-4, "frame {i}: {out}");
        }
    }

    #[test]
    fn a_step_converges_monotonically_without_overshoot() {
        let mut f = OneEuroFilter::new(OneEuroParams::default());
        let fps = 10.0;
        for i in 0..10 {
            f.filter(0.0, i as f64 / fps);
        }
        let mut prev = 0.0f32;
        let mut last = 0.0;
        for i in 10..60 {
            let out = f.filter(100.0, i as f64 / fps);
            assert!(out >= prev, "frame {i}: {out} went back from {prev}");
            assert!(out <= 100.0, "frame {i}: {out} overshoots 100");
            prev = out;
            last = out;
        }
        assert!(
            last > 99.0,
            "after 5 s the step must be nearly reached, got {last}"
        );
        // And it is smoothed, not passed straight through.
        let mut g = OneEuroFilter::new(OneEuroParams::default());
        g.filter(0.0, 0.0);
        let first = g.filter(100.0, 0.1);
        assert!(first > 0.0 && first < 100.0, "{first}");
    }

    #[test]
    fn jitter_at_rest_is_strongly_reduced() {
        let mut rng = Lcg(42);
        let mut f = OneEuroFilter::new(OneEuroParams::default());
        let (mut raw, mut out) = (Vec::new(), Vec::new());
        for i in 0..600 {
            let x = 200.0 + 4.0 * rng.next();
            let y = f.filter(x, i as f64 / 30.0);
            if i >= 60 {
                raw.push(x);
                out.push(y);
            }
        }
        let (vr, vo) = (variance(&raw), variance(&out));
        assert!(
            vr > 4.0,
            "noise too small for the test to mean anything: {vr}"
        );
        assert!(vo < vr / 5.0, "filtered variance {vo} vs raw {vr}");
    }

    #[test]
    fn larger_beta_lags_less_on_a_ramp() {
        let lag = |beta: f32| {
            let mut f = OneEuroFilter::new(OneEuroParams {
                beta,
                ..OneEuroParams::default()
            });
            let mut last = (0.0, 0.0);
            for i in 0..90 {
                let x = 300.0 * i as f32 / 30.0; // 300 px/s
                last = (x, f.filter(x, i as f64 / 30.0));
            }
            last.0 - last.1
        };
        let (slow, fast) = (lag(0.0), lag(0.05));
        assert!(
            slow > 0.0 && fast > 0.0,
            "a causal filter lags: {slow}, {fast}"
        );
        assert!(
            fast < slow / 2.0,
            "beta 0.05 lag {fast} vs beta 0 lag {slow}"
        );
    }

    #[test]
    fn zero_or_negative_dt_returns_the_previous_output() {
        let mut f = OneEuroFilter::new(OneEuroParams::default());
        f.filter(10.0, 1.0);
        let prev = f.filter(20.0, 1.1);
        assert_eq!(f.filter(500.0, 1.1), prev, "dt = 0");
        assert_eq!(f.filter(-500.0, 0.5), prev, "dt < 0");
        assert_eq!(f.filter(f32::NAN, 2.0), prev, "NaN value");
        assert_eq!(f.filter(30.0, f64::NAN), prev, "NaN time");
        let next = f.filter(20.0, 1.2);
        assert!(next.is_finite() && next > 10.0 && next <= 20.0, "{next}");
    }

    #[test]
    fn reset_restarts_from_the_next_sample() {
        let mut f = OneEuroFilter::new(OneEuroParams::default());
        f.filter(0.0, 0.0);
        f.filter(0.0, 0.1);
        f.reset();
        assert!(!f.is_primed());
        assert_eq!(f.filter(77.0, 0.2), 77.0);
    }

    #[test]
    fn validate_names_the_field() {
        assert!(OneEuroParams::default().validate().is_ok());
        let bad = [
            (
                OneEuroParams {
                    min_cutoff: 0.0,
                    ..Default::default()
                },
                "min_cutoff",
            ),
            (
                OneEuroParams {
                    d_cutoff: f32::NAN,
                    ..Default::default()
                },
                "d_cutoff",
            ),
            (
                OneEuroParams {
                    beta: -0.1,
                    ..Default::default()
                },
                "beta",
            ),
        ];
        for (p, field) in bad {
            let msg = p.validate().unwrap_err();
            assert!(msg.starts_with(field), "{msg}");
        }
    }

    #[test]
    fn params_deserialize_with_defaults_and_reject_unknown_keys() {
        let p: OneEuroParams = toml::from_str("beta = 0.2").unwrap();
        assert_eq!(p.beta, 0.2);
        assert_eq!(p.min_cutoff, OneEuroParams::default().min_cutoff);
        let err = toml::from_str::<OneEuroParams>("mincutoff = 1.0").unwrap_err();
        assert!(err.to_string().contains("mincutoff"), "{err}");
    }

    fn pose(points: &[(&str, f32, f32, f32)]) -> Pose {
        Pose {
            keypoints: points
                .iter()
                .map(|&(name, x, y, confidence)| Keypoint {
                    name: name.into(),
                    x,
                    y,
                    confidence,
                })
                .collect(),
        }
    }

    #[test]
    fn pose_smoother_filters_xy_and_keeps_names_and_confidences() {
        let mut s = PoseSmoother::new(OneEuroParams::default(), 0.3);
        s.smooth(&pose(&[("a", 0.0, 0.0, 0.9), ("b", 50.0, 50.0, 0.8)]), 0.0);
        let out = s.smooth(
            &pose(&[("a", 100.0, 40.0, 0.7), ("b", 50.0, 50.0, 0.6)]),
            0.1,
        );
        assert_eq!(out.keypoints[0].name, "a");
        assert_eq!(out.keypoints[0].confidence, 0.7);
        assert_eq!(out.keypoints[1].confidence, 0.6);
        let a = &out.keypoints[0];
        assert!(a.x > 0.0 && a.x < 100.0, "x filtered: {}", a.x);
        assert!(a.y > 0.0 && a.y < 40.0, "y filtered: {}", a.y);
        assert!((out.keypoints[1].x - 50.0).abs() < 1e-4);
    }

    #[test]
    fn a_reappearing_joint_does_not_glide_in_from_its_old_place() {
        let mut s = PoseSmoother::new(OneEuroParams::default(), 0.3);
        for i in 0..10 {
            s.smooth(&pose(&[("wrist", 10.0, 10.0, 0.9)]), i as f64 * 0.1);
        }
        // Lost: passed through as is.
        let lost = s.smooth(&pose(&[("wrist", 400.0, 300.0, 0.1)]), 1.0);
        assert_eq!(lost.keypoints[0].x, 400.0);
        // Seen again far away: starts there.
        let back = s.smooth(&pose(&[("wrist", 300.0, 200.0, 0.9)]), 1.1);
        assert_eq!((back.keypoints[0].x, back.keypoints[0].y), (300.0, 200.0));
    }

    #[test]
    fn pose_smoother_reset_forgets_positions() {
        let mut s = PoseSmoother::new(OneEuroParams::default(), 0.3);
        s.smooth(&pose(&[("a", 0.0, 0.0, 0.9)]), 0.0);
        s.reset();
        let out = s.smooth(&pose(&[("a", 80.0, 60.0, 0.9)]), 0.1);
        assert_eq!((out.keypoints[0].x, out.keypoints[0].y), (80.0, 60.0));
    }
}
