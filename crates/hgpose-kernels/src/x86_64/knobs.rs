//! tract settings hgpose chooses for the hosts it was measured on.
//!
//! tract reads a few "knobs" while it optimizes a model (kernel and lowering choices). A knob
//! the user sets in the environment wins: hgpose only fills in the ones left unset.

use tract_onnx::prelude::TractResult;
use tract_onnx::tract_core::knobs::KnobScope;

/// On x86_64 with AVX-512: no direct spatial convolution. tract lowers a convolution with few
/// input channels and output rows of 128 points or more (the paper's 7x7 stem at 256x256
/// input) to `DirectSpatialConv`, which took 7.6 ms on the 2x256 model where its im2col and
/// matrix product take 3.8 ms (`bench --profile`, one thread, AMD EPYC Zen 5).
const X86_64_AVX512: &[(&str, &str)] = &[("TRACT_DISABLE_DIRECT_SPATIAL", "true")];

/// The knobs for this host, as (name, value), without those the environment already sets.
pub fn chosen() -> Vec<(&'static str, &'static str)> {
    let for_host: &[(&str, &str)] = if avx512() { X86_64_AVX512 } else { &[] };
    for_host
        .iter()
        .filter(|(name, _)| std::env::var_os(name).is_none())
        .copied()
        .collect()
}

/// A scope to optimize models in, with [`chosen`]'s knobs.
pub fn scope() -> TractResult<KnobScope> {
    KnobScope::new(chosen())
}

fn avx512() -> bool {
    crate::cpu::has_feature("avx512f")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_models::{first_output, patterned_input};
    use tract_onnx::prelude::*;

    fn direct_spatial_convs(model: &TypedModel) -> usize {
        let ops = model.nodes().iter().map(|n| n.op().name());
        ops.filter(|name| name == "DirectSpatialConv").count()
    }

    /// The fixture's 7x7 stem at 256x256 input: tract alone lowers it to a direct spatial
    /// convolution; in hgpose's scope (on AVX-512) to im2col and a matrix product, with the
    /// same heatmaps up to float summation order.
    #[test]
    fn the_scope_turns_the_direct_spatial_stem_into_a_matrix_product() {
        let typed = crate::test_models::fixture_hourglass();
        let theirs = typed.clone().into_optimized().unwrap();
        let ours = scope().unwrap().enter(|| typed.into_optimized()).unwrap();
        if !avx512() {
            assert!(chosen().is_empty());
            return;
        }
        if std::env::var_os("TRACT_DISABLE_DIRECT_SPATIAL").is_some() {
            eprintln!("TRACT_DISABLE_DIRECT_SPATIAL is set: it decides, not hgpose");
            return;
        }
        assert!(
            direct_spatial_convs(&theirs) > 0,
            "tract lowers the stem directly"
        );
        assert_eq!(direct_spatial_convs(&ours), 0);
        let input = patterned_input((1, 3, 256, 256));
        let (a, b) = (first_output(&theirs, &input), first_output(&ours, &input));
        let range = a.iter().fold(0f32, |m, x| m.max(x.abs()));
        let worst = a
            .iter()
            .zip(&b)
            .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(
            worst <= 1e-4 * range,
            "heatmaps differ by {worst} (range {range})"
        );
    }
}
