//! `hgpose run`: the sensor node, from a board profile and the command line's overrides.

use anyhow::{Context, Result};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use super::ModelArgs;
use hgpose::pipeline::board::{BoardConfig, SourceConfig};
use hgpose::pipeline::run::RunLimits;

#[derive(clap::Args)]
pub struct RunArgs {
    /// Board profile (board/*.toml). Without one: the PC development profile's defaults.
    #[arg(long, short, env = "HGPOSE_BOARD")]
    board: Option<PathBuf>,
    /// Override the board's source: /dev/videoN, an image, a folder, a video, or - for an
    /// MJPEG stream on stdin.
    #[arg(long)]
    source: Option<PathBuf>,
    /// Start again at the end of a file, folder or video: the --source, else the board's own.
    #[arg(long = "loop")]
    looping: bool,
    /// Override the board's model.
    #[arg(long, short)]
    model: Option<PathBuf>,
    /// Override the board's inference threads (0 = every core).
    #[arg(long, value_parser = super::thread_count)]
    threads: Option<usize>,
    /// Override where JSON lines go: stdout, none, or a file.
    #[arg(long)]
    json: Option<String>,
    /// Stop after this many frames.
    #[arg(long)]
    max_frames: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long, value_parser = super::seconds)]
    duration: Option<f64>,
    /// Log fps and memory every this many seconds (0: never).
    #[arg(long, default_value_t = 10.0, value_parser = super::seconds_or_never)]
    stats_every: f64,
    /// Write the run summary (fps, stage times, peak memory) as JSON to this file.
    #[arg(long)]
    summary: Option<PathBuf>,
    /// Check the board file and exit.
    #[arg(long)]
    check: bool,
}

/// Runs until the source ends, a limit is reached, or SIGINT/SIGTERM/SIGHUP.
pub fn run(args: RunArgs) -> Result<()> {
    let limits = RunLimits {
        max_frames: args.max_frames,
        duration: args.duration.map(Duration::from_secs_f64),
        stats_every: (args.stats_every > 0.0).then(|| Duration::from_secs_f64(args.stats_every)),
    };
    let board_path = args.board.as_deref();
    let mut board = match board_path {
        Some(p) => BoardConfig::load(p)?,
        None => BoardConfig::default(),
    };
    if let Some(source) = args.source {
        board.source = SourceConfig::from_path(source, args.looping, &board.source);
    } else if args.looping {
        board.source = board
            .source
            .looping()
            .map_err(|why| anyhow::anyhow!("--loop: the board's source cannot loop: {why}"))?;
    }
    if let Some(threads) = args.threads {
        board.model.threads = threads;
    }
    if let Some(json) = args.json {
        board.outputs.json = json;
    }
    let model_path = match args.model.or(board.model.path.clone()) {
        Some(p) => p,
        None => ModelArgs {
            model: None,
            sidecar: None,
        }
        .model_path()?,
    };
    if args.check {
        out!(
            "{}: valid (model {}, source {:?})",
            board_path.map_or("defaults".into(), |p| p.display().to_string()),
            model_path.display(),
            board.source
        );
        return Ok(());
    }
    let stop = Arc::new(AtomicBool::new(false));
    // SIGHUP (the ssh session that started it closing) stops it like SIGTERM: through the
    // shutdown path, with its summary and the GPIO lines back at idle.
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    for signal in [SIGINT, SIGTERM, SIGHUP] {
        signal_hook::flag::register(signal, stop.clone())
            .context("cannot install the SIGINT/SIGTERM/SIGHUP handlers")?;
    }
    let summary = hgpose::pipeline::run::run(&board, &model_path, &limits, stop)?;
    tracing::info!(
        "{} frames in {:.1} s ({:.2} fps), {} skipped, peak RSS {} MiB",
        summary.frames_emitted,
        summary.seconds,
        summary.fps,
        summary.frames_skipped,
        summary.peak_rss_kib / 1024
    );
    if let Some(p) = &args.summary {
        std::fs::write(p, serde_json::to_string_pretty(&summary)?)
            .with_context(|| format!("cannot write the summary to {}", p.display()))?;
    }
    Ok(())
}
