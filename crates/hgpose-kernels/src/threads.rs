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

/// Threads of tract's current executor: what one inference may use.
pub fn executor_threads() -> usize {
    match tract_linalg::multithread::current_tract_executor() {
        Executor::MultiThread(pool) => pool.current_num_threads(),
        Executor::RayonGlobal => available_cores(),
        Executor::SingleThread => 1,
    }
}

/// The work `elems` elements of one of hgpose's own vectorized ops count for in tract's
/// threading threshold (`par_chunks_mut` runs inline below 32768). These ops spend about a
/// nanosecond or less per element, so the threshold would split tensors whose whole pass takes
/// tens of microseconds across the pool, where waking the other threads costs about as much:
/// int8 inference ran slower on 2 threads than on 1. Counted as 1/16, they split only above
/// ~512K elements.
pub fn light_work(elems: usize) -> usize {
    elems / 16
}

/// Runs `f` on a 2-thread executor with tract's element threshold at 1, so that an op splits
/// its work however small the test tensor is (for tests of the ops' threaded paths).
#[cfg(test)]
pub fn on_two_threads<R>(f: impl FnOnce() -> R) -> R {
    use tract_linalg::multithread::{
        current_threading_element_threshold, multithread_tract_scope,
        set_threading_element_threshold,
    };
    let previous = current_threading_element_threshold();
    set_threading_element_threshold(1);
    let out = multithread_tract_scope(Executor::multithread(2), f);
    set_threading_element_threshold(previous);
    out
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
