//! Resident memory of this process, from /proc/self/status (for run statistics and the soak test).

/// (current RSS, peak RSS) in KiB; `None` where /proc is unavailable.
pub fn rss_kib() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Resets the peak (VmHWM) to the current RSS, so the next peak belongs to what runs next
/// (Linux >= 4.0, `/proc/self/clear_refs`). Returns false where that is not possible.
pub fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_is_at_least_current_and_grows_with_a_large_allocation() {
        let (rss, peak) = rss_kib().expect("/proc/self/status is readable on Linux");
        assert!(rss > 0 && peak >= rss);
        let block = vec![1u8; 64 << 20];
        std::hint::black_box(&block);
        let (_, peak_after) = rss_kib().unwrap();
        assert!(peak_after >= peak + 32 * 1024, "{peak} -> {peak_after}");
    }
}
