//! Loads an ONNX pose network with tract, fixes its input shape, optimizes it once, and runs it
//! frame after frame with the same plan, state and input buffer.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::DimLike;
use tract_onnx::tract_core::plan::SimpleState;
use tract_onnx::tract_hir::infer::Factoid;

use super::contract::{resolve_input, resolve_output, Contract, GraphOutput};
use super::sidecar::{Layout, OutputKind, Sidecar};
use crate::error::{Error, Result};
use crate::pose::Heatmaps;

/// A loaded, optimized pose network and its resolved contract.
pub struct PoseModel {
    path: PathBuf,
    contract: Contract,
    state: TypedSimpleState,
    /// The input tensor, reused across frames; tract gets a shared handle to it for each run.
    input: Arc<Tensor>,
}

impl PoseModel {
    /// Loads `path`, reading the sidecar at `sidecar` or, if `None`, `path` with a `.toml` extension
    /// when that file exists.
    pub fn load(path: &Path, sidecar: Option<&Path>) -> Result<Self> {
        let (contract, model) = Self::resolve(path, sidecar)?;
        let optimized = model
            .into_optimized()
            .map_err(|e| Error::model(path, format!("tract cannot optimize it: {e:#}")))?;
        let plan = optimized
            .into_runnable()
            .map_err(|e| Error::model(path, format!("tract cannot plan it: {e:#}")))?;
        let state = SimpleState::new(&plan).map_err(|e| Error::model(path, format!("{e:#}")))?;
        let input = Arc::new(
            Tensor::zero::<f32>(&contract.input.shape()).map_err(|e| Error::model(path, e))?,
        );
        Ok(PoseModel {
            path: path.to_path_buf(),
            contract,
            state,
            input,
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

    /// The input tensor's values, to be filled by the preprocessor before [`PoseModel::run`].
    pub fn input_mut(&mut self) -> &mut [f32] {
        if Arc::get_mut(&mut self.input).is_none() {
            // tract still holds the previous frame's input: start a fresh buffer.
            let shape = self.contract.input.shape();
            self.input =
                Arc::new(Tensor::zero::<f32>(&shape).expect("f32 tensor of a valid shape"));
        }
        let tensor = Arc::get_mut(&mut self.input).expect("input tensor is exclusively owned");
        tensor
            .to_plain_array_view_mut::<f32>()
            .ok()
            .and_then(|view| view.into_slice())
            .expect("input tensor is a contiguous f32 tensor")
    }

    /// Runs the network on the current input and writes the selected stack's heatmaps into `out`.
    pub fn run(&mut self, out: &mut Heatmaps) -> Result<()> {
        let outputs = self
            .state
            .run(tvec!(TValue::from_const(self.input.clone())))
            .map_err(|e| Error::Inference(format!("{}: {e:#}", self.path.display())))?;
        let tensor = outputs
            .first()
            .ok_or_else(|| Error::Inference("the model returned no output".into()))?;
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
