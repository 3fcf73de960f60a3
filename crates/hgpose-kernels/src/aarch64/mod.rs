//! aarch64 (Pi 3/4/5, Orin): NEON code. The matrix products are tract's own NEON kernels; the
//! f32 direct-convolution kernel runs only when asked (`HGPOSE_DIRECT_CONV=neon`, see
//! `ops::conv_f32_kernel::Kernel::native` for why).

pub mod conv_f32;
pub mod interleave;

/// The CPU features hgpose's choices depend on, by the names Linux's /proc/cpuinfo uses.
pub fn features() -> Vec<&'static str> {
    // Kernel HWCAPs through std: correct under qemu-user too, unlike /proc/cpuinfo (the host's).
    let mut f = Vec::new();
    if std::arch::is_aarch64_feature_detected!("neon") {
        f.push("asimd");
    }
    if std::arch::is_aarch64_feature_detected!("fp16") {
        f.push("asimdhp");
    }
    if std::arch::is_aarch64_feature_detected!("dotprod") {
        f.push("asimddp");
    }
    if std::arch::is_aarch64_feature_detected!("i8mm") {
        f.push("i8mm");
    }
    if std::arch::is_aarch64_feature_detected!("sve") {
        f.push("sve");
    }
    f
}
