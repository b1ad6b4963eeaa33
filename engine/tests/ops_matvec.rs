//! Op tests for the decode mat-vec family (matvec.wgsl): plain, accumulate, multi-weight
//! (mixed types) and SwiGLU, every weight type, both reductions, awkward shapes, against the
//! f64 CPU reference over the loaders' CPU dequantiser.

use wgllama_engine::ops::matvec::{
    matvec, matvec_glu, matvec_glu_with, matvec_multi, matvec_multi_with, MatvecKernel, Reduction,
};
use wgllama_engine::reference::elementwise::silu_mul;
use wgllama_engine::reference::matmul::{matmul as ref_matmul, weight_values};
use wgllama_engine::testing::weights::random_weight_bytes;
use wgllama_engine::testing::{errors, test_gpu, Rng, Tol};
use wgllama_engine::{EngineError, Tensor};
use wgllama_loaders::DType;

/// Tolerance of the mat-vec kernels: weights decode exactly, so the only error is f32
/// accumulation over K <= 1280 against the f64 reference (as ops_matmul.rs). Measured on
/// lavapipe: see the eprintln lines; the bounds are about 10x the worst measurement.
fn tol(output_scale: f64) -> Tol {
    Tol {
        nmse: 1e-11,
        max_abs: 1e-5 * output_scale,
    }
}

fn upload_random(rng: &mut Rng, dtype: DType, n: usize, k: usize) -> (Tensor, Vec<f32>) {
    let gpu = test_gpu();
    let bytes = random_weight_bytes(rng, dtype, n * k);
    let w = gpu.upload_weight("w", dtype, &[n, k], &bytes).unwrap();
    (w, weight_values(dtype, &bytes, n * k).unwrap())
}

fn check(case: &str, got: &[f32], want: &[f32]) {
    let scale = want.iter().fold(0f64, |m, &v| m.max(v.abs() as f64));
    let e = errors(got, want);
    let tol = tol(scale);
    eprintln!(
        "{case}: nmse {:.2e} max_abs {:.2e} (rel {:.2e})",
        e.nmse,
        e.max_abs,
        e.max_abs / scale
    );
    assert!(
        e.within(tol),
        "{case}: nmse {:.3e} (tol {:.1e}), max abs {:.3e} (tol {:.1e}, output scale {scale:.2}), {} non-finite",
        e.nmse,
        tol.nmse,
        e.max_abs,
        tol.max_abs,
        e.non_finite
    );
}

fn kernel(reduction: Reduction, lanes: u32, rows: u32, unroll: u32) -> MatvecKernel {
    MatvecKernel {
        lanes,
        rows,
        reduction,
        unroll,
        q4k_offset: false,
    }
}

/// The reductions to test: the workgroup-memory tree always, subgroups where the device has them.
fn reductions() -> Vec<Reduction> {
    let mut r = vec![Reduction::Workgroup];
    if test_gpu().caps.subgroups {
        r.push(Reduction::Subgroup);
    }
    r
}

/// One multi-weight dispatch (1-3 weights) with explicit variant, against the reference.
/// `kernel` None: the default APIs (`matvec` for one weight, `matvec_multi` otherwise).
fn check_multi(
    dtypes: &[DType],
    ns: &[usize],
    k: usize,
    accumulate: bool,
    kernel: Option<MatvecKernel>,
) {
    let gpu = test_gpu();
    let names: Vec<_> = dtypes.iter().map(|d| d.name()).collect();
    let case = format!("{names:?} N={ns:?} K={k} accumulate={accumulate} {kernel:?}");
    let seed = dtypes
        .iter()
        .fold(k as u64, |s, d| s * 131 + d.ggml_id() as u64)
        ^ ns.iter().fold(0, |s, &n| s * 1009 + n as u64) << 20;
    let mut rng = Rng::new(seed);
    let x = rng.normal_vec(k, 1.0);
    let tx = gpu.upload_f32("x", &x, &[1, k]).unwrap();
    let mut ws = Vec::new();
    let mut ys = Vec::new();
    let mut wants = Vec::new();
    for (&dtype, &n) in dtypes.iter().zip(ns) {
        let (w, wv) = upload_random(&mut rng, dtype, n, k);
        let y0 = rng.normal_vec(n, 1.0);
        let ty = if accumulate {
            gpu.upload_f32("y", &y0, &[1, n]).unwrap()
        } else {
            gpu.poisoned_f32("y", &[1, n]).unwrap()
        };
        wants.push(ref_matmul(&x, &wv, k, accumulate.then_some(&y0[..])));
        ws.push(w);
        ys.push(ty);
    }
    let wr: Vec<&Tensor> = ws.iter().collect();
    let yr: Vec<&Tensor> = ys.iter().collect();
    let d = match kernel {
        Some(kn) => matvec_multi_with(gpu, &tx, &wr, &yr, accumulate, kn),
        None if ws.len() == 1 => matvec(gpu, &tx, wr[0], yr[0], accumulate),
        None => {
            assert!(!accumulate);
            matvec_multi(gpu, &tx, &wr, &yr)
        }
    }
    .unwrap();
    assert_eq!(
        d.cost.flops,
        2 * (ns.iter().sum::<usize>() * k) as u64,
        "{case}"
    );
    gpu.run(&[d]).unwrap();
    for (i, (y, want)) in ys.iter().zip(&wants).enumerate() {
        let got = gpu.read_f32(y).unwrap();
        check(&format!("{case} output {i}"), &got, want);
    }
}

fn check_glu(dt_gate: DType, dt_up: DType, n: usize, k: usize, kernel: Option<MatvecKernel>) {
    let gpu = test_gpu();
    let case = format!(
        "glu {}/{} N={n} K={k} {kernel:?}",
        dt_gate.name(),
        dt_up.name()
    );
    let mut rng =
        Rng::new((dt_gate.ggml_id() * 64 + dt_up.ggml_id()) as u64 ^ (n * 7919 + k) as u64);
    let x = rng.normal_vec(k, 1.0);
    let tx = gpu.upload_f32("x", &x, &[1, k]).unwrap();
    let (wg, wgv) = upload_random(&mut rng, dt_gate, n, k);
    let (wu, wuv) = upload_random(&mut rng, dt_up, n, k);
    let y = gpu.poisoned_f32("y", &[1, n]).unwrap();
    let d = match kernel {
        Some(kn) => matvec_glu_with(gpu, &tx, &wg, &wu, &y, kn),
        None => matvec_glu(gpu, &tx, &wg, &wu, &y),
    }
    .unwrap();
    gpu.run(&[d]).unwrap();
    let want = silu_mul(
        &ref_matmul(&x, &wgv, k, None),
        &ref_matmul(&x, &wuv, k, None),
    );
    check(&case, &gpu.read_f32(&y).unwrap(), &want);
}

/// Row lengths per type: whole blocks that are not multiples of a workgroup's step (lanes x
/// values per lane), and one block; float types also rows that are not whole 16-value chunks.
fn row_lengths(dtype: DType) -> &'static [usize] {
    match dtype.block_size() {
        256 => &[768, 256, 1280],
        32 => &[96, 544, 32],
        _ => &[544, 16, 100, 7],
    }
}

/// Every path of one weight type: the default API (plain, accumulate, N = 1), then explicit
/// variants over both reductions: lanes 8 (one subgroup on lavapipe) to 256 (more lanes than
/// units), rows 1, 3 and 8 per workgroup (N not a multiple), unrolled by 1, 2 and 4 (rows of
/// fewer units than a step), every row length.
fn all_paths(dtype: DType) {
    let ks = row_lengths(dtype);
    check_multi(&[dtype], &[1000], ks[0], false, None);
    check_multi(&[dtype], &[67], ks[1], true, None);
    check_multi(&[dtype], &[1], ks[0], false, None);
    let variants: [(u32, u32, u32); 4] = [(8, 3, 2), (32, 1, 4), (64, 8, 1), (256, 2, 2)];
    for reduction in reductions() {
        for (i, &k) in ks.iter().enumerate() {
            for (j, &(lanes, rows, unroll)) in variants.iter().enumerate() {
                if (i + j) % 2 == 1 && j != 0 {
                    continue; // half the (K, variant) pairs: lavapipe is slow
                }
                let n = [67, 13, 1, 130][(i + j) % 4];
                let accumulate = (i + j) % 3 == 1;
                check_multi(
                    &[dtype],
                    &[n],
                    k,
                    accumulate,
                    Some(kernel(reduction, lanes, rows, unroll)),
                );
            }
        }
    }
}

#[test]
fn matvec_q4_k() {
    all_paths(DType::Q4K);
}
#[test]
fn matvec_q6_k() {
    all_paths(DType::Q6K);
}
#[test]
fn matvec_q8_0() {
    all_paths(DType::Q8_0);
}
#[test]
fn matvec_f16() {
    all_paths(DType::F16);
}
#[test]
fn matvec_bf16() {
    all_paths(DType::BF16);
}
#[test]
fn matvec_f32() {
    all_paths(DType::F32);
}
#[test]
fn matvec_q4_0() {
    all_paths(DType::Q4_0);
}
#[test]
fn matvec_q5_0() {
    all_paths(DType::Q5_0);
}
#[test]
fn matvec_q5_k() {
    all_paths(DType::Q5K);
}

/// The Q4_K offset variant (16 + q, sum(x) removed per sub-block) within the same tolerance.
#[test]
fn matvec_q4_k_offset() {
    for reduction in reductions() {
        for (k, n, lanes, rows) in [(768, 67, 32, 2), (1280, 13, 64, 4), (256, 1, 8, 1)] {
            let kn = MatvecKernel {
                q4k_offset: true,
                ..kernel(reduction, lanes, rows, 2)
            };
            check_multi(&[DType::Q4K], &[n], k, k == 1280, Some(kn));
        }
    }
}

/// q/k/v as in a Q4_K_M file: Q4_K, Q4_K, Q6_K with different row counts, one dispatch; and
/// other mixes, two weights, both reductions, several rows per workgroup (no weight's N a
/// multiple).
#[test]
fn matvec_multi_mixed_types() {
    check_multi(
        &[DType::Q4K, DType::Q4K, DType::Q6K],
        &[256, 64, 64],
        512,
        false,
        None,
    );
    check_multi(&[DType::Q8_0, DType::F16], &[100, 33], 1024, false, None);
    for reduction in reductions() {
        check_multi(
            &[DType::Q4K, DType::Q4K, DType::Q6K],
            &[67, 13, 1],
            768,
            false,
            Some(kernel(reduction, 32, 2, 2)),
        );
        check_multi(
            &[DType::F32, DType::Q5K, DType::BF16],
            &[20, 9, 31],
            256,
            true,
            Some(kernel(reduction, 64, 8, 1)),
        );
        check_multi(
            &[DType::Q6K, DType::Q8_0],
            &[5, 70],
            512,
            true,
            Some(kernel(reduction, 16, 3, 4)),
        );
    }
}

/// SwiGLU: same types (one loop over both weights), mixed types (two loops), both
/// reductions, rows per workgroup 1..=4 with N not a multiple.
#[test]
fn matvec_glu_paths() {
    check_glu(DType::Q4K, DType::Q4K, 300, 512, None);
    check_glu(DType::F16, DType::F16, 67, 544, None);
    check_glu(DType::Q4K, DType::Q6K, 67, 768, None);
    for reduction in reductions() {
        check_glu(
            DType::Q4K,
            DType::Q4K,
            67,
            768,
            Some(kernel(reduction, 32, 4, 2)),
        );
        check_glu(
            DType::Q6K,
            DType::Q4K,
            13,
            256,
            Some(kernel(reduction, 8, 3, 1)),
        );
        check_glu(
            DType::Q8_0,
            DType::Q8_0,
            1,
            96,
            Some(kernel(reduction, 64, 1, 4)),
        );
        check_glu(
            DType::BF16,
            DType::F32,
            33,
            100,
            Some(kernel(reduction, 16, 2, 1)),
        );
        check_glu(
            DType::Q5_0,
            DType::Q5_0,
            40,
            544,
            Some(kernel(reduction, 32, 2, 2)),
        );
    }
}

/// More workgroups than one grid dimension holds (a vocab-sized output with one row per
/// workgroup): the grid spills into y.
#[test]
fn matvec_more_workgroups_than_one_dimension_holds() {
    let gpu = test_gpu();
    let n = gpu.limits.max_compute_workgroups_per_dimension as usize + 4465;
    for reduction in reductions() {
        check_multi(
            &[DType::Q8_0],
            &[n],
            32,
            false,
            Some(kernel(reduction, 8, 1, 1)),
        );
    }
}

fn shape_error(r: Result<impl std::fmt::Debug, EngineError>, words: &[&str]) {
    match r {
        Err(e @ EngineError::Shape { .. }) => {
            let msg = e.to_string();
            for w in words {
                assert!(msg.contains(w), "error `{msg}` should mention `{w}`");
            }
        }
        other => panic!("expected a shape error mentioning {words:?}, got {other:?}"),
    }
}

#[test]
fn matvec_rejects_bad_operands() {
    let gpu = test_gpu();
    let mut rng = Rng::new(5);
    let (w, _) = upload_random(&mut rng, DType::Q4K, 8, 256);
    let (w512, _) = upload_random(&mut rng, DType::Q4K, 8, 512);
    let x = gpu.zeros_f32("x", &[1, 256]).unwrap();
    let y = gpu.zeros_f32("y", &[1, 8]).unwrap();
    let y2 = gpu.zeros_f32("y2", &[1, 8]).unwrap();
    assert!(matvec(gpu, &x, &w, &y, false).is_ok());
    let x_bad = gpu.zeros_f32("x", &[1, 128]).unwrap();
    shape_error(matvec(gpu, &x_bad, &w, &y, false), &["matvec", "x", "256"]);
    let y_bad = gpu.zeros_f32("y", &[1, 9]).unwrap();
    shape_error(matvec(gpu, &x, &w, &y_bad, false), &["matvec", "y0"]);
    let ids = gpu.upload_u32("ids", &[0; 8], &[1, 8]).unwrap();
    shape_error(matvec(gpu, &x, &ids, &y, false), &["w", "U32"]);
    // Multi: weights of different row lengths, the same output twice, too many weights.
    shape_error(
        matvec_multi(gpu, &x, &[&w, &w512], &[&y, &y2]),
        &["w1", "512"],
    );
    shape_error(matvec_multi(gpu, &x, &[&w, &w], &[&y, &y]), &["y1", "own"]);
    shape_error(
        matvec_multi(gpu, &x, &[&w, &w, &w, &w], &[&y, &y2, &y, &y2]),
        &["1 to 3"],
    );
    shape_error(matvec_multi(gpu, &x, &[], &[]), &["1 to 3"]);
    // Variants: lanes, rows, unroll.
    let wgk = |lanes, rows, unroll| kernel(Reduction::Workgroup, lanes, rows, unroll);
    shape_error(
        matvec_multi_with(gpu, &x, &[&w], &[&y], false, wgk(48, 2, 1)),
        &["lanes"],
    );
    shape_error(
        matvec_multi_with(gpu, &x, &[&w], &[&y], false, wgk(32, 9, 1)),
        &["rows"],
    );
    shape_error(
        matvec_multi_with(gpu, &x, &[&w], &[&y], false, wgk(32, 2, 3)),
        &["unroll"],
    );
    shape_error(
        matvec_glu_with(gpu, &x, &w, &w, &y, wgk(32, 5, 1)),
        &["matvec_glu", "rows"],
    );
    // Glu: gate and up of different shapes.
    shape_error(matvec_glu(gpu, &x, &w, &w512, &y), &["matvec_glu", "w_up"]);
    if !gpu.caps.subgroups {
        shape_error(
            matvec_multi_with(
                gpu,
                &x,
                &[&w],
                &[&y],
                false,
                kernel(Reduction::Subgroup, 32, 2, 1),
            ),
            &["subgroups"],
        );
    }
    let pick = MatvecKernel::pick(gpu, DType::Q4K, 4096);
    assert!((1..=8).contains(&pick.rows) && pick.lanes.is_power_of_two());
}
