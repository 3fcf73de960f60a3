//! tract's matrix-product kernels alone, on the shapes of the hourglass's convolutions, with
//! packed operands already in memory: what the kernels give before any graph overhead, and what
//! the orientation of the output costs.
//!
//! `cargo bench --bench kernels` prints, per shape and kernel, the best of 15 runs storing the
//! `m x n` result row-major (`n`-contiguous) and column-major (`m`-contiguous), and the ratio of
//! the two. For int8 that ratio is why `src/model/transposed_product.rs` turns products around;
//! for f32 the row-major figures against `bench --profile`'s per-node times show what the graph
//! around the kernels costs.

use tract_linalg::mmm::{AsInputValue, FusedSpec, MatMatMul};
use tract_onnx::prelude::*;

/// (m, k, n): a 3x3 convolution of 128 channels on 64x64 (weights as `a`), 1x1 convolutions of
/// 64-256 channels over 4096 pixels in both orientations, the bundled model's 3x3 stem.
const SHAPES: [(usize, usize, usize); 7] = [
    (128, 1152, 4096),
    (128, 64, 4096),
    (4096, 64, 128),
    (128, 256, 4096),
    (4096, 256, 128),
    (64, 576, 4096),
    (128, 1152, 96),
];

/// Best-of-15 milliseconds of one product, storing into `c` through `view`.
fn time(
    mmm: &dyn MatMatMul,
    packing: usize,
    (m, k, n): (usize, usize, usize),
    dt: DatumType,
    m_contiguous: bool,
) -> TractResult<f64> {
    let (pa_format, pb_format) = &mmm.packings()[packing];
    let a = Tensor::zero_dt(dt, &[m, k])?;
    let b = Tensor::zero_dt(dt, &[k, n])?;
    let pa = pa_format.prepare_one(&a, 1, 0)?;
    let pb = pb_format.prepare_one(&b, 0, 1)?;
    let (shape, m_axis, n_axis) = if m_contiguous {
        ([n, m], 1, 0)
    } else {
        ([m, n], 0, 1)
    };
    let mut c = Tensor::zero_dt(mmm.internal_type(), &shape)?;
    let mut best = f64::MAX;
    for _ in 0..15 {
        let start = std::time::Instant::now();
        // SAFETY: `c` has the shape the view describes, and outlives the call.
        unsafe {
            let store = mmm.c_view(Some(m_axis), Some(n_axis)).wrap(&c.view_mut());
            let a = AsInputValue::Borrowed(&*pa);
            let b = AsInputValue::Borrowed(&*pb);
            mmm.run(
                m,
                n,
                &[
                    FusedSpec::AddMatMul { a, b, packing },
                    FusedSpec::Store(store),
                ],
            )?;
        }
        best = best.min(start.elapsed().as_secs_f64());
    }
    Ok(best * 1e3)
}

/// The CPU's own ceiling for each kind of multiply-add the kernels are built from, on x86_64 with
/// AVX2 and FMA: 12 independent accumulators, no memory traffic. f32 `vfmadd231ps` does 8
/// multiply-adds per instruction; `vpmaddwd` (i16 pairs into i32, how hgpose's AVX2 int8 kernel
/// multiplies) does 16, plus a `vpaddd` to accumulate. Whether int8 can beat f32 on a CPU
/// without VNNI comes down to how many of each it retires per cycle.
#[cfg(target_arch = "x86_64")]
mod peaks {
    use std::arch::x86_64::*;
    use std::hint::black_box;

    const ROUNDS: usize = 20_000_000;

    #[target_feature(enable = "avx2,fma")]
    fn f32_fma() -> f32 {
        let (a, b) = (
            _mm256_set1_ps(black_box(0.999)),
            _mm256_set1_ps(black_box(1e-9)),
        );
        let mut acc = [_mm256_set1_ps(1.0); 12];
        for _ in 0..ROUNDS {
            for x in &mut acc {
                *x = _mm256_fmadd_ps(*x, a, b);
            }
        }
        let mut sum = [0f32; 8];
        // SAFETY: `sum` holds 8 floats.
        unsafe {
            _mm256_storeu_ps(
                sum.as_mut_ptr(),
                acc.iter().fold(b, |s, x| _mm256_add_ps(s, *x)),
            )
        };
        sum[0]
    }

    #[target_feature(enable = "avx2")]
    fn i16_madd() -> i32 {
        let (a, b) = (
            _mm256_set1_epi16(black_box(3)),
            _mm256_set1_epi16(black_box(-2)),
        );
        // Each product reads its own accumulator, so none can be hoisted or shared.
        let mut acc = [a; 12];
        for _ in 0..ROUNDS {
            for s in &mut acc {
                *s = _mm256_add_epi32(*s, _mm256_madd_epi16(*s, b));
            }
        }
        let total = acc.iter().fold(a, |s, v| _mm256_add_epi32(s, *v));
        _mm256_extract_epi32(total, 0)
    }

    #[target_feature(enable = "avx512f")]
    fn f32_fma_zmm() -> f32 {
        let (a, b) = (
            _mm512_set1_ps(black_box(0.999)),
            _mm512_set1_ps(black_box(1e-9)),
        );
        let mut acc = [_mm512_set1_ps(1.0); 12];
        for _ in 0..ROUNDS {
            for x in &mut acc {
                *x = _mm512_fmadd_ps(*x, a, b);
            }
        }
        _mm512_reduce_add_ps(acc.iter().fold(b, |s, x| _mm512_add_ps(s, *x)))
    }

    /// `vpdpbusd`: 4 u8 x s8 products summed into each of 16 i32 lanes (hgpose's int8
    /// convolutions, `model/i8_conv_kernel.rs`).
    #[target_feature(enable = "avx512f,avx512vnni")]
    fn u8s8_dot_zmm() -> i32 {
        let (a, b) = (
            _mm512_set1_epi32(black_box(0x0102_0304)),
            _mm512_set1_epi32(black_box(0x0506_0708)),
        );
        let mut acc = [_mm512_setzero_si512(); 12];
        for _ in 0..ROUNDS {
            for x in &mut acc {
                *x = _mm512_dpbusd_epi32(*x, a, b);
            }
        }
        _mm512_reduce_add_epi32(acc.iter().fold(a, |s, x| _mm512_add_epi32(s, *x)))
    }

    /// Multiply-adds per nanosecond of `run`, one of the loops above (`ROUNDS` x 12
    /// instructions of `macs_per_instruction` each).
    fn rate(macs_per_instruction: f64, run: impl FnOnce()) -> f64 {
        let start = std::time::Instant::now();
        run();
        (ROUNDS * 12) as f64 * macs_per_instruction / start.elapsed().as_nanos() as f64
    }

    /// Multiply-adds per nanosecond on AVX-512: f32 FMA, then u8 x s8 `vpdpbusd` (where the
    /// CPU has VNNI).
    pub fn measure_avx512() -> Option<(f64, f64)> {
        if !(is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vnni")) {
            return None;
        }
        // SAFETY: AVX-512F and VNNI, checked above.
        let fma = rate(16.0, || {
            black_box(unsafe { f32_fma_zmm() });
        });
        let dot = rate(64.0, || {
            black_box(unsafe { u8s8_dot_zmm() });
        });
        Some((fma, dot))
    }

    /// Multiply-adds per nanosecond: f32 FMA, then i16 `vpmaddwd` (with its accumulating add).
    pub fn measure() -> Option<(f64, f64)> {
        if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
            return None;
        }
        // SAFETY: both need AVX2 and FMA, checked above.
        let fma = rate(8.0, || {
            black_box(unsafe { f32_fma() });
        });
        let madd = rate(16.0, || {
            black_box(unsafe { i16_madd() });
        });
        Some((fma, madd))
    }
}

fn main() -> TractResult<()> {
    #[cfg(target_arch = "x86_64")]
    if let Some((fma, madd)) = peaks::measure() {
        println!(
            "instruction ceilings: f32 vfmadd231ps {fma:.1} GMAC/s, i16 vpmaddwd+vpaddd {madd:.1} GMAC/s ({:.2}x)",
            madd / fma
        );
    }
    #[cfg(target_arch = "x86_64")]
    if let Some((fma, dot)) = peaks::measure_avx512() {
        println!(
            "AVX-512 ceilings: f32 vfmadd231ps {fma:.1} GMAC/s, u8xs8 vpdpbusd {dot:.1} GMAC/s ({:.2}x)",
            dot / fma
        );
    }
    let dispatch = tract_linalg::MmmDispatch::native();
    for shape in SHAPES {
        let (m, k, n) = shape;
        let gmacs = (m * k * n) as f64 / 1e9;
        // f32: the kernel tract prefers for the shape; int8: every kernel with 8-bit operands
        // (hgpose's own AVX2 kernel among them)
        let mut runs: Vec<(&dyn MatMatMul, usize, DatumType)> = vec![];
        let preferred = dispatch.preferred_kernel(DatumType::F32, Some(m), Some(k), Some(n));
        let preferred = preferred.map(|p| p.name().to_string());
        let f32_kernel = dispatch
            .runnable()
            .iter()
            .find(|kernel| Some(kernel.name()) == preferred.as_deref());
        if let Some(f32_kernel) = f32_kernel {
            runs.push((&**f32_kernel, 0, DatumType::F32));
        }
        // (the portable generic kernels are left out: they run only where nothing else does)
        for kernel in dispatch
            .runnable()
            .iter()
            .filter(|k| !k.name().starts_with("generic"))
        {
            let packings = kernel.packings();
            let i8_packing = packings.iter().position(|(a, b)| {
                a.precursor() == tract_linalg::WeightType::Plain(DatumType::I8)
                    && b.precursor() == tract_linalg::WeightType::Plain(DatumType::I8)
            });
            if let Some(ix) = i8_packing {
                runs.push((&**kernel, ix, DatumType::I8));
            }
        }
        // hgpose's AVX2 kernel, named here so that this binary links (and registers) it
        let ours = hgpose_kernels::avx2_int8_kernel().filter(|k| k.runnable());
        if let Some(ours) = &ours {
            if !runs.iter().any(|(k, _, _)| k.name() == ours.name()) {
                runs.push((&**ours, 1, DatumType::I8));
            }
        }
        for (kernel, packing, dt) in runs {
            let rows = time(kernel, packing, shape, dt, false)?;
            let cols = time(kernel, packing, shape, dt, true)?;
            println!(
                "{m:>5}x{k:<5}x{n:<5} {:<28} n-contiguous {rows:7.3} ms {:6.1} GMAC/s | m-contiguous {cols:7.3} ms {:6.1} GMAC/s | {:.2}x",
                kernel.name(),
                gmacs / rows * 1e3,
                gmacs / cols * 1e3,
                cols / rows
            );
        }
    }
    Ok(())
}
