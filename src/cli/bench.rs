//! `hgpose bench`: times every precision at every thread count, optionally against ONNX Runtime
//! and with each precision's agreement with f32, and prints one report or a table of them.

use anyhow::Result;
use std::path::{Path, PathBuf};

use super::ModelArgs;
use hgpose::capture::{load_image, load_images};
use hgpose::model::Precision;
use hgpose::pipeline::baseline::{self, OrtReport};
use hgpose::pipeline::bench::{self, Agreement, BenchReport};
use hgpose::pipeline::EstimatorOptions;

#[derive(clap::Args)]
pub struct BenchArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Frame to time (default: a synthetic 640x480 frame).
    image: Option<PathBuf>,
    #[arg(long, default_value_t = 20)]
    runs: usize,
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    #[arg(long)]
    flip: bool,
    /// Precisions to time, comma-separated (e.g. f32,f16).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "f32")]
    precision: Vec<Precision>,
    /// Thread counts to time, comma-separated (0 = every core), e.g. 1,2.
    #[arg(long, value_delimiter = ',', default_value = "1", value_parser = super::thread_count)]
    threads: Vec<usize>,
    /// Also time the same model on ONNX Runtime (Python package) at each thread count, and
    /// print hgpose's inference time as a ratio to it.
    #[arg(long)]
    ort: bool,
    /// Compare each precision's keypoints with f32 on these images (a folder or one image).
    #[arg(long, value_name = "IMAGES")]
    agreement: Option<PathBuf>,
    /// Also show where inference time goes, per kind of op (tract's optimized plan).
    #[arg(long)]
    profile: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: BenchArgs) -> Result<()> {
    let path = args.model.model_path()?;
    let frame = match &args.image {
        Some(p) => load_image(p)?,
        None => bench::synthetic_frame(),
    };
    let (reports, baselines) = time_all(&args, &path, &frame)?;
    let agreements = agreements(&args, &path)?;
    // One configuration alone keeps its detailed report; anything more is a table.
    let single = reports.len() == 1 && baselines.is_empty() && agreements.is_empty();
    if args.json {
        if single {
            out!("{}", serde_json::to_string_pretty(&reports[0])?);
        } else {
            let all = serde_json::json!({
                "runs": reports,
                "onnxruntime": baselines,
                "agreement": agreements,
            });
            out!("{}", serde_json::to_string_pretty(&all)?);
        }
        return Ok(());
    }
    if single {
        return print_report(&reports[0]);
    }
    print_table(&path, &reports, &baselines)?;
    for r in &reports {
        print_profile(r)?;
    }
    for a in &agreements {
        out!(
            "agreement    {:?} vs f32 on {} frame(s): {}",
            a.precision,
            a.frames,
            a.summary()
        );
    }
    Ok(())
}

/// Each thread count in turn: every precision on hgpose, then (`--ort`) each file they ran on
/// ONNX Runtime at the same count. A baseline that cannot run is a warning, not a failure.
fn time_all(
    args: &BenchArgs,
    path: &Path,
    frame: &image::RgbImage,
) -> Result<(Vec<BenchReport>, Vec<OrtReport>)> {
    let mut reports = Vec::new();
    let mut baselines = Vec::new();
    for &threads in &args.threads {
        let threads = hgpose::model::use_inference_threads(threads);
        for &precision in &args.precision {
            let options = EstimatorOptions {
                flip_test: args.flip,
                precision,
                ..Default::default()
            };
            reports.push(bench::run(
                path,
                args.model.sidecar.as_deref(),
                frame,
                options,
                args.warmup,
                args.runs,
                args.profile,
            )?);
        }
        if args.ort {
            // Each file hgpose ran (the float model, an int8 companion) on ONNX Runtime too.
            let mut files: Vec<String> = reports
                .iter()
                .filter(|r| r.threads == threads)
                .map(|r| r.model.clone())
                .collect();
            files.dedup();
            if files.len() > 1 && baseline::ort_int8_saturates() {
                tracing::warn!(
                    "ONNX Runtime's int8 convolutions on this CPU (AVX2, no VNNI) sum u8 x s8 \
                     products in pairs that saturate at 16 bits: its int8 row times a kernel that \
                     computes other heatmaps than the model's (hgpose's and tract's do not \
                     saturate); read it for speed only"
                );
            }
            for file in files {
                match baseline::ort_baseline(Path::new(&file), threads, args.warmup, args.runs) {
                    Ok(b) => baselines.push(b),
                    Err(e) => tracing::warn!("{e}"),
                }
            }
        }
    }
    Ok((reports, baselines))
}

/// `--agreement`: each precision but f32 against f32 on the given images.
fn agreements(args: &BenchArgs, path: &Path) -> Result<Vec<Agreement>> {
    let mut agreements = Vec::new();
    if let Some(images) = &args.agreement {
        let frames = load_images(std::slice::from_ref(images))?;
        for &precision in args.precision.iter().filter(|p| **p != Precision::F32) {
            let options = EstimatorOptions {
                flip_test: args.flip,
                precision,
                ..Default::default()
            };
            agreements.push(bench::agreement(
                path,
                args.model.sidecar.as_deref(),
                &frames,
                options,
            )?);
        }
    }
    Ok(agreements)
}

/// One configuration's report in full.
fn print_report(report: &BenchReport) -> Result<()> {
    out!("model        {}", report.model);
    out!("cold start   {:.1} ms", report.cold_start_ms);
    out!("per frame    median {:.2} ms  (min {:.2}, p90 {:.2}, max {:.2}) over {} runs after {} warm-up", report.median_ms, report.min_ms, report.p90_ms, report.max_ms, report.runs, report.warmup);
    out!(
        "  stages     preprocess {:.2} ms, inference {:.2} ms, decode {:.3} ms (medians)",
        report.median_preprocess_ms,
        report.median_inference_ms,
        report.median_decode_ms
    );
    out!(
        "compute      {:.2} GMACs, {:.1} GMAC/s",
        report.gmacs,
        report.gmac_per_s
    );
    if let Some(peak) = report.peak_rss_mib {
        out!("memory       peak RSS {peak:.0} MiB");
    }
    out!("precision    {:?}", report.precision);
    out!("threads      {}", report.threads);
    for (kernel, ops) in &report.kernels {
        out!("kernel       {kernel} ({ops} op(s))");
    }
    print_profile(report)
}

/// One row per configuration, hgpose's then ONNX Runtime's; hgpose's column is its inference
/// stage, which is what ONNX Runtime's time covers.
fn print_table(path: &Path, reports: &[BenchReport], baselines: &[OrtReport]) -> Result<()> {
    out!(
        "model  {}  ({:.2} GMACs per frame)",
        path.display(),
        reports[0].gmacs
    );
    let row = |label: String,
               threads: usize,
               cold_ms: f64,
               infer_ms: f64,
               spread: String,
               gmac_per_s: f64,
               peak: String,
               ratio: String| {
        format!(
            "{label:<11} {threads:>7} {cold_ms:>9.0} {infer_ms:>10.2} {spread:>17} {gmac_per_s:>7.1} {peak:>8} {ratio:>7}"
        )
    };
    out!(
        "{:<11} {:>7} {:>9} {:>10} {:>17} {:>7} {:>8} {:>7}",
        "runtime",
        "threads",
        "cold ms",
        "infer ms",
        "min..p90 ms",
        "GMAC/s",
        "peak MiB",
        "vs ORT"
    );
    for r in reports {
        let ort = baselines
            .iter()
            .find(|b| b.threads == r.threads && b.model == r.model);
        out!(
            "{}",
            row(
                format!("hgpose {:?}", r.precision).to_lowercase(),
                r.threads,
                r.cold_start_ms,
                r.median_inference_ms,
                format!("{:.1}..{:.1}", r.min_ms, r.p90_ms),
                r.gmac_per_s,
                r.peak_rss_mib.map_or("-".into(), |m| format!("{m:.0}")),
                ort.map_or("-".into(), |b| format!(
                    "{:.2}",
                    r.median_inference_ms / b.median_ms
                )),
            )
        );
    }
    for b in baselines {
        let precision = reports
            .iter()
            .find(|r| r.model == b.model)
            .map_or("f32".into(), |r| {
                format!("{:?}", r.precision).to_lowercase()
            });
        out!(
            "{}",
            row(
                format!("ORT {precision}"),
                b.threads,
                b.cold_start_ms,
                b.median_ms,
                format!("{:.1}..{:.1}", b.min_ms, b.p90_ms),
                reports[0].gmacs / (b.median_ms / 1e3),
                "-".into(),
                "1.00".into(),
            )
        );
    }
    if let Some(b) = baselines.first() {
        out!("baseline     {} (CPU provider, inference only; hgpose's column is its inference stage)", b.runtime);
    }
    Ok(())
}

/// Where one configuration's inference time went, per kind of op (`bench --profile`).
fn print_profile(report: &BenchReport) -> Result<()> {
    if report.profile.is_empty() {
        return Ok(());
    }
    let total: f64 = report.profile.iter().map(|o| o.ms).sum();
    out!(
        "profile      {:?}, {} thread(s): {:.2} ms per inference in ops",
        report.precision,
        report.threads,
        total
    );
    for op in &report.profile {
        out!(
            "  {:<28} {:>8.2} ms {:>5.1}%  {:>4} node(s)",
            op.op,
            op.ms,
            100.0 * op.ms / total.max(1e-9),
            op.nodes
        );
    }
    Ok(())
}
