//! Shared helpers for the integration tests: fixture paths, reference arrays, scratch folders.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The `hgpose` binary under test. Cross-built test runs (e.g. aarch64 under qemu-user without
/// binfmt) name an emulator in `HGPOSE_TEST_RUNNER`, e.g.
/// `qemu-aarch64 -cpu cortex-a72 -L /usr/aarch64-linux-gnu`, to run the binary through it.
pub fn hgpose_command() -> Command {
    let bin = env!("CARGO_BIN_EXE_hgpose");
    match std::env::var("HGPOSE_TEST_RUNNER") {
        Ok(runner) if !runner.trim().is_empty() => {
            let mut parts = runner.split_whitespace();
            let mut cmd = Command::new(parts.next().unwrap());
            cmd.args(parts).arg(bin);
            cmd
        }
        _ => Command::new(bin),
    }
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models/fixtures")
        .join(name)
}

pub fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models/samples")
        .join(name)
}

/// Reads a float32 `.npy` written by the PyTorch side: (shape, values in C order).
pub fn read_npy(name: &str) -> (Vec<usize>, Vec<f32>) {
    let array: ndarray::ArrayD<f32> =
        ndarray_npy::read_npy(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let shape = array.shape().to_vec();
    let values = array.as_standard_layout().iter().copied().collect();
    (shape, values)
}

/// A fresh scratch folder under the system temp dir, unique to this test.
pub fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hgpose-test-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Copies a fixture model into `dir` (without its sidecar) and returns the copy's path.
pub fn copy_model(name: &str, dir: &Path) -> PathBuf {
    let dst = dir.join(name);
    std::fs::copy(fixture(name), &dst).unwrap();
    dst
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
