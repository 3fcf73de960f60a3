//! `hgpose infer`: poses in images, one JSON object per image, optionally drawn.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

use super::ModelArgs;
use hgpose::capture::load_image;
use hgpose::model::Precision;
use hgpose::outputs::{draw_pose, FrameRecord, ImageCanvas};
use hgpose::pipeline::{Estimator, EstimatorOptions};
use hgpose::preprocess::Rect;

#[derive(clap::Args)]
pub struct InferArgs {
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
    #[arg(long, default_value_t = 1, value_parser = super::thread_count)]
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
}

/// Every image is tried: one that fails is reported and the rest still run; the command fails
/// if any did.
pub fn run(args: InferArgs) -> Result<()> {
    hgpose::model::use_inference_threads(args.threads);
    let options = EstimatorOptions {
        flip_test: args.flip,
        margin: args.margin,
        precision: args.precision,
    };
    let (draw, images) = (args.draw.as_deref(), &args.images);
    let person = args.person.as_deref().map(Rect::parse).transpose()?;
    let draw_into_folder = images.len() > 1;
    if let (Some(dir), true) = (draw, draw_into_folder) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the --draw folder {}", dir.display()))?;
    }
    let targets: Vec<Option<PathBuf>> = images
        .iter()
        .map(|path| draw.map(|d| draw_target(d, path, draw_into_folder)))
        .collect();
    refuse_overwriting_inputs(images, &targets)?;
    let mut estimator = load_estimator(&args.model, options)?;
    let mut failures = 0;
    for (i, path) in images.iter().enumerate() {
        let outcome = infer_one(
            &mut estimator,
            path,
            person,
            targets[i].clone(),
            args.min_confidence,
        );
        match outcome {
            Ok(record) => {
                let text = if args.pretty {
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

fn load_estimator(args: &ModelArgs, options: EstimatorOptions) -> Result<Estimator> {
    let path = args.model_path()?;
    let estimator = Estimator::load(&path, args.sidecar.as_deref(), options)?;
    for assumption in &estimator.contract().assumptions {
        tracing::info!("{}: {assumption}", path.display());
    }
    Ok(estimator)
}

/// A drawing never replaces a photo it was asked to read: refused before anything is written.
fn refuse_overwriting_inputs(images: &[PathBuf], targets: &[Option<PathBuf>]) -> Result<()> {
    // Canonical where the file exists, so `./a.jpg` and `a.jpg` are one file.
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    };
    for target in targets.iter().flatten() {
        if let Some(image) = images.iter().find(|image| same(image, target)) {
            anyhow::bail!(
                "--draw {} would overwrite the input image {}; give another file name",
                target.display(),
                image.display()
            );
        }
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
