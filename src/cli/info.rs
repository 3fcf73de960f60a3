//! `hgpose info`: the model contract hgpose resolved, and what it assumed.

use anyhow::Result;

use super::ModelArgs;
use hgpose::model::PoseModel;

#[derive(clap::Args)]
pub struct InfoArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Print it as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: InfoArgs) -> Result<()> {
    let path = args.model.model_path()?;
    let (contract, _) = PoseModel::resolve(&path, args.model.sidecar.as_deref())?;
    if args.json {
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
