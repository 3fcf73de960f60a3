//! Pipeline: joins the stages. [`Estimator`] takes a frame to a pose; [`bench`] times it;
//! [`doctor`] reports what this board offers every stage.

pub mod baseline;
pub mod bench;
pub mod board;
pub mod doctor;
mod estimator;
pub mod latest;
pub mod quantize;
pub mod run;

pub use doctor::{doctor_report, DoctorReport};
pub use estimator::{Estimate, Estimator, EstimatorOptions};
