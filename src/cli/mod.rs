//! The `hgpose` command line: its arguments, and one module per command over the library.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// `println!` that returns an error instead of panicking when stdout is closed (`hgpose ... | head`).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)?
    }};
}

/// A thread count for one inference: 0 (every core) up to the board file's cap.
pub fn thread_count(value: &str) -> std::result::Result<usize, String> {
    use hgpose::pipeline::board::MAX_THREADS;
    match value.parse::<usize>() {
        Ok(n) if n <= MAX_THREADS => Ok(n),
        Ok(n) => Err(format!(
            "{n} threads is not plausible; give at most {MAX_THREADS}, or 0 for every core"
        )),
        Err(_) => Err(format!(
            "{value:?}: give a whole number of threads (0 = every core)"
        )),
    }
}

/// A span of time in seconds: finite, above 0, and short of what a `Duration` holds.
pub fn seconds(value: &str) -> std::result::Result<f64, String> {
    match value.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() && v < 1e15 => Ok(v),
        _ => Err(format!(
            "{value:?}: give a number of seconds above 0, e.g. 30"
        )),
    }
}

/// Like [`seconds`], with 0 for "never".
pub fn seconds_or_never(value: &str) -> std::result::Result<f64, String> {
    match value.parse::<f64>() {
        Ok(v) if v == 0.0 => Ok(v),
        _ => seconds(value).map_err(|e| format!("{e}, or 0 for never")),
    }
}

pub mod bench;
pub mod doctor;
pub mod export;
pub mod infer;
pub mod info;
pub mod quantize;
pub mod run;

/// Where `--model` defaults to, relative to the working directory, then the installed location.
const DEFAULT_MODEL_PATHS: [&str; 2] = [
    "models/default/hourglass.onnx",
    "/usr/share/hgpose/models/default/hourglass.onnx",
];

#[derive(Parser)]
#[command(
    name = "hgpose",
    version,
    about = "Stacked Hourglass human pose estimation on small boards"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the node: frames from the board's camera (or a file, folder, video, MJPEG pipe) to
    /// keypoints on the display, GPIO lines and streams, until the source ends or SIGINT/SIGTERM/SIGHUP.
    Run(run::RunArgs),
    /// Estimate poses in images; prints one JSON object per image.
    Infer(infer::InferArgs),
    /// Show the model contract hgpose resolved, and what it assumed.
    Info(info::InfoArgs),
    /// Time the whole per-frame path: cold start, then median and spread over warm runs.
    Bench(bench::BenchArgs),
    /// Make an int8 model (QLinearConv, per-channel weights) that tract runs on its integer
    /// kernels, calibrated on photos preprocessed as hgpose does. Needs the Python model tooling
    /// (`pip install -r models/requirements.txt`): a step on the development machine.
    Quantize(quantize::QuantizeArgs),
    /// Write the deployment artefact: the resolved network as tract NNEF (decluttered, f32 or f16
    /// weights) and a sidecar that states its whole contract, so a board loads it assuming nothing.
    Export(export::ExportArgs),
    /// Report what this board offers (CPU features, cores, cameras, framebuffers, GPIO chips) and
    /// which precision `auto` picks here, and why.
    Doctor(doctor::DoctorArgs),
}

#[derive(clap::Args)]
pub struct ModelArgs {
    /// ONNX model (default: the bundled model, models/default/hourglass.onnx).
    #[arg(long, short)]
    model: Option<PathBuf>,
    /// Model contract TOML (default: the model's path with a .toml extension, if present).
    #[arg(long)]
    sidecar: Option<PathBuf>,
}

impl ModelArgs {
    /// `--model`, else $HGPOSE_MODEL, else the first default model that exists.
    fn model_path(&self) -> Result<PathBuf> {
        if let Some(m) = &self.model {
            return Ok(m.clone());
        }
        if let Ok(m) = std::env::var("HGPOSE_MODEL") {
            return Ok(m.into());
        }
        DEFAULT_MODEL_PATHS
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .with_context(|| {
                format!(
                    "no --model given and no default model at {}; pass --model FILE.onnx",
                    DEFAULT_MODEL_PATHS.join(" or ")
                )
            })
    }
}
