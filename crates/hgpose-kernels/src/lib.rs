//! hgpose's ops and kernels in place of tract's, and the one call that puts them into a plan.
//!
//! tract optimizes a pose network into a plan of its own ops and kernels. Some of them are slow
//! on the hourglass's shapes (convolutions lowered to packed matrix products, element passes
//! split across a sleeping thread pool, int8 products in an unfavourable orientation), so this
//! crate rewrites the plan: [`optimize`] declutters, applies the [`Rewrite`]s chosen for this
//! target and CPU ([`rewrites`]), lets tract optimize with the knobs chosen for this host, and
//! applies the rewrites of the optimized plan. It says what it did in a [`Report`].
//!
//! The layout follows tract-linalg's: portable ops in [`ops`], the scalar reference every
//! native kernel is checked against in [`generic`], and native code per architecture in
//! `x86_64/`, `aarch64/` and `arm/`, each compiled only for its own target. [`native`] lists the
//! native kernels of this build and checks each against the reference.

pub mod cpu;
pub mod generic;
pub mod native;
pub mod ops;
mod optimize;
mod rewrite;
mod spin_team;
#[cfg(test)]
mod test_models;
pub mod threads;

#[cfg(target_arch = "aarch64")]
pub mod aarch64;
#[cfg(target_arch = "arm")]
pub mod arm;
#[cfg(target_arch = "x86_64")]
pub mod x86_64;

pub use ops::direct_conv::{with_conv_cuts, ConvCuts};
pub use optimize::{kernel_names, optimize, tract_alone, Error, Report};
pub use rewrite::{rewrites, Compute, Rewrite, Stage};

/// hgpose's own AVX2 int8 matrix-product kernel where this build has one (x86_64), whether or
/// not this CPU can run it (`runnable()` says): for the kernels bench.
pub fn avx2_int8_kernel() -> Option<Box<dyn tract_linalg::mmm::MatMatMul>> {
    #[cfg(target_arch = "x86_64")]
    return Some(x86_64::int8_mmm::kernel());
    #[cfg(not(target_arch = "x86_64"))]
    return None;
}
