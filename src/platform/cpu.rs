//! CPU identity and the features that decide which tract kernels and precision run fastest.

use serde::Serialize;

/// What the running CPU offers, detected at run time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CpuInfo {
    pub arch: &'static str,
    /// Human-readable model, from /proc/cpuinfo where it says.
    pub model: String,
    /// Cores available to this process.
    pub cores: usize,
    /// Feature flags that matter to inference, as the CPU's own names (neon, asimdhp, avx2, ...).
    pub features: Vec<&'static str>,
    /// Native half-precision arithmetic (aarch64 `asimdhp`: Cortex-A76/A78, i.e. Pi 5 and Orin).
    pub fp16_arithmetic: bool,
    /// Whether tract will run its native fp16 kernels here. tract reads the `Features` line of
    /// /proc/cpuinfo, so under qemu-user (which shows the host's) it can miss what HWCAPs report.
    pub tract_fp16_kernels: bool,
    /// 8-bit dot-product instructions (aarch64 `asimddp`, x86 AVX-512 VNNI / AVX-VNNI).
    pub int8_dot_product: bool,
}

impl CpuInfo {
    pub fn detect() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let features = hgpose_kernels::cpu::features();
        let has = |f: &str| features.contains(&f);
        CpuInfo {
            arch: std::env::consts::ARCH,
            model: cpu_model(&cpuinfo),
            cores: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            fp16_arithmetic: has("asimdhp"),
            tract_fp16_kernels: tract_linalg::has_fp16(),
            int8_dot_product: has_int8_dot_product(),
            features,
        }
    }
}

/// Feature detection is the kernels' own (per architecture, as their choices need it).
pub use hgpose_kernels::cpu::{has_feature, has_int8_dot_product};

/// The CPU model as /proc/cpuinfo names it (x86 "model name", ARM "Model"/"CPU part").
fn cpu_model(cpuinfo: &str) -> String {
    let field = |key: &str| {
        cpuinfo.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    };
    if let Some(m) = field("model name").or_else(|| field("Model")) {
        return m;
    }
    match field("CPU part").as_deref() {
        Some("0xd03") => "ARM Cortex-A53".into(),
        Some("0xd08") => "ARM Cortex-A72".into(),
        Some("0xd0b") => "ARM Cortex-A76".into(),
        Some("0xd42") => "ARM Cortex-A78AE".into(),
        Some("0xd07") => "ARM Cortex-A57".into(),
        Some(part) => format!("ARM CPU part {part}"),
        None => "unknown".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_arm_cores_from_their_part_numbers() {
        assert_eq!(
            cpu_model("processor\t: 0\nCPU part\t: 0xd0b\n"),
            "ARM Cortex-A76"
        );
        assert_eq!(cpu_model("model name\t: AMD EPYC 7B13\n"), "AMD EPYC 7B13");
        assert_eq!(cpu_model(""), "unknown");
    }

    #[test]
    fn detection_agrees_with_the_build_target() {
        let cpu = CpuInfo::detect();
        assert!(cpu.cores >= 1);
        assert_eq!(cpu.arch, std::env::consts::ARCH);
        #[cfg(target_arch = "aarch64")]
        assert!(cpu.features.contains(&"asimd"), "aarch64 always has NEON");
        #[cfg(target_arch = "x86_64")]
        assert!(cpu.features.contains(&"sse4.1") || cpu.features.is_empty());
    }
}
