//! What the running CPU offers, as the per-architecture modules detect it.

/// The CPU features hgpose's choices depend on, by the names Linux's /proc/cpuinfo uses
/// (`avx512f`, `avx512vnni`, `asimd`, `asimdhp`, `asimddp`, `neon`, ...).
pub fn features() -> Vec<&'static str> {
    #[cfg(target_arch = "x86_64")]
    return crate::x86_64::features();
    #[cfg(target_arch = "aarch64")]
    return crate::aarch64::features();
    #[cfg(target_arch = "arm")]
    return crate::arm::features();
    #[cfg(not(any(target_arch = "aarch64", target_arch = "x86_64", target_arch = "arm")))]
    return Vec::new();
}

/// Whether the running CPU has `feature`, by the names [`features`] uses: for the choices made
/// per host at load time.
pub fn has_feature(feature: &str) -> bool {
    features().contains(&feature)
}

/// 8-bit dot-product instructions: aarch64 `asimddp`, x86 AVX-512 VNNI or AVX-VNNI.
pub fn has_int8_dot_product() -> bool {
    ["asimddp", "avx512vnni", "avxvnni"]
        .iter()
        .any(|f| has_feature(f))
}
