//! Pipeline: joins the stages. [`Estimator`] takes a frame to a pose; [`bench`] times it.

pub mod baseline;
pub mod bench;
pub mod board;
mod estimator;
pub mod latest;
pub mod quantize;
pub mod run;

pub use estimator::{Estimate, Estimator, EstimatorOptions};
