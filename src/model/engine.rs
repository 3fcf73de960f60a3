//! Loads an ONNX pose network with tract, fixes its input shape, optimizes it once, and runs it
//! frame after frame with the same plan, state and input buffer.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::DimLike;
use tract_onnx::tract_core::plan::SimpleState;
use tract_onnx::tract_hir::infer::Factoid;

use super::contract::{
    check_one_input, resolve_input, resolve_output, Contract, GraphOutput, InputSpec,
};
use super::precision::{int8_companion, Resolved};
use super::sidecar::{Layout, OutputKind, Sidecar};
use super::Heatmaps;
use super::Precision;
use crate::error::{Error, Result};
use crate::platform::CpuInfo;
use hgpose_kernels::Compute;

/// Time spent in one kind of op during an inference (see [`PoseModel::profile`]).
#[derive(Debug, Clone, serde::Serialize)]
pub struct OpTime {
    pub op: String,
    pub ms: f64,
    pub nodes: usize,
}

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

    /// Like [`PoseModel::load`], computing in `precision`: `auto` is resolved for this CPU, and
    /// `int8` runs the model itself when it is quantized, else its int8 companion.
    pub fn load_with_precision(
        path: &Path,
        sidecar: Option<&Path>,
        precision: Precision,
    ) -> Result<Self> {
        let cpu = CpuInfo::detect();
        let resolved = precision.resolve(&cpu);
        let companion = int8_companion(path);
        match resolved {
            Resolved::Fixed(Precision::Int8, why) => {
                if Self::is_quantized_file(path) {
                    tracing::info!("{}: precision int8: {why}", path.display());
                    return Self::build(path, sidecar, Precision::Int8);
                }
                if !companion.is_file() {
                    return Err(Error::model(
                        path,
                        format!(
                            "precision int8 needs an int8 model and there is none at {}; make one \
                             with `hgpose quantize {} --calib IMAGES`, or pick --precision f32",
                            companion.display(),
                            path.display()
                        ),
                    ));
                }
                tracing::info!(
                    "{}: precision int8: {why}; running its int8 companion {}",
                    path.display(),
                    companion.display()
                );
                let sidecar = Self::companion_sidecar(path, sidecar, &companion);
                Self::build(&companion, sidecar.as_deref(), Precision::Int8)
            }
            Resolved::Fixed(p, why) => {
                match p {
                    Precision::F32 => tracing::debug!("{}: precision f32: {why}", path.display()),
                    Precision::F16 if !cpu.tract_fp16_kernels => {
                        tracing::warn!("{}: {why}", path.display())
                    }
                    _ => tracing::info!("{}: precision {p:?}: {why}", path.display()),
                }
                Self::build(path, sidecar, p)
            }
            Resolved::FasterOfF32AndInt8(why) => {
                if !companion.is_file() || Self::is_quantized_file(path) {
                    tracing::info!(
                        "{}: precision auto: {why}; no int8 companion at {}, so f32",
                        path.display(),
                        companion.display()
                    );
                    return Self::build(path, sidecar, Precision::F32);
                }
                let f32_model = Self::build(path, sidecar, Precision::F32)?;
                let companion_sidecar = Self::companion_sidecar(path, sidecar, &companion);
                let int8_model =
                    match Self::build(&companion, companion_sidecar.as_deref(), Precision::Int8) {
                        Ok(m) => m,
                        Err(e) => {
                            tracing::warn!(
                                "precision auto: the int8 companion does not load ({}); f32",
                                e.chain()
                            );
                            return Ok(f32_model);
                        }
                    };
                faster_of(f32_model, int8_model, &why)
            }
        }
    }

    /// The sidecar for a companion model: the one asked for, else the companion's own, else the
    /// float model's (the quantizer keeps inputs and outputs as they were).
    fn companion_sidecar(path: &Path, sidecar: Option<&Path>, companion: &Path) -> Option<PathBuf> {
        sidecar
            .map(Path::to_path_buf)
            .or_else(|| Some(companion.with_extension("toml")).filter(|p| p.is_file()))
            .or_else(|| Some(path.with_extension("toml")).filter(|p| p.is_file()))
    }

    /// True when the ONNX file holds integer convolutions or matrix products (a quantized export).
    pub fn is_quantized_file(path: &Path) -> bool {
        const INTEGER_OPS: [&str; 4] = [
            "QLinearConv",
            "ConvInteger",
            "QLinearMatMul",
            "MatMulInteger",
        ];
        let Ok(proto) = tract_onnx::onnx().proto_model_for_path(path) else {
            return false;
        };
        proto.graph.as_ref().is_some_and(|g| {
            g.node
                .iter()
                .any(|n| INTEGER_OPS.contains(&n.op_type.as_str()))
        })
    }

    /// Loads, converts and optimizes `path` to run in the concrete `precision`.
    fn build(path: &Path, sidecar: Option<&Path>, precision: Precision) -> Result<Self> {
        let (contract, mut model) = Self::resolve(path, sidecar)?;
        // A quantized graph computes in int8 whatever was asked: say so, and convert nothing.
        let quantized = model.nodes().iter().any(|n| {
            n.outputs.iter().any(|o| {
                matches!(
                    o.fact.datum_type.unquantized(),
                    DatumType::U8 | DatumType::I8
                )
            })
        });
        let precision = match precision {
            Precision::Int8 => Precision::Int8,
            _ if quantized => {
                tracing::info!(
                    "{}: an int8 (quantized) model: it runs in int8, not {precision:?}",
                    path.display()
                );
                Precision::Int8
            }
            p => p,
        };
        // f32 -> f16 for f16; an f16 artefact back to f32 for f32; nothing converted twice.
        model = super::nnef::to_precision(path, model, precision)?;
        let compute = match precision {
            Precision::F16 => Compute::F16,
            Precision::Int8 => Compute::Int8,
            _ => Compute::F32,
        };
        let (optimized, report) = hgpose_kernels::optimize(model, compute)
            .map_err(|e| Error::model_because(path, e.to_string(), e.into_source()))?;
        if report.tract_alone {
            tracing::info!("HGPOSE_TRACT_OPS is set: running tract's own graph and ops only");
        } else {
            tracing::debug!("{}: hgpose's rewrites: {report}", path.display());
        }
        let plan = optimized
            .into_runnable()
            .map_err(|e| Error::model_because(path, "tract cannot plan it", e))?;
        let state = SimpleState::new(&plan)
            .map_err(|e| Error::model_because(path, "tract cannot make its state", e))?;
        let shape = contract.input.shape();
        // The graph's own input type: f16 artefacts computed in f16 take f16, int8 graphs f32.
        let dt = plan
            .model()
            .input_fact(0)
            .map_err(|e| Error::model(path, e))?
            .datum_type;
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

    /// Where one inference's time goes: per kind of optimized op (`OptMatMul`, `Im2col`, ...),
    /// total milliseconds over `runs` runs divided by `runs`, and how many nodes of that kind
    /// there are; largest first.
    pub fn profile(&mut self, runs: usize) -> Result<Vec<OpTime>> {
        let runs = runs.max(1);
        let mut by_op: std::collections::BTreeMap<
            String,
            (f64, std::collections::BTreeSet<usize>),
        > = Default::default();
        for _ in 0..runs {
            self.load_input()?;
            let input = tvec!(TValue::from_const(self.input.clone()));
            self.state
                .run_plan_with_eval(input, |ctx, state, node, inputs| {
                    let t = std::time::Instant::now();
                    let out = tract_onnx::tract_core::plan::eval(ctx, state, node, inputs);
                    let ms = t.elapsed().as_secs_f64() * 1e3;
                    let entry = by_op.entry(node.op().name().to_string()).or_default();
                    entry.0 += ms;
                    entry.1.insert(node.id);
                    // One line per node, for a profile by node (HGPOSE_LOG=hgpose=debug), with
                    // what tract says of the op (its kernel, for a matrix product).
                    if tracing::enabled!(tracing::Level::DEBUG) {
                        let info = node.op().info().unwrap_or_default().join("; ");
                        let op = node.op().name();
                        tracing::debug!("node {} ({op}): {ms:.3} ms [{info}]", node.name);
                    }
                    out
                })
                .map_err(|e| Error::Inference(format!("{}: {e:#}", self.path.display())))?;
        }
        let mut ops: Vec<OpTime> = by_op
            .into_iter()
            .map(|(op, (ms, nodes))| OpTime {
                op,
                ms: ms / runs as f64,
                nodes: nodes.len(),
            })
            .collect();
        ops.sort_by(|a, b| b.ms.total_cmp(&a.ms));
        Ok(ops)
    }

    /// Median milliseconds of `runs` inferences on the current input (after one warm-up run).
    pub fn time_inference(&mut self, runs: usize) -> Result<f64> {
        let mut heatmaps = Heatmaps::zeros(0, 0, 0);
        self.run(&mut heatmaps)?;
        let mut times: Vec<f64> = (0..runs.max(1))
            .map(|_| {
                let t = std::time::Instant::now();
                self.run(&mut heatmaps)
                    .map(|_| t.elapsed().as_secs_f64() * 1e3)
            })
            .collect::<Result<_>>()?;
        times.sort_by(f64::total_cmp);
        Ok(times[times.len() / 2])
    }

    /// Reads the graph and the sidecar and resolves the contract, without optimizing (cheap enough
    /// for `hgpose info`). Returns the typed model pruned to the one output hgpose reads.
    pub fn resolve(path: &Path, sidecar: Option<&Path>) -> Result<(Contract, TypedModel)> {
        let nnef = super::nnef::is_nnef(path);
        if !(path.is_file() || nnef && path.is_dir()) {
            return Err(Error::model(
                path,
                "no such file; pass --model with a stacked-hourglass .onnx export (or an `hgpose export` .nnef.tgz)",
            ));
        }
        let sidecar_path = match sidecar {
            Some(p) => Some(p.to_path_buf()),
            None => Some(Sidecar::path_for(path)).filter(|p| p.is_file()),
        };
        let sidecar = sidecar_path.as_deref().map(Sidecar::load).transpose()?;
        let side = sidecar_path.as_deref().zip(sidecar.as_ref());
        let mut assumptions = Vec::new();
        if side.is_none() {
            assumptions.push(format!(
                "no sidecar {}: what the graph does not say is assumed",
                Sidecar::path_for(path).display()
            ));
        }
        let (input, mut typed) = if nnef {
            super::nnef::read(path, side, &mut assumptions)?
        } else {
            Self::read_onnx(path, side, &mut assumptions)?
        };
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

    /// The ONNX half of [`PoseModel::resolve`]: reads the graph, resolves the input and types the
    /// graph for that input.
    fn read_onnx(
        path: &Path,
        side: Option<(&Path, &Sidecar)>,
        assumptions: &mut Vec<String>,
    ) -> Result<(InputSpec, TypedModel)> {
        let mut model = tract_onnx::onnx().model_for_path(path).map_err(|e| {
            Error::model(path, format!("not a readable ONNX model ({e:#}); hgpose loads ONNX exports, opset 13 or later"))
        })?;
        let inputs = model
            .input_outlets()
            .map_err(|e| Error::model(path, e))?
            .to_vec();
        check_one_input(path, inputs.len())?;
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
        let input = resolve_input(path, &input_name, &dims, side, assumptions)?;

        model
            .set_input_fact(0, f32::fact(input.shape()).into())
            .map_err(|e| Error::model_because(path, "cannot set the input shape", e))?;
        let typed = model.into_typed().map_err(|e| {
            let what = format!(
                "tract cannot analyse the graph for input {:?}",
                input.shape()
            );
            Error::model_because(path, what, e)
        })?;
        Ok((input, typed))
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
    /// (e.g. `fma_mmm_f32_16x6`, `arm64simd_mmm_f32_8x8_gen`, `arm64fp16_mmm_f16_16x8_gen`),
    /// and hgpose's own convolution kernels where they run (`hgpose_conv_f32_avx512_6x64`,
    /// `hgpose_conv_i8_avx512vnni_6x64`).
    pub fn kernels(&self) -> std::collections::BTreeMap<String, usize> {
        hgpose_kernels::kernel_names(self.state.plan().model())
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

/// `auto` between f32 and int8: times both on this CPU (a few runs each) and keeps the faster.
fn faster_of(mut f32_model: PoseModel, mut int8_model: PoseModel, why: &str) -> Result<PoseModel> {
    const RUNS: usize = 3;
    let f32_ms = f32_model.time_inference(RUNS)?;
    let int8_ms = int8_model.time_inference(RUNS)?;
    let (kept, name) = if int8_ms < f32_ms {
        (int8_model, "int8")
    } else {
        (f32_model, "f32")
    };
    tracing::info!(
        "{}: precision auto: {why}; timed here: int8 {int8_ms:.1} ms, f32 {f32_ms:.1} ms per frame, so {name}",
        kept.path.display()
    );
    Ok(kept)
}
