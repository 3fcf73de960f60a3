//! The native kernels this build has for its target: what each needs of the CPU and whether it
//! runs here (for `doctor`, `info` and the harness below).
//!
//! The harness checks every native kernel that runs on this CPU against the portable reference
//! ([`crate::generic`]) on the same shapes, and says which it skipped and why. CI names in
//! `HGPOSE_EXPECT_KERNELS` (comma-separated) the kernels the target it tests should run: one
//! that was skipped or that this build lacks fails the test, so a kernel that silently stopped
//! running on its CPU is caught.

/// One native kernel.
pub struct NativeKernel {
    /// As `bench`, `--profile` and `doctor` name it.
    pub name: &'static str,
    /// What it computes.
    pub what: &'static str,
    /// The CPU features it needs, as words for messages.
    pub needs: &'static str,
    runs_here: fn() -> bool,
}

impl NativeKernel {
    /// Whether this CPU has what the kernel needs.
    pub fn runs_here(&self) -> bool {
        (self.runs_here)()
    }
}

/// The native kernels of this build's target architecture.
pub fn kernels() -> &'static [NativeKernel] {
    KERNELS
}

#[cfg(target_arch = "x86_64")]
static KERNELS: &[NativeKernel] = {
    use std::arch::is_x86_feature_detected as has;
    &[
        NativeKernel {
            name: "hgpose_conv_f32_avx512_6x64",
            what: "f32 direct convolutions",
            needs: "AVX-512F",
            runs_here: || has!("avx512f"),
        },
        NativeKernel {
            name: "hgpose_conv_f32_avx2_6x16",
            what: "f32 direct convolutions",
            needs: "AVX2 and FMA",
            runs_here: || has!("avx2") && has!("fma"),
        },
        NativeKernel {
            name: "hgpose_conv_i8_avx512vnni_6x64",
            what: "int8 direct convolutions",
            needs: "AVX-512 BW and VNNI",
            runs_here: || has!("avx512bw") && has!("avx512vnni"),
        },
        NativeKernel {
            name: "hgpose_avx2_mmm_i32_8x8",
            what: "int8 matrix products without VNNI",
            needs: "AVX2",
            runs_here: || has!("avx2"),
        },
        NativeKernel {
            name: "hgpose_interleave4_sse2",
            what: "int8 im2col and packing",
            needs: "SSE2 (every x86_64)",
            runs_here: || true,
        },
        NativeKernel {
            name: "hgpose_elementwise_avx2",
            what: "quantize, dequantize and requantize passes",
            needs: "AVX2",
            runs_here: || has!("avx2"),
        },
        NativeKernel {
            name: "hgpose_batch_norm_quantize_avx512",
            what: "batch norm, ReLU and quantization in one pass",
            needs: "AVX-512F and BW",
            runs_here: || has!("avx512f") && has!("avx512bw"),
        },
    ]
};

#[cfg(target_arch = "aarch64")]
static KERNELS: &[NativeKernel] = &[
    NativeKernel {
        name: "hgpose_conv_f32_neon_6x16",
        what: "f32 direct convolutions, with HGPOSE_DIRECT_CONV=neon",
        needs: "NEON (every aarch64)",
        runs_here: || std::arch::is_aarch64_feature_detected!("neon"),
    },
    NativeKernel {
        name: "hgpose_interleave4_neon",
        what: "int8 im2col and packing",
        needs: "NEON (every aarch64)",
        runs_here: || std::arch::is_aarch64_feature_detected!("neon"),
    },
];

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
static KERNELS: &[NativeKernel] = &[];

#[cfg(test)]
mod tests {
    use super::kernels;

    /// The check of one native kernel against the portable reference; panics on a mismatch.
    fn check(name: &str) -> fn() {
        match name {
            #[cfg(target_arch = "x86_64")]
            "hgpose_conv_f32_avx512_6x64" => || {
                use crate::ops::conv_f32_kernel::{tests::compare_with_portable, Kernel};
                compare_with_portable(Kernel::Avx512)
            },
            #[cfg(target_arch = "x86_64")]
            "hgpose_conv_f32_avx2_6x16" => || {
                use crate::ops::conv_f32_kernel::{tests::compare_with_portable, Kernel};
                compare_with_portable(Kernel::Avx2)
            },
            #[cfg(target_arch = "aarch64")]
            "hgpose_conv_f32_neon_6x16" => || {
                use crate::ops::conv_f32_kernel::{tests::compare_with_portable, Kernel};
                compare_with_portable(Kernel::Neon)
            },
            #[cfg(target_arch = "x86_64")]
            "hgpose_conv_i8_avx512vnni_6x64" => {
                crate::x86_64::conv_i8::tests::vnni_matches_the_portable_loops
            }
            #[cfg(target_arch = "x86_64")]
            "hgpose_avx2_mmm_i32_8x8" => {
                crate::x86_64::int8_mmm::tests::int8_products_are_exact_for_every_depth
            }
            #[cfg(target_arch = "x86_64")]
            "hgpose_elementwise_avx2" => elementwise::avx2_matches_the_portable_passes,
            #[cfg(target_arch = "x86_64")]
            "hgpose_batch_norm_quantize_avx512" => elementwise::avx512_matches_the_portable_pass,
            "hgpose_interleave4_sse2" | "hgpose_interleave4_neon" => interleave_matches_plain_loops,
            other => panic!("the native kernel {other} has no check in the harness"),
        }
    }

    /// The interleaving the int8 layouts use, native where the rows allow, against the plain
    /// loops on every length up to four blocks and both widths of the gathered form.
    fn interleave_matches_plain_loops() {
        use crate::generic::interleave::{deinterleave, interleave4_from};
        use crate::ops::im2col::{interleave4, interleave4_at};
        let data: Vec<u8> = (0..400).map(|i| (i * 37 % 251) as u8).collect();
        for len in 0..70 {
            let rows = [0, 1, 2, 3].map(|r| &data[r * 90..r * 90 + len]);
            let (mut got, mut want) = (vec![0; 4 * len], vec![0; 4 * len]);
            interleave4(rows[0], rows[1], rows[2], rows[3], &mut got);
            interleave4_from(rows, 0, &mut want);
            assert_eq!(got, want, "interleave4 of {len}");
        }
        for len in [8, 16] {
            let at = [3, 50, 101, 333];
            let (mut got, mut want) = (vec![0; 4 * len], vec![0; 4 * len]);
            interleave4_at(&data, at, &mut got);
            interleave4_from(at.map(|a| &data[a..a + len]), 0, &mut want);
            assert_eq!(got, want, "interleave4_at of {len}");
        }
        let (mut got, mut want) = (vec![0; 16], vec![0; 16]);
        crate::ops::im2col::deinterleave(&data[7..], 2, &mut got);
        deinterleave(&data[7..], 2, &mut want);
        assert_eq!(got, want, "deinterleave by 2");
    }

    #[cfg(target_arch = "x86_64")]
    mod elementwise {
        use crate::generic::elementwise as generic;
        use crate::generic::elementwise::BatchNorm;
        use crate::x86_64::elementwise as native;

        /// Values around every rounding tie and clamp, with NaN and infinities.
        fn floats() -> Vec<f32> {
            let mut xs: Vec<f32> = (0..1000).map(|i| (i as f32 - 500.0) * 0.37).collect();
            xs.extend([
                f32::NAN,
                f32::INFINITY,
                f32::NEG_INFINITY,
                0.5,
                -0.5,
                1.5,
                2.5,
            ]);
            xs
        }

        pub fn avx2_matches_the_portable_passes() {
            let xs = floats();
            for (scale, zp) in [(1.0, 0u8), (0.5, 128), (3.7, 17)] {
                let (mut got, mut want) = (vec![0u8; xs.len()], vec![0u8; xs.len()]);
                // SAFETY: the harness runs this where the CPU has AVX2.
                unsafe { native::quantize_u8_avx2(&xs, &mut got, scale, zp) };
                generic::quantize_u8(&xs, &mut want, scale, zp);
                assert_eq!(got, want, "quantize scale {scale} zp {zp}");
            }
            let bytes: Vec<u8> = (0..=255).collect();
            let (mut got, mut want) = (vec![0f32; 256], vec![0f32; 256]);
            // SAFETY: as above.
            unsafe { native::dequantize_u8_avx2(&bytes, &mut got, 0.03, 100) };
            generic::dequantize_u8(&bytes, &mut want, 0.03, 100);
            assert_eq!(got, want, "dequantize");
            let acc: Vec<i32> = (-3000..3000).map(|i| i * 97).collect();
            let (mut got, mut want) = (vec![0u8; acc.len()], vec![0u8; acc.len()]);
            // SAFETY: as above.
            unsafe { native::requant_run_avx2(&acc, &mut got, 0.0011, 3, 0, 255) };
            generic::requant_run(&acc, &mut want, 0.0011, 3, 0, 255);
            assert_eq!(got, want, "requantize");
        }

        pub fn avx512_matches_the_portable_pass() {
            let xs = floats();
            for floor in [None, Some(0.0)] {
                let bn = BatchNorm {
                    scale: 0.8,
                    shift: -0.3,
                    floor,
                };
                let (mut got, mut want) = (vec![0u8; xs.len()], vec![0u8; xs.len()]);
                // SAFETY: the harness runs this where the CPU has AVX-512F and BW.
                unsafe { native::batch_norm_quantize_u8_avx512(&xs, &mut got, bn, 2.0, 9) };
                generic::batch_norm_quantize_u8(&xs, &mut want, bn, 2.0, 9);
                assert_eq!(got, want, "batch norm and quantize, floor {floor:?}");
            }
        }
    }

    /// Every native kernel that runs on this CPU against the portable reference; the others
    /// are reported skipped and counted. `HGPOSE_EXPECT_KERNELS` names kernels that must run.
    #[test]
    fn native_kernels_match_the_portable_reference() {
        let (mut checked, mut skipped) = (vec![], vec![]);
        for kernel in kernels() {
            if kernel.runs_here() {
                check(kernel.name)();
                eprintln!("checked: {} ({})", kernel.name, kernel.what);
                checked.push(kernel.name);
            } else {
                eprintln!("skipped: {} (needs {})", kernel.name, kernel.needs);
                skipped.push(kernel.name);
            }
        }
        eprintln!(
            "native kernels on {}: {} checked, {} skipped",
            std::env::consts::ARCH,
            checked.len(),
            skipped.len()
        );
        let expected = std::env::var("HGPOSE_EXPECT_KERNELS").unwrap_or_default();
        for name in expected.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            assert!(
                checked.contains(&name),
                "HGPOSE_EXPECT_KERNELS names {name}, which {}",
                if skipped.contains(&name) {
                    "this CPU skipped"
                } else {
                    "this build does not have"
                }
            );
        }
    }
}
