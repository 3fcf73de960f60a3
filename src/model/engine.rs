//! Loads an ONNX pose network with tract, fixes its input shape, optimizes it once, and runs it
//! frame after frame with the same plan, state and input buffer.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::DimLike;
use tract_onnx::tract_core::plan::SimpleState;
use tract_onnx::tract_core::transform::get_transform;
use tract_onnx::tract_hir::infer::Factoid;

use super::contract::{resolve_input, resolve_output, Contract, GraphOutput};
use super::sidecar::{Layout, OutputKind, Sidecar};
use super::Precision;
use crate::error::{Error, Result};
use crate::platform::CpuInfo;
use crate::pose::Heatmaps;

/// A loaded, optimized pose network and its resolved contract.
pub struct PoseModel {
    path: PathBuf,
    contract: Contract,
    precision: Precision,
    state: TypedSimpleState,
    /// What the preprocessor writes: f32 input values, kept across frames.
    staging: Vec<f32>,
    /// The input tensor in the model's own float type, reused across frames; tract gets a shared
    /// handle to it for each run.
    input: Arc<Tensor>,
    /// How often tract still held the input when the next frame came (then a new tensor is made).
    input_reallocations: usize,
}

impl PoseModel {
    /// Loads `path`, reading the sidecar at `sidecar` or, if `None`, `path` with a `.toml` extension
    /// when that file exists.
    pub fn load(path: &Path, sidecar: Option<&Path>) -> Result<Self> {
        Self::load_with_precision(path, sidecar, Precision::F32)
    }

    /// Like [`PoseModel::load`], computing in `precision` (`auto` is resolved for this CPU).
    pub fn load_with_precision(
        path: &Path,
        sidecar: Option<&Path>,
        precision: Precision,
    ) -> Result<Self> {
        let (contract, mut model) = Self::resolve(path, sidecar)?;
        let cpu = CpuInfo::detect();
        let requested = precision;
        let (precision, why) = precision.resolve(&cpu);
        match (requested, precision) {
            (Precision::F32, _) => tracing::debug!("{}: precision f32: {why}", path.display()),
            (_, Precision::F16) if !cpu.tract_fp16_kernels => {
                tracing::warn!("{}: {why}", path.display())
            }
            _ => tracing::info!("{}: precision {precision:?}: {why}", path.display()),
        }
        if precision == Precision::F16 {
            model = model
                .into_decluttered()
                .and_then(|mut m| {
                    let f16 = get_transform("f32_to_f16")?
                        .ok_or_else(|| anyhow::anyhow!("tract has no f32_to_f16 transform"))?;
                    m.transform(&*f16)?;
                    Ok(m)
                })
                .map_err(|e| Error::model(path, format!("cannot convert it to f16: {e:#}")))?;
        }
        let optimized = model
            .into_optimized()
            .map_err(|e| Error::model(path, format!("tract cannot optimize it: {e:#}")))?;
        let plan = optimized
            .into_runnable()
            .map_err(|e| Error::model(path, format!("tract cannot plan it: {e:#}")))?;
        let state = SimpleState::new(&plan).map_err(|e| Error::model(path, format!("{e:#}")))?;
        let shape = contract.input.shape();
        let dt = if precision == Precision::F16 {
            DatumType::F16
        } else {
            DatumType::F32
        };
        let input = Arc::new(Tensor::zero_dt(dt, &shape).map_err(|e| Error::model(path, e))?);
        let staging = vec![0.0; shape.iter().product()];
        Ok(PoseModel {
            path: path.to_path_buf(),
            contract,
            precision,
            state,
            staging,
            input,
            input_reallocations: 0,
        })
    }

    /// Reads the graph and the sidecar and resolves the contract, without optimizing (cheap enough
    /// for `hgpose info`). Returns the typed model pruned to the one output hgpose reads.
    pub fn resolve(path: &Path, sidecar: Option<&Path>) -> Result<(Contract, TypedModel)> {
        if !path.is_file() {
            return Err(Error::model(
                path,
                "no such file; pass --model with a stacked-hourglass .onnx export",
            ));
        }
        let sidecar_path = match sidecar {
            Some(p) => Some(p.to_path_buf()),
            None => Some(path.with_extension("toml")).filter(|p| p.is_file()),
        };
        let sidecar = sidecar_path.as_deref().map(Sidecar::load).transpose()?;
        let side = sidecar_path.as_deref().zip(sidecar.as_ref());
        let mut assumptions = Vec::new();
        if side.is_none() {
            assumptions.push(format!(
                "no sidecar {}: what the graph does not say is assumed",
                path.with_extension("toml").display()
            ));
        }

        let mut model = tract_onnx::onnx().model_for_path(path).map_err(|e| {
            Error::model(path, format!("not a readable ONNX model ({e:#}); hgpose loads ONNX exports, opset 13 or later"))
        })?;
        let inputs = model
            .input_outlets()
            .map_err(|e| Error::model(path, e))?
            .to_vec();
        if inputs.len() != 1 {
            return Err(Error::model(
                path,
                format!(
                    "the graph has {} inputs; a pose network takes one image",
                    inputs.len()
                ),
            ));
        }
        let input_name = model.node(inputs[0].node).name.clone();
        let fact = model.input_fact(0).map_err(|e| Error::model(path, e))?;
        if fact.shape.is_open() {
            return Err(Error::model(
                path,
                format!(
                    "input {input_name:?} has no declared rank; export it with a fixed 4-D shape"
                ),
            ));
        }
        let dims: Vec<Option<usize>> = fact
            .shape
            .dims()
            .map(|d| d.concretize().and_then(|d| d.to_usize().ok()))
            .collect();
        let input = resolve_input(path, &input_name, &dims, side, &mut assumptions)?;

        model
            .set_input_fact(0, f32::fact(input.shape()).into())
            .map_err(|e| Error::model(path, format!("cannot set the input shape: {e:#}")))?;
        let mut typed = model.into_typed().map_err(|e| {
            Error::model(
                path,
                format!(
                    "tract cannot analyse the graph for input {:?}: {e:#}",
                    input.shape()
                ),
            )
        })?;
        let outlets = typed
            .output_outlets()
            .map_err(|e| Error::model(path, e))?
            .to_vec();
        let mut outputs = Vec::with_capacity(outlets.len());
        for outlet in &outlets {
            let name = typed
                .outlet_label(*outlet)
                .map(str::to_string)
                .unwrap_or_else(|| typed.node(outlet.node).name.clone());
            let fact = typed
                .outlet_fact(*outlet)
                .map_err(|e| Error::model(path, e))?;
            let shape = fact
                .shape
                .as_concrete()
                .map(|s| s.to_vec())
                .ok_or_else(|| {
                    Error::model(
                        path,
                        format!(
                            "output {name:?} has no fixed shape ({:?}) for a fixed input",
                            fact.shape
                        ),
                    )
                })?;
            outputs.push(GraphOutput { name, shape });
        }
        let (output, joints) = resolve_output(path, &outputs, &input, side, &mut assumptions)?;
        typed
            .select_output_outlets(&[outlets[output.graph_output]])
            .map_err(|e| Error::model(path, e))?;
        let contract = Contract {
            input,
            output,
            joints,
            sidecar: sidecar_path,
            assumptions,
        };
        Ok((contract, typed))
    }

    pub fn contract(&self) -> &Contract {
        &self.contract
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The precision the model computes in.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The matrix-multiply kernels tract chose for this CPU, with how many operations use each
    /// (e.g. `fma_mmm_f32_16x6`, `arm64simd_mmm_f32_8x8_gen`, `arm64fp16_mmm_f16_16x8_gen`).
    pub fn kernels(&self) -> std::collections::BTreeMap<String, usize> {
        let mut kernels = std::collections::BTreeMap::new();
        for node in self.state.plan().model().nodes() {
            let Ok(info) = node.op().info() else { continue };
            for line in info.iter().filter(|l| l.starts_with("Mult:")) {
                let names = line
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .filter(|w| w.contains("mmm"));
                for name in names.collect::<std::collections::BTreeSet<_>>() {
                    *kernels.entry(name.to_string()).or_insert(0) += 1;
                }
            }
        }
        kernels
    }

    /// Multiply-adds of one inference, from tract's cost model of the optimized plan (convolutions
    /// and matrix products; what GMAC/s figures are computed from).
    pub fn multiply_adds(&self) -> Option<u64> {
        let model = self.state.plan().model();
        let mut total = 0u64;
        for node in model.nodes() {
            let inputs = model.node_input_facts(node.id).ok()?;
            let Ok(costs) = node.op.cost(&inputs) else {
                continue;
            };
            for (cost, count) in costs {
                if let tract_onnx::tract_core::internal::Cost::FMA(_) = cost {
                    total += count.to_i64().ok()?.max(0) as u64;
                }
            }
        }
        Some(total)
    }

    /// Input tensors allocated after loading (0 when every frame reuses the first).
    pub fn input_reallocations(&self) -> usize {
        self.input_reallocations
    }

    /// The input values (f32, in the model's layout), to be filled before [`PoseModel::run`].
    pub fn input_mut(&mut self) -> &mut [f32] {
        &mut self.staging
    }

    /// Copies the staged values into the input tensor, converting to its float type.
    fn load_input(&mut self) -> Result<()> {
        if Arc::get_mut(&mut self.input).is_none() {
            // tract still holds the previous frame's input: start a fresh tensor.
            let t = Tensor::zero_dt(self.input.datum_type(), self.input.shape())
                .map_err(|e| Error::Inference(e.to_string()))?;
            self.input = Arc::new(t);
            self.input_reallocations += 1;
        }
        let tensor = Arc::get_mut(&mut self.input).expect("input tensor is exclusively owned");
        let bad = |e: String| Error::Inference(format!("input tensor: {e}"));
        if tensor.datum_type() == DatumType::F16 {
            let view = tensor
                .to_plain_array_view_mut::<f16>()
                .map_err(|e| bad(e.to_string()))?;
            let dst = view
                .into_slice()
                .ok_or_else(|| bad("not contiguous".into()))?;
            for (d, s) in dst.iter_mut().zip(&self.staging) {
                *d = f16::from_f32(*s);
            }
        } else {
            let view = tensor
                .to_plain_array_view_mut::<f32>()
                .map_err(|e| bad(e.to_string()))?;
            let dst = view
                .into_slice()
                .ok_or_else(|| bad("not contiguous".into()))?;
            dst.copy_from_slice(&self.staging);
        }
        Ok(())
    }

    /// Runs the network on the current input and writes the selected stack's heatmaps into `out`.
    pub fn run(&mut self, out: &mut Heatmaps) -> Result<()> {
        self.load_input()?;
        let outputs = self
            .state
            .run(tvec!(TValue::from_const(self.input.clone())))
            .map_err(|e| Error::Inference(format!("{}: {e:#}", self.path.display())))?;
        let tensor = outputs
            .first()
            .ok_or_else(|| Error::Inference("the model returned no output".into()))?;
        // f16 models give f16 heatmaps; decoding works in f32.
        let tensor = tensor
            .cast_to::<f32>()
            .map_err(|e| Error::Inference(format!("heatmaps are not float: {e}")))?;
        let view = tensor
            .to_plain_array_view::<f32>()
            .map_err(|e| Error::Inference(format!("heatmaps are not f32: {e}")))?;
        let values = view
            .to_slice()
            .ok_or_else(|| Error::Inference("heatmaps are not contiguous".into()))?;
        self.extract(values, out);
        Ok(())
    }

    /// Copies the read stack out of the raw output into joint-major heatmaps.
    fn extract(&self, values: &[f32], out: &mut Heatmaps) {
        let spec = &self.contract.output;
        let (j, h, w) = (spec.joints, spec.height, spec.width);
        if (out.joints, out.height, out.width) != (j, h, w) {
            *out = Heatmaps::zeros(j, h, w);
        }
        let per_stack = j * h * w;
        let start = match spec.kind {
            OutputKind::Stacked => spec.stack * per_stack,
            OutputKind::PerStack => 0,
        };
        let src = &values[start..start + per_stack];
        match spec.layout {
            Layout::NCHW => out.data.copy_from_slice(src),
            Layout::NHWC => {
                for (pixel, joints) in src.chunks_exact(j).enumerate() {
                    for (joint, v) in joints.iter().enumerate() {
                        out.data[joint * h * w + pixel] = *v;
                    }
                }
            }
        }
    }
}
