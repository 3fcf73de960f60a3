//! `hgpose doctor`: what this board offers and what hgpose will do with it.

use serde::Serialize;
use std::path::Path;

use super::{list_devices, CpuInfo, DeviceNode};
use crate::model::Precision;

#[derive(Debug, Clone, Serialize)]
pub struct DoctorReport {
    pub cpu: CpuInfo,
    pub devices: Vec<DeviceNode>,
    /// The precision `auto` resolves to here, and why.
    pub auto_precision: Precision,
    pub auto_reason: String,
}

pub fn doctor_report() -> DoctorReport {
    let cpu = CpuInfo::detect();
    let (auto_precision, auto_reason) = Precision::Auto.resolve(&cpu);
    DoctorReport {
        devices: list_devices(Path::new("/dev"), Path::new("/sys")),
        cpu,
        auto_precision,
        auto_reason,
    }
}
