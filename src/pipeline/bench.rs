//! Timing of the whole per-frame path (preprocess, inference, decode) on one frame, the way later
//! speed work compares itself: cold start, then the median and spread of warm frames.

use image::RgbImage;
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

use super::{Estimator, EstimatorOptions};
use crate::error::Result;

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub model: String,
    /// Load, analyse and optimize the model, until ready to run.
    pub cold_start_ms: f64,
    pub warmup: usize,
    pub runs: usize,
    pub median_ms: f64,
    pub min_ms: f64,
    pub p90_ms: f64,
    pub max_ms: f64,
    /// Median of each stage over the runs.
    pub median_preprocess_ms: f64,
    pub median_inference_ms: f64,
    pub median_decode_ms: f64,
    /// Precision the model ran in (after resolving `auto`).
    pub precision: crate::model::Precision,
    /// Matrix-multiply kernels tract chose, and how many operations use each.
    pub kernels: std::collections::BTreeMap<String, usize>,
    /// Threads one inference used.
    pub threads: usize,
    /// Multiply-adds per inference (tract's cost model), and the rate at the median inference time.
    pub gmacs: f64,
    pub gmac_per_s: f64,
    /// Peak resident memory while loading and running this configuration (MiB), when measurable.
    pub peak_rss_mib: Option<f64>,
    /// Where inference time goes, per kind of op (only when asked for: `--profile`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub profile: Vec<crate::model::OpTime>,
}

/// How close a precision's keypoints are to f32's on the same frames.
#[derive(Debug, Clone, Serialize)]
pub struct Agreement {
    pub precision: crate::model::Precision,
    pub frames: usize,
    /// Share of joints within 5% of the crop size of the f32 joint.
    pub joints_within_5pct: f64,
    /// Largest heatmap difference, as a fraction of the f32 frame's highest peak (worst frame).
    pub max_heatmap_error: f64,
    /// Joints that moved farther than 5% of the crop.
    pub moved: usize,
    /// Of those, the ones whose f32 map already held a rival peak within [`CONTESTED`] of its
    /// own, farther than 5% of the crop: near ties that any rounding can flip.
    pub moved_contested: usize,
}

impl Agreement {
    /// One line: the share of joints that stayed, how many moved and how many of those were near
    /// ties in f32 already, and the worst heatmap difference.
    pub fn summary(&self) -> String {
        format!(
            "{:.1}% of joints within 5% of the crop of f32's ({} moved, {} of them near ties in f32: \
             a rival peak within {:.0}% of its own), heatmaps differ by at most {:.2}% of the peak",
            self.joints_within_5pct * 100.0,
            self.moved,
            self.moved_contested,
            (1.0 - CONTESTED) * 100.0,
            self.max_heatmap_error * 100.0
        )
    }
}

/// A joint is contested when its f32 map's best value away from the peak is this close to it.
pub const CONTESTED: f32 = 0.95;

/// The `q`-quantile (0..=1) of `values` by nearest rank.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (q * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// A deterministic 640x480 frame for timing without a photo: smooth gradients, so resizing does
/// real work.
pub fn synthetic_frame() -> RgbImage {
    RgbImage::from_fn(640, 480, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) / 5 % 256) as u8])
    })
}

/// Loads `model` (timing the cold start) and runs `frame` `warmup + runs` times.
pub fn run(
    model: &Path,
    sidecar: Option<&Path>,
    frame: &RgbImage,
    options: EstimatorOptions,
    warmup: usize,
    runs: usize,
    profile: bool,
) -> Result<BenchReport> {
    let memory_measurable = crate::platform::memory::reset_peak();
    let t = Instant::now();
    let mut estimator = Estimator::load(model, sidecar, options)?;
    let cold_start_ms = t.elapsed().as_secs_f64() * 1e3;
    for _ in 0..warmup {
        estimator.estimate(frame, None)?;
    }
    let runs = runs.max(1);
    let (mut total, mut pre, mut inf, mut dec) = (vec![], vec![], vec![], vec![]);
    for _ in 0..runs {
        let e = estimator.estimate(frame, None)?;
        total.push(e.timing.total);
        pre.push(e.timing.preprocess);
        inf.push(e.timing.inference);
        dec.push(e.timing.decode);
    }
    let gmacs = estimator.model().multiply_adds().unwrap_or(0) as f64 / 1e9;
    let median_inference_ms = quantile(&inf, 0.5);
    let peak_rss_mib = crate::platform::memory::rss_kib()
        .filter(|_| memory_measurable)
        .map(|(_, peak)| peak as f64 / 1024.0);
    let profile = if profile {
        estimator.model_mut().profile(runs)?
    } else {
        Vec::new()
    };
    Ok(BenchReport {
        threads: crate::model::executor_threads(),
        gmacs,
        gmac_per_s: gmacs / (median_inference_ms / 1e3),
        peak_rss_mib,
        model: estimator.model().path().display().to_string(),
        cold_start_ms,
        warmup,
        runs,
        median_ms: quantile(&total, 0.5),
        min_ms: quantile(&total, 0.0),
        p90_ms: quantile(&total, 0.9),
        max_ms: quantile(&total, 1.0),
        median_preprocess_ms: quantile(&pre, 0.5),
        median_inference_ms,
        median_decode_ms: quantile(&dec, 0.5),
        precision: estimator.model().precision(),
        kernels: estimator.model().kernels(),
        profile,
    })
}

/// Runs `frames` through `model` in f32 and in `precision`, and compares keypoints and heatmaps.
pub fn agreement(
    model: &Path,
    sidecar: Option<&Path>,
    frames: &[RgbImage],
    options: EstimatorOptions,
) -> Result<Agreement> {
    let reference = Estimator::load(model, sidecar, f32_options(options))?;
    let other = Estimator::load(model, sidecar, options)?;
    agreement_between(reference, other, frames)
}

/// Like [`agreement`], for a second model file (an int8 model made from `model`).
pub fn agreement_of_models(
    model: &Path,
    sidecar: Option<&Path>,
    other: &Path,
    frames: &[RgbImage],
    options: EstimatorOptions,
) -> Result<Agreement> {
    let reference = Estimator::load(model, sidecar, f32_options(options))?;
    let other = Estimator::load(
        other,
        None,
        EstimatorOptions {
            precision: crate::model::Precision::Int8,
            ..options
        },
    )?;
    agreement_between(reference, other, frames)
}

fn f32_options(options: EstimatorOptions) -> EstimatorOptions {
    EstimatorOptions {
        precision: crate::model::Precision::F32,
        ..options
    }
}

/// Share of `other`'s joints within 5% of the crop size of `reference`'s, and the worst heatmap
/// difference relative to the reference's peak.
fn agreement_between(
    mut reference: Estimator,
    mut other: Estimator,
    frames: &[RgbImage],
) -> Result<Agreement> {
    let (mut within, mut joints, mut worst, mut contested) = (0usize, 0usize, 0f64, 0usize);
    for frame in frames {
        let a = reference.estimate(frame, None)?;
        let b = other.estimate(frame, None)?;
        let crop = a.crop.frame_rect();
        let tolerance = 0.05 * crop.w.max(crop.h);
        let maps = reference.heatmaps();
        let radius = 0.05 * maps.width.max(maps.height) as f32;
        for (j, (ka, kb)) in a.pose.keypoints.iter().zip(&b.pose.keypoints).enumerate() {
            joints += 1;
            if (ka.x - kb.x).hypot(ka.y - kb.y) <= tolerance {
                within += 1;
            } else if maps.rival_peak_ratio(j, radius) >= CONTESTED {
                contested += 1;
            }
        }
        let (ha, hb) = (&maps.data, &other.heatmaps().data);
        let peak = ha.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
        let diff = ha
            .iter()
            .zip(hb)
            .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        worst = worst.max((diff / peak) as f64);
    }
    Ok(Agreement {
        precision: other.model().precision(),
        frames: frames.len(),
        joints_within_5pct: within as f64 / joints.max(1) as f64,
        max_heatmap_error: worst,
        moved: joints - within,
        moved_contested: contested,
    })
}

#[cfg(test)]
mod tests {
    use super::quantile;

    #[test]
    fn quantiles_by_nearest_rank() {
        let v = [5.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(quantile(&v, 0.5), 3.0);
        assert_eq!(quantile(&v, 0.0), 1.0);
        assert_eq!(quantile(&v, 1.0), 5.0);
        assert!(quantile(&[], 0.5).is_nan());
    }
}
