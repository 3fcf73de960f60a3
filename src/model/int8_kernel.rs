//! Which tract kernel runs int8 products on x86_64 CPUs with AVX2 but no VNNI.
//!
//! tract 0.23 picks `avx2_mmm_i32_8x8` there. Its i8 inner loop loads each A panel with the
//! legacy-SSE `movq` between 256-bit AVX instructions, and the SSE/AVX transition costs more than
//! the arithmetic: on an AVX2-only AMD EPYC the bundled model's int8 inference took 1339 / 1278
//! ms per frame. `.cargo/patches/` holds the one-line fix for tract. Until tract has it, hgpose
//! adds a kernel-choice tier to tract's own registry (`mmm_tiers`, collected with `inventory`)
//! that names hgpose's own kernel (`avx2_int8_mmm.rs`: `vpmaddubsw`, exact) for int8 products. Before
//! that kernel it named tract's `avx_mmm_i32_8x4` (the same widening arithmetic in VEX-encoded
//! 128-bit code): 140 / 93 ms on that machine (alternating runs, README "Measured").
//! `HGPOSE_INT8_KERNEL=<name>` names another kernel tract has (to compare them). Float
//! products and CPUs with VNNI or AMX keep tract's choices. `HGPOSE_TRACT_OPS=1` (tract alone)
//! turns the tier off.

// Only x86_64 builds run the kernel; elsewhere its names stay for the tests and docs.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]

/// The kernel hgpose prefers for int8 products on x86_64 with AVX2 and no VNNI.
pub const AVX2_INT8_KERNEL: &str = super::avx2_int8_mmm::NAME;

/// tract's 128-bit AVX kernel: the tier's choice before hgpose had its own.
#[cfg(test)]
const TRACT_AVX_INT8_KERNEL: &str = "avx_mmm_i32_8x4";

/// The kernel the tier names: [`AVX2_INT8_KERNEL`] unless `HGPOSE_INT8_KERNEL` names another.
fn avx2_int8_kernel() -> &'static str {
    static CHOSEN: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
    CHOSEN.get_or_init(|| match std::env::var("HGPOSE_INT8_KERNEL") {
        Ok(name) if !name.is_empty() => Box::leak(name.into_boxed_str()),
        _ => AVX2_INT8_KERNEL,
    })
}

/// Whether int8 products on this CPU run hgpose's own AVX2 kernel (no VNNI, the tier on, and
/// no other kernel named in `HGPOSE_INT8_KERNEL`).
pub fn hgpose_kernel_runs() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        tier::applies(&tract_linalg::isa::native())
            && !crate::platform::has_int8_dot_product()
            && avx2_int8_kernel() == AVX2_INT8_KERNEL
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

#[cfg(target_arch = "x86_64")]
mod tier {
    use tract_linalg::isa::{Arch, Isa, IsaSet};
    use tract_linalg::mmm::{Query, Suitable};
    use tract_linalg::mmm_tiers::MmmTier;
    use tract_onnx::prelude::DatumType;

    /// Any CPU where tract would fall back to its AVX2 int8 kernel.
    pub fn applies(isa: &IsaSet) -> bool {
        std::env::var_os("HGPOSE_TRACT_OPS").is_none() && isa.has(Isa::X86_64Avx2)
    }

    /// int8 products (i32 accumulators) other than matrix-vector ones, which tract's AVX2 tier
    /// leaves to others too, and only where no dot-product kernel (VNNI, AVX-VNNI, AMX) could
    /// run them: those are tract's to choose. A kernel this build lacks makes tract ask the next
    /// tier.
    pub fn preferred(
        _: &IsaSet,
        acc: DatumType,
        query: &Query,
        suitable: &[Suitable],
    ) -> Option<&'static str> {
        let dot_product = |(kernel, _, _): &Suitable| {
            let name = kernel.name();
            name.contains("vnni") || name.contains("amx")
        };
        (acc == DatumType::I32 && query.n != Some(1) && !suitable.iter().any(dot_product))
            .then_some(super::avx2_int8_kernel())
    }

    // Above tract's own x86_64 tiers (1-8): asked first, answering only where `applies`.
    inventory::submit! {
        MmmTier {
            arch: Some(Arch::X86_64),
            precedence: 9,
            name: "hgpose-avx2-int8",
            applies,
            preferred,
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::tier::{applies, preferred};
    use super::{AVX2_INT8_KERNEL, TRACT_AVX_INT8_KERNEL};
    use tract_linalg::isa::{Arch, Isa, IsaSet};
    use tract_linalg::mmm::Query;
    use tract_onnx::prelude::DatumType;

    fn kernel(name: &str) -> Box<dyn tract_linalg::mmm::MatMatMul> {
        tract_linalg::mmm_routines::declared()
            .map(|r| (r.make)())
            .find(|k| k.name() == name)
            .unwrap_or_else(|| panic!("tract declares no {name}"))
    }

    #[test]
    fn answers_int8_products_where_only_avx2_could() {
        let avx2 = IsaSet::of_arch(Arch::X86_64)
            .with(Isa::X86_64Avx)
            .with(Isa::X86_64Avx2)
            .with(Isa::X86_64Fma);
        assert!(applies(&avx2));
        assert!(!applies(
            &IsaSet::of_arch(Arch::X86_64).with(Isa::X86_64Avx)
        ));

        let plain = vec![
            (kernel("avx2_mmm_i32_8x8"), 1, None),
            (kernel(AVX2_INT8_KERNEL), 1, None),
        ];
        let int8 = Query::plain(DatumType::I32, Some(64), Some(576), Some(1024));
        assert_eq!(
            preferred(&avx2, DatumType::I32, &int8, &plain),
            Some(AVX2_INT8_KERNEL)
        );
        let f32 = Query::plain(DatumType::F32, Some(64), Some(576), Some(1024));
        assert_eq!(preferred(&avx2, DatumType::F32, &f32, &plain), None);
        let matvec = Query::plain(DatumType::I32, Some(64), Some(576), Some(1));
        assert_eq!(preferred(&avx2, DatumType::I32, &matvec, &plain), None);

        let mut with_vnni = plain;
        with_vnni.push((kernel("avx512vnni_mmm_i32_8x8"), 1, None));
        assert_eq!(preferred(&avx2, DatumType::I32, &int8, &with_vnni), None);
    }

    /// The kernel named is in tract's inventory (so the tier's answer resolves), needs AVX2 and
    /// nothing more, and takes 8-bit operands in the K=4 layout on both sides, the layout
    /// hgpose's own im2col and packing ops write (`fast_im2col`, `fast_pack`).
    #[test]
    fn the_named_kernel_is_registered_and_takes_k4_operands() {
        let ours = tract_linalg::mmm_routines::declared()
            .map(|r| (r.make)())
            .find(|k| k.name() == AVX2_INT8_KERNEL)
            .unwrap_or_else(|| panic!("{AVX2_INT8_KERNEL} is not in tract's inventory"));
        assert!(ours.built());
        let avx2 = IsaSet::of_arch(Arch::X86_64)
            .with(Isa::X86_64Avx)
            .with(Isa::X86_64Avx2);
        assert!(ours.runnable_on(&avx2));
        assert!(!ours.runnable_on(&IsaSet::of_arch(Arch::X86_64).with(Isa::X86_64Avx)));
        let k4 = format!("{:?}", tract_linalg::pack::PackedI8K4::new(8));
        assert!(
            ours.packings()
                .iter()
                .any(|(a, b)| format!("{a:?}") == k4 && format!("{b:?}") == k4),
            "{:?}",
            ours.packings()
        );
        // tract's own 128-bit kernel, the one `HGPOSE_INT8_KERNEL` names to compare, is there too.
        kernel(TRACT_AVX_INT8_KERNEL);
    }
}
