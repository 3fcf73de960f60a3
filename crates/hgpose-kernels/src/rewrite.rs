//! The [`Rewrite`] trait and the one list of rewrites, in the order they run.

use tract_onnx::prelude::{TractResult, TypedModel};

use crate::ops;

/// What a network computes in, as the engine resolved it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compute {
    F32,
    F16,
    Int8,
}

/// Which graph a rewrite reads: the typed graph as loaded, the graph as tract declutters it
/// (batch norms folded into convolutions, 1x1 convolutions as `EinSum`s), or tract's optimized
/// plan (its lowered ops and matrix-product kernels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Typed,
    Decluttered,
    Optimized,
}

/// One change to tract's graph or plan: what it is, whether it applies to this plan and CPU,
/// and the change. A rewrite computes the same tensors as what it replaces (up to float
/// rounding where sums run in another order) and returns how many places it changed.
pub trait Rewrite: Sync {
    /// What it puts in place, as a report lists it ("f32 direct convolutions").
    fn name(&self) -> &'static str;
    fn stage(&self) -> Stage;
    /// Whether it runs for a plan computing in `compute` on this CPU.
    fn applies(&self, compute: Compute) -> bool;
    fn rewrite(&self, model: &mut TypedModel) -> TractResult<usize>;
}

/// A rewrite made of its name, stage and two functions: what every entry of [`rewrites`] is.
struct Step {
    name: &'static str,
    stage: Stage,
    applies: fn(Compute) -> bool,
    rewrite: fn(&mut TypedModel) -> TractResult<usize>,
}

impl Rewrite for Step {
    fn name(&self) -> &'static str {
        self.name
    }
    fn stage(&self) -> Stage {
        self.stage
    }
    fn applies(&self, compute: Compute) -> bool {
        (self.applies)(compute)
    }
    fn rewrite(&self, model: &mut TypedModel) -> TractResult<usize> {
        (self.rewrite)(model)
    }
}

/// Whether hgpose's own direct convolutions take this plan's convolutions (a native kernel for
/// its arithmetic on this CPU); the 1x1 convolutions are then theirs, not flattened.
fn direct_convolutions(compute: Compute) -> bool {
    match compute {
        Compute::F32 => ops::direct_conv::available(),
        Compute::Int8 => ops::direct_conv_i8::available(),
        Compute::F16 => false,
    }
}

fn always(_: Compute) -> bool {
    true
}

/// Every rewrite this build knows, in the order they run: each reads the graph the ones
/// before it left. Whether one runs on this CPU is its own `applies`, so the native kernels
/// of each architecture are chosen here and nowhere else.
pub fn rewrites() -> impl Iterator<Item = &'static dyn Rewrite> {
    LIST.iter().map(|step| step as &dyn Rewrite)
}

use Stage::{Decluttered, Optimized, Typed};

static LIST: &[Step] = &[
    Step {
        name: "1x1 convolutions over flat rows",
        stage: Typed,
        applies: |c| !direct_convolutions(c),
        rewrite: ops::flat_pointwise::flatten,
    },
    Step {
        name: "direct int8 convolutions",
        stage: Decluttered,
        applies: |c| c == Compute::Int8 && direct_convolutions(c),
        rewrite: ops::direct_conv_i8::swap_in,
    },
    // In an int8 plan, the layers `quantize` kept in float (`--float-layers`).
    Step {
        name: "direct f32 convolutions",
        stage: Decluttered,
        applies: direct_convolutions,
        rewrite: ops::direct_conv::swap_in,
    },
    Step {
        name: "residual adds out of matrix products",
        stage: Optimized,
        applies: always,
        rewrite: ops::unfused_add::swap_in,
    },
    Step {
        name: "ReLUs into matrix products",
        stage: Optimized,
        applies: always,
        rewrite: ops::relu_into_product::swap_in,
    },
    Step {
        name: "requantizations",
        stage: Optimized,
        applies: always,
        rewrite: ops::quantize::swap_in,
    },
    Step {
        name: "max pools",
        stage: Optimized,
        applies: always,
        rewrite: ops::pool::swap_in,
    },
    Step {
        name: "upsamples into adds",
        stage: Optimized,
        applies: always,
        rewrite: ops::upsample_add::swap_in,
    },
    Step {
        name: "batch norms",
        stage: Optimized,
        applies: always,
        rewrite: ops::scale_shift::swap_in,
    },
    Step {
        name: "dequantizations",
        stage: Optimized,
        applies: always,
        rewrite: ops::dequantize::swap_in,
    },
    Step {
        name: "quantizations into int8 convolutions",
        stage: Optimized,
        applies: |c| c == Compute::Int8 && direct_convolutions(c),
        rewrite: ops::quantize_into_conv::swap_in,
    },
    Step {
        name: "int8 im2cols",
        stage: Optimized,
        applies: always,
        rewrite: ops::im2col::swap_in,
    },
    Step {
        name: "int8 packs",
        stage: Optimized,
        applies: always,
        rewrite: ops::pack::swap_in,
    },
    Step {
        name: "per-channel requantizations",
        stage: Optimized,
        applies: always,
        rewrite: ops::requant::swap_in,
    },
    Step {
        name: "integer products turned around",
        stage: Optimized,
        applies: |_| ops::transposed_product::turns_products(),
        rewrite: ops::transposed_product::swap_in,
    },
];
