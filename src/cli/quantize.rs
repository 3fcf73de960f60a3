//! `hgpose quantize`: an int8 companion of the model, calibrated on photos, optionally checked
//! against f32 on held-out ones.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

use super::ModelArgs;
use hgpose::capture::load_images;
use hgpose::pipeline::quantize::{FloatLayers, QuantizeOptions};
use hgpose::pipeline::{bench, EstimatorOptions};

#[derive(clap::Args)]
pub struct QuantizeArgs {
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
    float_layers: FloatLayers,
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

pub fn run(args: QuantizeArgs) -> Result<()> {
    let options = QuantizeOptions {
        per_channel: !args.per_tensor,
        method: args.method,
        percentile: args.percentile,
        activations: args.activations,
        keep_float: args.keep_float,
        float_layers: args.float_layers,
        target_error: args.target_error,
        quantize_grouped: args.quantize_grouped,
        bias_correction: !args.no_bias_correction,
    };
    let sidecar = args.model.sidecar.as_deref();
    let path = args.model.model_path()?;
    let output = args
        .output
        .as_deref()
        .map_or_else(|| hgpose::model::int8_companion(&path), Path::to_path_buf);
    let frames = load_images(&args.calib).context("cannot read the --calib calibration images")?;
    let report = hgpose::pipeline::quantize::quantize(&path, sidecar, &frames, &output, &options)?;
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
    if let Some(check) = &args.check {
        let frames = load_images(std::slice::from_ref(check))?;
        let agreement = bench::agreement_of_models(
            &path,
            sidecar,
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
