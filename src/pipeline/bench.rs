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
}

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

/// Loads `model` (timing the cold start) and runs `frame` `warmup + runs` times.
pub fn run(
    model: &Path,
    sidecar: Option<&Path>,
    frame: &RgbImage,
    options: EstimatorOptions,
    warmup: usize,
    runs: usize,
) -> Result<BenchReport> {
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
    Ok(BenchReport {
        model: model.display().to_string(),
        cold_start_ms,
        warmup,
        runs,
        median_ms: quantile(&total, 0.5),
        min_ms: quantile(&total, 0.0),
        p90_ms: quantile(&total, 0.9),
        max_ms: quantile(&total, 1.0),
        median_preprocess_ms: quantile(&pre, 0.5),
        median_inference_ms: quantile(&inf, 0.5),
        median_decode_ms: quantile(&dec, 0.5),
        precision: estimator.model().precision(),
        kernels: estimator.model().kernels(),
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
