//! `hgpose doctor`: what this board offers and what hgpose will do with it: the platform's facts,
//! what capture makes of each camera, which precision `auto` picks and which of hgpose's native
//! kernels run here.

use serde::Serialize;
use std::path::Path;

use crate::model::{Precision, Resolved};
use crate::platform::{list_devices, CpuInfo, DeviceNode};

#[derive(Debug, Clone, Serialize)]
pub struct DoctorReport {
    pub cpu: CpuInfo,
    pub devices: Vec<DeviceNode>,
    /// What `auto` resolves to here (`f16`, or `f32 or int8` when it times both at load), and why.
    pub auto_precision: String,
    pub auto_reason: String,
    /// hgpose's native kernels for this architecture, and whether this CPU runs each.
    pub native_kernels: Vec<NativeKernelStatus>,
}

/// One of hgpose's native kernels on this CPU.
#[derive(Debug, Clone, Serialize)]
pub struct NativeKernelStatus {
    pub name: &'static str,
    pub what: &'static str,
    pub runs: bool,
    /// What it needs of the CPU (why it does not run, when it does not).
    pub needs: &'static str,
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
    let mut devices = list_devices(Path::new("/dev"), Path::new("/sys"));
    for camera in devices.iter_mut().filter(|d| d.kind == "camera") {
        camera.detail = format!(
            "{}; {}",
            camera.detail,
            camera_formats(Path::new(&camera.path))
        );
    }
    let native_kernels = hgpose_kernels::native::kernels()
        .iter()
        .map(|k| NativeKernelStatus {
            name: k.name,
            what: k.what,
            runs: k.runs_here(),
            needs: k.needs,
        })
        .collect();
    DoctorReport {
        devices,
        native_kernels,
        cpu,
        auto_precision,
        auto_reason,
    }
}

/// The pixel formats a camera offers, those hgpose cannot convert marked; or why none.
fn camera_formats(path: &Path) -> String {
    match crate::capture::camera::list_formats(path) {
        Ok(formats) if formats.is_empty() => "no capture formats".into(),
        Ok(formats) => {
            let names: Vec<String> = formats
                .iter()
                .map(|f| match f.format {
                    Some(_) => f.fourcc.clone(),
                    None => format!("{}(unsupported)", f.fourcc),
                })
                .collect();
            format!("formats {}", names.join(" "))
        }
        Err(_) => "not a capture node (metadata or output)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_file_is_no_camera() {
        let scratch = crate::scratch::file("doctor-camera");
        assert_eq!(
            camera_formats(scratch.path()),
            "not a capture node (metadata or output)"
        );
    }

    #[test]
    fn lists_this_architectures_native_kernels() {
        let report = doctor_report();
        let names: Vec<_> = report.native_kernels.iter().map(|k| k.name).collect();
        let listed: Vec<_> = hgpose_kernels::native::kernels()
            .iter()
            .map(|k| k.name)
            .collect();
        assert_eq!(names, listed);
        #[cfg(target_arch = "x86_64")]
        assert!(report
            .native_kernels
            .iter()
            .any(|k| k.name == "hgpose_interleave4_sse2" && k.runs));
    }
}
