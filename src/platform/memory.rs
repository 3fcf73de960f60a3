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

/// Has the allocator keep freed tensors for reuse instead of returning them to the kernel.
///
/// glibc serves an allocation above its mmap threshold (128 KiB at first, raised as such
/// blocks are freed) with a fresh mapping, and gives the heap's free top back once it passes
/// the trim threshold. An inference allocates and frees megabytes of activations and packed
/// matrices, so each one paid page faults to touch them again: with the thresholds raised,
/// the 2x256 model's f32 inference took about 10% less in alternating runs (README,
/// Measured). The cost is memory that stays mapped between inferences, which the next
/// inference needs anyway. Returns false where the allocator refused (the
/// largest mmap threshold glibc takes is 32 MiB on 64-bit targets, 512 KiB on 32-bit ones).
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let largest: libc::c_int = if cfg!(target_pointer_width = "64") {
            32 << 20
        } else {
            512 << 10
        };
        // SAFETY: mallopt only sets allocator parameters; it is called once, at start.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, largest) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, 4 * largest) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_is_at_least_current_and_grows_with_a_large_allocation() {
        let (rss, peak) = rss_kib().expect("/proc/self/status is readable on Linux");
        assert!(rss > 0 && peak >= rss);
        // From the current RSS (other tests in this process may have peaked higher), a block
        // well above the allocator's mmap threshold must raise the peak by most of its size.
        assert!(reset_peak());
        let (rss, _) = rss_kib().unwrap();
        let block = vec![1u8; 256 << 20];
        std::hint::black_box(&block);
        let (_, peak_after) = rss_kib().unwrap();
        assert!(peak_after >= rss + 128 * 1024, "{rss} -> {peak_after}");
    }

    #[test]
    fn glibc_takes_the_raised_thresholds() {
        assert_eq!(
            keep_freed_memory(),
            cfg!(all(target_os = "linux", target_env = "gnu"))
        );
    }
}
