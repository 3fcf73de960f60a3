//! Which tract kernel runs int8 products on x86_64 CPUs with AVX2 but no VNNI.
//!
//! tract 0.23 picks `avx2_mmm_i32_8x8` there. Its i8 inner loop loads each A panel with the
//! legacy-SSE `movq` between 256-bit AVX instructions, and the SSE/AVX transition costs more than
//! the arithmetic: on an AVX2-only AMD EPYC the bundled model's int8 inference took 1339 / 1278
//! ms per frame. `.cargo/patches/` holds the one-line fix for tract. Until tract has it, hgpose
//! adds a kernel-choice tier to tract's own registry (`mmm_tiers`, collected with `inventory`)
//! that names `avx_mmm_i32_8x4` for int8 products: the same widening arithmetic and epilogue in
//! VEX-encoded 128-bit code, the same packing of the weights; 140 / 93 ms on that machine
//! (alternating runs, README "Measured"). Float products and CPUs with VNNI or AMX keep
//! tract's choices. `HGPOSE_TRACT_OPS=1` (tract alone) turns the tier off.

/// The kernel hgpose prefers for int8 products on x86_64 with AVX2 and no VNNI.
pub const AVX2_INT8_KERNEL: &str = "avx_mmm_i32_8x4";

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
            .then_some(super::AVX2_INT8_KERNEL)
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
    use super::AVX2_INT8_KERNEL;
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

    /// The kernel named is one tract built into this binary, with the same weight packing as
    /// the kernel it replaces (so pre-packed weights mean the same to both).
    #[test]
    fn the_named_kernel_exists_and_packs_weights_alike() {
        let kernels: Vec<_> = tract_linalg::mmm_routines::declared()
            .map(|r| (r.make)())
            .collect();
        let ours = kernels.iter().find(|k| k.name() == AVX2_INT8_KERNEL);
        let theirs = kernels.iter().find(|k| k.name() == "avx2_mmm_i32_8x8");
        let (Some(ours), Some(theirs)) = (ours, theirs) else {
            panic!("tract lacks {AVX2_INT8_KERNEL} or avx2_mmm_i32_8x8");
        };
        assert!(ours.built());
        let weights = |k: &dyn tract_linalg::mmm::MatMatMul| {
            k.packings()
                .iter()
                .map(|(a, _)| format!("{a:?}"))
                .collect::<Vec<_>>()
        };
        let shared = weights(ours.as_ref());
        assert!(
            weights(theirs.as_ref()).iter().any(|w| shared.contains(w)),
            "{shared:?}"
        );
    }
}
