//! `hgpose export`: resolves the model as `info` does, writes the artefact and its sidecar, and
//! says what it wrote.

use anyhow::Result;
use std::path::PathBuf;

use hgpose::model::{PoseModel, WeightStorage};

#[derive(clap::Args)]
pub struct ExportArgs {
    /// The model: an ONNX export (or an artefact, to change its weights).
    #[arg(value_name = "MODEL")]
    model: PathBuf,
    /// Where to write it: NAME.nnef.tgz (gzip) or NAME.nnef.tar; the sidecar goes beside it
    /// as NAME.nnef.toml.
    #[arg(long, short, value_name = "OUT")]
    output: PathBuf,
    /// Weight storage: f16 halves the file; loaded for f32 it still computes in f32.
    #[arg(long, value_enum, default_value = "f32")]
    weights: WeightStorage,
    /// Model contract TOML (default: the model's path with a .toml extension, if present).
    #[arg(long)]
    sidecar: Option<PathBuf>,
}

pub fn run(args: ExportArgs) -> Result<()> {
    let (model, weights) = (&args.model, args.weights);
    let (contract, typed) = PoseModel::resolve(model, args.sidecar.as_deref())?;
    let exported = hgpose::model::export(model, &contract, typed, &args.output, weights)?;
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
