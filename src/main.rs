//! The `hgpose` command line: `run` (the sensor node), `infer`, `info`, `bench` and `doctor` over
//! the library's pipeline.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use hgpose::capture::load_image;
use hgpose::model::{PoseModel, Precision};
use hgpose::outputs::{draw_pose, FrameRecord, ImageCanvas};
use hgpose::pipeline::board::{BoardConfig, SourceConfig};
use hgpose::pipeline::run::{run, RunLimits};
use hgpose::pipeline::{baseline, bench, Estimator, EstimatorOptions};
use hgpose::preprocess::Rect;

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
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct ModelArgs {
    /// ONNX model (default: the bundled model, models/default/hourglass.onnx).
    #[arg(long, short)]
    model: Option<PathBuf>,
    /// Model contract TOML (default: the model's path with a .toml extension, if present).
    #[arg(long)]
    sidecar: Option<PathBuf>,
}

impl ModelArgs {
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

#[derive(Subcommand)]
enum Command {
    /// Run the node: frames from the board's camera (or a file, folder, video, MJPEG pipe) to
    /// keypoints on the display, GPIO lines and streams, until the source ends or SIGINT/SIGTERM.
    Run {
        /// Board profile (board/*.toml). Without one: the PC development profile's defaults.
        #[arg(long, short, env = "HGPOSE_BOARD")]
        board: Option<PathBuf>,
        /// Override the board's source: /dev/videoN, an image, a folder, a video, or - for an
        /// MJPEG stream on stdin.
        #[arg(long)]
        source: Option<PathBuf>,
        /// With --source: start again at the end of a file, folder or video (demos, soak runs).
        #[arg(long = "loop")]
        looping: bool,
        /// Override the board's model.
        #[arg(long, short)]
        model: Option<PathBuf>,
        /// Override the board's inference threads (0 = every core).
        #[arg(long)]
        threads: Option<usize>,
        /// Override where JSON lines go: stdout, none, or a file.
        #[arg(long)]
        json: Option<String>,
        /// Stop after this many frames.
        #[arg(long)]
        max_frames: Option<u64>,
        /// Stop after this many seconds.
        #[arg(long)]
        duration: Option<f64>,
        /// Log fps and memory every this many seconds.
        #[arg(long, default_value_t = 10.0)]
        stats_every: f64,
        /// Write the run summary (fps, stage times, peak memory) as JSON to this file.
        #[arg(long)]
        summary: Option<PathBuf>,
        /// Check the board file and exit.
        #[arg(long)]
        check: bool,
    },
    /// Estimate poses in images; prints one JSON object per image.
    Infer {
        #[command(flatten)]
        model: ModelArgs,
        /// Person box x,y,w,h in pixels (default: the whole image, centred).
        #[arg(long = "box", value_name = "X,Y,W,H")]
        person: Option<String>,
        /// Context around the person box, as a fraction of its size on each side.
        #[arg(long, default_value_t = 0.25, allow_negative_numbers = true)]
        margin: f32,
        /// Flip test: also run the mirrored crop and average (twice the time).
        #[arg(long)]
        flip: bool,
        /// Arithmetic precision: f32, f16, int8 (the model's int8 companion, see `quantize`), or `auto`:
        /// f16 on CPUs with native fp16 (Pi 5, Orin), else the faster of f32 and int8 here.
        #[arg(long, value_enum, default_value = "f32")]
        precision: Precision,
        /// Cores for one inference (0 = every core).
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Write the image with the skeleton drawn: a PNG file for one image, a folder for several.
        #[arg(long, value_name = "OUT")]
        draw: Option<PathBuf>,
        /// Joints below this confidence are not drawn.
        #[arg(long, default_value_t = 0.1, allow_negative_numbers = true)]
        min_confidence: f32,
        /// Pretty-print the JSON.
        #[arg(long)]
        pretty: bool,
        #[arg(required = true, value_name = "IMAGE")]
        images: Vec<PathBuf>,
    },
    /// Show the model contract hgpose resolved, and what it assumed.
    Info {
        #[command(flatten)]
        model: ModelArgs,
        /// Print it as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Time the whole per-frame path: cold start, then median and spread over warm runs.
    Bench {
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
        #[arg(long, value_delimiter = ',', default_value = "1")]
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
    },
    /// Make an int8 model (QLinearConv, per-channel weights) that tract runs on its integer
    /// kernels, calibrated on photos preprocessed as hgpose does. Needs the Python model tooling
    /// (`pip install -r models/requirements.txt`): a step on the development machine.
    Quantize {
        #[command(flatten)]
        model: ModelArgs,
        /// Calibration photos of people: a folder or image files.
        #[arg(long, required = true, num_args = 1.., value_name = "IMAGES")]
        calib: Vec<PathBuf>,
        /// Where to write it (default: MODEL.int8.onnx beside the model, where `--precision int8`
        /// and `auto` look for it).
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// One weight scale per convolution instead of one per output channel (the default:
        /// as fast with hgpose's requantization, and more accurate where channels differ).
        #[arg(long)]
        per_tensor: bool,
        /// Activation ranges: `mse` (the clipping of least expected quantization error),
        /// `minmax`, or `percentile` (clips rare outliers).
        #[arg(long, default_value = "mse", value_parser = ["mse", "minmax", "percentile"])]
        method: String,
        /// Upper percentile of each activation kept in range, for `--method percentile`.
        #[arg(long, default_value_t = 99.99)]
        percentile: f64,
        /// Activation type: u8, s8 (asymmetric) or s8sym (zero point 0).
        #[arg(long, default_value = "u8", value_parser = ["u8", "s8", "s8sym"])]
        activations: String,
        /// Convolutions whose ONNX node name matches this regular expression stay in float
        /// (e.g. `heads` for the heatmap heads).
        #[arg(long, value_name = "REGEX")]
        keep_float: Option<String>,
        /// How many convolutions stay in float, the ones whose quantization alone costs the
        /// heatmaps most (measured on the calibration inputs); `auto`: the fewest that bring the
        /// heatmaps within `--target-error`, at most a quarter of them. `0`: every one in int8.
        #[arg(long, default_value = "auto", value_name = "N|auto")]
        float_layers: hgpose::pipeline::quantize::FloatLayers,
        /// For `--float-layers auto`: relative squared error of the heatmaps against f32.
        #[arg(long, default_value_t = 0.01, value_parser = positive_fraction)]
        target_error: f64,
        /// Quantize grouped (depthwise) convolutions too. By default they stay in float: tract
        /// 0.23 runs grouped integer convolutions through im2col and tiny products, slower than
        /// its float depthwise op.
        #[arg(long)]
        quantize_grouped: bool,
        /// Do not correct the biases for the mean shift that rounding the weights causes.
        #[arg(long)]
        no_bias_correction: bool,
        /// Held-out photos to compare the int8 model's keypoints with f32's on (not the
        /// calibration ones).
        #[arg(long, value_name = "IMAGES")]
        check: Option<PathBuf>,
    },
    /// Write the deployment artefact: the resolved network as tract NNEF (decluttered, f32 or f16
    /// weights) and a sidecar that states its whole contract, so a board loads it assuming nothing.
    Export {
        /// The model: an ONNX export (or an artefact, to change its weights).
        #[arg(value_name = "MODEL")]
        model: PathBuf,
        /// Where to write it: NAME.nnef.tgz (gzip) or NAME.nnef.tar; the sidecar goes beside it
        /// as NAME.nnef.toml.
        #[arg(long, short, value_name = "OUT")]
        output: PathBuf,
        /// Weight storage: f16 halves the file; loaded for f32 it still computes in f32.
        #[arg(long, value_enum, default_value = "f32")]
        weights: hgpose::model::WeightStorage,
        /// Model contract TOML (default: the model's path with a .toml extension, if present).
        #[arg(long)]
        sidecar: Option<PathBuf>,
    },
    /// Report what this board offers (CPU features, cores, cameras, framebuffers, GPIO chips) and
    /// which precision `auto` picks here, and why.
    Doctor {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `println!` that returns an error instead of panicking when stdout is closed (`hgpose ... | head`).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)?
    }};
}

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HGPOSE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("hgpose=info,warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if !hgpose::platform::memory::keep_freed_memory() {
        tracing::debug!("the allocator keeps its own thresholds (not glibc)");
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run {
            board,
            source,
            looping,
            model,
            threads,
            json,
            max_frames,
            duration,
            stats_every,
            summary,
            check,
        } => run_node(
            board.as_deref(),
            NodeOverrides {
                source,
                looping,
                model,
                threads,
                json,
            },
            RunLimits {
                max_frames,
                duration: duration.map(Duration::from_secs_f64),
                stats_every: (stats_every > 0.0).then(|| Duration::from_secs_f64(stats_every)),
            },
            summary.as_deref(),
            check,
        ),
        Command::Infer {
            model,
            person,
            margin,
            flip,
            precision,
            threads,
            draw,
            min_confidence,
            pretty,
            images,
        } => {
            hgpose::model::use_inference_threads(threads);
            infer(
                &model,
                person.as_deref(),
                EstimatorOptions {
                    flip_test: flip,
                    margin,
                    precision,
                },
                draw.as_deref(),
                min_confidence,
                pretty,
                &images,
            )
        }
        Command::Info { model, json } => info(&model, json),
        Command::Bench {
            model,
            image,
            runs,
            warmup,
            flip,
            precision,
            threads,
            ort,
            agreement,
            profile,
            json,
        } => run_bench(
            &model,
            image.as_deref(),
            BenchPlan {
                flip,
                precisions: precision,
                threads,
                warmup,
                runs,
                ort,
                agreement,
                profile,
            },
            json,
        ),
        Command::Doctor { json } => doctor(json),
        Command::Export {
            model,
            output,
            weights,
            sidecar,
        } => export_artefact(&model, sidecar.as_deref(), &output, weights),
        Command::Quantize {
            model,
            calib,
            output,
            per_tensor,
            method,
            percentile,
            activations,
            keep_float,
            float_layers,
            target_error,
            quantize_grouped,
            no_bias_correction,
            check,
        } => quantize(
            &model,
            &calib,
            output.as_deref(),
            &hgpose::pipeline::quantize::QuantizeOptions {
                per_channel: !per_tensor,
                method,
                percentile,
                activations,
                keep_float,
                float_layers,
                target_error,
                quantize_grouped,
                bias_correction: !no_bias_correction,
            },
            check.as_deref(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hgpose: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Loads the images named by `paths` (image files, or folders of them).
fn load_images(paths: &[PathBuf]) -> Result<Vec<image::RgbImage>> {
    let mut frames = Vec::new();
    for path in paths {
        if path.is_dir() {
            for p in hgpose::capture::folder::list_images(path)? {
                frames.push(load_image(&p)?);
            }
        } else {
            frames.push(load_image(path)?);
        }
    }
    Ok(frames)
}

/// A relative error: a finite number above 0.
fn positive_fraction(value: &str) -> std::result::Result<f64, String> {
    match value.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!(
            "{value:?}: give a positive relative error, e.g. 0.01"
        )),
    }
}

fn quantize(
    args: &ModelArgs,
    calib: &[PathBuf],
    output: Option<&Path>,
    options: &hgpose::pipeline::quantize::QuantizeOptions,
    check: Option<&Path>,
) -> Result<()> {
    let path = args.model_path()?;
    let output = output.map_or_else(|| hgpose::model::int8_companion(&path), Path::to_path_buf);
    let frames = load_images(calib).context("cannot read the --calib calibration images")?;
    let report = hgpose::pipeline::quantize::quantize(
        &path,
        args.sidecar.as_deref(),
        &frames,
        &output,
        options,
    )?;
    out!("{}", report.rewriter);
    out!(
        "wrote {} ({:.1} MB; float model {:.1} MB), calibrated on {} inputs from {} image(s)",
        report.output.display(),
        report.int8_bytes as f64 / 1e6,
        report.float_bytes as f64 / 1e6,
        report.calibration_inputs,
        report.calibration_images
    );
    out!("kernels on this CPU: {}", report.kernels.join(", "));
    if let Some(check) = check {
        let frames = load_images(&[check.to_path_buf()])?;
        let agreement = bench::agreement_of_models(
            &path,
            args.sidecar.as_deref(),
            &output,
            &frames,
            EstimatorOptions::default(),
        )?;
        out!(
            "held-out check on {} image(s): {}",
            agreement.frames,
            agreement.summary()
        );
    }
    Ok(())
}

/// True when the reader of our stdout went away: not an error worth reporting.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}

fn load_estimator(args: &ModelArgs, options: EstimatorOptions) -> Result<Estimator> {
    let path = args.model_path()?;
    let estimator = Estimator::load(&path, args.sidecar.as_deref(), options)?;
    for assumption in &estimator.contract().assumptions {
        tracing::info!("{}: {assumption}", path.display());
    }
    Ok(estimator)
}

fn infer(
    args: &ModelArgs,
    person: Option<&str>,
    options: EstimatorOptions,
    draw: Option<&Path>,
    min_confidence: f32,
    pretty: bool,
    images: &[PathBuf],
) -> Result<()> {
    let person = person.map(Rect::parse).transpose()?;
    let draw_into_folder = images.len() > 1;
    if let (Some(dir), true) = (draw, draw_into_folder) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the --draw folder {}", dir.display()))?;
    }
    let mut estimator = load_estimator(args, options)?;
    let mut failures = 0;
    for path in images {
        let outcome = infer_one(
            &mut estimator,
            path,
            person,
            draw.map(|d| draw_target(d, path, draw_into_folder)),
            min_confidence,
        );
        match outcome {
            Ok(record) => {
                let text = if pretty {
                    serde_json::to_string_pretty(&record)?
                } else {
                    serde_json::to_string(&record)?
                };
                out!("{text}");
            }
            Err(e) => {
                failures += 1;
                eprintln!("hgpose: error: {e:#}");
            }
        }
    }
    if failures > 0 {
        bail!("{failures} of {} image(s) failed", images.len());
    }
    Ok(())
}

/// Where the drawing of `image` goes: `out` itself, or `out/<stem>.pose.png` for several images.
fn draw_target(out: &Path, image: &Path, into_folder: bool) -> PathBuf {
    if into_folder {
        let stem = image
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "frame".into());
        out.join(format!("{stem}.pose.png"))
    } else {
        out.to_path_buf()
    }
}

fn infer_one(
    estimator: &mut Estimator,
    path: &Path,
    person: Option<Rect>,
    draw: Option<PathBuf>,
    min_confidence: f32,
) -> Result<FrameRecord> {
    let frame = load_image(path)?;
    let estimate = estimator.estimate(&frame, person)?;
    if let Some(out) = draw {
        let mut canvas = frame.clone();
        let joints = &estimator.contract().joints;
        draw_pose(
            &mut ImageCanvas(&mut canvas),
            &estimate.pose,
            joints,
            min_confidence,
        )
        .expect("drawing on an image cannot fail");
        canvas.save(&out).map_err(|e| hgpose::Error::Output {
            path: out.clone(),
            reason: e.to_string(),
        })?;
        tracing::info!("drew {}", out.display());
    }
    Ok(FrameRecord {
        source: path.display().to_string(),
        width: frame.width(),
        height: frame.height(),
        crop: estimate.crop.frame_rect(),
        mean_confidence: estimate.pose.mean_confidence(),
        keypoints: estimate.pose.keypoints,
        timing_ms: estimate.timing,
    })
}

fn info(args: &ModelArgs, json: bool) -> Result<()> {
    let path = args.model_path()?;
    let (contract, _) = PoseModel::resolve(&path, args.sidecar.as_deref())?;
    if json {
        out!("{}", serde_json::to_string_pretty(&contract)?);
        return Ok(());
    }
    let (i, o) = (&contract.input, &contract.output);
    out!("model:    {}", path.display());
    match &contract.sidecar {
        Some(s) => out!("sidecar:  {}", s.display()),
        None => out!("sidecar:  none"),
    }
    out!(
        "input:    {:?} {:?} ({}x{}), {:?}, normalization {:?}",
        i.name,
        i.shape(),
        i.height,
        i.width,
        i.channels,
        i.normalization
    );
    out!(
        "output:   {:?}, {} stack(s), reading stack {} from {:?}",
        o.kind,
        o.stacks,
        o.stack,
        o.heatmap_outputs
    );
    out!(
        "heatmaps: {} joints x {}x{} ({:?}), stride {}",
        o.joints,
        o.height,
        o.width,
        o.layout,
        o.stride(i)
    );
    out!(
        "joints:   {} [{}]",
        contract.joints.id,
        contract.joints.names.join(", ")
    );
    if contract.assumptions.is_empty() {
        out!("assumed:  nothing");
    } else {
        out!("assumed:");
        for a in &contract.assumptions {
            out!("  - {a}");
        }
    }
    Ok(())
}

/// A deterministic 640x480 test frame: smooth gradients, so resizing does real work.
fn synthetic_frame() -> image::RgbImage {
    image::RgbImage::from_fn(640, 480, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) / 5 % 256) as u8])
    })
}

/// What `hgpose bench` times: every precision at every thread count, optionally against ONNX
/// Runtime and with each precision's agreement with f32.
struct BenchPlan {
    flip: bool,
    precisions: Vec<Precision>,
    threads: Vec<usize>,
    warmup: usize,
    runs: usize,
    ort: bool,
    agreement: Option<PathBuf>,
    profile: bool,
}

fn run_bench(args: &ModelArgs, image: Option<&Path>, plan: BenchPlan, json: bool) -> Result<()> {
    let path = args.model_path()?;
    let frame = match image {
        Some(p) => load_image(p)?,
        None => synthetic_frame(),
    };
    let mut reports = Vec::new();
    let mut baselines = Vec::new();
    for &threads in &plan.threads {
        let threads = hgpose::model::use_inference_threads(threads);
        for &precision in &plan.precisions {
            let options = EstimatorOptions {
                flip_test: plan.flip,
                precision,
                ..Default::default()
            };
            reports.push(bench::run(
                &path,
                args.sidecar.as_deref(),
                &frame,
                options,
                plan.warmup,
                plan.runs,
                plan.profile,
            )?);
        }
        if plan.ort {
            // Each file hgpose ran (the float model, an int8 companion) on ONNX Runtime too.
            let mut files: Vec<String> = reports
                .iter()
                .filter(|r| r.threads == threads)
                .map(|r| r.model.clone())
                .collect();
            files.dedup();
            if files.len() > 1 && ort_int8_saturates() {
                tracing::warn!(
                    "ONNX Runtime's int8 convolutions on this CPU (AVX2, no VNNI) sum u8 x s8 \
                     products in pairs that saturate at 16 bits: its int8 row times a kernel that \
                     computes other heatmaps than the model's (hgpose's and tract's do not \
                     saturate); read it for speed only"
                );
            }
            for file in files {
                match baseline::ort_baseline(Path::new(&file), threads, plan.warmup, plan.runs) {
                    Ok(b) => baselines.push(b),
                    Err(e) => tracing::warn!("{e}"),
                }
            }
        }
    }
    let mut agreements = Vec::new();
    if let Some(images) = &plan.agreement {
        let frames = load_images(std::slice::from_ref(images))?;
        for &precision in plan.precisions.iter().filter(|p| **p != Precision::F32) {
            let options = EstimatorOptions {
                flip_test: plan.flip,
                precision,
                ..Default::default()
            };
            agreements.push(bench::agreement(
                &path,
                args.sidecar.as_deref(),
                &frames,
                options,
            )?);
        }
    }
    let single = reports.len() == 1 && baselines.is_empty() && agreements.is_empty();
    if json {
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
        let report = &reports[0];
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
        print_profile(report)?;
        return Ok(());
    }
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
    for r in &reports {
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
    for b in &baselines {
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

/// Where one configuration's inference time went, per kind of op (`bench --profile`).
fn print_profile(report: &bench::BenchReport) -> Result<()> {
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

/// Command-line settings that replace the board file's.
struct NodeOverrides {
    source: Option<PathBuf>,
    looping: bool,
    model: Option<PathBuf>,
    threads: Option<usize>,
    json: Option<String>,
}

/// What `--source` means: a camera device, stdin MJPEG, a video file, or images.
fn source_from_path(path: PathBuf, looping: bool, board: &BoardConfig) -> SourceConfig {
    let text = path.to_string_lossy();
    if text == "-" {
        return SourceConfig::Mjpeg { path };
    }
    if text.starts_with("/dev/video") {
        let mut camera = match &board.source {
            SourceConfig::Camera(c) => c.clone(),
            _ => Default::default(),
        };
        camera.device = path;
        return SourceConfig::Camera(camera);
    }
    let video = ["mp4", "avi", "mkv", "mov", "webm", "h264", "mjpeg", "mjpg"];
    let is_video = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| video.contains(&e.to_ascii_lowercase().as_str()));
    if is_video {
        SourceConfig::Video { path, looping }
    } else {
        SourceConfig::Files {
            path,
            looping,
            fps: None,
        }
    }
}

fn run_node(
    board_path: Option<&Path>,
    overrides: NodeOverrides,
    limits: RunLimits,
    summary_path: Option<&Path>,
    check: bool,
) -> Result<()> {
    let mut board = match board_path {
        Some(p) => BoardConfig::load(p)?,
        None => BoardConfig::default(),
    };
    if let Some(source) = overrides.source {
        board.source = source_from_path(source, overrides.looping, &board);
    }
    if let Some(threads) = overrides.threads {
        board.model.threads = threads;
    }
    if let Some(json) = overrides.json {
        board.outputs.json = json;
    }
    let model_path = match overrides.model.or(board.model.path.clone()) {
        Some(p) => p,
        None => ModelArgs {
            model: None,
            sidecar: None,
        }
        .model_path()?,
    };
    if check {
        out!(
            "{}: valid (model {}, source {:?})",
            board_path.map_or("defaults".into(), |p| p.display().to_string()),
            model_path.display(),
            board.source
        );
        return Ok(());
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone())
            .context("cannot install the SIGINT/SIGTERM handlers")?;
    }
    let summary = run(&board, &model_path, &limits, stop)?;
    tracing::info!(
        "{} frames in {:.1} s ({:.2} fps), {} skipped, peak RSS {} MiB",
        summary.frames_emitted,
        summary.seconds,
        summary.fps,
        summary.frames_skipped,
        summary.peak_rss_kib / 1024
    );
    if let Some(p) = summary_path {
        std::fs::write(p, serde_json::to_string_pretty(&summary)?)
            .with_context(|| format!("cannot write the summary to {}", p.display()))?;
    }
    Ok(())
}

fn doctor(json: bool) -> Result<()> {
    let report = hgpose::platform::doctor_report();
    if json {
        out!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let cpu = &report.cpu;
    out!(
        "cpu        {} ({}), {} core(s)",
        cpu.model,
        cpu.arch,
        cpu.cores
    );
    out!(
        "features   {}",
        if cpu.features.is_empty() {
            "none detected".to_string()
        } else {
            cpu.features.join(" ")
        }
    );
    out!(
        "fp16       {}",
        if cpu.fp16_arithmetic {
            "native arithmetic"
        } else {
            "no native arithmetic"
        }
    );
    out!(
        "tract f16  {}",
        if cpu.tract_fp16_kernels {
            "native f16 kernels"
        } else {
            "no native f16 kernels"
        }
    );
    out!(
        "int8 dot   {}",
        if cpu.int8_dot_product { "yes" } else { "no" }
    );
    out!(
        "auto       {}: {}",
        report.auto_precision,
        report.auto_reason
    );
    if report.devices.is_empty() {
        out!("devices    no cameras, framebuffers or GPIO chips found under /dev");
    }
    for d in &report.devices {
        out!("{:<10} {} ({})", d.kind, d.path, d.detail);
    }
    Ok(())
}

/// `hgpose export`: resolves the model as `info` does, writes the artefact and its sidecar, and
/// says what it wrote.
fn export_artefact(
    model: &Path,
    sidecar: Option<&Path>,
    output: &Path,
    weights: hgpose::model::WeightStorage,
) -> Result<()> {
    let (contract, typed) = PoseModel::resolve(model, sidecar)?;
    let exported = hgpose::model::export(model, &contract, typed, output, weights)?;
    let size = |bytes: u64| format!("{:.2} MB ({bytes} bytes)", bytes as f64 / 1e6);
    out!(
        "wrote      {} ({} weights, {})",
        exported.path.display(),
        weights.name(),
        if exported.gzip { "gzip tar" } else { "tar" }
    );
    out!("sidecar    {}", exported.sidecar.display());
    match std::fs::metadata(model).ok().filter(|m| m.is_file()) {
        Some(m) => out!(
            "size       {} {}  ->  artefact {}, {:.2}x",
            model.display(),
            size(m.len()),
            size(exported.bytes),
            exported.bytes as f64 / m.len() as f64
        ),
        None => out!("size       artefact {}", size(exported.bytes)),
    }
    if !contract.assumptions.is_empty() {
        out!("recorded   what was assumed about {}:", model.display());
        for a in &contract.assumptions {
            out!("  - {a}");
        }
    }
    out!("contract   as recorded:");
    for line in exported.sidecar_text.lines() {
        if !line.starts_with('#') && !line.trim().is_empty() {
            out!("  {line}");
        }
    }
    Ok(())
}

/// Whether ONNX Runtime runs int8 convolutions with AVX2's saturating `vpmaddubsw` here (x86_64
/// without a VNNI dot product).
fn ort_int8_saturates() -> bool {
    use hgpose::platform::has_feature;
    cfg!(target_arch = "x86_64")
        && has_feature("avx2")
        && !has_feature("avx512vnni")
        && !has_feature("avxvnni")
}
