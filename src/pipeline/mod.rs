//! Pipeline: joins the stages. [`Estimator`] takes a frame to a pose; [`bench`] times it.

pub mod bench;
mod estimator;

pub use estimator::{Estimate, Estimator, EstimatorOptions};
