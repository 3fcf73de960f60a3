//! The inner loop of hgpose's f32 convolutions ([`super::direct_conv`]): [`ROWS`] output
//! channels over a run of up to [`Kernel::width`] consecutive output positions.
//!
//! Each reduction step `t` reads the run of input values at `offsets[t]` past the run's start
//! (one input channel, shifted by one kernel tap) and multiplies it by one weight per output
//! channel, broadcast. The input is read where it lies, without packing or im2col: for a 1x1
//! convolution it is the NCHW tensor itself, for a 3x3 one a zero-bordered copy. With
//! AVX-512, 6 channels x 64 positions are 24 accumulators of 16 lanes: 24 FMAs per 4 loads and
//! 6 broadcasts, so the FMA units, not memory, set the pace.

/// Output channels one call computes; weights are packed in blocks of this many.
pub const ROWS: usize = 6;

/// Which implementation runs here, chosen once from the CPU's features.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// 16-lane FMAs, 64 positions a call.
    #[cfg(target_arch = "x86_64")]
    Avx512,
    /// 8-lane FMAs, 16 positions a call.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// 4-lane NEON FMAs, 16 positions a call (every aarch64 CPU).
    #[cfg(target_arch = "aarch64")]
    Neon,
    /// Plain loops: where neither runs (and the reference the tests check the others against).
    Portable,
}

impl Kernel {
    /// The fastest implementation this CPU runs, or `None` where tract's own kernels do better
    /// (and where only the portable loops would). `HGPOSE_DIRECT_CONV=avx2` picks the AVX2 one
    /// on AVX-512 CPUs too (to compare the two on one machine).
    ///
    /// On aarch64 the NEON kernel runs only when `HGPOSE_DIRECT_CONV=neon` asks: on the bundled
    /// model it executed more instructions per frame than tract's NEON products (190 M against
    /// 177 M on a Cortex-A72 and A76, `benches/arm-cost`), so tract keeps the convolutions.
    pub fn native() -> Option<Kernel> {
        static CHOSEN: std::sync::OnceLock<Option<Kernel>> = std::sync::OnceLock::new();
        *CHOSEN.get_or_init(|| {
            let asked = std::env::var("HGPOSE_DIRECT_CONV").unwrap_or_default();
            Self::detect(&asked)
        })
    }

    fn detect(asked: &str) -> Option<Kernel> {
        let avx2_asked = asked == "avx2";
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") && !avx2_asked {
                return Some(Kernel::Avx512);
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Some(Kernel::Avx2);
            }
        }
        #[cfg(target_arch = "aarch64")]
        if asked == "neon" && std::arch::is_aarch64_feature_detected!("neon") {
            return Some(Kernel::Neon);
        }
        let _ = avx2_asked;
        None
    }

    /// How `bench` and `--profile` name it, beside tract's kernels.
    pub fn name(self) -> &'static str {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => "hgpose_conv_f32_avx512_6x64",
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => "hgpose_conv_f32_avx2_6x16",
            #[cfg(target_arch = "aarch64")]
            Kernel::Neon => "hgpose_conv_f32_neon_6x16",
            Kernel::Portable => "hgpose_conv_f32_portable_6x64",
        }
    }

    /// Output positions one call covers at most.
    pub fn width(self) -> usize {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => 64,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => 16,
            #[cfg(target_arch = "aarch64")]
            Kernel::Neon => crate::aarch64::conv_f32::WIDTH,
            Kernel::Portable => 64,
        }
    }

    /// Computes `out[r * stride + p0 + i]` for `r < rows`, `i < n`: the sum over steps `t` of
    /// `weights[t * ROWS + r] * input[offsets[t] + p0 + i]`, plus `bias[r]`, floored at 0 when
    /// `relu`, plus `addend[r * stride + p0 + i]` when given.
    ///
    /// # Safety
    /// No other thread reads or writes those positions of `out` during the call (threads fill
    /// disjoint positions of the same output planes).
    pub unsafe fn run(self, block: &Block, p0: usize, n: usize, out: OutPlanes, stride: usize) {
        assert!(n >= 1 && n <= self.width() && block.rows >= 1 && block.rows <= ROWS);
        assert_eq!(block.weights.len(), block.offsets.len() * ROWS);
        assert!(
            block.max_offset + p0 + n <= block.input.len(),
            "input overrun"
        );
        let end = (block.rows - 1) * stride + p0 + n;
        assert!(end <= out.len, "output overrun");
        if let Some(addend) = block.addend {
            assert!(end <= addend.len(), "addend overrun");
        }
        let out = out.ptr;
        match self {
            // SAFETY: the features were detected at run time (`native`), and the asserts above
            // bound every read and write the kernels make.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => crate::x86_64::conv_f32::block_avx512(block, p0, n, out, stride),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 if n == 16 => {
                crate::x86_64::conv_f32::block_avx2::<true>(block, p0, n, out, stride)
            }
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => crate::x86_64::conv_f32::block_avx2::<false>(block, p0, n, out, stride),
            #[cfg(target_arch = "aarch64")]
            Kernel::Neon if n == crate::aarch64::conv_f32::WIDTH => {
                crate::aarch64::conv_f32::block_neon(block, p0, out, stride)
            }
            #[cfg(target_arch = "aarch64")]
            Kernel::Neon => crate::generic::conv_f32::block(block, p0, n, out, stride),
            Kernel::Portable => crate::generic::conv_f32::block(block, p0, n, out, stride),
        }
    }
}

/// f32 output planes.
pub type OutPlanes<'a> = super::conv_geometry::Planes<'a, f32>;

/// What one output-channel block reads: the input, the steps' offsets into it, the block's
/// packed weights (`ROWS` per step) and its epilogue.
pub struct Block<'a> {
    pub input: &'a [f32],
    pub offsets: &'a [usize],
    /// The largest of `offsets` (bounds the reads).
    pub max_offset: usize,
    pub weights: &'a [f32],
    pub bias: [f32; ROWS],
    /// How many of the block's `ROWS` channels exist (the last block may be partial).
    pub rows: usize,
    pub relu: bool,
    /// Added after the floor, at the output's own positions (a residual's skip branch).
    pub addend: Option<&'a [f32]>,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `native` agrees with the portable loops on each tail length, partial block and epilogue
    /// (up to float rounding: FMA against separate steps). Run by `crate::native`'s harness.
    pub(crate) fn compare_with_portable(native: Kernel) {
        let steps = 37;
        let input: Vec<f32> = (0..steps * 3 + 200)
            .map(|i| ((i * 7919) % 97) as f32 / 24.0 - 2.0)
            .collect();
        let offsets: Vec<usize> = (0..steps).map(|t| t * 3 + (t % 5)).collect();
        let weights: Vec<f32> = (0..steps * ROWS)
            .map(|i| ((i * 31) % 41) as f32 / 40.0 - 0.5)
            .collect();
        let addend: Vec<f32> = (0..ROWS * 100).map(|i| (i % 13) as f32 - 6.0).collect();
        for n in 1..=native.width() {
            for rows in [1, 4, ROWS] {
                for (relu, with_addend) in [(false, false), (true, false), (true, true)] {
                    let block = Block {
                        input: &input,
                        offsets: &offsets,
                        max_offset: *offsets.iter().max().unwrap(),
                        weights: &weights,
                        bias: [0.5, -1.0, 0.25, 2.0, -0.75, 0.0],
                        rows,
                        relu,
                        addend: with_addend.then_some(&addend[..]),
                    };
                    let mut want = vec![f32::NAN; ROWS * 100];
                    let mut got = want.clone();
                    for p0 in [0, 3] {
                        // SAFETY: one thread.
                        unsafe {
                            Kernel::Portable.run(&block, p0, n, OutPlanes::new(&mut want), 100);
                            native.run(&block, p0, n, OutPlanes::new(&mut got), 100);
                        }
                    }
                    for (i, (w, g)) in want.iter().zip(&got).enumerate() {
                        assert!(
                            w.is_nan() && g.is_nan() || (w - g).abs() <= 1e-4 * (1.0 + w.abs()),
                            "{native:?} n {n} rows {rows} relu {relu}: {w} vs {g} at {i}"
                        );
                    }
                }
            }
        }
    }
}
