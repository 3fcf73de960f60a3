use super::{x86::KERNEL, MR, NR};
use tract_linalg::mmm::RoundingPolicy;
use tract_linalg::mmm::{FusedKerSpec, MatMatMulKer, OutputStoreKer};
use tract_linalg::{ScaleShiftAndRound, Scaler};

/// A fused step, its name, and what it does to element (row, column, value).
type Step<'a> = (
    &'static str,
    FusedKerSpec<i32>,
    Box<dyn Fn(usize, usize, i32) -> i32 + 'a>,
);

fn avx2() -> bool {
    let here = std::arch::is_x86_feature_detected!("avx2");
    if !here {
        eprintln!("SKIPPED: this CPU has no AVX2, the kernel cannot run here");
    }
    here
}

/// A small deterministic generator: every i8 value, the extremes included, turns up.
fn bytes(count: usize, seed: u32) -> Vec<i8> {
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(12_345);
    (0..count)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            match i % 23 {
                0 => -128,
                1 => 127,
                _ => state as i8,
            }
        })
        .collect()
}

/// `PackedI8K4` of an `r x k` matrix given row by row: byte `(k/4)*4r + row*4 + k%4`.
fn pack_k4(rows: &[Vec<i8>], k: usize) -> Vec<i8> {
    let r = rows.len();
    let mut out = vec![0i8; k.div_ceil(4) * 4 * r];
    for (m, row) in rows.iter().enumerate() {
        for (kk, v) in row.iter().enumerate().take(k) {
            out[(kk / 4) * 4 * r + m * 4 + kk % 4] = *v;
        }
    }
    out
}

/// A (8 rows) and B (8 columns), each as rows of k values.
fn operands(k: usize, seed: u32) -> (Vec<Vec<i8>>, Vec<Vec<i8>>) {
    let a = (0..MR).map(|i| bytes(k, seed + i as u32)).collect();
    let b = (0..NR).map(|j| bytes(k, seed + 100 + j as u32)).collect();
    (a, b)
}

fn product(a: &[Vec<i8>], b: &[Vec<i8>]) -> [[i32; NR]; MR] {
    let mut c = [[0i32; NR]; MR];
    for (i, row) in c.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = a[i]
                .iter()
                .zip(&b[j])
                .map(|(x, y)| *x as i32 * *y as i32)
                .sum();
        }
    }
    c
}

fn store_i32(c: &mut [i32], row_major: bool) -> OutputStoreKer {
    let (rows, cols) = if row_major { (NR, 1) } else { (1, MR) };
    OutputStoreKer {
        ptr: c.as_mut_ptr() as *mut u8,
        row_byte_stride: (rows * 4) as isize,
        col_byte_stride: (cols * 4) as isize,
        item_size: 4,
    }
}

fn run(ops: &[FusedKerSpec<i32>]) {
    assert_eq!(KERNEL.kernel(ops), 0, "the kernel refused {ops:?}");
}

/// Integer sums are exact for every 8-bit input (no 16-bit saturation), for any depth:
/// one block, a partial block, and more blocks than the B scratch holds at once.
#[test]
pub(crate) fn int8_products_are_exact_for_every_depth() {
    if !avx2() {
        return;
    }
    for k in [1, 3, 4, 5, 64, 255, 256, 257, 600, 1152] {
        let (a, b) = operands(k, k as u32);
        // Weights as symmetric quantization writes them (no -128: the byte path), and with
        // a -128 (the 16-bit pair path); B keeps every value.
        let symmetric: Vec<Vec<i8>> = a
            .iter()
            .map(|row| row.iter().map(|v| (*v).max(-127)).collect())
            .collect();
        for a in [&symmetric, &a] {
            let (pa, pb) = (pack_k4(a, k), pack_k4(&b, k));
            for row_major in [false, true] {
                let mut c = vec![0i32; MR * NR];
                run(&[
                    FusedKerSpec::Clear,
                    FusedKerSpec::AddMatMul {
                        k,
                        pa: pa.as_ptr() as *const u8,
                        pb: pb.as_ptr() as *const u8,
                        packing: 1,
                    },
                    FusedKerSpec::Store(store_i32(&mut c, row_major)),
                    FusedKerSpec::Done,
                ]);
                let want = product(a, &b);
                for (i, want_row) in want.iter().enumerate() {
                    for (j, want) in want_row.iter().enumerate() {
                        let got = if row_major {
                            c[i * NR + j]
                        } else {
                            c[j * MR + i]
                        };
                        assert_eq!(got, *want, "k={k} row_major={row_major} at ({i},{j})");
                    }
                }
            }
        }
    }
}

/// The byte path runs exactly where it is exact: it declines an A panel holding -128 and
/// takes one without, with B at both of its extremes.
#[test]
fn the_byte_path_declines_a_minus_128_weight() {
    if !avx2() {
        return;
    }
    let k = 64;
    let mut a: Vec<Vec<i8>> = (0..MR).map(|_| vec![-127i8; k]).collect();
    let b: Vec<Vec<i8>> = (0..NR)
        .map(|j| vec![if j % 2 == 0 { -128 } else { 127 }; k])
        .collect();
    let pb = pack_k4(&b, k);
    // SAFETY: both panels hold k.div_ceil(4) blocks of 32 bytes.
    let taken = unsafe { super::x86::byte_product(k, pack_k4(&a, k).as_ptr(), pb.as_ptr()) };
    assert!(taken.is_some(), "no -128 in A, yet the byte path declined");
    a[5][17] = -128;
    let declined = unsafe { super::x86::byte_product(k, pack_k4(&a, k).as_ptr(), pb.as_ptr()) };
    assert!(declined.is_none(), "A holds -128, yet the byte path ran");
}

/// The fused steps tract asks of an int8 product, each checked against its definition in
/// tract's generic kernel ("Sub" is operand minus tile, "SubF" tile minus operand).
#[test]
fn fused_steps_follow_tracts_definitions() {
    if !avx2() {
        return;
    }
    let k = 70;
    let (a, b) = operands(k, 7);
    let (pa, pb) = (pack_k4(&a, k), pack_k4(&b, k));
    let per_row: Vec<i32> = (0..MR as i32).map(|i| i * 1000 - 3500).collect();
    let per_col: Vec<i32> = (0..NR as i32).map(|j| 700 - j * 300).collect();
    let row_factors: Vec<i32> = (0..MR as i32).map(|i| i - 4).collect();
    let col_factors: Vec<i32> = (0..NR as i32).map(|j| 2 * j + 1).collect();
    // A residual branch of i8 values, row-major with padding between rows.
    let branch: Vec<i8> = bytes(MR * 11, 99);
    let scaler = (-3isize, RoundingPolicy::Even, 1_518_500_250i32);
    let steps: Vec<Step> = vec![
        (
            "PerRowAdd",
            FusedKerSpec::PerRowAdd(per_row.as_ptr()),
            Box::new(|i, _, x| per_row[i] + x),
        ),
        (
            "PerRowSub",
            FusedKerSpec::PerRowSub(per_row.as_ptr()),
            Box::new(|i, _, x| per_row[i] - x),
        ),
        (
            "PerRowSubF",
            FusedKerSpec::PerRowSubF(per_row.as_ptr()),
            Box::new(|i, _, x| x - per_row[i]),
        ),
        (
            "PerRowMul",
            FusedKerSpec::PerRowMul(row_factors.as_ptr()),
            Box::new(|i, _, x| row_factors[i] * x),
        ),
        (
            "PerRowMin",
            FusedKerSpec::PerRowMin(per_row.as_ptr()),
            Box::new(|i, _, x| x.min(per_row[i])),
        ),
        (
            "PerRowMax",
            FusedKerSpec::PerRowMax(per_row.as_ptr()),
            Box::new(|i, _, x| x.max(per_row[i])),
        ),
        (
            "PerColAdd",
            FusedKerSpec::PerColAdd(per_col.as_ptr()),
            Box::new(|_, j, x| per_col[j] + x),
        ),
        (
            "PerColSub",
            FusedKerSpec::PerColSub(per_col.as_ptr()),
            Box::new(|_, j, x| per_col[j] - x),
        ),
        (
            "PerColSubF",
            FusedKerSpec::PerColSubF(per_col.as_ptr()),
            Box::new(|_, j, x| x - per_col[j]),
        ),
        (
            "PerColMul",
            FusedKerSpec::PerColMul(col_factors.as_ptr()),
            Box::new(|_, j, x| col_factors[j] * x),
        ),
        (
            "PerColMin",
            FusedKerSpec::PerColMin(per_col.as_ptr()),
            Box::new(|_, j, x| x.min(per_col[j])),
        ),
        (
            "PerColMax",
            FusedKerSpec::PerColMax(per_col.as_ptr()),
            Box::new(|_, j, x| x.max(per_col[j])),
        ),
        (
            "ScalarAdd",
            FusedKerSpec::ScalarAdd(-77),
            Box::new(|_, _, x| x - 77),
        ),
        (
            "ScalarSub",
            FusedKerSpec::ScalarSub(5),
            Box::new(|_, _, x| 5 - x),
        ),
        (
            "ScalarSubF",
            FusedKerSpec::ScalarSubF(5),
            Box::new(|_, _, x| x - 5),
        ),
        (
            "ScalarMul",
            FusedKerSpec::ScalarMul(-3),
            Box::new(|_, _, x| x * -3),
        ),
        (
            "ScalarMin",
            FusedKerSpec::ScalarMin(900),
            Box::new(|_, _, x| x.min(900)),
        ),
        (
            "ScalarMax",
            FusedKerSpec::ScalarMax(-900),
            Box::new(|_, _, x| x.max(-900)),
        ),
        (
            "LeakyRelu",
            FusedKerSpec::LeakyRelu(3),
            Box::new(|_, _, x| if x > 0 { x } else { 3 * x }),
        ),
        (
            "AddRowColProducts",
            FusedKerSpec::AddRowColProducts(row_factors.as_ptr(), col_factors.as_ptr()),
            Box::new(|i, j, x| x + row_factors[i] * col_factors[j]),
        ),
        (
            "AddUnicast i8",
            FusedKerSpec::AddUnicast(OutputStoreKer {
                ptr: branch.as_ptr() as *mut u8,
                row_byte_stride: 11,
                col_byte_stride: 1,
                item_size: 1,
            }),
            Box::new(|i, j, x| x + branch[i * 11 + j] as i32),
        ),
        (
            "QScale",
            FusedKerSpec::QScale(scaler.0, scaler.1, scaler.2),
            Box::new(move |_, _, x| {
                x.q_scale(Scaler::from_fuse_params(scaler.0, scaler.1, scaler.2))
            }),
        ),
        (
            "RoundingShiftRight",
            FusedKerSpec::RoundingShiftRight(3, RoundingPolicy::Even),
            Box::new(|_, _, x| x.q_shr(3, RoundingPolicy::Even)),
        ),
        (
            "ShiftLeft",
            FusedKerSpec::ShiftLeft(2),
            Box::new(|_, _, x| x.q_shl(2)),
        ),
    ];
    let before = product(&a, &b);
    for (name, step, definition) in &steps {
        let mut c = vec![0i32; MR * NR];
        run(&[
            FusedKerSpec::Clear,
            FusedKerSpec::AddMatMul {
                k,
                pa: pa.as_ptr() as *const u8,
                pb: pb.as_ptr() as *const u8,
                packing: 1,
            },
            *step,
            FusedKerSpec::Store(store_i32(&mut c, false)),
            FusedKerSpec::Done,
        ]);
        for i in 0..MR {
            for j in 0..NR {
                assert_eq!(
                    c[j * MR + i],
                    definition(i, j, before[i][j]),
                    "{name} at ({i},{j})"
                );
            }
        }
    }
}

/// A tile loaded, stored as bytes through arbitrary strides (tract's narrow outputs keep
/// the low byte), and i32 panels (packing 0) multiplied.
#[test]
fn loads_narrow_stores_and_i32_panels() {
    if !avx2() {
        return;
    }
    let tile: Vec<i32> = (0..(MR * NR) as i32).map(|v| v * 37 - 1000).collect();
    let mut bytes_out = vec![0u8; 3 * MR * NR];
    run(&[
        FusedKerSpec::LoadTile(tile.as_ptr(), std::ptr::null()),
        FusedKerSpec::Store(OutputStoreKer {
            ptr: bytes_out.as_mut_ptr(),
            row_byte_stride: 3,
            col_byte_stride: (3 * MR) as isize,
            item_size: 1,
        }),
        FusedKerSpec::Done,
    ]);
    for i in 0..MR {
        for j in 0..NR {
            assert_eq!(
                bytes_out[3 * i + 3 * MR * j],
                tile[j * MR + i] as u8,
                "({i},{j})"
            );
        }
    }

    let k = 9;
    let a: Vec<i32> = (0..(k * MR) as i32).map(|v| v * 7 - 200).collect();
    let b: Vec<i32> = (0..(k * NR) as i32).map(|v| 31 - v * 3).collect();
    let mut c = vec![0i32; MR * NR];
    run(&[
        FusedKerSpec::Clear,
        FusedKerSpec::AddMatMul {
            k,
            pa: a.as_ptr() as *const u8,
            pb: b.as_ptr() as *const u8,
            packing: 0,
        },
        FusedKerSpec::Store(store_i32(&mut c, true)),
        FusedKerSpec::Done,
    ]);
    for i in 0..MR {
        for j in 0..NR {
            let want: i32 = (0..k).map(|kk| a[kk * MR + i] * b[kk * NR + j]).sum();
            assert_eq!(c[i * NR + j], want, "({i},{j})");
        }
    }
    // A packing the kernel does not have is refused, not guessed at.
    assert_ne!(
        KERNEL.kernel(&[
            FusedKerSpec::AddMatMul {
                k,
                pa: a.as_ptr() as *const u8,
                pb: b.as_ptr() as *const u8,
                packing: 2
            },
            FusedKerSpec::Done,
        ]),
        0
    );
}
