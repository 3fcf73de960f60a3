//! How many cores one inference uses.
//!
//! tract runs a model on the calling thread unless tract-linalg's `multithread-mm` feature is on
//! and an executor is installed; then matrix products, packing, convolutions and pooling split
//! across a rayon pool. The executor is process-wide, so it is set once, at start.

use tract_linalg::multithread::{set_default_executor, Executor};

/// Every core this process may use (cgroup and affinity limits included).
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Installs tract's executor for `requested` threads (0 = every core) and returns the count used.
pub fn use_inference_threads(requested: usize) -> usize {
    let threads = if requested == 0 {
        available_cores()
    } else {
        requested
    };
    if threads > 1 {
        set_default_executor(Executor::multithread_with_name(threads, "hgpose-infer"));
    } else {
        set_default_executor(Executor::SingleThread);
    }
    threads
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_means_every_core() {
        assert_eq!(use_inference_threads(0), available_cores());
        assert_eq!(use_inference_threads(1), 1);
    }
}
