//! Model: the contract (what the network takes and gives, from the graph and its sidecar) and
//! inference through tract.

mod contract;
mod engine;
mod joints;
mod precision;
mod sidecar;
mod threads;

pub use contract::{
    resolve_input, resolve_output, Contract, GraphOutput, InputSpec, Normalization, OutputSpec,
};
pub use engine::PoseModel;
pub use joints::JointSet;
pub use precision::Precision;
pub use sidecar::{ChannelOrder, Layout, NormalizeKind, OutputKind, Sidecar};
pub use threads::{available_cores, use_inference_threads};
