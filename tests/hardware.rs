//! Tests on real (virtual) devices under a real Linux kernel: they run inside the test bed VM
//! (`.ci/testbed/run-hardware x86_64|aarch64`), whose `/init` loads vivid (camera), bochs
//! (framebuffer) and gpio-sim (GPIO lines) and describes them in `HGPOSE_HW_*` variables.
//! Outside the VM (`HGPOSE_HW` unset) every test says it was skipped and passes.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

/// The test bed's description of one device, or a failure naming the variable the VM did not set.
fn hw_path(var: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => panic!("{var} is not set: the test bed's init could not bring that device up (see its 'testbed: warning' lines)"),
    }
}

/// True inside the VM; outside it, prints why the test did nothing.
fn in_test_bed(test: &str) -> bool {
    if std::env::var_os("HGPOSE_HW").is_some() {
        return true;
    }
    eprintln!(
        "SKIPPED: hardware tests run inside the VM: .ci/testbed/run-hardware <arch> ({test})"
    );
    false
}

fn assert_char_device(path: &Path) {
    use std::os::unix::fs::FileTypeExt;
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        meta.file_type().is_char_device(),
        "{} is not a character device",
        path.display()
    );
}

#[test]
fn devices_exist_in_vm() {
    if !in_test_bed("devices_exist_in_vm") {
        return;
    }

    let video = hw_path("HGPOSE_HW_VIDEO");
    assert_char_device(&video);
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(&video)
        .unwrap_or_else(|e| panic!("cannot open the vivid camera {}: {e}", video.display()));

    let fb = hw_path("HGPOSE_HW_FB");
    assert_char_device(&fb);
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fb)
        .unwrap_or_else(|e| panic!("cannot open the bochs framebuffer {}: {e}", fb.display()));

    let chip = hw_path("HGPOSE_HW_GPIOCHIP");
    assert_char_device(&chip);
    OpenOptions::new()
        .read(true)
        .open(&chip)
        .unwrap_or_else(|e| panic!("cannot open the gpio-sim chip {}: {e}", chip.display()));

    // gpio-sim exposes one sysfs directory per simulated line: the bank must have all 8.
    let sim = hw_path("HGPOSE_HW_GPIOSIM_SYSFS");
    for line in 0..8 {
        let value = sim.join(format!("sim_gpio{line}/value"));
        assert!(value.exists(), "{} is missing", value.display());
    }
}
