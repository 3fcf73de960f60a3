//! x86_64: AVX-512, AVX2 and VNNI kernels, the int8 kernel tier added to tract's registry, and
//! the tract knobs chosen for AVX-512 hosts.

pub mod conv_f32;
pub mod conv_i8;
pub mod elementwise;
pub mod int8_mmm;
pub mod int8_tier;
pub mod interleave;
pub mod knobs;

/// The CPU features hgpose's choices depend on, by the names Linux's /proc/cpuinfo uses.
pub fn features() -> Vec<&'static str> {
    let mut f = Vec::new();
    macro_rules! probe {
        ($($name:tt),*) => {$(if std::arch::is_x86_feature_detected!($name) { f.push($name); })*};
    }
    probe!(
        "sse4.1",
        "avx",
        "avx2",
        "fma",
        "f16c",
        "avx512f",
        "avx512vnni",
        "avxvnni",
        "avx512fp16"
    );
    // AMX needs the kernel's leave as well as CPUID: tract asks for it, and says whether it got it.
    if tract_linalg::isa::native().has(tract_linalg::isa::Isa::X86_64AmxInt8) {
        f.push("amx-int8");
    }
    f
}
