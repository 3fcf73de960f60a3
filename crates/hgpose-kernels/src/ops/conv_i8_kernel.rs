//! The inner loop of hgpose's int8 convolutions ([`super::direct_conv_i8`]): [`ROWS`] output
//! channels over a run of up to [`WIDTH`] consecutive output positions, requantized to u8 as
//! they are stored.
//!
//! The input is laid out in quads: each position holds 4 consecutive input channels' u8 values
//! side by side, which is what AVX-512 VNNI's `vpdpbusd` multiplies (4 unsigned bytes by 4
//! signed bytes, summed into one i32 lane). A reduction step `t` reads the run of positions at
//! `offsets[t]` past the run's start (one quad, shifted by one kernel tap) and multiplies it by
//! one dword of 4 weights per output channel, broadcast. 6 channels x 64 positions are 24
//! accumulators: 24 `vpdpbusd` (1536 multiply-adds) per 4 loads and 6 broadcasts. On the
//! AVX-512 Xeon VM, 12 independent `vpdpbusd` chains ran 307 GMAC/s against 63 for f32 FMAs
//! (`cargo bench --bench kernels`, "AVX-512 ceilings"): 4.9x, where the f32 kernel's layout
//! keeps the same loop shape.
//!
//! The epilogue is tract's requantization of a quantized convolution: the i32 sum plus the
//! (zero-point corrected) bias, times the channel's multiplier in f32, rounded ties to even,
//! plus the output zero point, clamped to u8; or that value dequantized to f32 at once, plus
//! an addend ([`Store`]).

/// Output channels one call computes; weights are packed in blocks of this many.
pub const ROWS: usize = 6;

/// Output positions one call covers at most.
pub const WIDTH: usize = 64;

/// Which implementation runs here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// AVX-512 VNNI (with AVX-512BW for the byte stores).
    #[cfg(target_arch = "x86_64")]
    Vnni,
    /// Plain loops: the reference the tests check the other against.
    #[cfg_attr(not(test), allow(dead_code))]
    Portable,
}

impl Kernel {
    /// The native kernel where this CPU has one (only AVX-512 VNNI for now: elsewhere tract's
    /// integer products run the int8 graph).
    pub fn native() -> Option<Kernel> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512vnni")
            && std::arch::is_x86_feature_detected!("avx512bw")
        {
            return Some(Kernel::Vnni);
        }
        None
    }

    /// How `bench` and `--profile` name it.
    pub fn name(self) -> &'static str {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::Vnni => "hgpose_conv_i8_avx512vnni_6x64",
            Kernel::Portable => "hgpose_conv_i8_portable_6x64",
        }
    }

    /// Computes `out[r * stride + p0 + i]` for `r < rows`, `i < n`: the requantized sum over
    /// steps `t` and the 4 channels `j` of a quad of `input[(offsets[t] + p0 + i) * 4 + j]`
    /// times weight byte `j` of `weights[t * ROWS + r]`, plus `bias[r]`; stored as `out` says.
    ///
    /// # Safety
    /// No other thread reads or writes those positions of `out` during the call.
    pub unsafe fn run(self, block: &Block, p0: usize, n: usize, out: Store, stride: usize) {
        assert!((1..=WIDTH).contains(&n) && (1..=ROWS).contains(&block.rows));
        assert_eq!(block.weights.len(), block.offsets.len() * ROWS);
        assert!(
            (block.max_offset + p0 + n) * 4 <= block.input.len(),
            "input overrun"
        );
        let end = (block.rows - 1) * stride + p0 + n;
        assert!(end <= out.len(), "output overrun");
        match self {
            // SAFETY: the features were detected at run time (`native`), and the asserts above
            // bound every read and write.
            #[cfg(target_arch = "x86_64")]
            Kernel::Vnni => crate::x86_64::conv_i8::block_vnni(block, p0, n, out, stride),
            Kernel::Portable => crate::generic::conv_i8::block(block, p0, n, out, stride),
        }
    }
}

pub use super::conv_geometry::Planes;

/// u8 planes (requantized outputs).
pub type OutBytes<'a> = Planes<'a, u8>;

/// Where and how a call stores its results.
#[derive(Clone, Copy)]
pub enum Store<'a> {
    /// Requantized u8 values.
    Bytes(OutBytes<'a>),
    /// Dequantized at once (`(q - zero point) * scale`, tract's `DequantizeLinearF32`), plus
    /// the addend at the output's own positions when given (a residual's skip branch).
    Floats {
        out: Planes<'a, f32>,
        scale: f32,
        addend: Option<&'a [f32]>,
    },
}

impl<'a> Store<'a> {
    /// The same store from position `at` of the planes (and of the addend) on.
    pub fn skip(self, at: usize) -> Self {
        match self {
            Store::Bytes(out) => Store::Bytes(out.skip(at)),
            Store::Floats { out, scale, addend } => Store::Floats {
                out: out.skip(at),
                scale,
                addend: addend.map(|a| &a[at..]),
            },
        }
    }

    fn len(&self) -> usize {
        match self {
            Store::Bytes(out) => out.len,
            Store::Floats { out, addend, .. } => addend.map_or(out.len, |a| a.len().min(out.len)),
        }
    }
}

/// What one output-channel block reads: the quad input, the steps' offsets into it (in
/// positions), the block's packed weights and its requantization.
pub struct Block<'a> {
    pub input: &'a [u8],
    pub offsets: &'a [usize],
    /// The largest of `offsets` (bounds the reads).
    pub max_offset: usize,
    /// `ROWS` dwords per step, each 4 signed weight bytes (one per channel of the quad).
    pub weights: &'a [i32],
    /// The bias with the input zero point's share taken out (`bias - x0 * sum(weights)`).
    pub bias: [i32; ROWS],
    /// Each channel's multiplier (input scale x weight scale / output scale).
    pub scale: [f32; ROWS],
    /// How many of the block's `ROWS` channels exist (the last block may be partial).
    pub rows: usize,
    pub zero_point: u8,
}

/// tract's requantization of one sum: ties to even, then the zero point, clamped to u8.
#[inline(always)]
pub fn requantize(acc: i32, scale: f32, zero_point: u8) -> u8 {
    (centred(acc, scale, zero_point) as i32 + zero_point as i32) as u8
}

/// The requantized value less its zero point (what dequantizing subtracts again), as f32.
#[inline(always)]
pub fn centred(acc: i32, scale: f32, zero_point: u8) -> f32 {
    let zp = zero_point as f32;
    (acc as f32 * scale)
        .round_ties_even()
        .clamp(-zp, 255.0 - zp)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The portable loops compute the dot products byte by byte, with the bias and tract's
    /// requantization (checked against a direct sum).
    #[test]
    fn portable_loops_sum_quads_and_requantize() {
        // Two steps, one position: quad values 1..4 and 10..13, weights of both signs.
        let input = [1u8, 2, 3, 4, 10, 11, 12, 13];
        let w = |b: [i8; 4]| i32::from_le_bytes(b.map(|v| v as u8));
        let mut weights = vec![0i32; 2 * ROWS];
        weights[0] = w([1, -1, 2, -2]); // step 0, row 0: 1 - 2 + 6 - 8 = -3
        weights[ROWS] = w([-128, 127, 0, 1]); // step 1, row 0: -1280 + 1397 + 13 = 130
        weights[1] = w([5, 5, 5, 5]); // step 0, row 1: 50
        let block = Block {
            input: &input,
            offsets: &[0, 1],
            max_offset: 1,
            weights: &weights,
            bias: [3, -50, 0, 0, 0, 0],
            scale: [0.5, 1.0, 1.0, 1.0, 1.0, 1.0],
            rows: 2,
            zero_point: 10,
        };
        let mut out = [0u8; 2];
        unsafe { Kernel::Portable.run(&block, 0, 1, Store::Bytes(OutBytes::new(&mut out)), 1) };
        // row 0: (-3 + 130 + 3) * 0.5 = 65 -> 75; row 1: (50 - 50) * 1 = 0 -> 10
        assert_eq!(out, [75, 10]);
    }

    #[test]
    fn requantization_rounds_ties_to_even_and_clamps() {
        assert_eq!(requantize(5, 0.5, 0), 2);
        assert_eq!(requantize(7, 0.5, 0), 4);
        assert_eq!(requantize(-7, 0.5, 10), 6);
        assert_eq!(requantize(-1000, 1.0, 10), 0);
        assert_eq!(requantize(1000, 1.0, 10), 255);
        assert_eq!(requantize(i32::MAX, 1.0, 0), 255);
    }
}
