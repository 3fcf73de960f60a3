//! Arithmetic precision of inference, and the `auto` choice from the CPU's features.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use crate::platform::CpuInfo;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit floats everywhere: the reference.
    F32,
    /// tract's `f32_to_f16` transform: half-precision weights and arithmetic. Fast only on CPUs with
    /// fp16 arithmetic (Cortex-A76/A78: Pi 5, Orin); elsewhere tract emulates it, very slowly.
    F16,
    /// An int8 model (QLinearConv, from `hgpose quantize`): the model itself when it is quantized,
    /// else its companion `NAME.int8.onnx` beside it.
    Int8,
    /// F16 where the CPU computes in half precision natively; else int8 or f32, whichever runs
    /// faster here (timed at load when an int8 companion exists).
    Auto,
}

/// What `auto` (or an explicit choice) comes to on this CPU, before any model is loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// One precision, for the given reason.
    Fixed(Precision, String),
    /// f32, or int8 if an int8 companion exists and times faster at load.
    FasterOfF32AndInt8(String),
}

impl Precision {
    /// The concrete precision for this CPU, with the reason (for logs and `hgpose doctor`).
    pub fn resolve(self, cpu: &CpuInfo) -> Resolved {
        let fixed = |p, why: &str| Resolved::Fixed(p, why.to_string());
        match self {
            Precision::F32 => fixed(Precision::F32, "asked for f32"),
            Precision::Int8 => fixed(Precision::Int8, "asked for int8"),
            Precision::F16 if !cpu.tract_fp16_kernels => fixed(
                Precision::F16,
                "asked for f16, but this CPU has no fp16 arithmetic: tract emulates it, expect it far slower than f32",
            ),
            Precision::F16 => fixed(Precision::F16, "asked for f16"),
            Precision::Auto if cpu.tract_fp16_kernels => fixed(
                Precision::F16,
                "the CPU has native fp16 arithmetic (asimdhp), which tract's f16 kernels use",
            ),
            Precision::Auto if cpu.fp16_arithmetic => Resolved::FasterOfF32AndInt8(
                "the CPU reports fp16 arithmetic but tract does not see `asimdhp` in /proc/cpuinfo (emulated CPU?), so its f16 would be emulated; set TRACT_CPU_AARCH64_KIND to force it. Between f32 and int8".into(),
            ),
            Precision::Auto => Resolved::FasterOfF32AndInt8(
                "no native fp16 arithmetic on this CPU (tract would emulate it). Between f32 and int8".into(),
            ),
        }
    }
}

/// Where the int8 model for `model` is looked for: `NAME.int8.onnx` beside `NAME.onnx`.
pub fn int8_companion(model: &Path) -> PathBuf {
    let stem = model
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    model.with_file_name(format!("{stem}.int8.onnx"))
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
        assert!(matches!(
            Precision::Auto.resolve(&cpu(true)),
            Resolved::Fixed(Precision::F16, _)
        ));
        assert!(matches!(
            Precision::Auto.resolve(&cpu(false)),
            Resolved::FasterOfF32AndInt8(_)
        ));
        let Resolved::Fixed(p, why) = Precision::F16.resolve(&cpu(false)) else {
            panic!("f16 is a fixed choice");
        };
        assert_eq!(p, Precision::F16);
        assert!(why.contains("slower"));
        assert_eq!(
            Precision::Int8.resolve(&cpu(false)),
            Resolved::Fixed(Precision::Int8, "asked for int8".into())
        );
    }

    #[test]
    fn int8_companion_sits_beside_the_model() {
        assert_eq!(
            int8_companion(Path::new("models/default/hourglass.onnx")),
            Path::new("models/default/hourglass.int8.onnx")
        );
        assert_eq!(int8_companion(Path::new("hg")), Path::new("hg.int8.onnx"));
    }
}
