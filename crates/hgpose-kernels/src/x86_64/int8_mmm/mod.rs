//! An int8 matrix-product kernel for x86_64 CPUs with AVX2 but no VNNI, registered in tract's
//! own kernel inventory.
//!
//! tract 0.23's AVX2 int8 kernels widen every 8-bit operand to 32 bits and multiply with
//! `vpmulld`: 8 multiply-adds per instruction pair, fewer than the 8 per single FMA of the f32
//! kernels, so int8 could never beat f32 there (README "Measured"). This kernel takes both
//! operands in tract's K=4-inner layout (`PackedI8K4`, the layout of its VNNI kernels) and has
//! two ways to multiply them, both exact:
//! - **bytes** (`vpmaddubsw`, 32 products per instruction): it multiplies unsigned by signed
//!   bytes and sums pairs in 16 bits, saturating. Taken as `|b| * (a with b's sign)`, a
//!   pair is at most 2 x 128 x 127 = 32512, inside 16 bits, unless `a` is -128 (its negation
//!   does not exist in 8 bits). Symmetric weight quantization never writes -128, so this is
//!   the common path; a `vpmaddwd` by ones then sums the pairs into 32 bits.
//! - **16-bit pairs** (`vpmaddwd`, 16 per instruction), exact for every input, for an A panel
//!   that holds a -128 (the bytes path checks as it goes and the tile is recomputed): A's rows
//!   are shuffled into (k0,k1)/(k2,k3) pair vectors, B's columns widened once into an
//!   L1-resident scratch, and each column takes two broadcasts and two `vpmaddwd`.
//!
//! Kernel alone on the hourglass's shapes (`cargo bench --bench kernels`): README "Measured".
//!
//! The fused epilogue (bias, zero-point corrections, residual add, min/max, store) is
//! vectorized over the 8 rows of a column; requantization steps (`QScale`, rounding shifts)
//! run through tract's own scalar arithmetic so their rounding is tract's. `x86_64/int8_tier.rs`
//! names this kernel for int8 products on AVX2 machines without VNNI.

/// Rows and columns of one output tile.
pub const MR: usize = 8;
pub const NR: usize = 8;

/// The name tract lists this kernel under.
pub const NAME: &str = "hgpose_avx2_mmm_i32_8x8";

mod x86 {
    use super::{MR, NAME, NR};
    use std::arch::x86_64::*;
    use std::sync::LazyLock;
    use tract_linalg::isa::{Arch, Isa, IsaReq};
    use tract_linalg::mmm::{DynKernel, FusedKerSpec, OutputStoreKer};
    use tract_linalg::mmm_routines::MmmRoutine;
    use tract_linalg::pack::{PackedFormat, PackedI8K4};
    use tract_linalg::{ScaleShiftAndRound, Scaler};
    use tract_onnx::prelude::DatumType;

    /// One output tile: column `j`'s 8 rows in `tile[j]`.
    type Tile = [__m256i; NR];

    /// k-blocks (of 4) whose widened B panel is staged at once: 4 KiB, well inside L1.
    const CHUNK_BLOCKS: usize = 64;

    pub static KERNEL: LazyLock<DynKernel<MR, NR, i32>> = LazyLock::new(|| {
        // Packing 0, plain i32 panels, is what every tract kernel declares first; packing 1
        // is the int8 one this kernel exists for.
        let mut kernel = DynKernel::<MR, NR, i32>::new(
            NAME,
            run,
            PackedFormat::new(DatumType::I32, MR, 32),
            PackedFormat::new(DatumType::I32, NR, 32),
        )
        .with_packing(PackedI8K4::new(MR), PackedI8K4::new(NR))
        .with_isa(IsaReq::ANY.needing(&[Isa::X86_64Avx2]))
        // Never tract's own pick: only `x86_64/int8_tier.rs`'s tier names it.
        .with_boost(|| -1_000_000);
        kernel.arch = Some(Arch::X86_64);
        kernel
    });

    inventory::submit! {
        MmmRoutine { make: || KERNEL.mmm() }
    }

    /// The kernel entry tract calls with one tile's operations, ending in `Done`.
    unsafe fn run(ops: &[FusedKerSpec<i32>]) -> isize {
        // SAFETY: tract runs this kernel only where its IsaReq (AVX2) is met; `ops` is the
        // tile's program, its pointers valid for one MRxNR tile as tract's contract says.
        unsafe { kernel(ops) }
    }

    #[target_feature(enable = "avx2")]
    unsafe fn kernel(ops: &[FusedKerSpec<i32>]) -> isize {
        use FusedKerSpec::*;
        let mut tile: Tile = [_mm256_setzero_si256(); NR];
        for op in ops {
            unsafe {
                match *op {
                    Done => return 0,
                    Clear => tile = [_mm256_setzero_si256(); NR],
                    LoadTile(col_major, _) => {
                        for (j, column) in tile.iter_mut().enumerate() {
                            *column = _mm256_loadu_si256(col_major.add(j * MR) as *const __m256i);
                        }
                    }
                    ScalarMin(x) => scalar(&mut tile, x, |m, v| _mm256_min_epi32(m, v)),
                    ScalarMax(x) => scalar(&mut tile, x, |m, v| _mm256_max_epi32(m, v)),
                    ScalarAdd(x) => scalar(&mut tile, x, |m, v| _mm256_add_epi32(m, v)),
                    ScalarMul(x) => scalar(&mut tile, x, |m, v| _mm256_mullo_epi32(m, v)),
                    // tract's "Sub" is operand minus tile, "SubF" tile minus operand.
                    ScalarSub(x) => scalar(&mut tile, x, |m, v| _mm256_sub_epi32(m, v)),
                    ScalarSubF(x) => scalar(&mut tile, x, |m, v| _mm256_sub_epi32(v, m)),
                    LeakyRelu(x) => scalar(&mut tile, x, |m, v| {
                        let positive = _mm256_cmpgt_epi32(v, _mm256_setzero_si256());
                        _mm256_blendv_epi8(_mm256_mullo_epi32(m, v), v, positive)
                    }),
                    PerRowMin(p) => per_row(&mut tile, p, |m, v| _mm256_min_epi32(m, v)),
                    PerRowMax(p) => per_row(&mut tile, p, |m, v| _mm256_max_epi32(m, v)),
                    PerRowAdd(p) => per_row(&mut tile, p, |m, v| _mm256_add_epi32(m, v)),
                    PerRowMul(p) => per_row(&mut tile, p, |m, v| _mm256_mullo_epi32(m, v)),
                    PerRowSub(p) => per_row(&mut tile, p, |m, v| _mm256_sub_epi32(m, v)),
                    PerRowSubF(p) => per_row(&mut tile, p, |m, v| _mm256_sub_epi32(v, m)),
                    PerColMin(p) => per_col(&mut tile, p, |m, v| _mm256_min_epi32(m, v)),
                    PerColMax(p) => per_col(&mut tile, p, |m, v| _mm256_max_epi32(m, v)),
                    PerColAdd(p) => per_col(&mut tile, p, |m, v| _mm256_add_epi32(m, v)),
                    PerColMul(p) => per_col(&mut tile, p, |m, v| _mm256_mullo_epi32(m, v)),
                    PerColSub(p) => per_col(&mut tile, p, |m, v| _mm256_sub_epi32(m, v)),
                    PerColSubF(p) => per_col(&mut tile, p, |m, v| _mm256_sub_epi32(v, m)),
                    QScale(shift, policy, mult) => {
                        let scaler = Scaler::from_fuse_params(shift, policy, mult);
                        each_element(&mut tile, |x| x.q_scale(scaler));
                    }
                    RoundingShiftRight(shift, policy) => {
                        each_element(&mut tile, |x| x.q_shr(shift, policy))
                    }
                    ShiftLeft(shift) => each_element(&mut tile, |x| x.q_shl(shift)),
                    AddUnicast(other) => {
                        if !add_unicast(&mut tile, &other) {
                            return 1;
                        }
                    }
                    AddRowColProducts(rows, cols) => {
                        let rows = _mm256_loadu_si256(rows as *const __m256i);
                        for (j, column) in tile.iter_mut().enumerate() {
                            let product = _mm256_mullo_epi32(rows, _mm256_set1_epi32(*cols.add(j)));
                            *column = _mm256_add_epi32(*column, product);
                        }
                    }
                    Store(store) => {
                        if !store_tile(&tile, &store) {
                            return 1;
                        }
                    }
                    AddMatMul { k, pa, pb, packing } => match packing {
                        0 => add_i32_product(&mut tile, k, pa as *const i32, pb as *const i32),
                        1 => add_i8_k4_product(&mut tile, k, pa as *const i8, pb as *const i8),
                        _ => return 1,
                    },
                }
            }
        }
        0
    }

    #[inline(always)]
    unsafe fn scalar(tile: &mut Tile, x: i32, f: impl Fn(__m256i, __m256i) -> __m256i) {
        let m = _mm256_set1_epi32(x);
        for column in tile.iter_mut() {
            *column = f(m, *column);
        }
    }

    #[inline(always)]
    unsafe fn per_row(tile: &mut Tile, rows: *const i32, f: impl Fn(__m256i, __m256i) -> __m256i) {
        let m = unsafe { _mm256_loadu_si256(rows as *const __m256i) };
        for column in tile.iter_mut() {
            *column = f(m, *column);
        }
    }

    #[inline(always)]
    unsafe fn per_col(tile: &mut Tile, cols: *const i32, f: impl Fn(__m256i, __m256i) -> __m256i) {
        for (j, column) in tile.iter_mut().enumerate() {
            *column = f(_mm256_set1_epi32(unsafe { *cols.add(j) }), *column);
        }
    }

    /// Applies a scalar step of tract's to every element (its rounding rules, not a copy).
    #[inline(always)]
    unsafe fn each_element(tile: &mut Tile, f: impl Fn(i32) -> i32) {
        for column in tile.iter_mut() {
            let mut values = [0i32; MR];
            unsafe { _mm256_storeu_si256(values.as_mut_ptr() as *mut __m256i, *column) };
            for v in &mut values {
                *v = f(*v);
            }
            *column = unsafe { _mm256_loadu_si256(values.as_ptr() as *const __m256i) };
        }
    }

    /// Adds another tile of i32 or i8 values (a residual branch) to the accumulators.
    #[inline(always)]
    unsafe fn add_unicast(tile: &mut Tile, other: &OutputStoreKer) -> bool {
        for (j, column) in tile.iter_mut().enumerate() {
            let base = unsafe { other.ptr.offset(other.col_byte_stride * j as isize) };
            let values = match (other.item_size, other.row_byte_stride) {
                (4, 4) => unsafe { _mm256_loadu_si256(base as *const __m256i) },
                (1, 1) => unsafe { _mm256_cvtepi8_epi32(_mm_loadl_epi64(base as *const __m128i)) },
                (4, _) | (1, _) => {
                    let mut values = [0i32; MR];
                    for (i, v) in values.iter_mut().enumerate() {
                        let at = unsafe { base.offset(other.row_byte_stride * i as isize) };
                        *v = if other.item_size == 4 {
                            unsafe { (at as *const i32).read_unaligned() }
                        } else {
                            unsafe { *(at as *const i8) as i32 }
                        };
                    }
                    unsafe { _mm256_loadu_si256(values.as_ptr() as *const __m256i) }
                }
                _ => return false,
            };
            *column = _mm256_add_epi32(*column, values);
        }
        true
    }

    /// Stores the tile: i32 as is, or its low 1 or 2 bytes per element as tract's kernels do.
    #[inline(always)]
    unsafe fn store_tile(tile: &Tile, store: &OutputStoreKer) -> bool {
        let (size, rows, cols) = (
            store.item_size,
            store.row_byte_stride,
            store.col_byte_stride,
        );
        if size == 4 && rows == 4 {
            // Column-major: each column's 8 rows are contiguous.
            for (j, column) in tile.iter().enumerate() {
                let at = unsafe { store.ptr.offset(cols * j as isize) } as *mut __m256i;
                unsafe { _mm256_storeu_si256(at, *column) };
            }
            return true;
        }
        if size == 4 && cols == 4 {
            // Row-major (a channel plane's pixels): turn the tile around, store 8 rows.
            for (i, row) in transpose(tile).iter().enumerate() {
                let at = unsafe { store.ptr.offset(rows * i as isize) } as *mut __m256i;
                unsafe { _mm256_storeu_si256(at, *row) };
            }
            return true;
        }
        for (j, column) in tile.iter().enumerate() {
            let mut values = [0i32; MR];
            unsafe { _mm256_storeu_si256(values.as_mut_ptr() as *mut __m256i, *column) };
            for (i, v) in values.into_iter().enumerate() {
                let at = unsafe { store.ptr.offset(rows * i as isize + cols * j as isize) };
                match size {
                    1 => unsafe { *at = v as u8 },
                    2 => unsafe { (at as *mut u16).write_unaligned(v as u16) },
                    4 => unsafe { (at as *mut i32).write_unaligned(v) },
                    _ => return false,
                }
            }
        }
        true
    }

    /// The tile's rows: `transpose(tile)[i]` holds row `i` of the 8 columns.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn transpose(tile: &Tile) -> Tile {
        let [c0, c1, c2, c3, c4, c5, c6, c7] = *tile;
        // Pairs of columns interleaved by element, then by pairs of elements, then the
        // 128-bit halves exchanged: the classic 8x8 transpose in 24 shuffles.
        let t0 = _mm256_unpacklo_epi32(c0, c1);
        let t1 = _mm256_unpackhi_epi32(c0, c1);
        let t2 = _mm256_unpacklo_epi32(c2, c3);
        let t3 = _mm256_unpackhi_epi32(c2, c3);
        let t4 = _mm256_unpacklo_epi32(c4, c5);
        let t5 = _mm256_unpackhi_epi32(c4, c5);
        let t6 = _mm256_unpacklo_epi32(c6, c7);
        let t7 = _mm256_unpackhi_epi32(c6, c7);
        let u0 = _mm256_unpacklo_epi64(t0, t2);
        let u1 = _mm256_unpackhi_epi64(t0, t2);
        let u2 = _mm256_unpacklo_epi64(t1, t3);
        let u3 = _mm256_unpackhi_epi64(t1, t3);
        let u4 = _mm256_unpacklo_epi64(t4, t6);
        let u5 = _mm256_unpackhi_epi64(t4, t6);
        let u6 = _mm256_unpacklo_epi64(t5, t7);
        let u7 = _mm256_unpackhi_epi64(t5, t7);
        [
            _mm256_permute2x128_si256(u0, u4, 0x20),
            _mm256_permute2x128_si256(u1, u5, 0x20),
            _mm256_permute2x128_si256(u2, u6, 0x20),
            _mm256_permute2x128_si256(u3, u7, 0x20),
            _mm256_permute2x128_si256(u0, u4, 0x31),
            _mm256_permute2x128_si256(u1, u5, 0x31),
            _mm256_permute2x128_si256(u2, u6, 0x31),
            _mm256_permute2x128_si256(u3, u7, 0x31),
        ]
    }

    /// Plain i32 panels (packing 0): `MR` values of A and `NR` of B per k.
    #[inline(always)]
    unsafe fn add_i32_product(tile: &mut Tile, k: usize, pa: *const i32, pb: *const i32) {
        for ik in 0..k {
            let a = unsafe { _mm256_loadu_si256(pa.add(ik * MR) as *const __m256i) };
            for (j, column) in tile.iter_mut().enumerate() {
                let b = _mm256_set1_epi32(unsafe { *pb.add(ik * NR + j) });
                *column = _mm256_add_epi32(*column, _mm256_mullo_epi32(a, b));
            }
        }
    }

    /// int8 panels in the K=4-inner layout (packing 1): per block of 4 k, A holds `MR` rows of 4
    /// bytes, B `NR` columns of 4 bytes; k past the end is zero-padded by the packer.
    #[inline(always)]
    unsafe fn add_i8_k4_product(tile: &mut Tile, k: usize, pa: *const i8, pb: *const i8) {
        if let Some(sums) = unsafe { byte_product(k, pa, pb) } {
            for (column, sum) in tile.iter_mut().zip(sums) {
                *column = _mm256_add_epi32(*column, sum);
            }
        } else {
            unsafe { pair_product(tile, k, pa, pb) }
        }
    }

    /// The product through `vpmaddubsw`, or `None` where A holds a -128 (see the module doc).
    #[inline(always)]
    pub(super) unsafe fn byte_product(k: usize, pa: *const i8, pb: *const i8) -> Option<Tile> {
        let ones = _mm256_set1_epi16(1);
        let minus_128 = _mm256_set1_epi8(i8::MIN);
        let mut seen_minus_128 = _mm256_setzero_si256();
        let mut acc = [_mm256_setzero_si256(); NR];
        for block in 0..k.div_ceil(4) {
            let a = unsafe { _mm256_loadu_si256(pa.add(block * 4 * MR) as *const __m256i) };
            seen_minus_128 = _mm256_or_si256(seen_minus_128, _mm256_cmpeq_epi8(a, minus_128));
            let columns = unsafe { pb.add(block * 4 * NR) } as *const i32;
            for (j, column) in acc.iter_mut().enumerate() {
                let b = _mm256_set1_epi32(unsafe { columns.add(j).read_unaligned() });
                let pairs = _mm256_maddubs_epi16(_mm256_abs_epi8(b), _mm256_sign_epi8(a, b));
                *column = _mm256_add_epi32(*column, _mm256_madd_epi16(pairs, ones));
            }
        }
        (_mm256_testz_si256(seen_minus_128, seen_minus_128) == 1).then_some(acc)
    }

    /// The product through `vpmaddwd` on 16-bit pairs: exact for every 8-bit input.
    #[inline(always)]
    pub(super) unsafe fn pair_product(tile: &mut Tile, k: usize, pa: *const i8, pb: *const i8) {
        // Within each 128-bit lane (4 rows of 4 bytes): the rows' (k0,k1) byte pairs first,
        // then their (k2,k3) pairs.
        let pairs_first = _mm256_setr_epi8(
            0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15, //
            0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15,
        );
        // Widened B: per block, per column, (k0,k1) then (k2,k3) as two i16 pairs.
        // Uninitialized: only the blocks written just before are read (zeroing it was a 4 KiB
        // memset per tile, as long as a k=64 product's arithmetic).
        let mut widened = [const { std::mem::MaybeUninit::<__m256i>::uninit() }; 2 * CHUNK_BLOCKS];
        let blocks = k.div_ceil(4);
        // Accumulators in locals, so they stay in registers across the loop.
        let mut acc = *tile;
        let mut block = 0;
        while block < blocks {
            let chunk = (blocks - block).min(CHUNK_BLOCKS);
            for b in 0..chunk {
                let src = unsafe { pb.add((block + b) * 4 * NR) } as *const __m128i;
                unsafe {
                    widened[2 * b].write(_mm256_cvtepi8_epi16(_mm_loadu_si128(src)));
                    widened[2 * b + 1].write(_mm256_cvtepi8_epi16(_mm_loadu_si128(src.add(1))));
                }
            }
            let pairs = widened.as_ptr() as *const i32;
            for b in 0..chunk {
                let a =
                    unsafe { _mm256_loadu_si256(pa.add((block + b) * 4 * MR) as *const __m256i) };
                // [rows 0-3 k01, rows 4-7 k01 | rows 0-3 k23, rows 4-7 k23]
                let a =
                    _mm256_permute4x64_epi64(_mm256_shuffle_epi8(a, pairs_first), 0b11_01_10_00);
                let a01 = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(a));
                let a23 = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(a, 1));
                let column_pairs = unsafe { pairs.add(b * 2 * NR) };
                for (j, column) in acc.iter_mut().enumerate() {
                    let (b01, b23) = unsafe {
                        (
                            _mm256_set1_epi32(*column_pairs.add(2 * j)),
                            _mm256_set1_epi32(*column_pairs.add(2 * j + 1)),
                        )
                    };
                    let sum =
                        _mm256_add_epi32(_mm256_madd_epi16(a01, b01), _mm256_madd_epi16(a23, b23));
                    *column = _mm256_add_epi32(*column, sum);
                }
            }
            block += chunk;
        }
        *tile = acc;
    }
}

/// hgpose's AVX2 int8 kernel, whether or not this CPU can run it (`runnable()` says).
pub fn kernel() -> Box<dyn tract_linalg::mmm::MatMatMul> {
    x86::KERNEL.mmm()
}

#[cfg(test)]
pub(crate) mod tests;
