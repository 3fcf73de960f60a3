//! armv7 (32-bit Pi OS): no native code of hgpose's yet; tract's NEON kernels and the portable
//! ops run.

/// The CPU features hgpose's choices depend on, by the names Linux's /proc/cpuinfo uses.
pub fn features() -> Vec<&'static str> {
    // 32-bit ARM: the kernel lists NEON in /proc/cpuinfo "Features".
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let listed = |name: &str| {
        cpuinfo
            .lines()
            .any(|l| l.starts_with("Features") && l.split_whitespace().any(|w| w == name))
    };
    ["neon", "vfpv4", "asimdhp", "asimddp"]
        .into_iter()
        .filter(|n| listed(n))
        .collect()
}
