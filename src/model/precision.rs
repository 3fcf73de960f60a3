//! Arithmetic precision of inference, and the `auto` choice from the CPU's features.

use serde::{Deserialize, Serialize};

use crate::platform::CpuInfo;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit floats everywhere: the reference.
    F32,
    /// tract's `f32_to_f16` transform: half-precision weights and arithmetic. Fast only on CPUs with
    /// fp16 arithmetic (Cortex-A76/A78: Pi 5, Orin); elsewhere tract emulates it, very slowly.
    F16,
    /// F16 where the CPU computes in half precision natively, else F32.
    Auto,
}

impl Precision {
    /// The concrete precision for this CPU, with the reason (for logs and `hgpose doctor`).
    pub fn resolve(self, cpu: &CpuInfo) -> (Precision, String) {
        match self {
            Precision::F32 => (Precision::F32, "asked for f32".into()),
            Precision::F16 if !cpu.tract_fp16_kernels => (
                Precision::F16,
                "asked for f16, but this CPU has no fp16 arithmetic: tract emulates it, expect it far slower than f32".into(),
            ),
            Precision::F16 => (Precision::F16, "asked for f16".into()),
            Precision::Auto if cpu.tract_fp16_kernels => {
                (Precision::F16, "the CPU has native fp16 arithmetic (asimdhp), which tract's f16 kernels use".into())
            }
            Precision::Auto if cpu.fp16_arithmetic => (
                Precision::F32,
                "the CPU reports fp16 arithmetic but tract does not see `asimdhp` in /proc/cpuinfo (emulated CPU?), so its f16 would be emulated; set TRACT_CPU_AARCH64_KIND to force it".into(),
            ),
            Precision::Auto => (
                Precision::F32,
                "no native fp16 arithmetic on this CPU (tract would emulate it); int8 is not in hgpose yet".into(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu(fp16: bool) -> CpuInfo {
        CpuInfo {
            arch: "aarch64",
            model: "test".into(),
            cores: 4,
            features: vec![],
            fp16_arithmetic: fp16,
            tract_fp16_kernels: fp16,
            int8_dot_product: false,
        }
    }

    #[test]
    fn auto_takes_f16_only_with_native_fp16() {
        assert_eq!(Precision::Auto.resolve(&cpu(true)).0, Precision::F16);
        assert_eq!(Precision::Auto.resolve(&cpu(false)).0, Precision::F32);
        let (p, why) = Precision::F16.resolve(&cpu(false));
        assert_eq!(p, Precision::F16);
        assert!(why.contains("slower"));
    }
}
