//! `hgpose doctor`: what this board offers and what hgpose will do with it.

use serde::Serialize;
use std::path::Path;

use super::{list_devices, CpuInfo, DeviceNode};
use crate::model::{Precision, Resolved};

#[derive(Debug, Clone, Serialize)]
pub struct DoctorReport {
    pub cpu: CpuInfo,
    pub devices: Vec<DeviceNode>,
    /// What `auto` resolves to here (`f16`, or `f32 or int8` when it times both at load), and why.
    pub auto_precision: String,
    pub auto_reason: String,
}

pub fn doctor_report() -> DoctorReport {
    let cpu = CpuInfo::detect();
    let (auto_precision, auto_reason) = match Precision::Auto.resolve(&cpu) {
        Resolved::Fixed(p, why) => (format!("{p:?}").to_lowercase(), why),
        Resolved::FasterOfF32AndInt8(why) => (
            "f32 or int8".to_string(),
            format!("{why}, whichever runs faster (timed at load, when the model has an int8 companion)"),
        ),
    };
    DoctorReport {
        devices: list_devices(Path::new("/dev"), Path::new("/sys")),
        cpu,
        auto_precision,
        auto_reason,
    }
}
