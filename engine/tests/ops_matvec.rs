//! Op tests for the decode mat-vec family (matvec.wgsl): plain, accumulate, multi-weight
//! (mixed types) and SwiGLU, every weight type, both reductions, awkward shapes, against the
//! f64 CPU reference over the loaders' CPU dequantiser.

use wgllama_engine::ops::matvec::matvec_swiglu;
use wgllama_engine::ops::matvec::{
    int8_words, matvec, matvec_glu, matvec_glu_int8, matvec_glu_with, matvec_int8, matvec_multi,
    matvec_multi_int8, matvec_multi_normed, matvec_multi_with, matvec_norm, norm_f32_len,
    norm_int8_words, norm_out_supported, normed_supported, quantize_x8 as quantize_x8_gpu,
    rmsnorm_x8, silu_mul_x8, swiglu_int8_words, swiglu_supported, to_int8_with, x8_reduction,
    MatvecKernel, Reduction, X8Input,
};
use wgllama_engine::reference::elementwise::silu_mul;
use wgllama_engine::reference::matmul::matmul as ref_matmul;
use wgllama_engine::reference::rmsnorm::rmsnorm as ref_rmsnorm;
use wgllama_engine::testing::weights::upload_random_weight;
use wgllama_engine::testing::{assert_close_scaled, assert_int8_words, test_gpu, Rng, Tol};
use wgllama_engine::{Dispatch, Elem, EngineError, Tensor};
use wgllama_loaders::DType;

/// Tolerance of the mat-vec kernels (max abs relative to the largest output): weights decode
/// exactly, so the only error is f32 accumulation over K <= 1280 against the f64 reference
/// (as ops_matmul.rs). Measured on lavapipe: see the eprintln lines; the bounds are about 10x
/// the worst measurement.
const TOL: Tol = Tol {
    nmse: 1e-11,
    max_abs: 1e-5,
};

fn upload_random(rng: &mut Rng, dtype: DType, n: usize, k: usize) -> (Tensor, Vec<f32>) {
    upload_random_weight(test_gpu(), rng, dtype, n, k)
}

fn check(case: &str, got: &[f32], want: &[f32]) {
    assert_close_scaled(case, got, want, TOL);
}

/// How a kernel variant sums a row: the workgroup-memory tree, subgroupAdd over the workgroup,
/// or each subgroup on rows of its own.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Workgroup,
    Subgroup,
    SubgroupRows,
}

/// A variant of `mode`; with subgroup rows, at least one whole subgroup of lanes.
fn kernel(mode: Mode, lanes: u32, rows: u32, unroll: u32) -> MatvecKernel {
    let sg = MatvecKernel::subgroup_rows_size(test_gpu()).unwrap_or(8);
    MatvecKernel {
        lanes: if mode == Mode::SubgroupRows {
            lanes.max(sg)
        } else {
            lanes
        },
        rows,
        reduction: if mode == Mode::Workgroup {
            Reduction::Workgroup
        } else {
            Reduction::Subgroup
        },
        unroll,
        q4k_offset: false,
        int8_x: false,
        subgroup_rows: mode == Mode::SubgroupRows,
    }
}

/// The modes to test: the workgroup-memory tree always, subgroups where the device has them,
/// subgroup rows where its subgroup size is fixed.
fn reductions() -> Vec<Mode> {
    let mut r = vec![Mode::Workgroup];
    if test_gpu().caps.subgroups {
        r.push(Mode::Subgroup);
    }
    if MatvecKernel::subgroup_rows_size(test_gpu()).is_some() {
        r.push(Mode::SubgroupRows);
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

/// F16 / BF16 rows past 8192 values (Llama-2-7B's down projection, K = 11008) with the default
/// pick: one row per subgroup where the subgroup size is fixed, a step (128 lanes x 4 units x
/// 8 values) not dividing K, N not a multiple of the workgroup's rows.
#[test]
fn matvec_half_long_rows() {
    let gpu = test_gpu();
    if MatvecKernel::subgroup_rows_size(gpu).is_some() {
        assert!(
            MatvecKernel::pick(gpu, DType::F16, 11008).subgroup_rows,
            "F16 rows of 11008 values should take a row per subgroup"
        );
    }
    check_multi(&[DType::F16], &[37], 8336, true, None);
    check_multi(&[DType::BF16, DType::F16], &[5, 70], 11008, false, None);
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

/// Subgroup rows with one row per subgroup take the flat loops (F16, BF16; Q4_K, Q6_K, Q8_0
/// with int8 x in `matvec_int8_types`): every row length, unrolled by 1, 2 and 4, N not a
/// multiple of the workgroup's rows.
#[test]
fn matvec_flat_rows() {
    if !reductions().contains(&Mode::SubgroupRows) {
        return;
    }
    for dtype in [DType::F16, DType::BF16] {
        for (i, &k) in row_lengths(dtype).iter().enumerate() {
            let unroll = [1, 2, 4][i % 3];
            let kn = kernel(Mode::SubgroupRows, 64, 1, unroll);
            check_multi(&[dtype], &[67], k, i == 1, Some(kn));
        }
    }
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
    let wgk = |lanes, rows, unroll| kernel(Mode::Workgroup, lanes, rows, unroll);
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
                kernel(Mode::Subgroup, 32, 2, 1),
            ),
            &["subgroups"],
        );
    }
    // Subgroup rows: not with the workgroup tree, and only whole subgroups of lanes.
    let sgr = MatvecKernel {
        subgroup_rows: true,
        ..wgk(32, 1, 1)
    };
    shape_error(
        matvec_multi_with(gpu, &x, &[&w], &[&y], false, sgr),
        &["subgroup rows"],
    );
    if let Some(sg) = MatvecKernel::subgroup_rows_size(gpu).filter(|&sg| sg > 8) {
        let few = MatvecKernel {
            lanes: sg / 2,
            ..kernel(Mode::SubgroupRows, sg, 1, 1)
        };
        shape_error(
            matvec_glu_with(gpu, &x, &w, &w, &y, few),
            &["subgroup rows"],
        );
    }
    let pick = MatvecKernel::pick(gpu, DType::Q4K, 4096);
    assert!((1..=8).contains(&pick.rows) && pick.lanes.is_power_of_two());
}

// ---- int8 activations ----------------------------------------------------------------------

/// Tolerance of the int8 path on random x, against the f32 reference: rounding x to 255
/// levels per 32 values (d = max|x| / 127) leaves about 0.5% relative rms error in x, so
/// nmse ~2e-5 on the outputs. Measured on lavapipe (eprintln lines): worst nmse 5.1e-5 for
/// mat-vecs, 1.2e-4 for glu (the product of two rounded dot products), max error 1.2% of the
/// largest |output|; the bounds are about 8x that.
const TOL_INT8: Tol = Tol {
    nmse: 1e-3,
    max_abs: 0.1,
};

/// x whose 32-value blocks quantise exactly: values i * 2^-6, |i| <= 127, each block holding
/// a +-127 (so d = 2^-6). The int8 path must then match the f32 reference as tightly as the
/// f32 path does: this checks every index of the int8 loops.
fn exact_int8_x(rng: &mut Rng, k: usize) -> Vec<f32> {
    let mut x: Vec<f32> = (0..k)
        .map(|_| (rng.below(255) as i32 - 127) as f32 / 64.0)
        .collect();
    for b in x.chunks_mut(32) {
        let at = rng.below(32) as usize;
        b[at] = if rng.below(2) == 0 { 127.0 } else { -127.0 } / 64.0;
    }
    x
}

fn check_int8_case(case: &str, got: &[f32], want: &[f32], exact_x: bool) {
    assert_close_scaled(case, got, want, if exact_x { TOL } else { TOL_INT8 });
}

/// Quantises x on the GPU, then one int8 mat-vec dispatch over 1-3 weights (`kernel` None:
/// the default APIs), against the f32 reference.
fn check_int8(
    dtypes: &[DType],
    ns: &[usize],
    k: usize,
    exact_x: bool,
    accumulate: bool,
    kernel: Option<MatvecKernel>,
) {
    let gpu = test_gpu();
    let names: Vec<_> = dtypes.iter().map(|d| d.name()).collect();
    let case = format!(
        "int8 {names:?} N={ns:?} K={k} exact_x={exact_x} accumulate={accumulate} {kernel:?}"
    );
    let mut rng = Rng::new(k as u64 * 7 + ns[0] as u64 + exact_x as u64 * 99 + dtypes.len() as u64);
    let x = if exact_x {
        exact_int8_x(&mut rng, k)
    } else {
        rng.normal_vec(k, 1.0)
    };
    let tx = gpu.upload_f32("x", &x, &[1, k]).unwrap();
    let xq = gpu
        .upload_u32("xq", &vec![0xffff_ffff; int8_words(k)], &[int8_words(k)])
        .unwrap();
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
        Some(kn) => matvec_multi_with(gpu, &xq, &wr, &yr, accumulate, kn),
        None if ws.len() == 1 => matvec_int8(gpu, &xq, wr[0], yr[0], accumulate),
        None => matvec_multi_int8(gpu, &xq, &wr, &yr),
    }
    .unwrap();
    gpu.run(&[quantize_x8_gpu(gpu, &tx, &xq).unwrap(), d])
        .unwrap();
    for (i, (y, want)) in ys.iter().zip(&wants).enumerate() {
        let got = gpu.read_f32(y).unwrap();
        check_int8_case(&format!("{case} output {i}"), &got, want, exact_x);
    }
}

fn int8_kernel(reduction: Mode, lanes: u32, rows: u32, unroll: u32) -> MatvecKernel {
    MatvecKernel {
        int8_x: true,
        ..kernel(reduction, lanes, rows, unroll)
    }
}

/// Every int8 type: exactly quantising x (tight: the index mapping) and random x (loose),
/// default API and explicit variants over both reductions, awkward N and K.
#[test]
fn matvec_int8_types() {
    for dtype in [DType::Q4K, DType::Q6K, DType::Q8_0] {
        let [k0, k1] = match dtype.block_size() {
            256 => [768, 1280],
            _ => [544, 96],
        };
        check_int8(&[dtype], &[1000], k0, true, false, None);
        check_int8(&[dtype], &[67], k1, false, true, None);
        check_int8(&[dtype], &[1], k0, false, false, None);
        for reduction in reductions() {
            check_int8(
                &[dtype],
                &[67],
                k0,
                true,
                true,
                Some(int8_kernel(reduction, 8, 3, 2)),
            );
            check_int8(
                &[dtype],
                &[13],
                k1,
                true,
                false,
                Some(int8_kernel(reduction, 64, 1, 4)),
            );
            check_int8(
                &[dtype],
                &[130],
                k1,
                false,
                false,
                Some(int8_kernel(reduction, 32, 8, 1)),
            );
            check_int8(
                &[dtype],
                &[77],
                k0,
                true,
                false,
                Some(int8_kernel(reduction, 128, 1, 2)),
            );
        }
    }
}

/// Int8 multi (Q4_K, Q4_K, Q6_K as q/k/v in Q4_K_M) and glu, exact and random x.
#[test]
fn matvec_int8_fused() {
    let gpu = test_gpu();
    for exact_x in [true, false] {
        check_int8(
            &[DType::Q4K, DType::Q4K, DType::Q6K],
            &[256, 64, 64],
            512,
            exact_x,
            false,
            None,
        );
        for reduction in reductions() {
            check_int8(
                &[DType::Q8_0, DType::Q6K],
                &[70, 5],
                768,
                exact_x,
                true,
                Some(int8_kernel(reduction, 16, 3, 2)),
            );
        }
        for (dg, du, n, k) in [
            (DType::Q4K, DType::Q4K, 300, 512),
            (DType::Q4K, DType::Q6K, 67, 768),
        ] {
            let case = format!(
                "int8 glu {}/{} N={n} K={k} exact_x={exact_x}",
                dg.name(),
                du.name()
            );
            let mut rng = Rng::new(n as u64 + k as u64 + exact_x as u64);
            let x = if exact_x {
                exact_int8_x(&mut rng, k)
            } else {
                rng.normal_vec(k, 1.0)
            };
            let tx = gpu.upload_f32("x", &x, &[1, k]).unwrap();
            let xq = gpu.zeros_f32("xq", &[int8_words(k)]).unwrap();
            let xq = wgllama_engine::Tensor {
                elem: wgllama_engine::Elem::U32,
                ..xq
            };
            let (wg, wgv) = upload_random(&mut rng, dg, n, k);
            let (wu, wuv) = upload_random(&mut rng, du, n, k);
            let y = gpu.poisoned_f32("y", &[1, n]).unwrap();
            let d = matvec_glu_int8(gpu, &xq, &wg, &wu, &y).unwrap();
            gpu.run(&[quantize_x8_gpu(gpu, &tx, &xq).unwrap(), d])
                .unwrap();
            let want = silu_mul(
                &ref_matmul(&x, &wgv, k, None),
                &ref_matmul(&x, &wuv, k, None),
            );
            check_int8_case(&case, &gpu.read_f32(&y).unwrap(), &want, exact_x);
        }
    }
}

/// quantize_x8 against a CPU emulation: each value within one step of round(x / d), d and
/// the 16-value sums to f32 rounding.
#[test]
fn quantize_x8_layout() {
    let gpu = test_gpu();
    let k = 1088; // 34 blocks: not a multiple of the 64 blocks a workgroup quantises
    let mut rng = Rng::new(3);
    let mut x = rng.normal_vec(k, 1.0);
    x[64..96].iter_mut().for_each(|v| *v = 0.0); // an all-zero block: d = 0, q = 0
    let tx = gpu.upload_f32("x", &x, &[1, k]).unwrap();
    let xq = gpu
        .upload_u32("xq", &vec![0xffff_ffff; int8_words(k)], &[int8_words(k)])
        .unwrap();
    gpu.run(&[quantize_x8_gpu(gpu, &tx, &xq).unwrap()]).unwrap();
    let got = gpu.read_u32(&xq).unwrap();
    for (b, block) in x.chunks(32).enumerate() {
        let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let gd = f32::from_bits(got[k / 4 + b]);
        assert!((gd - d).abs() <= 1e-6 * d, "block {b}: d {gd} want {d}");
        for (i, &v) in block.iter().enumerate() {
            let g = 32 * b + i;
            let q = (got[g / 4] >> (8 * (g % 4))) as u8 as i8 as f32;
            let want = if d > 0.0 { v / d } else { 0.0 };
            assert!(
                (q - want).abs() <= 0.5 + 1e-3,
                "value {g}: q {q}, x / d {want}"
            );
        }
        for h in 0..2 {
            let s: f64 = block[16 * h..16 * h + 16].iter().map(|&v| v as f64).sum();
            let gs = f32::from_bits(got[k / 4 + k / 32 + 2 * b + h]) as f64;
            assert!(
                (gs - s).abs() <= 1e-5,
                "block {b} half {h}: sum {gs} want {s}"
            );
        }
    }
}

#[test]
fn int8_rejects_other_types_and_f32_x() {
    let gpu = test_gpu();
    let mut rng = Rng::new(9);
    let (w, _) = upload_random(&mut rng, DType::F16, 8, 256);
    let (wq, _) = upload_random(&mut rng, DType::Q4K, 8, 256);
    let xq = gpu
        .upload_u32("xq", &vec![0; int8_words(256)], &[int8_words(256)])
        .unwrap();
    let x = gpu.zeros_f32("x", &[1, 256]).unwrap();
    let y = gpu.zeros_f32("y", &[1, 8]).unwrap();
    shape_error(matvec_int8(gpu, &xq, &w, &y, false), &["int8", "f16"]);
    shape_error(
        matvec_int8(gpu, &x, &wq, &y, false),
        &["int8", "quantize_x8"],
    );
    shape_error(matvec_glu_int8(gpu, &xq, &wq, &w, &y), &["int8", "f16"]);
    let x100 = gpu.zeros_f32("x", &[1, 100]).unwrap();
    let xq100 = gpu.upload_u32("xq", &[0; 34], &[34]).unwrap();
    shape_error(quantize_x8_gpu(gpu, &x100, &xq100), &["quantize_x8", "32"]);
    assert!(matvec_int8(gpu, &xq, &wq, &y, true).is_ok());
}

// ---- the int8 quantisers: quantize_x8, rmsnorm_x8, silu_mul_x8 ------------------------------

/// The three quantiser entries on rows of 1, 64 (TinyLlama's D / 32), 130 and 300 blocks (more
/// blocks than rmsnorm_x8's 256 lanes, so its lanes loop), a block of zeros included, through
/// workgroup memory and (where the adapter's subgroups allow) subgroup shuffles.
#[test]
fn int8_quantisers() {
    let gpu = test_gpu();
    let mut reductions = vec![Reduction::Workgroup];
    if x8_reduction(gpu) == Reduction::Subgroup {
        reductions.push(Reduction::Subgroup);
    }
    for k in [32, 2048, 4160, 9600] {
        let mut rng = Rng::new(k as u64);
        let mut x = rng.normal_vec(k, 1.0);
        x[..32].fill(0.0);
        let other = rng.normal_vec(k, 1.0);
        let tx = gpu.upload_f32("x", &x, &[1, k]).unwrap();
        let to = gpu.upload_f32("other", &other, &[k]).unwrap();
        let eps = 1e-5;
        let cases: [(&str, X8Input, Vec<f32>); 3] = [
            ("quantize_x8", X8Input::Plain(&tx), x.clone()),
            (
                "rmsnorm_x8",
                X8Input::RmsNorm {
                    x: &tx,
                    w: &to,
                    eps,
                },
                ref_rmsnorm(&x, &other, eps),
            ),
            (
                "silu_mul_x8",
                X8Input::SiluMul { gate: &tx, up: &to },
                silu_mul(&x, &other),
            ),
        ];
        for (name, input, want) in cases {
            for &reduction in &reductions {
                let xq = gpu
                    .upload_u32("xq", &vec![0xffff_ffff; int8_words(k)], &[int8_words(k)])
                    .unwrap();
                gpu.run(&[to_int8_with(gpu, input, &xq, reduction).unwrap()])
                    .unwrap();
                let words = gpu.read_u32(&xq).unwrap();
                assert_int8_words(&format!("{name} K={k} {reduction:?}"), &words, &want);
            }
        }
    }
}

#[test]
fn int8_quantisers_reject_bad_operands() {
    let gpu = test_gpu();
    let x = gpu.zeros_f32("x", &[1, 64]).unwrap();
    let two_rows = gpu.zeros_f32("x2", &[2, 64]).unwrap();
    let odd = gpu.zeros_f32("odd", &[1, 40]).unwrap();
    let w = gpu.zeros_f32("w", &[64]).unwrap();
    let short_w = gpu.zeros_f32("w", &[32]).unwrap();
    let xq = gpu.upload_u32("xq", &[0; 22], &[22]).unwrap();
    let short_xq = gpu.upload_u32("xq", &[0; 21], &[21]).unwrap();
    shape_error(
        rmsnorm_x8(gpu, &two_rows, &w, &xq, 1e-5),
        &["one row", "[2, 64]"],
    );
    shape_error(
        silu_mul_x8(gpu, &odd, &odd, &xq),
        &["multiple of 32", "[1, 40]"],
    );
    shape_error(rmsnorm_x8(gpu, &x, &short_w, &xq, 1e-5), &["w"]);
    shape_error(silu_mul_x8(gpu, &x, &short_w, &xq), &["up"]);
    shape_error(quantize_x8_gpu(gpu, &x, &short_xq), &["xq"]);
    assert!(rmsnorm_x8(gpu, &x, &w, &xq, 1e-5).is_ok());
}

/// The RMSNorm folded into the residual mat-vec before it (`matvec_norm`: y += W a, then w * y
/// unnormalised and each 32-row block's sum of y^2, by the block's last workgroup) and into the
/// mat-vecs after it (`matvec_multi_normed`: outputs scaled by 1 / rms), with int8 activations
/// (Q4_K / Q6_K producers, as the Wo and down of Q4_K_M; Q4_K consumers) or f32 ones (F16 /
/// BF16), against the f64 CPU reference of rmsnorm then the mat-vecs (f32 tolerances, or int8
/// ones where a is quantised), and against the unfused GPU path (matvec(_int8), rmsnorm(_x8),
/// matvec_multi(_int8)). Three rounds on the same buffers, so the block tickets must return to
/// zero after each. Runs where the device has the fold (`norm_out_supported`: subgroup rows of
/// a fixed size); lavapipe takes the workgroup-memory quantiser, the H100 the shuffles.
fn check_norm_fold(int8: bool, dtype: DType, n: usize, k: usize, ns: [usize; 2]) {
    let gpu = test_gpu();
    let eps = 1e-5;
    let case = format!("norm fold {} N={n} K={k} consumers {ns:?}", dtype.name());
    let mut rng = Rng::new(n as u64 * 3 + k as u64);
    let (wo, wov) = upload_random(&mut rng, dtype, n, k);
    if !norm_out_supported(gpu, &wo, int8) {
        eprintln!("{case}: skipped, no RMSNorm fold on this device");
        return;
    }
    let cdtype = if int8 { DType::Q4K } else { dtype };
    let (ws, wvs): (Vec<Tensor>, Vec<Vec<f32>>) = ns
        .iter()
        .map(|&m| upload_random(&mut rng, cdtype, m, n))
        .unzip();
    let wr: Vec<&Tensor> = ws.iter().collect();
    assert!(
        normed_supported(gpu, &wr, int8),
        "{case}: consumers unsupported"
    );
    let nw: Vec<f32> = (0..n)
        .map(|_| 1.0 + 0.2 * rng.normal_vec(1, 1.0)[0])
        .collect();
    let tnw = gpu.upload_f32("nw", &nw, &[n]).unwrap();
    let words = |len: usize| gpu.upload_u32("w", &vec![0; len], &[len]).unwrap();
    let (xa, xn, xq) = if int8 {
        (
            words(int8_words(k)),
            words(norm_int8_words(n)),
            words(int8_words(n)),
        )
    } else {
        (
            words(1),
            gpu.zeros_f32("xn", &[norm_f32_len(n)]).unwrap(),
            gpu.zeros_f32("hn", &[1, n]).unwrap(),
        )
    };
    let (ys, refs) = (outputs("y", &ns), outputs("yr", &ns));
    let yr: Vec<&Tensor> = ys.iter().collect();
    let rr: Vec<&Tensor> = refs.iter().collect();
    for round in 0..3 {
        let a = rng.normal_vec(k, 1.0);
        let h0 = rng.normal_vec(n, 1.0);
        let ta = gpu.upload_f32("a", &a, &[1, k]).unwrap();
        let th = gpu.upload_f32("h", &h0, &[1, n]).unwrap();
        let th_ref = gpu.upload_f32("h_ref", &h0, &[1, n]).unwrap();
        let mut ds = Vec::new();
        let x = if int8 {
            ds.push(quantize_x8_gpu(gpu, &ta, &xa).unwrap());
            &xa
        } else {
            &ta
        };
        ds.push(matvec_norm(gpu, x, &wo, &th, &tnw, &xn).unwrap());
        ds.push(matvec_multi_normed(gpu, &xn, &wr, &yr, eps).unwrap());
        ds.push(if int8 {
            matvec_int8(gpu, x, &wo, &th_ref, true).unwrap()
        } else {
            matvec(gpu, x, &wo, &th_ref, true).unwrap()
        });
        ds.extend(unfused_consumers(&th_ref, &tnw, &xq, &wr, &rr, eps));
        gpu.run(&ds).unwrap();
        let case = format!("{case} round {round}");
        let h = gpu.read_f32(&th).unwrap();
        // The residual sum is the plain mat-vec's, bit for bit.
        assert_eq!(h, gpu.read_f32(&th_ref).unwrap(), "{case}: h");
        // f64 reference: a as given (the int8 path quantises it: TOL_INT8), then rmsnorm and
        // the consumers on the GPU's h.
        let want_h = ref_matmul(&a, &wov, k, Some(&h0));
        check_int8_case(&format!("{case}: h vs f64"), &h, &want_h, !int8);
        check_consumers(&case, &ref_rmsnorm(&h, &nw, eps), &wvs, &ys, &refs, int8);
    }
}

/// Poisoned outputs [1, m] for each m of `ns`.
fn outputs(label: &str, ns: &[usize]) -> Vec<Tensor> {
    ns.iter()
        .map(|&m| test_gpu().poisoned_f32(label, &[1, m]).unwrap())
        .collect()
}

/// rmsnorm(h) (to int8 blocks where `xq` is u32, else f32) then the mat-vecs ws -> ys: the
/// unfused path a fold is checked against.
fn unfused_consumers(
    h: &Tensor,
    nw: &Tensor,
    xq: &Tensor,
    ws: &[&Tensor],
    ys: &[&Tensor],
    eps: f32,
) -> Vec<Dispatch> {
    let gpu = test_gpu();
    if xq.elem == Elem::U32 {
        vec![
            rmsnorm_x8(gpu, h, nw, xq, eps).unwrap(),
            matvec_multi_int8(gpu, xq, ws, ys).unwrap(),
        ]
    } else {
        vec![
            wgllama_engine::ops::rmsnorm::rmsnorm(gpu, h, nw, xq, eps).unwrap(),
            matvec_multi(gpu, xq, ws, ys).unwrap(),
        ]
    }
}

/// A fold's consumer outputs `ys` against the f64 reference over the normalised input `hn`
/// (int8 tolerances where `int8`) and against the unfused path's outputs `refs`.
fn check_consumers(
    case: &str,
    hn: &[f32],
    wvs: &[Vec<f32>],
    ys: &[Tensor],
    refs: &[Tensor],
    int8: bool,
) {
    let gpu = test_gpu();
    for (i, (y, r)) in ys.iter().zip(refs).enumerate() {
        let got = gpu.read_f32(y).unwrap();
        let want = ref_matmul(hn, &wvs[i], hn.len(), None);
        check_int8_case(&format!("{case}: y{i} vs f64"), &got, &want, !int8);
        assert_close_scaled(
            &format!("{case}: y{i} vs the unfused GPU path"),
            &got,
            &gpu.read_f32(r).unwrap(),
            TOL_FOLD,
        );
    }
}

#[test]
fn matvec_norm_fold_int8() {
    check_norm_fold(true, DType::Q4K, 768, 768, [384, 128]);
    check_norm_fold(true, DType::Q6K, 1280, 512, [256, 1000]);
}

#[test]
fn matvec_norm_fold_f32() {
    check_norm_fold(false, DType::F16, 640, 768, [384, 128]);
    check_norm_fold(false, DType::BF16, 1280, 528, [256, 1000]);
    // A producer with rows past 8192 values (Llama-2-7B's F16 down projection folds its norm).
    check_norm_fold(false, DType::F16, 256, 8336, [128, 200]);
}

/// A folded norm's output for h with norm weight nw, as `matvec_norm` leaves it (matvec.wgsl,
/// "RMSNorm folded"): nw * h (int8 words by the CPU quantiser, or f32), each 32-value block's
/// sum of h^2, then zeroed tickets and staging.
fn folded_norm_input(h: &[f32], nw: &[f32], int8: bool) -> Tensor {
    let gpu = test_gpu();
    let k = h.len();
    let v: Vec<f32> = h.iter().zip(nw).map(|(a, b)| a * b).collect();
    let mut words: Vec<u32> = if int8 {
        let (q, d, sums) = wgllama_engine::reference::quantize::quantize_x8(&v);
        let mut w: Vec<u32> = q
            .chunks(4)
            .map(|c| u32::from_le_bytes([c[0] as u8, c[1] as u8, c[2] as u8, c[3] as u8]))
            .collect();
        w.extend(d.iter().chain(&sums).map(|x| x.to_bits()));
        w
    } else {
        v.iter().map(|x| x.to_bits()).collect()
    };
    words.extend(
        h.chunks(32)
            .map(|b| b.iter().map(|x| x * x).sum::<f32>().to_bits()),
    );
    let len = if int8 {
        norm_int8_words(k)
    } else {
        norm_f32_len(k)
    };
    words.resize(len, 0);
    if int8 {
        gpu.upload_u32("xn", &words, &[len]).unwrap()
    } else {
        let f: Vec<f32> = words.iter().map(|&w| f32::from_bits(w)).collect();
        gpu.upload_f32("xn", &f, &[len]).unwrap()
    }
}

/// SwiGLU folded into the gate/up mat-vec (`matvec_swiglu`: a = silu(W_gate x) * (W_up x) from
/// subgroup pairs, as int8 blocks for an int8 down projection, quantised by each 32-row
/// block's last workgroup, or f32), from plain activations (int8 from quantize_x8, or f32) or a
/// folded norm's output (`normed`), against the f64 reference (int8 tolerances where x is
/// quantised) and against the unfused GPU path (matvec_multi(_int8 / _normed), then silu * up
/// on the CPU: the int8 words must be that a's quantisation). Three rounds on the same output,
/// so the tickets must return to zero. Runs where the device has the fold (`swiglu_supported`).
fn check_swiglu(int8: bool, dts: [DType; 2], n: usize, k: usize, normed: bool) {
    let gpu = test_gpu();
    let eps = 1e-5;
    let case = format!(
        "swiglu {}/{} N={n} K={k} int8={int8} normed={normed}",
        dts[0].name(),
        dts[1].name()
    );
    let mut rng = Rng::new(n as u64 * 11 + k as u64 + normed as u64);
    let (wg, wgv) = upload_random(&mut rng, dts[0], n, k);
    let (wu, wuv) = upload_random(&mut rng, dts[1], n, k);
    if !swiglu_supported(gpu, &wg, &wu, int8, normed) {
        eprintln!("{case}: skipped, no SwiGLU fold on this device");
        return;
    }
    let out = if int8 {
        let len = swiglu_int8_words(n);
        gpu.upload_u32("a", &vec![0; len], &[len]).unwrap()
    } else {
        gpu.poisoned_f32("a", &[n]).unwrap()
    };
    let (g, u) = (outputs("g", &[n]), outputs("u", &[n]));
    for round in 0..3 {
        let case = format!("{case} round {round}");
        let x = rng.normal_vec(k, 1.0);
        let nw: Vec<f32> = (0..k)
            .map(|_| 1.0 + 0.2 * rng.normal_vec(1, 1.0)[0])
            .collect();
        let mut ds = Vec::new();
        // x's buffer and the values the mat-vecs see (before x's int8 rounding).
        let (xin, x_eff) = if normed {
            (folded_norm_input(&x, &nw, int8), ref_rmsnorm(&x, &nw, eps))
        } else if int8 {
            let tx = gpu.upload_f32("x", &x, &[1, k]).unwrap();
            let xq = gpu.upload_u32("xq", &vec![0; int8_words(k)], &[int8_words(k)]);
            let xq = xq.unwrap();
            ds.push(quantize_x8_gpu(gpu, &tx, &xq).unwrap());
            (xq, x.clone())
        } else {
            (gpu.upload_f32("x", &x, &[1, k]).unwrap(), x.clone())
        };
        let e = normed.then_some(eps);
        ds.push(matvec_swiglu(gpu, &xin, &wg, &wu, &out, e).unwrap());
        let ws = [&wg, &wu];
        let ys = [&g[0], &u[0]];
        ds.push(match (normed, int8) {
            (true, _) => matvec_multi_normed(gpu, &xin, &ws, &ys, eps).unwrap(),
            (false, true) => matvec_multi_int8(gpu, &xin, &ws, &ys).unwrap(),
            (false, false) => matvec_multi(gpu, &xin, &ws, &ys).unwrap(),
        });
        gpu.run(&ds).unwrap();
        let want = silu_mul(
            &ref_matmul(&x_eff, &wgv, k, None),
            &ref_matmul(&x_eff, &wuv, k, None),
        );
        let unfused = silu_mul(&gpu.read_f32(&g[0]).unwrap(), &gpu.read_f32(&u[0]).unwrap());
        if !int8 {
            let got = gpu.read_f32(&out).unwrap();
            check_int8_case(&format!("{case}: vs f64"), &got, &want, true);
            assert_close_scaled(&format!("{case}: vs unfused"), &got, &unfused, TOL_FOLD);
            continue;
        }
        let words = gpu.read_u32(&out).unwrap();
        let (q, d) = (&words[..n / 4], &words[n / 4..n / 4 + n / 32]);
        let got: Vec<f32> = (0..n)
            .map(|i| (q[i / 4] >> (8 * (i % 4))) as u8 as i8 as f32 * f32::from_bits(d[i / 32]))
            .collect();
        check_int8_case(&format!("{case}: dequantised vs f64"), &got, &want, false);
        assert_int8_words(
            &format!("{case}: vs unfused"),
            &words[..int8_words(n)],
            &unfused,
        );
        let tickets = &words[int8_words(n) + n / 32..int8_words(n) + n / 16];
        assert!(
            tickets.iter().all(|&t| t == 0),
            "{case}: tickets left {tickets:?}"
        );
    }
}

#[test]
fn matvec_swiglu_int8() {
    check_swiglu(true, [DType::Q4K, DType::Q4K], 384, 768, false);
    check_swiglu(true, [DType::Q4K, DType::Q4K], 384, 768, true);
    check_swiglu(true, [DType::Q6K, DType::Q4K], 160, 512, true);
    check_swiglu(true, [DType::Q8_0, DType::Q8_0], 96, 256, false);
    // Rows of 4096+ values: the picks of one subgroup a row pair on the H100 (Q4_K two units
    // a step, Q6_K one), so 32 workgroups share a block's ticket.
    check_swiglu(true, [DType::Q4K, DType::Q4K], 64, 4096, true);
    check_swiglu(true, [DType::Q6K, DType::Q6K], 64, 4352, false);
}

#[test]
fn matvec_swiglu_f32() {
    check_swiglu(false, [DType::F16, DType::F16], 200, 768, true);
    check_swiglu(false, [DType::BF16, DType::BF16], 130, 528, false);
    check_swiglu(false, [DType::F16, DType::BF16], 64, 256, false);
}

/// matvec_swiglu names the operand it cannot take, and is not offered past its row limit.
#[test]
fn matvec_swiglu_rejects_bad_operands() {
    let gpu = test_gpu();
    let mut rng = Rng::new(5);
    let (g, _) = upload_random(&mut rng, DType::Q4K, 64, 256);
    let (u, _) = upload_random(&mut rng, DType::Q4K, 64, 256);
    if !swiglu_supported(gpu, &g, &u, true, false) {
        eprintln!("matvec_swiglu: skipped, no SwiGLU fold on this device");
        return;
    }
    let (u_short, _) = upload_random(&mut rng, DType::Q4K, 32, 256);
    let (f, _) = upload_random(&mut rng, DType::F16, 64, 256);
    let words = |len: usize| gpu.upload_u32("w", &vec![0; len], &[len]).unwrap();
    let (xq, out) = (words(int8_words(256)), words(swiglu_int8_words(64)));
    shape_error(matvec_swiglu(gpu, &xq, &g, &u_short, &out, None), &["w_up"]);
    shape_error(
        matvec_swiglu(gpu, &xq, &g, &u, &words(int8_words(64)), None),
        &["out"],
    );
    shape_error(
        matvec_swiglu(gpu, &xq, &g, &f, &out, None),
        &["f16", "int8"],
    );
    shape_error(
        matvec_swiglu(gpu, &xq, &g, &u, &out, Some(1e-5)),
        &["matvec_norm"],
    );
    shape_error(matvec_swiglu(gpu, &out, &g, &u, &out, None), &["x"]);
    assert!(matvec_swiglu(gpu, &xq, &g, &u, &out, None).is_ok());
    // int8 blocks split between rows that do not fill them; a norm input of K % 128 != 0.
    let (g48, _) = upload_random(&mut rng, DType::Q4K, 48, 256);
    let (u48, _) = upload_random(&mut rng, DType::Q4K, 48, 256);
    assert!(!swiglu_supported(gpu, &g48, &u48, true, false));
    let (f528, _) = upload_random(&mut rng, DType::F16, 64, 528);
    assert!(!swiglu_supported(gpu, &f528, &f528, false, true));
    assert!(swiglu_supported(gpu, &f528, &f528, false, false));
    let x528 = gpu.zeros_f32("x", &[1, 528]).unwrap();
    let short = gpu.zeros_f32("a", &[63]).unwrap();
    shape_error(
        matvec_swiglu(gpu, &x528, &f528, &f528, &short, None),
        &["out"],
    );
}

/// The first layer's norm folded into the embedding lookup (`embedding_norm`, decode): the
/// row itself and norm_w * h with its block sums of h^2 (int8 blocks or f32), read by
/// `matvec_multi_normed`, against the f64 reference of rmsnorm then the mat-vecs and against
/// the unfused GPU path (embedding, rmsnorm(_x8), matvec_multi(_int8)). Three token ids in
/// turn on the same buffers, the last past the vocabulary (a row of zeros: rms = sqrt(eps)).
fn check_embedding_fold(int8: bool, table_dtype: DType, d: usize, ns: [usize; 2]) {
    use wgllama_engine::ops::embedding::{embedding, embedding_norm};
    use wgllama_engine::reference::matmul::weight_values;
    use wgllama_engine::testing::weights::random_weight_bytes;
    let gpu = test_gpu();
    let eps = 1e-5;
    let vocab = 50;
    let case = format!(
        "embedding fold {} D={d} consumers {ns:?}",
        table_dtype.name()
    );
    let mut rng = Rng::new(d as u64 * 5 + ns[0] as u64);
    let cdtype = if int8 { DType::Q4K } else { DType::F16 };
    let (ws, wvs): (Vec<Tensor>, Vec<Vec<f32>>) = ns
        .iter()
        .map(|&m| upload_random(&mut rng, cdtype, m, d))
        .unzip();
    let wr: Vec<&Tensor> = ws.iter().collect();
    if !normed_supported(gpu, &wr, int8) {
        eprintln!("{case}: skipped, no RMSNorm fold on this device");
        return;
    }
    let bytes = random_weight_bytes(&mut rng, table_dtype, vocab * d);
    let table = gpu
        .upload_weight("token_embd.weight", table_dtype, &[vocab, d], &bytes)
        .unwrap();
    let rows = weight_values(table_dtype, &bytes, vocab * d).unwrap();
    let nw: Vec<f32> = (0..d)
        .map(|_| 1.0 + 0.2 * rng.normal_vec(1, 1.0)[0])
        .collect();
    let tnw = gpu.upload_f32("nw", &nw, &[d]).unwrap();
    let words = |len: usize| gpu.upload_u32("w", &vec![0; len], &[len]).unwrap();
    let (xn, xq) = if int8 {
        (words(norm_int8_words(d)), words(int8_words(d)))
    } else {
        (
            gpu.zeros_f32("xn", &[norm_f32_len(d)]).unwrap(),
            gpu.zeros_f32("hn", &[1, d]).unwrap(),
        )
    };
    let h = gpu.poisoned_f32("h", &[1, d]).unwrap();
    let h_ref = gpu.poisoned_f32("h_ref", &[1, d]).unwrap();
    let (ys, refs) = (outputs("y", &ns), outputs("yr", &ns));
    let yr: Vec<&Tensor> = ys.iter().collect();
    let rr: Vec<&Tensor> = refs.iter().collect();
    for id in [7u32, vocab as u32 - 1, vocab as u32] {
        let tokens = gpu.upload_u32("token", &[id], &[1]).unwrap();
        let mut ds = vec![
            embedding_norm(gpu, &table, &tokens, &h, &tnw, &xn).unwrap(),
            matvec_multi_normed(gpu, &xn, &wr, &yr, eps).unwrap(),
            embedding(gpu, &table, &tokens, &h_ref).unwrap(),
        ];
        ds.extend(unfused_consumers(&h_ref, &tnw, &xq, &wr, &rr, eps));
        gpu.run(&ds).unwrap();
        let case = format!("{case} token {id}");
        let row = match rows.get(id as usize * d..(id as usize + 1) * d) {
            Some(r) => r.to_vec(),
            None => vec![0.0; d],
        };
        assert_eq!(gpu.read_f32(&h).unwrap(), row, "{case}: the embedding row");
        check_consumers(&case, &ref_rmsnorm(&row, &nw, eps), &wvs, &ys, &refs, int8);
    }
}

#[test]
fn embedding_norm_fold_int8() {
    check_embedding_fold(true, DType::Q4K, 768, [384, 128]);
    check_embedding_fold(true, DType::Q6K, 1280, [256, 1000]);
}

#[test]
fn embedding_norm_fold_f32() {
    check_embedding_fold(false, DType::F16, 640, [384, 128]);
    check_embedding_fold(false, DType::BF16, 1280, [256, 1000]);
}

/// The fold against the unfused path: the same int8 values but for rounding ties (v and
/// v / rms can round a tie differently) and a different order of the 16-value sums. Measured
/// on lavapipe: nmse <= 3e-14, max abs <= 2.4e-7 of the largest output; a single int8 value
/// off by one moves an output by ~1e-3 of it.
const TOL_FOLD: Tol = Tol {
    nmse: 1e-12,
    max_abs: 1e-5,
};
