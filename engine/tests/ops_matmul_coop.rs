//! Op tests for the cooperative-matrix (tensor-core) mat-mul, every weight type, against the
//! f64 CPU reference over the loaders' CPU dequantiser. Only devices with cooperative matrices
//! run it (the H100); elsewhere (lavapipe, CI) each test checks that the op refuses with
//! `Unsupported`, prints that it skipped, and passes.
//!
//! Tolerance, derived: the kernel rounds x and each decoded weight to f16 (relative error at
//! most u = 2^-11 each, so a product is off by at most 2u + u^2 relative, or by 2^-25 |other
//! factor| where a value falls below f16's normal range) and sums the exact products in f32
//! (relative error at most K 2^-24 of sum |x||w|, in the worst case). So each output obeys
//! |got - want| <= (2u + u^2 + K 2^-24) S + K 2^-25 (max|x| + max|w|), S = sum_k |x||w|;
//! the test allows 1.1x that, plus f32 rounding of the output. Typical errors are random
//! walks far inside it: nmse ~ (2u^2/3) ~ 2e-7 for two rounded factors; allowed 1e-6.

use wgllama_engine::ops::elementwise::silu_mul;
use wgllama_engine::ops::matmul_coop::{
    coop_available, dequant_f16, glu_fits, matmul_coop, matmul_coop_glu, matmul_coop_glu_with,
    matmul_coop_multi, matmul_coop_multi_with, matmul_coop_with, CoopTile,
};
use wgllama_engine::reference::matmul::matmul as ref_matmul;
use wgllama_engine::tensor::{Elem, Tensor};
use wgllama_engine::testing::weights::upload_random_weight;
use wgllama_engine::testing::{errors, read_f16, test_gpu, Rng};
use wgllama_engine::{EngineError, Gpu};
use wgllama_loaders::DType;

const NMSE: f64 = 1e-6;

/// The quantised weight types matmul_coop decodes while staging (and dequant_f16 copies).
const QUANTISED: [DType; 6] = [
    DType::Q4K,
    DType::Q5K,
    DType::Q6K,
    DType::Q8_0,
    DType::Q4_0,
    DType::Q5_0,
];

/// True (after printing why) where the device has no cooperative matrices; then the op
/// must refuse with `Unsupported`.
fn skip(gpu: &Gpu, test: &str) -> bool {
    if coop_available(gpu) {
        return false;
    }
    let x = gpu.upload_f32("x", &[0.0; 32], &[1, 32]).unwrap();
    let w = gpu.upload_f32("w", &[0.0; 32], &[1, 32]).unwrap();
    let y = gpu.zeros_f32("y", &[1, 1]).unwrap();
    let e = matmul_coop(gpu, &x, &w, &y, false).unwrap_err();
    assert!(matches!(e, EngineError::Unsupported { .. }), "{e}");
    eprintln!(
        "{test}: skipped, no cooperative matrices on {}",
        gpu.describe()
    );
    true
}

fn row_lengths(dtype: DType) -> [usize; 2] {
    match dtype.block_size() {
        256 => [256, 512],
        // 96 = 3 x 32, 544 = 17 x 32.
        32 => [96, 544],
        // 80: five 16-value chunks, not a whole 32-wide k step (the last step half empty).
        _ => [80, 544],
    }
}

/// Runs one case and checks it; returns (nmse, max |err| / S) for the summary.
/// `tile` None: `matmul_coop` (its picked tile).
fn check(
    dtype: DType,
    tile: Option<CoopTile>,
    t: usize,
    n: usize,
    k: usize,
    accumulate: bool,
) -> (f64, f64) {
    check_x(dtype, tile, t, n, k, accumulate, false)
}

/// `check` with x uploaded as f32 or (`x_f16`) as f16; the reference takes the f32 values
/// either way (the kernel rounds x to f16 in both cases, within the bound).
fn check_x(
    dtype: DType,
    tile: Option<CoopTile>,
    t: usize,
    n: usize,
    k: usize,
    accumulate: bool,
    x_f16: bool,
) -> (f64, f64) {
    let gpu = test_gpu();
    let case = format!(
        "{} {tile:?} T={t} N={n} K={k} accumulate={accumulate} x_f16={x_f16}",
        dtype.name()
    );
    let mut rng = Rng::new((dtype.ggml_id() as u64) << 40 ^ (t * 1_000_003 + n * 1009 + k) as u64);
    let (w, wv) = upload_random_weight(gpu, &mut rng, dtype, n, k);
    let x = rng.normal_vec(t * k, 1.0);
    let tx = if x_f16 {
        gpu.upload_f16("x", &x, &[t, k]).unwrap()
    } else {
        gpu.upload_f32("x", &x, &[t, k]).unwrap()
    };
    let y0 = rng.normal_vec(t * n, 1.0);
    let ty = if accumulate {
        gpu.upload_f32("y", &y0, &[t, n]).unwrap()
    } else {
        gpu.poisoned_f32("y", &[t, n]).unwrap()
    };
    let d = match tile {
        Some(tile) => matmul_coop_with(gpu, &tx, &w, &ty, accumulate, tile),
        None => matmul_coop(gpu, &tx, &w, &ty, accumulate),
    }
    .unwrap();
    assert_eq!(d.cost.flops, 2 * (t * n * k) as u64);
    gpu.run(&[d]).unwrap();
    let got = gpu.read_f32(&ty).unwrap();
    let want = ref_matmul(&x, &wv, k, accumulate.then_some(&y0[..]));
    // S = sum_k |x||w| per output.
    let ax: Vec<f32> = x.iter().map(|v| v.abs()).collect();
    let aw: Vec<f32> = wv.iter().map(|v| v.abs()).collect();
    let s = ref_matmul(&ax, &aw, k, None);
    let max_x = ax.iter().fold(0f64, |m, &v| m.max(v as f64));
    let max_w = aw.iter().fold(0f64, |m, &v| m.max(v as f64));
    let u = 2f64.powi(-11);
    let rel = 2.0 * u + u * u + k as f64 * 2f64.powi(-24);
    let floor = k as f64 * 2f64.powi(-25) * (max_x + max_w);
    let e = errors(&got, &want);
    let mut worst = (0.0f64, 0usize); // (|err| / bound, index)
    let mut worst_rel_s = 0.0f64;
    for i in 0..got.len() {
        let err = (got[i] as f64 - want[i] as f64).abs();
        let bound = 1.1 * (rel * s[i] as f64 + floor) + 2f64.powi(-23) * (want[i] as f64).abs();
        let r = if err.is_finite() {
            err / bound
        } else {
            f64::INFINITY
        };
        if r > worst.0 || r.is_nan() {
            worst = (r, i);
        }
        worst_rel_s = worst_rel_s.max(err / s[i] as f64);
    }
    eprintln!(
        "{case}: nmse {:.2e} max_abs {:.2e} max err/S {:.2e} (worst {:.2} of the bound)",
        e.nmse, e.max_abs, worst_rel_s, worst.0
    );
    let i = worst.1;
    assert!(
        worst.0 <= 1.0 && e.non_finite == 0,
        "{case}: output {i} (token {}, row {}) = {} want {} (S {}): {:.2} of the error bound; {} non-finite",
        i / n,
        i % n,
        got[i],
        want[i],
        s[i],
        worst.0,
        e.non_finite
    );
    assert!(e.nmse <= NMSE, "{case}: nmse {:.3e} > {NMSE:.0e}", e.nmse);
    (e.nmse, worst_rel_s)
}

/// `matmul_coop` (picked tiles) on awkward shapes: T = 1, 17, 300 and N not multiples of the
/// tile (stores through workgroup memory), whole tiles (direct stores), accumulate both ways.
fn all_shapes(dtype: DType) {
    let gpu = test_gpu();
    if skip(gpu, dtype.name()) {
        return;
    }
    let [k0, k1] = row_lengths(dtype);
    // Whole SMALL (quantised) or MEDIUM (float) tiles: what `pick` takes for so few outputs.
    let float = !dtype.is_quantized();
    let tile = if float {
        CoopTile::MEDIUM
    } else {
        CoopTile::SMALL
    };
    assert_eq!(CoopTile::pick(2 * 64, 2 * 128, float), tile);
    let (bt, bn) = (tile.tokens() as usize, tile.rows() as usize);
    let mut worst = (0.0f64, 0.0f64);
    for (t, n, k, acc) in [
        (1, 67, k0, false),
        (17, 130, k1, true),
        (300, 200, k0, false),
        (300, 200, k1, true),
        (2 * bt, 2 * bn, k0, false),
        (2 * bt, 2 * bn, k1, true),
        (bt + 1, 1, k0, false),
    ] {
        let (nmse, rel) = check(dtype, None, t, n, k, acc);
        worst = (worst.0.max(nmse), worst.1.max(rel));
    }
    eprintln!(
        "SUMMARY {}: worst nmse {:.2e}, worst max err/S {:.2e}",
        dtype.name(),
        worst.0,
        worst.1
    );
}

#[test]
fn coop_q4_k() {
    all_shapes(DType::Q4K);
}
#[test]
fn coop_q5_k() {
    all_shapes(DType::Q5K);
}
#[test]
fn coop_q6_k() {
    all_shapes(DType::Q6K);
}
#[test]
fn coop_q8_0() {
    all_shapes(DType::Q8_0);
}
#[test]
fn coop_q4_0() {
    all_shapes(DType::Q4_0);
}
#[test]
fn coop_q5_0() {
    all_shapes(DType::Q5_0);
}
#[test]
fn coop_f16() {
    all_shapes(DType::F16);
}
#[test]
fn coop_bf16() {
    all_shapes(DType::BF16);
}
#[test]
fn coop_f32() {
    all_shapes(DType::F32);
}

/// The LARGE tile (`pick`'s choice for big layers) on whole tiles and ragged edges.
#[test]
fn coop_large_tile() {
    let gpu = test_gpu();
    if skip(gpu, "coop_large_tile") {
        return;
    }
    assert_eq!(CoopTile::pick(512, 4096, false), CoopTile::LARGE);
    assert_eq!(CoopTile::pick(512, 4096, true), CoopTile::LARGE);
    for dtype in [DType::Q4K, DType::Q6K, DType::F16] {
        let large = Some(CoopTile::LARGE);
        check(dtype, large, 256, 512, 256, false);
        check(dtype, large, 250, 500, 512, true);
    }
}

/// Both prefetch depths with f32 and f16 x, every weight type, on the SMALL and LARGE tiles,
/// a 16-subgroup tile and a double-buffered tile (edges and whole tiles).
#[test]
fn coop_depths_and_f16_x() {
    let gpu = test_gpu();
    if skip(gpu, "coop_depths_and_f16_x") {
        return;
    }
    // 128 x 128 on 16 subgroups (edge tiles parked 4 subgroups at a time).
    let sixteen = CoopTile {
        sg_t: 4,
        sg_n: 4,
        tm: 2,
        tn: 2,
        bk: 32,
        depth: 1,
        stages: 2,
        park: 0,
    };
    // Two staging buffers (one barrier a step), 32 of k a step: the presets before the ninth
    // session.
    let two_stage = CoopTile {
        stages: 2,
        bk: 32,
        ..CoopTile::LARGE
    };
    let mut worst = (0.0f64, 0.0f64);
    for dtype in QUANTISED
        .into_iter()
        .chain([DType::F16, DType::BF16, DType::F32])
    {
        let [k0, k1] = row_lengths(dtype);
        for depth in 0..=1 {
            for x_f16 in [false, true] {
                for base in [CoopTile::SMALL, CoopTile::LARGE, sixteen, two_stage] {
                    let tile = CoopTile { depth, ..base };
                    let (bt, bn) = (tile.tokens() as usize, tile.rows() as usize);
                    for (t, n, k, acc) in [(300, 200, k1, true), (bt, 2 * bn, k0, false)] {
                        let (nmse, rel) = check_x(dtype, Some(tile), t, n, k, acc, x_f16);
                        worst = (worst.0.max(nmse), worst.1.max(rel));
                    }
                }
            }
        }
    }
    eprintln!(
        "SUMMARY depths/f16 x: worst nmse {:.2e}, worst max err/S {:.2e}",
        worst.0, worst.1
    );
}

/// Every candidate tile (the benchmark sweep may pick any) on edge and whole-tile shapes.
#[test]
fn coop_every_tile() {
    let gpu = test_gpu();
    if skip(gpu, "coop_every_tile") {
        return;
    }
    for tile in CoopTile::candidates() {
        let (bt, bn) = (tile.tokens() as usize, tile.rows() as usize);
        check(DType::Q4K, Some(tile), 300, 200, 512, true);
        check(DType::F16, Some(tile), bt, 2 * bn, 544, false);
        check(DType::Q8_0, Some(tile), bt + 3, bn - 5, 96, false);
    }
}

/// Rows that are not whole 16-value chunks are refused (callers fall back).
#[test]
fn coop_refuses_k_not_multiple_of_16() {
    let gpu = test_gpu();
    if skip(gpu, "coop_refuses_k_not_multiple_of_16") {
        return;
    }
    let x = gpu.upload_f32("x", &[0.0; 200], &[2, 100]).unwrap();
    let w = gpu.upload_f32("w", &[0.0; 300], &[3, 100]).unwrap();
    let y = gpu.zeros_f32("y", &[2, 3]).unwrap();
    let e = matmul_coop(gpu, &x, &w, &y, false).unwrap_err();
    assert!(matches!(e, EngineError::Shape { .. }), "{e}");
}

/// An activation beyond f16's range saturates (65504) instead of becoming inf: every output
/// stays finite, and the row is what the reference gives with x clamped to +-65504.
#[test]
fn coop_saturates_x_beyond_f16() {
    let gpu = test_gpu();
    if skip(gpu, "coop_saturates_x_beyond_f16") {
        return;
    }
    let (t, n, k) = (20, 64, 64);
    let mut rng = Rng::new(77);
    let mut x = rng.normal_vec(t * k, 1.0);
    x[3 * k + 5] = 1.0e6;
    x[7 * k + 9] = -3.0e5;
    let (w, wv) = upload_random_weight(gpu, &mut rng, DType::F16, n, k);
    let tx = gpu.upload_f32("x", &x, &[t, k]).unwrap();
    let ty = gpu.zeros_f32("y", &[t, n]).unwrap();
    gpu.run(&[matmul_coop(gpu, &tx, &w, &ty, false).unwrap()])
        .unwrap();
    let got = gpu.read_f32(&ty).unwrap();
    assert!(got.iter().all(|v| v.is_finite()), "non-finite outputs");
    let clamped: Vec<f32> = x.iter().map(|v| v.clamp(-65504.0, 65504.0)).collect();
    let want = ref_matmul(&clamped, &wv, k, None);
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-2 * w.abs().max(1.0),
            "output {i}: {g} want {w}"
        );
    }
}

/// `matmul_coop_multi` (2 and 3 weights in one dispatch) against one `matmul_coop_with` per
/// weight on the same tile: every output bit for bit (the same products in the same order),
/// with row counts that put edge tiles inside each weight, f32 and f16 x. The single GEMMs are
/// checked against the CPU reference above, so this ties the fused path to it too.
#[test]
fn coop_multi_matches_single() {
    let gpu = test_gpu();
    if skip(gpu, "coop_multi_matches_single") {
        return;
    }
    let cases: [(usize, &[usize], CoopTile); 4] = [
        (17, &[100, 37, 64], CoopTile::SMALL),
        (300, &[256, 40], CoopTile::LARGE),
        (64, &[128, 128, 128], CoopTile::LARGE),
        (33, &[16, 200], CoopTile::MEDIUM),
    ];
    for dtype in [DType::Q4K, DType::Q6K, DType::Q8_0, DType::F16] {
        for &(t, ns, tile) in &cases {
            for x_f16 in [false, true] {
                let k = row_lengths(dtype)[1];
                let case = format!(
                    "{} T={t} N={ns:?} K={k} {tile:?} x_f16={x_f16}",
                    dtype.name()
                );
                let mut rng = Rng::new(dtype.ggml_id() as u64 * 7919 + (t * 31 + ns[0]) as u64);
                let x = rng.normal_vec(t * k, 1.0);
                let tx = if x_f16 {
                    gpu.upload_f16("x", &x, &[t, k]).unwrap()
                } else {
                    gpu.upload_f32("x", &x, &[t, k]).unwrap()
                };
                let ws: Vec<_> = ns
                    .iter()
                    .map(|&n| upload_random_weight(gpu, &mut rng, dtype, n, k).0)
                    .collect();
                let singles: Vec<_> = ns
                    .iter()
                    .map(|&n| gpu.poisoned_f32("y", &[t, n]).unwrap())
                    .collect();
                let fused: Vec<_> = ns
                    .iter()
                    .map(|&n| gpu.poisoned_f32("y", &[t, n]).unwrap())
                    .collect();
                let mut ds: Vec<_> = ws
                    .iter()
                    .zip(&singles)
                    .map(|(w, y)| matmul_coop_with(gpu, &tx, w, y, false, tile).unwrap())
                    .collect();
                let w_refs: Vec<_> = ws.iter().collect();
                let y_refs: Vec<_> = fused.iter().collect();
                let multi = matmul_coop_multi_with(gpu, &tx, &w_refs, &y_refs, tile).unwrap();
                let n_all: usize = ns.iter().sum();
                assert_eq!(multi.cost.flops, 2 * (t * n_all * k) as u64, "{case}");
                ds.push(multi);
                gpu.run(&ds).unwrap();
                for (i, (a, b)) in singles.iter().zip(&fused).enumerate() {
                    let (a, b) = (gpu.read_f32(a).unwrap(), gpu.read_f32(b).unwrap());
                    let bad = a
                        .iter()
                        .zip(&b)
                        .position(|(u, v)| u.to_bits() != v.to_bits());
                    if let Some(j) = bad {
                        panic!(
                            "{case}: weight {i} output {j} (token {}, row {}): fused {} single {}",
                            j / ns[i],
                            j % ns[i],
                            b[j],
                            a[j]
                        );
                    }
                }
                eprintln!("{case}: fused outputs identical to the single GEMMs");
            }
        }
    }
}

/// `matmul_coop_multi` refuses weights of different types or row lengths, more than three,
/// and one buffer for two outputs, on every adapter (the checks come before the one for
/// cooperative matrices).
#[test]
fn coop_multi_refuses_mixed_weights() {
    let gpu = test_gpu();
    let mut rng = Rng::new(5);
    let x = gpu
        .upload_f32("x", &rng.normal_vec(4 * 256, 1.0), &[4, 256])
        .unwrap();
    let a = upload_random_weight(gpu, &mut rng, DType::Q4K, 32, 256).0;
    let b = upload_random_weight(gpu, &mut rng, DType::Q6K, 32, 256).0;
    let c = upload_random_weight(gpu, &mut rng, DType::Q4K, 32, 512).0;
    let y = gpu.zeros_f32("y", &[4, 32]).unwrap();
    let y2 = gpu.zeros_f32("y2", &[4, 32]).unwrap();
    let apart = |n: usize| -> Vec<_> { (0..n).map(|i| if i == 0 { &y } else { &y2 }).collect() };
    for (ws, ys, what) in [
        (vec![&a, &b], apart(2), "types"),
        (vec![&a, &c], apart(2), "row lengths"),
        (vec![&a, &a, &a, &a], apart(4), "four weights"),
        (vec![&a, &a], vec![&y, &y], "one buffer for two outputs"),
    ] {
        let e = matmul_coop_multi(gpu, &x, &ws, &ys).unwrap_err();
        assert!(matches!(e, EngineError::Shape { .. }), "{what}: {e}");
        eprintln!("{what}: refused: {e}");
    }
}

/// SwiGLU on tensor cores (`matmul_coop_glu`: gate and up rows in one tile, silu(gate) * up
/// rounded to f16 by the GEMM itself) against (1) the unfused GPU path, gate and up by
/// `matmul_coop_multi_with` on the same tile then `silu_mul` into f16, which must agree bit
/// for bit (same products in the same order, the same SiLU and rounding), and (2) the f64 CPU
/// reference: silu(g) * u with g, u from the dequantised weights, saturated at f16's largest
/// finite value, allowed the GEMM bound of `check_x` on g and u carried through (|silu'| <=
/// 1.1) plus f16's rounding of the result.
/// Ragged T and N (edge tiles), whole tiles, f32 and f16 x, the tiles `pick` takes.
#[test]
fn coop_glu_matches_unfused_and_reference() {
    let gpu = test_gpu();
    if skip(gpu, "coop_glu_matches_unfused_and_reference") {
        return;
    }
    let sg = gpu.caps.subgroup_size.1;
    assert_eq!(CoopTile::pick(512, 2 * 5632, true), CoopTile::LARGE);
    for tile in [CoopTile::SMALL, CoopTile::MEDIUM, CoopTile::LARGE] {
        assert!(glu_fits(&tile, sg), "{tile:?}");
    }
    let silu = |g: f64| g / (1.0 + (-g).exp());
    for dtype in [DType::Q4K, DType::Q6K, DType::Q8_0, DType::F16, DType::BF16] {
        let k = row_lengths(dtype)[1];
        for (t, n, tile) in [
            (300, 200, Some(CoopTile::SMALL)),
            (33, 70, Some(CoopTile::MEDIUM)),
            (128, 128, Some(CoopTile::LARGE)),
            (250, 326, Some(CoopTile::LARGE)),
            (1, 2, None),
        ] {
            for x_f16 in [false, true] {
                let case = format!("{} T={t} N={n} K={k} {tile:?} x_f16={x_f16}", dtype.name());
                let mut rng = Rng::new(dtype.ggml_id() as u64 * 104729 + (t * 131 + n) as u64);
                let x = rng.normal_vec(t * k, 1.0);
                let tx = if x_f16 {
                    gpu.upload_f16("x", &x, &[t, k]).unwrap()
                } else {
                    gpu.upload_f32("x", &x, &[t, k]).unwrap()
                };
                let (wg, wgv) = upload_random_weight(gpu, &mut rng, dtype, n, k);
                let (wu, wuv) = upload_random_weight(gpu, &mut rng, dtype, n, k);
                let act = gpu
                    .upload_f16("act", &vec![f32::NAN; t * n], &[t, n])
                    .unwrap();
                let tile = tile.unwrap_or(CoopTile::pick(t, 2 * n, !dtype.is_quantized()));
                let fused = match t {
                    1 => matmul_coop_glu(gpu, &tx, &wg, &wu, &act),
                    _ => matmul_coop_glu_with(gpu, &tx, &wg, &wu, &act, tile),
                }
                .unwrap();
                assert_eq!(fused.cost.flops, 4 * (t * n * k) as u64, "{case}");
                let g = gpu.poisoned_f32("gate", &[t, n]).unwrap();
                let u = gpu.poisoned_f32("up", &[t, n]).unwrap();
                let act_ref = gpu
                    .upload_f16("act_ref", &vec![f32::NAN; t * n], &[t, n])
                    .unwrap();
                let multi = matmul_coop_multi_with(gpu, &tx, &[&wg, &wu], &[&g, &u], tile).unwrap();
                let glu = silu_mul(gpu, &g, &u, &act_ref).unwrap();
                gpu.run(&[fused, multi, glu]).unwrap();
                let (got, unfused) = (read_f16(gpu, &act), read_f16(gpu, &act_ref));
                if let Some(j) = got
                    .iter()
                    .zip(&unfused)
                    .position(|(a, b)| a.to_bits() != b.to_bits())
                {
                    panic!(
                        "{case}: output {j} (token {}, feature {}): fused {} unfused {}",
                        j / n,
                        j % n,
                        got[j],
                        unfused[j]
                    );
                }
                // The CPU reference and the GEMM error bound of each of g and u.
                let (gv, uv) = (ref_matmul(&x, &wgv, k, None), ref_matmul(&x, &wuv, k, None));
                let ax: Vec<f32> = x.iter().map(|v| v.abs()).collect();
                let sum_abs = |w: &[f32]| {
                    let aw: Vec<f32> = w.iter().map(|v| v.abs()).collect();
                    let max_w = aw.iter().fold(0f64, |m, &v| m.max(v as f64));
                    (ref_matmul(&ax, &aw, k, None), max_w)
                };
                let ((sg_, mg), (su, mu)) = (sum_abs(&wgv), sum_abs(&wuv));
                let max_x = ax.iter().fold(0f64, |m, &v| m.max(v as f64));
                let uu = 2f64.powi(-11);
                let rel = 2.0 * uu + uu * uu + k as f64 * 2f64.powi(-24);
                let mut worst = (0.0f64, 0usize);
                for i in 0..t * n {
                    let (gi, ui) = (gv[i] as f64, uv[i] as f64);
                    let eg = 1.1 * (rel * sg_[i] as f64 + k as f64 * 2f64.powi(-25) * (max_x + mg));
                    let eu = 1.1 * (rel * su[i] as f64 + k as f64 * 2f64.powi(-25) * (max_x + mu));
                    // The kernel saturates at f16's largest finite value, as silu_mul does.
                    let want = (silu(gi) * ui).clamp(-65504.0, 65504.0);
                    let bound = 1.1 * (1.1 * ui.abs() * eg + (silu(gi).abs() + 1.1 * eg) * eu)
                        + uu * want.abs()
                        + 2f64.powi(-24);
                    let r = (got[i] as f64 - want).abs() / bound;
                    if r > worst.0 || r.is_nan() {
                        worst = (r, i);
                    }
                }
                let i = worst.1;
                assert!(
                    worst.0 <= 1.0,
                    "{case}: output {i} (token {}, feature {}) = {} want {}: {:.2} of the bound",
                    i / n,
                    i % n,
                    got[i],
                    (silu(gv[i] as f64) * uv[i] as f64).clamp(-65504.0, 65504.0),
                    worst.0
                );
                eprintln!(
                    "{case}: identical to multi + silu_mul; worst {:.2} of the reference bound",
                    worst.0
                );
            }
        }
    }
}

/// `matmul_coop_glu` refuses gate and up weights that differ, an odd N and an output of the
/// wrong type, on every adapter (the checks come before the one for cooperative matrices).
#[test]
fn coop_glu_refuses_bad_shapes() {
    let gpu = test_gpu();
    let mut rng = Rng::new(5);
    let x = gpu.upload_f16("x", &[0.0; 4 * 64], &[4, 64]).unwrap();
    let w = |n: usize, dtype: DType, rng: &mut Rng| upload_random_weight(gpu, rng, dtype, n, 64).0;
    let act = |n: usize| gpu.zeros_f16("act", &[4, n]).unwrap();
    let (g8, u8_, u6) = (
        w(8, DType::F16, &mut rng),
        w(8, DType::F16, &mut rng),
        w(6, DType::F16, &mut rng),
    );
    let (g7, u7) = (w(7, DType::F16, &mut rng), w(7, DType::F16, &mut rng));
    let q8 = w(8, DType::Q8_0, &mut rng);
    let f32_act = gpu.zeros_f32("act", &[4, 8]).unwrap();
    for (what, r) in [
        ("rows differ", matmul_coop_glu(gpu, &x, &g8, &u6, &act(8))),
        ("types differ", matmul_coop_glu(gpu, &x, &g8, &q8, &act(8))),
        ("odd N", matmul_coop_glu(gpu, &x, &g7, &u7, &act(7))),
        ("f32 output", matmul_coop_glu(gpu, &x, &g8, &u8_, &f32_act)),
        (
            "output too short",
            matmul_coop_glu(gpu, &x, &g8, &u8_, &act(6)),
        ),
    ] {
        let e = r.expect_err(what);
        assert!(matches!(e, EngineError::Shape { .. }), "{what}: {e}");
        eprintln!("{what}: {e}");
    }
}

/// An F16 weight view [n, k] of `buffer` (a scratch that may be larger).
fn f16_view(buffer: &wgpu::Buffer, n: usize, k: usize) -> Tensor {
    Tensor {
        buffer: buffer.clone(),
        elem: Elem::Weight(DType::F16),
        shape: vec![n, k],
    }
}

/// `dequant_f16` writes f16 copies of 1 to 3 quantised weights (views of larger scratch
/// buffers, as the prompt pass uses them) that (1) agree with the CPU dequantiser to within
/// f16 rounding of each 16-value chunk's largest value (the GEMM's decode rounds Q4_K and
/// Q6_K in f16: a few u of the chunk's terms), and (2) give a GEMM bit for bit the outputs
/// of the GEMM over the quantised weight on the same tile, because they are the values that
/// GEMM stages. Row counts off every tile and chunk grid.
#[test]
fn coop_dequant_f16_copies_stage_like_the_gemm() {
    let gpu = test_gpu();
    if skip(gpu, "coop_dequant_f16_copies_stage_like_the_gemm") {
        return;
    }
    let t = 300;
    for dtype in QUANTISED {
        // 16 or 6 chunks a row: the weights' chunks meet inside subgroups and workgroups.
        let k = row_lengths(dtype)[0];
        let ns = [100usize, 37, 3];
        for nw in 1..=3 {
            let ns = &ns[..nw];
            let case = format!("{} N={ns:?} K={k}", dtype.name());
            let mut rng = Rng::new(dtype.ggml_id() as u64 * 131 + nw as u64);
            let ws: Vec<_> = ns
                .iter()
                .map(|&n| upload_random_weight(gpu, &mut rng, dtype, n, k))
                .collect();
            // Scratch buffers larger than the copies, poisoned: only the copies are written.
            let scratch: Vec<_> = ns
                .iter()
                .map(|&n| {
                    gpu.upload_u32(
                        "scratch",
                        &vec![0x7e00_7e00; n * k / 2 + 40],
                        &[n * k / 2 + 40],
                    )
                    .unwrap()
                    .buffer
                })
                .collect();
            let copies: Vec<_> = ns
                .iter()
                .zip(&scratch)
                .map(|(&n, b)| f16_view(b, n, k))
                .collect();
            let src: Vec<&Tensor> = ws.iter().map(|(w, _)| w).collect();
            let dst: Vec<&Tensor> = copies.iter().collect();
            let d = dequant_f16(gpu, &src, &dst).unwrap();
            gpu.run(&[d]).unwrap();
            for (i, ((_, want), copy)) in ws.iter().zip(&copies).enumerate() {
                let words = gpu.read_u32(&f16_words(copy)).unwrap();
                let got: Vec<f32> = words
                    .iter()
                    .flat_map(|&v| [v as u16, (v >> 16) as u16])
                    .map(|h| half::f16::from_bits(h).to_f32())
                    .collect();
                assert!(
                    words[ns[i] * k / 2..].iter().all(|&v| v == 0x7e00_7e00),
                    "{case}: weight {i} wrote past its copy"
                );
                for (c, (g, w)) in got.chunks(16).zip(want.chunks(16)).enumerate() {
                    let big = w.iter().fold(0f32, |m, v| m.max(v.abs()));
                    let bound = big * 2f32.powi(-9) + 2f32.powi(-24);
                    // A NaN (the poison: a chunk not written) fails too.
                    let off = |e: usize| {
                        let d = (g[e] - w[e]).abs();
                        d.is_nan() || d > bound
                    };
                    if let Some(e) = (0..16).find(|&e| off(e)) {
                        panic!(
                            "{case}: weight {i} value {} (row {}): copy {} CPU {} (bound {bound:e})",
                            16 * c + e,
                            (16 * c + e) / k,
                            g[e],
                            w[e]
                        );
                    }
                }
            }
            // The GEMMs over the quantised weights and over their copies, on each tile.
            let x = rng.normal_vec(t * k, 1.0);
            let tx = gpu.upload_f16("x", &x, &[t, k]).unwrap();
            for tile in [CoopTile::SMALL, CoopTile::LARGE] {
                for (i, ((w, _), copy)) in ws.iter().zip(&copies).enumerate() {
                    let n = ns[i];
                    let (a, b) = (
                        gpu.poisoned_f32("y", &[t, n]).unwrap(),
                        gpu.poisoned_f32("y", &[t, n]).unwrap(),
                    );
                    gpu.run(&[
                        matmul_coop_with(gpu, &tx, w, &a, false, tile).unwrap(),
                        matmul_coop_with(gpu, &tx, copy, &b, false, tile).unwrap(),
                    ])
                    .unwrap();
                    let (a, b) = (gpu.read_f32(&a).unwrap(), gpu.read_f32(&b).unwrap());
                    if let Some(j) = a
                        .iter()
                        .zip(&b)
                        .position(|(u, v)| u.to_bits() != v.to_bits())
                    {
                        panic!(
                            "{case} {tile:?}: weight {i} output {j} (token {}, row {}): over the copy {} \
                             over the quantised weight {}",
                            j / n,
                            j % n,
                            b[j],
                            a[j]
                        );
                    }
                }
            }
            eprintln!("{case}: copies within f16 rounding, GEMMs over them bit-identical");
        }
    }
}

/// The words of an F16 weight view (its first N K / 2).
fn f16_words(w: &Tensor) -> Tensor {
    Tensor {
        buffer: w.buffer.clone(),
        elem: Elem::U32,
        shape: vec![(w.buffer.size() / 4) as usize],
    }
}

/// `dequant_f16` refuses outputs that are not F16 weights of the weight's shape, too small a
/// buffer, mixed weight types or row lengths, one buffer for two copies, and more than three
/// weights, on every adapter (the checks come before the one for cooperative matrices).
#[test]
fn dequant_f16_refuses_bad_operands() {
    let gpu = test_gpu();
    let mut rng = Rng::new(9);
    let w = |n: usize, k: usize, dtype: DType, rng: &mut Rng| {
        upload_random_weight(gpu, rng, dtype, n, k).0
    };
    let q = w(8, 256, DType::Q4K, &mut rng);
    let q512 = w(8, 512, DType::Q4K, &mut rng);
    let q6 = w(8, 256, DType::Q6K, &mut rng);
    let q64 = w(64, 256, DType::Q4K, &mut rng);
    let room = |bytes: u64| gpu.storage("scratch", bytes).unwrap();
    let (a, b, small) = (room(8 * 256 * 2), room(8 * 512 * 2), room(8 * 256));
    let b64 = room(64 * 256 * 2);
    let ok = f16_view(&a, 8, 256);
    let f32_out = Tensor {
        elem: Elem::F32,
        ..ok.clone()
    };
    for (what, r) in [
        ("f32 output", dequant_f16(gpu, &[&q], &[&f32_out])),
        (
            "shape differs",
            dequant_f16(gpu, &[&q], &[&f16_view(&a, 4, 256)]),
        ),
        (
            "buffer too small",
            dequant_f16(gpu, &[&q], &[&f16_view(&small, 8, 256)]),
        ),
        (
            "types differ",
            dequant_f16(gpu, &[&q, &q6], &[&ok, &f16_view(&b, 8, 256)]),
        ),
        (
            "row lengths differ",
            dequant_f16(gpu, &[&q, &q512], &[&ok, &f16_view(&b, 8, 512)]),
        ),
        ("one buffer twice", dequant_f16(gpu, &[&q, &q], &[&ok, &ok])),
        (
            // The second weight's buffer holds the first's copy (64 Q4_K rows: room for 8 f16).
            "output is a weight's buffer",
            dequant_f16(
                gpu,
                &[&q, &q64],
                &[&f16_view(&q64.buffer, 8, 256), &f16_view(&b64, 64, 256)],
            ),
        ),
        (
            "four weights",
            dequant_f16(gpu, &[&q, &q, &q, &q], &[&ok, &ok, &ok, &ok]),
        ),
        ("no output", dequant_f16(gpu, &[&q], &[])),
    ] {
        let e = r.expect_err(what);
        assert!(matches!(e, EngineError::Shape { .. }), "{what}: {e}");
        eprintln!("{what}: {e}");
    }
}
