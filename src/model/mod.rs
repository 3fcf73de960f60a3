//! Model: the contract (what the network takes and gives, from the graph and its sidecar),
//! inference through tract with hgpose's kernels (`hgpose-kernels`), and the NNEF artefact.

mod contract;
mod engine;
mod export;
mod heatmaps;
mod joints;
mod nnef;
mod precision;
mod sidecar;

pub use contract::{
    resolve_input, resolve_output, Contract, GraphOutput, InputSpec, Normalization, OutputSpec,
};
pub use engine::{OpTime, PoseModel};
pub use export::{contract_sidecar, export, Exported, WeightStorage};
pub use heatmaps::Heatmaps;
pub use hgpose_kernels::threads::{available_cores, executor_threads, use_inference_threads};
pub use joints::JointSet;
pub use nnef::is_nnef;
pub use precision::{int8_companion, Precision, Resolved};
pub use sidecar::{ChannelOrder, Layout, NormalizeKind, OutputKind, Sidecar};
