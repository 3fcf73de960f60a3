//! [`optimize`]: the engine's one call, from a typed graph to tract's plan with hgpose's
//! rewrites in it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::knobs::KnobScope;

use crate::ops::{direct_conv::DirectConv, direct_conv_i8::DirectConvI8};
use crate::rewrite::{rewrites, Compute, Stage};

/// The cause of an [`Error`]: tract's own error, or a rewrite's.
pub type Source = Box<dyn std::error::Error + Send + Sync>;

/// Why a plan could not be made: tract's own passes, or one of the rewrites. The cause is kept
/// as the source.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("tract cannot declutter it")]
    Declutter(#[source] Source),
    #[error("tract cannot optimize it")]
    Optimize(#[source] Source),
    #[error("hgpose's rewrite \"{rewrite}\" failed")]
    Rewrite {
        rewrite: &'static str,
        #[source]
        source: Source,
    },
}

impl Error {
    /// The cause, for a caller that states the step in its own words.
    pub fn into_source(self) -> Source {
        match self {
            Error::Declutter(source) | Error::Optimize(source) => source,
            Error::Rewrite { source, .. } => source,
        }
    }
}

/// What [`optimize`] did: each rewrite that changed something, with how many places.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub rewrites: Vec<(&'static str, usize)>,
    /// `HGPOSE_TRACT_OPS` was set: tract's own graph and ops only.
    pub tract_alone: bool,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if self.tract_alone {
            return f.write_str("none (HGPOSE_TRACT_OPS is set: tract's own graph and ops only)");
        }
        if self.rewrites.is_empty() {
            return f.write_str("none");
        }
        let done: Vec<String> = self
            .rewrites
            .iter()
            .map(|(what, count)| format!("{count} {what}"))
            .collect();
        f.write_str(&done.join(", "))
    }
}

/// `HGPOSE_TRACT_OPS=1`: the graph as tract optimizes it alone, to compare hgpose's with.
pub fn tract_alone() -> bool {
    std::env::var_os("HGPOSE_TRACT_OPS").is_some()
}

/// Optimizes `model` (typed, its input shape fixed, computing in `compute`) into tract's plan
/// with every rewrite that applies on this CPU, and says which did something.
pub fn optimize(model: TypedModel, compute: Compute) -> Result<(TypedModel, Report), Error> {
    if tract_alone() {
        let optimized = model
            .into_optimized()
            .map_err(|e| Error::Optimize(e.into()))?;
        let report = Report {
            rewrites: vec![],
            tract_alone: true,
        };
        return Ok((optimized, report));
    }
    let mut report = Report::default();
    let mut model = model;
    run_stage(&mut model, Stage::Typed, compute, &mut report)?;
    if rewrites().any(|r| r.stage() == Stage::Decluttered && r.applies(compute)) {
        model = model
            .into_decluttered()
            .map_err(|e| Error::Declutter(e.into()))?;
        run_stage(&mut model, Stage::Decluttered, compute, &mut report)?;
    }
    let knobs = knobs().map_err(|e| Error::Optimize(e.into()))?;
    let mut optimized = knobs
        .enter(|| model.into_optimized())
        .map_err(|e| Error::Optimize(e.into()))?;
    run_stage(&mut optimized, Stage::Optimized, compute, &mut report)?;
    Ok((optimized, report))
}

fn run_stage(
    model: &mut TypedModel,
    stage: Stage,
    compute: Compute,
    report: &mut Report,
) -> Result<(), Error> {
    for rewrite in rewrites().filter(|r| r.stage() == stage && r.applies(compute)) {
        let count = rewrite.rewrite(model).map_err(|e| Error::Rewrite {
            rewrite: rewrite.name(),
            source: e.into(),
        })?;
        if count > 0 {
            report.rewrites.push((rewrite.name(), count));
        }
    }
    Ok(())
}

/// tract's knobs chosen for this host (those the environment leaves unset).
fn knobs() -> TractResult<KnobScope> {
    #[cfg(target_arch = "x86_64")]
    return crate::x86_64::knobs::scope();
    #[cfg(not(target_arch = "x86_64"))]
    return Ok(KnobScope::default());
}

/// The kernels a plan runs, with how many operations use each: tract's matrix-multiply
/// kernels (`fma_mmm_f32_16x6`, `arm64simd_mmm_f32_8x8_gen`, `arm64fp16_mmm_f16_16x8_gen`) and
/// hgpose's own convolution kernels (`hgpose_conv_f32_avx512_6x64`,
/// `hgpose_conv_i8_avx512vnni_6x64`).
pub fn kernel_names(plan: &TypedModel) -> BTreeMap<String, usize> {
    let mut kernels = BTreeMap::new();
    for node in plan.nodes() {
        if let Some(conv) = node.op_as::<DirectConv>() {
            *kernels.entry(conv.kernel_name().to_string()).or_insert(0) += 1;
            continue;
        }
        if let Some(conv) = node.op_as::<DirectConvI8>() {
            *kernels.entry(conv.kernel.name().to_string()).or_insert(0) += 1;
            continue;
        }
        let Ok(info) = node.op().info() else { continue };
        for line in info.iter().filter(|l| l.starts_with("Mult:")) {
            let names = line
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.contains("mmm"));
            for name in names.collect::<BTreeSet<_>>() {
                *kernels.entry(name.to_string()).or_insert(0) += 1;
            }
        }
    }
    kernels
}
