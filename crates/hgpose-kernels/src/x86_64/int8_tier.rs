//! Which kernel runs int8 products on x86_64: on AVX2 without VNNI, and on CPUs with AMX.
//!
//! tract 0.23 picks `avx2_mmm_i32_8x8` there. Its i8 inner loop loads each A panel with the
//! legacy-SSE `movq` between 256-bit AVX instructions, and the SSE/AVX transition costs more than
//! the arithmetic: on an AVX2-only AMD EPYC the bundled model's int8 inference took 1339 / 1278
//! ms per frame. `.cargo/patches/` holds the one-line fix for tract. Until tract has it, hgpose
//! adds a kernel-choice tier to tract's own registry (`mmm_tiers`, collected with `inventory`)
//! that names hgpose's own kernel (`x86_64/int8_mmm.rs`: `vpmaddubsw`, exact) for int8 products. Before
//! that kernel it named tract's `avx_mmm_i32_8x4` (the same widening arithmetic in VEX-encoded
//! 128-bit code): 140 / 93 ms on that machine (alternating runs, README "Measured").
//! `HGPOSE_INT8_KERNEL=<name>` names another kernel tract has (to compare them).
//!
//! On CPUs with AMX-INT8 tract runs every int8 product on its AMX kernels, which lose to its
//! AVX-512 VNNI ones on shallow products: the tier sends those to VNNI ([`AMX_MIN_DEPTH`]). Float
//! products and CPUs with VNNI but no AMX keep tract's choices. `HGPOSE_TRACT_OPS=1` (tract
//! alone) turns the tier off.

/// The kernel hgpose prefers for int8 products on x86_64 with AVX2 and no VNNI.
pub const AVX2_INT8_KERNEL: &str = super::int8_mmm::NAME;

/// tract's AVX-512 VNNI kernel with 16x16 tiles, which packs both operands alike (`PackedI8K4`),
/// so `transposed_product` can turn its products around.
pub const VNNI_WIDE_KERNEL: &str = "avx512vnni_mmm_i32_16x16";

/// The depth (k) from which tract's AMX kernels beat [`VNNI_WIDE_KERNEL`] on an AMX machine
/// (Xeon with AMX-INT8, `cargo bench --bench kernels`): at k 576 and 1152 AMX ran 1.6-2.6x
/// faster, at k 64-256 it ran at best level with VNNI and 1.7-5.2x slower once VNNI's products
/// were turned to store along the pixels (AMX packs `a` its own way, so it cannot be turned).
/// Products shallower than this, the 1x1 convolutions and the 3x3 ones of under 57 channels,
/// go to VNNI there: the bundled model's int8 inference took 13.5-14.6 ms against 46-58 with
/// AMX everywhere, the paper's 2x256 215-251 against 389-509 (one thread, README "Measured").
pub const AMX_MIN_DEPTH: usize = 512;

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
    tier::applies(&tract_linalg::isa::native())
        && !crate::cpu::has_int8_dot_product()
        && avx2_int8_kernel() == AVX2_INT8_KERNEL
}

mod tier {
    use tract_linalg::isa::{Arch, Isa, IsaSet};
    use tract_linalg::mmm::{Query, Suitable};
    use tract_linalg::mmm_tiers::MmmTier;
    use tract_onnx::prelude::DatumType;

    /// Any CPU with AVX2 (the tier's cases are all among them), unless tract runs alone.
    pub fn applies(isa: &IsaSet) -> bool {
        std::env::var_os("HGPOSE_TRACT_OPS").is_none() && isa.has(Isa::X86_64Avx2)
    }

    /// int8 products (i32 accumulators) other than matrix-vector ones, which tract's AVX2 tier
    /// leaves to others too. Where no dot-product kernel (VNNI, AVX-VNNI, AMX) could run them,
    /// hgpose's AVX2 kernel. Where AMX could, shallow ones go to [`super::VNNI_WIDE_KERNEL`]
    /// instead (see [`super::AMX_MIN_DEPTH`]). Other dot-product choices are tract's. A kernel
    /// this build lacks makes tract ask the next tier.
    pub fn preferred(
        _: &IsaSet,
        acc: DatumType,
        query: &Query,
        suitable: &[Suitable],
    ) -> Option<&'static str> {
        if acc != DatumType::I32 || query.n == Some(1) {
            return None;
        }
        let has = |pattern: &str| {
            suitable
                .iter()
                .any(|(kernel, _, _)| kernel.name().contains(pattern))
        };
        if has("amx") {
            let deep = |d: Option<usize>, at_least: usize| d.is_none_or(|d| d >= at_least);
            let amx_pays =
                deep(query.k, super::AMX_MIN_DEPTH) && deep(query.m, 16) && deep(query.n, 16);
            return (!amx_pays && has(super::VNNI_WIDE_KERNEL)).then_some(super::VNNI_WIDE_KERNEL);
        }
        (!has("vnni")).then_some(super::avx2_int8_kernel())
    }

    // Above tract's own x86_64 tiers (1-8): asked first, answering only where `applies`.
    inventory::submit! {
        MmmTier {
            arch: Some(Arch::X86_64),
            precedence: 9,
            name: "hgpose-int8",
            applies,
            preferred,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tier::{applies, preferred};
    use super::{AMX_MIN_DEPTH, AVX2_INT8_KERNEL, TRACT_AVX_INT8_KERNEL, VNNI_WIDE_KERNEL};
    use tract_linalg::isa::{Arch, Isa, IsaSet};
    use tract_linalg::mmm::Query;
    use tract_onnx::prelude::DatumType;

    fn declared(name: &str) -> Option<Box<dyn tract_linalg::mmm::MatMatMul>> {
        tract_linalg::mmm_routines::declared()
            .map(|r| (r.make)())
            .find(|k| k.name() == name)
    }

    fn kernel(name: &str) -> Box<dyn tract_linalg::mmm::MatMatMul> {
        declared(name).unwrap_or_else(|| panic!("tract declares no {name}"))
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

    /// Where AMX could run an int8 product, shallow or narrow ones go to the VNNI kernel that
    /// packs both operands alike, deep ones stay with tract's choice (AMX).
    #[test]
    fn sends_shallow_products_from_amx_to_vnni() {
        let Some(amx) = declared("avx512amx_mmm_i32_16x16") else {
            eprintln!("this build of tract has no AMX kernels (its assembler lacked AMX): nothing to choose between");
            return;
        };
        let isa = tract_linalg::isa::native();
        let suitable = vec![
            (amx, 1, None),
            (kernel("avx512amx_mmm_i32_8x8"), 1, None),
            (kernel(VNNI_WIDE_KERNEL), 1, None),
        ];
        let query = |m, k, n| Query::plain(DatumType::I32, Some(m), Some(k), Some(n));
        let choice = |m, k, n| preferred(&isa, DatumType::I32, &query(m, k, n), &suitable);
        // A 1x1 convolution over 4096 pixels, pixels as m: VNNI, to be turned around.
        assert_eq!(choice(4096, 128, 256), Some(VNNI_WIDE_KERNEL));
        assert_eq!(choice(4096, AMX_MIN_DEPTH - 1, 64), Some(VNNI_WIDE_KERNEL));
        // A 3x3 convolution of 128 channels: tract's AMX tier decides.
        assert_eq!(choice(128, 1152, 4096), None);
        assert_eq!(choice(64, AMX_MIN_DEPTH, 4096), None);
        // Deep but over a 2x2 map: too narrow for AMX's 16x16 tiles.
        assert_eq!(choice(128, 1152, 4), Some(VNNI_WIDE_KERNEL));
        // Float products and matrix-vector ones are never the tier's.
        let f32 = Query::plain(DatumType::F32, Some(4096), Some(128), Some(256));
        assert_eq!(preferred(&isa, DatumType::F32, &f32, &suitable), None);
        assert_eq!(choice(4096, 128, 1), None);
        // Without the VNNI kernel among the candidates, tract's AMX choice stands.
        assert_eq!(
            preferred(&isa, DatumType::I32, &query(4096, 128, 256), &suitable[..2]),
            None
        );
    }

    /// The kernel named is in tract's inventory (so the tier's answer resolves), needs AVX2 and
    /// nothing more, and takes 8-bit operands in the K=4 layout on both sides, the layout
    /// hgpose's own im2col and packing ops write (`fast_im2col`, `fast_pack`).
    #[test]
    fn the_named_kernel_is_registered_and_takes_k4_operands() {
        let ours = declared(AVX2_INT8_KERNEL)
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
