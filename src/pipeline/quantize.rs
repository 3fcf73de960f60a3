//! `hgpose quantize`: an int8 model that tract runs on its integer kernels, calibrated on images
//! preprocessed exactly as hgpose preprocesses frames (the model's own size, layout, channel order
//! and normalization from its contract).
//!
//! hgpose prepares the calibration tensors; the graph rewrite (every Conv to QLinearConv with
//! per-channel int8 weights, activation ranges from onnxruntime runs) is
//! `models/hourglass/quantize.py`: rewriting ONNX protobufs and collecting every intermediate
//! tensor are what the `onnx` and `onnxruntime` packages do well, and quantizing is a step on the
//! development machine, not on the board. Why QLinearConv and not QDQ: tract 0.23 runs QDQ
//! convolutions in float.

use image::RgbImage;
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};
use crate::model::{InputSpec, PoseModel, Precision};
use crate::platform::python::{models_dir, python};
use crate::preprocess::{CropTransform, Preprocessor, Rect};

/// How activation ranges are estimated and weights are scaled (passed to the Python rewriter).
///
/// The defaults are what measured best: one weight scale per output channel (more accurate than
/// one per convolution: 59.7% vs 48.6% of joints on the bundled model, 90% vs 43% on a trained
/// depthwise network; as fast, with `model::fast_requant`), activation ranges of least
/// quantization error, bias correction, and the most sensitive convolutions left in float until
/// the output error is within 1% (README "Measured" has the figures).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuantizeOptions {
    /// One weight scale per output channel instead of one per convolution.
    pub per_channel: bool,
    /// `mse` (least quantization error), `minmax` or `percentile` (clips rare outliers).
    pub method: String,
    /// Upper percentile for `percentile`.
    pub percentile: f64,
    /// Activation type: `u8`, `s8` or `s8sym`.
    pub activations: String,
    /// Convolutions whose node name matches this regular expression stay in float.
    pub keep_float: Option<String>,
    /// How many of the most sensitive convolutions stay in float.
    pub float_layers: FloatLayers,
    /// Relative squared error of the heatmaps against f32 that `FloatLayers::Auto` aims for.
    pub target_error: f64,
    /// Quantize grouped (depthwise) convolutions too (tract runs them faster in float).
    pub quantize_grouped: bool,
    /// Fold the mean shift that rounding the weights causes into the biases.
    pub bias_correction: bool,
}

impl Default for QuantizeOptions {
    fn default() -> Self {
        QuantizeOptions {
            per_channel: true,
            method: "mse".into(),
            percentile: 99.99,
            activations: "u8".into(),
            keep_float: None,
            float_layers: FloatLayers::Auto,
            target_error: 0.01,
            quantize_grouped: false,
            bias_correction: true,
        }
    }
}

/// How many convolutions `quantize` leaves in float, the most sensitive first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum FloatLayers {
    /// The fewest that bring the output error within the target (at most a quarter of them).
    Auto,
    /// Exactly this many (0: every convolution in int8).
    Count(usize),
}

impl std::str::FromStr for FloatLayers {
    type Err = String;
    fn from_str(value: &str) -> std::result::Result<Self, String> {
        match value {
            "auto" => Ok(FloatLayers::Auto),
            n => n
                .parse()
                .map(FloatLayers::Count)
                .map_err(|_| format!("{n:?}: give a number of convolutions or `auto`")),
        }
    }
}

impl std::fmt::Display for FloatLayers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FloatLayers::Auto => f.write_str("auto"),
            FloatLayers::Count(n) => write!(f, "{n}"),
        }
    }
}

/// What `quantize` made.
#[derive(Debug, Clone, Serialize)]
pub struct QuantizeReport {
    pub output: PathBuf,
    pub calibration_images: usize,
    pub calibration_inputs: usize,
    pub float_bytes: u64,
    pub int8_bytes: u64,
    /// The rewriter's own summary line (op counts).
    pub rewriter: String,
    /// Matrix-multiply kernels tract chose for the int8 model on this CPU.
    pub kernels: Vec<String>,
}

/// Views of each calibration image: the whole frame and its mirror (as `infer` sees a photo), and
/// four person-sized boxes, so one photo gives several activation samples.
fn calibration_crops(frame: &RgbImage, width: usize, height: usize) -> Result<Vec<CropTransform>> {
    let (fw, fh) = (frame.width() as f32, frame.height() as f32);
    let mut crops = vec![CropTransform::whole_frame(
        frame.width(),
        frame.height(),
        width,
        height,
    )?];
    let side = 0.7 * fw.min(fh);
    for (fx, fy) in [(0.5, 0.5), (0.2, 0.3), (0.8, 0.3), (0.5, 0.8)] {
        let region = Rect::new((fw - side) * fx, (fh - side) * fy, side, side);
        crops.push(CropTransform::around(region, 0.0, width, height)?);
    }
    Ok(crops)
}

/// Writes the calibration tensors of `frames` for a model taking `spec` as raw little-endian f32
/// (N x input shape) to `dest`; returns how many inputs were written.
fn write_calibration(spec: &InputSpec, frames: &[RgbImage], dest: &Path) -> Result<usize> {
    let mut preprocessor = Preprocessor::new(spec);
    let mut values = vec![0f32; spec.shape().iter().product()];
    let file = std::fs::File::create(dest).map_err(|e| write_error(dest.to_path_buf(), e))?;
    let mut out = std::io::BufWriter::new(file);
    let mut count = 0;
    for frame in frames {
        for crop in calibration_crops(frame, spec.width, spec.height)? {
            for mirror in [false, true] {
                preprocessor.fill(frame, &crop, mirror, &mut values)?;
                let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                out.write_all(&bytes)
                    .map_err(|e| write_error(dest.to_path_buf(), e))?;
                count += 1;
            }
        }
    }
    out.flush()
        .map_err(|e| write_error(dest.to_path_buf(), e))?;
    Ok(count)
}

/// Quantizes `model` to `output`, calibrated on `frames`, and checks that tract loads and plans
/// the result on its integer kernels.
pub fn quantize(
    model: &Path,
    sidecar: Option<&Path>,
    frames: &[RgbImage],
    output: &Path,
    options: &QuantizeOptions,
) -> Result<QuantizeReport> {
    if frames.is_empty() {
        return Err(Error::InvalidArgument(
            "no calibration images: give --calib a folder of photos of people".into(),
        ));
    }
    let (contract, _) = PoseModel::resolve(model, sidecar)?;
    let shape = contract.input.shape();
    if let Some(parent) = output.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| write_error(parent, e))?;
    }
    let tooling = models_dir()?;
    let scratch = std::env::temp_dir().join(format!("hgpose-calib-{}.f32", std::process::id()));
    let inputs = write_calibration(&contract.input, frames, &scratch);
    let inputs = match inputs {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(&scratch);
            return Err(e);
        }
    };
    let python = python();
    let mut command = Command::new(&python);
    command
        .current_dir(tooling)
        .args(["-m", "hourglass.quantize"])
        .arg(absolute(model))
        .arg("-o")
        .arg(absolute(output))
        .arg("--inputs")
        .arg(&scratch)
        .arg("--inputs-shape")
        .arg(format!("{inputs},{},{},{}", shape[1], shape[2], shape[3]))
        .args(["--method", &options.method])
        .args(["--percentile", &options.percentile.to_string()])
        .args(["--activations", &options.activations])
        .arg(if options.per_channel {
            "--per-channel"
        } else {
            "--per-tensor"
        });
    if let Some(pattern) = &options.keep_float {
        command.args(["--keep-float", pattern]);
    }
    command
        .args(["--float-layers", &options.float_layers.to_string()])
        .args(["--output-index", &contract.output.graph_output.to_string()])
        .args(["--target-error", &options.target_error.to_string()]);
    if options.quantize_grouped {
        command.arg("--quantize-grouped");
    }
    if !options.bias_correction {
        command.arg("--no-bias-correction");
    }
    let result = command.output();
    let _ = std::fs::remove_file(&scratch);
    let out = result.map_err(|e| {
        Error::InvalidArgument(format!(
            "cannot start {} for the quantizer ({e}); install the model tooling with \
             `pip install -r models/requirements.txt` or point HGPOSE_PYTHON at a Python that has it",
            python.display()
        ))
    })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().last().unwrap_or("(no message)");
        return Err(Error::model(model, format!("the quantizer failed: {last}")));
    }
    let rewriter = String::from_utf8_lossy(&out.stdout).trim().to_string();
    // The quantized graph keeps the float model's inputs and outputs: give it the same sidecar.
    let source_sidecar = sidecar
        .map(Path::to_path_buf)
        .or_else(|| Some(model.with_extension("toml")).filter(|p| p.is_file()));
    if let Some(side) = &source_sidecar {
        let dest = output.with_extension("toml");
        if absolute(side) != absolute(&dest) {
            std::fs::copy(side, &dest).map_err(|e| write_error(dest.clone(), e))?;
        }
    }
    let loaded = PoseModel::load_with_precision(output, None, Precision::Int8)?;
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    Ok(QuantizeReport {
        output: output.to_path_buf(),
        calibration_images: frames.len(),
        calibration_inputs: inputs,
        float_bytes: size(model),
        int8_bytes: size(output),
        rewriter,
        kernels: loaded.kernels().into_keys().collect(),
    })
}

fn write_error(path: impl Into<PathBuf>, e: std::io::Error) -> Error {
    Error::output_from(path, e)
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::FloatLayers;

    #[test]
    fn float_layers_parse_a_count_or_auto() {
        assert_eq!("auto".parse(), Ok(FloatLayers::Auto));
        assert_eq!("0".parse(), Ok(FloatLayers::Count(0)));
        assert_eq!("12".parse(), Ok(FloatLayers::Count(12)));
        assert!("-1".parse::<FloatLayers>().is_err());
        assert!("some".parse::<FloatLayers>().unwrap_err().contains("auto"));
        assert_eq!(FloatLayers::Count(3).to_string(), "3");
    }
}
