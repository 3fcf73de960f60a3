//! Shared helpers for the integration tests: fixture paths, reference arrays, scratch folders.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
///
/// The fixtures are all NumPy format 1.0, little-endian float32, C order, so a few lines read them;
/// an npy crate as a dev-dependency would change feature unification and make `cargo run` after
/// `cargo test` rebuild tract from scratch.
pub fn read_npy(name: &str) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(
        bytes.starts_with(b"\x93NUMPY\x01\x00"),
        "{name}: not a NumPy 1.0 file"
    );
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
    assert!(
        header.contains("'descr': '<f4'"),
        "{name}: not little-endian float32: {header}"
    );
    assert!(
        header.contains("'fortran_order': False"),
        "{name}: not C order: {header}"
    );
    let dims = header
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .unwrap();
    let shape: Vec<usize> = dims
        .split(',')
        .filter(|d| !d.trim().is_empty())
        .map(|d| d.trim().parse().unwrap())
        .collect();
    let values: Vec<f32> = bytes[10 + header_len..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(
        values.len(),
        shape.iter().product::<usize>(),
        "{name}: size does not match {shape:?}"
    );
    (shape, values)
}

/// A fresh scratch folder under the system temp dir, unique to this test, removed when the
/// returned guard drops (at the end of the test, passed or failed): CI machines persist, and
/// each run used to leave about 15 MB of models and frames behind.
pub fn scratch(test: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("hgpose-test-{test}-"))
        .tempdir()
        .expect("cannot create a scratch folder under the temp dir")
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

/// Runs `hgpose` with `args`, logging at `HGPOSE_LOG=log`, and returns what it printed.
pub fn hgpose_logging(args: &[&str], log: &str) -> Output {
    hgpose_command()
        .args(args)
        .env("HGPOSE_LOG", log)
        .output()
        .expect("cannot start hgpose")
}

/// Runs `hgpose` with `args`, warnings only.
pub fn hgpose(args: &[&str]) -> Output {
    hgpose_logging(args, "warn")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// NCHW [1,3,H,W] values to NHWC.
pub fn to_nhwc(nchw: &[f32], h: usize, w: usize) -> Vec<f32> {
    let mut out = vec![0.0; nchw.len()];
    for c in 0..3 {
        for i in 0..h * w {
            out[i * 3 + c] = nchw[c * h * w + i];
        }
    }
    out
}

/// A board that loops over nothing but the bundled sample, writes no JSON unless asked and opens
/// no port or display, so tests can run it beside each other.
pub fn sample_board(dir: &Path) -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let board = dir.join("board.toml");
    let text = format!(
        "[source]\nkind = \"files\"\npath = {:?}\nloop = false\n\n[model]\npath = {:?}\n\
         precision = \"f32\"\nthreads = 1\n\n[outputs]\njson = \"none\"\n",
        root.join("models/samples"),
        root.join("models/default/hourglass.onnx"),
    );
    std::fs::write(&board, text).unwrap();
    board
}
