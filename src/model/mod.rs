//! Model: the contract (what the network takes and gives, from the graph and its sidecar) and
//! inference through tract.

mod avx2_int8_mmm;
mod contract;
mod conv_geometry;
mod direct_conv;
mod direct_conv_i8;
mod engine;
mod f32_conv_kernel;
mod fast_dequantize;
mod fast_im2col;
mod fast_pack;
mod fast_pool;
mod fast_quantize;
mod fast_requant;
mod fast_scale_shift;
mod fast_upsample_add;
mod flat_pointwise;
mod i8_conv_kernel;
mod int8_kernel;
mod joints;
mod knobs;
mod nnef;
mod precision;
mod quantize_into_conv;
mod relu_into_product;
mod sidecar;
mod spin_team;
#[cfg(test)]
mod test_models;
mod threads;
mod transposed_product;
mod unfused_add;

pub use avx2_int8_mmm::kernel as avx2_int8_kernel;
pub use contract::{
    resolve_input, resolve_output, Contract, GraphOutput, InputSpec, Normalization, OutputSpec,
};
pub use direct_conv::{with_conv_cuts, ConvCuts};
pub use engine::{OpTime, PoseModel};
pub use joints::JointSet;
pub use nnef::{contract_sidecar, export, is_nnef, Exported, WeightStorage};
pub use precision::{int8_companion, Precision, Resolved};
pub use sidecar::{ChannelOrder, Layout, NormalizeKind, OutputKind, Sidecar};
pub use threads::{available_cores, executor_threads, use_inference_threads};

/// The first input of one of hgpose's own ops (`op` names it in the error tract would otherwise
/// meet as an index out of bounds).
fn first_input<'a, T>(inputs: &'a [T], op: &str) -> anyhow::Result<&'a T> {
    inputs
        .first()
        .ok_or_else(|| anyhow::anyhow!("{op} was given no input"))
}
