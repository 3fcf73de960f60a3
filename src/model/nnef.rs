//! Reading the deployment artefact: an NNEF tar of the resolved network (f32 or f16 weights),
//! whose sidecar states the whole contract, loaded without the ONNX front end's analysis.

use std::collections::HashMap;
use std::path::Path;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::DimLike;
use tract_onnx::tract_core::transform::get_transform;
use tract_onnx::WithOnnx;

use super::contract::{check_one_input, resolve_input, InputSpec};
use super::sidecar::Sidecar;
use super::Precision;
use crate::error::{Error, Result};

/// True for paths hgpose reads as NNEF: a `.tgz`/`.tar` file (`hgpose export` writes
/// `.nnef.tgz`/`.nnef.tar`) or a directory holding `graph.nnef`.
pub fn is_nnef(path: &Path) -> bool {
    if path.is_dir() {
        return path.join("graph.nnef").is_file();
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    [".tgz", ".tar", ".tar.gz"]
        .iter()
        .any(|e| name.ends_with(e))
}

/// tract's NNEF with the ONNX extension, so ops imported from ONNX (e.g. `Resize`) serialize.
pub(crate) fn framework() -> tract_nnef::framework::Nnef {
    tract_nnef::nnef().with_onnx()
}

/// Reads an NNEF artefact and resolves its input against the sidecar: the input half of
/// [`PoseModel::resolve`], from the typed graph's own facts.
pub(crate) fn read(
    path: &Path,
    side: Option<(&Path, &Sidecar)>,
    assumptions: &mut Vec<String>,
) -> Result<(InputSpec, TypedModel)> {
    let unreadable = |why: String| {
        Error::model(
            path,
            format!("not a readable NNEF artefact ({why}); make it again with `hgpose export MODEL.onnx -o NAME.nnef.tgz`"),
        )
    };
    // A damaged file must be an error, not a crash, even if tract's parser panics on it.
    let loaded = std::panic::catch_unwind(|| framework().model_for_path(path));
    let mut model = match loaded {
        Ok(Ok(model)) => model,
        Ok(Err(e)) => return Err(unreadable(format!("{e:#}"))),
        Err(_) => return Err(unreadable("tract's NNEF reader failed on it".into())),
    };
    let inputs = model
        .input_outlets()
        .map_err(|e| unreadable(e.to_string()))?;
    check_one_input(path, inputs.len())?;
    let input_name = model.node(inputs[0].node).name.clone();
    let fact = model
        .input_fact(0)
        .map_err(|e| unreadable(e.to_string()))?
        .clone();
    if !matches!(fact.datum_type, DatumType::F32 | DatumType::F16) {
        return Err(Error::model(
            path,
            format!(
                "input {input_name:?} is {:?}; hgpose feeds f32 (or f16) images",
                fact.datum_type
            ),
        ));
    }
    let dims: Vec<Option<usize>> = fact.shape.iter().map(|d| d.to_usize().ok()).collect();
    let input = resolve_input(path, &input_name, &dims, side, assumptions)?;
    // Symbolic dims (a hand-made NNEF with a free batch) take the resolved shape.
    let mut symbols = HashMap::new();
    for (dim, want) in fact.shape.iter().zip(input.shape()) {
        match dim {
            TDim::Sym(s) => {
                symbols.insert(s.clone(), TDim::Val(want as i64));
            }
            d if d.to_usize().ok() == Some(want) => {}
            d => {
                return Err(Error::model(
                    path,
                    format!(
                        "input {input_name:?} dim {d} cannot be fixed to {:?}",
                        input.shape()
                    ),
                ))
            }
        }
    }
    if !symbols.is_empty() {
        model = model.set_symbols(&symbols).map_err(|e| {
            let what = format!("cannot fix the input to {:?}", input.shape());
            Error::model_because(path, what, e)
        })?;
    }
    Ok((input, model))
}

/// The float type `model` computes in, judged by its input (what `f32_to_f16` converts).
fn float_type(model: &TypedModel) -> Option<DatumType> {
    let dt = model.input_fact(0).ok()?.datum_type;
    matches!(dt, DatumType::F32 | DatumType::F16).then_some(dt)
}

/// Converts `model` between f32 and f16 with tract's transforms; nothing when it is already `to`.
pub(crate) fn convert_floats(model: TypedModel, to: DatumType) -> TractResult<TypedModel> {
    let name = match (float_type(&model), to) {
        (Some(DatumType::F32), DatumType::F16) => "f32_to_f16",
        (Some(DatumType::F16), DatumType::F32) => "f16_to_f32",
        _ => return Ok(model),
    };
    let transform =
        get_transform(name)?.ok_or_else(|| anyhow::anyhow!("tract has no {name} transform"))?;
    // Decluttered first, as the f16 path always did: the translator expects tract's core ops.
    let mut model = model.into_decluttered()?;
    model.transform(&*transform)?;
    Ok(model)
}

/// `model` converted to compute in `precision`: f32 graphs to f16 for `F16`, f16 artefacts back
/// to f32 for `F32` (CPUs without fp16 arithmetic); a graph already in that type, or another
/// precision, is left as it is (no second conversion).
pub(crate) fn to_precision(
    path: &Path,
    model: TypedModel,
    precision: Precision,
) -> Result<TypedModel> {
    let to = match precision {
        Precision::F32 => DatumType::F32,
        Precision::F16 => DatumType::F16,
        _ => return Ok(model),
    };
    convert_floats(model, to)
        .map_err(|e| Error::model_because(path, format!("cannot convert it to {to:?}"), e))
}
