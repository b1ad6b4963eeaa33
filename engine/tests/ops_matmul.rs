//! Op tests for weight upload, the linear-layer kernels (mat-vec and tiled mat-mul, with and
//! without accumulate) and dequantisation, for every weight type, against the f64 CPU
//! reference over the loaders' CPU dequantiser (independent of the GPU layout).

use wgllama_engine::ops::dequant::dequant;
use wgllama_engine::ops::matmul::{
    matmul, matmul_tiled, matvec_subgroup, matvec_with, MatvecKind, MatvecShape, SubgroupShape,
};
use wgllama_engine::reference::matmul::{matmul as ref_matmul, weight_values};
use wgllama_engine::testing::weights::{random_weight_bytes, upload_random_weight};
use wgllama_engine::testing::{assert_close_scaled, test_gpu, Rng, Tol};
use wgllama_engine::{EngineError, Tensor};
use wgllama_loaders::DType;

/// Row lengths per type: whole blocks, not multiples of the 32-wide k step for the
/// 32-blocks (96 = 3 x 32, 544 = 17 x 32), and for float types also lengths that are
/// not whole 16-value chunks (the per-value path).
fn row_lengths(dtype: DType) -> [usize; 2] {
    match dtype.block_size() {
        256 => [512, 768],
        32 => [96, 544],
        _ => [544, 100],
    }
}

/// Tolerance of the linear layers, the same for every weight type: weights decode bit-exactly
/// (`upload_dequant_round_trip`), so the only error is f32 accumulation over K <= 768
/// against the f64 reference. Measured on lavapipe: nmse <= 1.3e-13 except single-output
/// cases (N = 1: up to 1.1e-12), max error <= 1.1e-6 of the largest |output| (the tiled
/// kernel's sequential sums are the worst). The bounds are ~10x the worst measurement.
const TOL: Tol = Tol {
    nmse: 1e-11,
    max_abs: 1e-5, // of the largest |output|
};

#[derive(Clone, Copy, Debug)]
enum Kernel {
    /// `matmul`: mat-vec for T == 1, tiled otherwise.
    Auto,
    /// The tiled kernel even for T == 1.
    Tiled,
    /// The workgroup-reduction mat-vec kernel (the fallback) with an explicit shape.
    MatVec(MatvecShape),
    /// The subgroup mat-vec kernel with an explicit shape.
    Subgroup(SubgroupShape),
}

fn upload_random(rng: &mut Rng, dtype: DType, n: usize, k: usize) -> (Tensor, Vec<f32>) {
    upload_random_weight(test_gpu(), rng, dtype, n, k)
}

fn check_linear(dtype: DType, kernel: Kernel, t: usize, n: usize, k: usize, accumulate: bool) {
    let gpu = test_gpu();
    let case = format!(
        "{} {kernel:?} T={t} N={n} K={k} accumulate={accumulate}",
        dtype.name()
    );
    let mut rng = Rng::new((dtype.ggml_id() as u64) << 40 ^ (t * 1_000_003 + n * 1009 + k) as u64);
    let (w, wv) = upload_random(&mut rng, dtype, n, k);
    let x = rng.normal_vec(t * k, 1.0);
    let tx = gpu.upload_f32("x", &x, &[t, k]).unwrap();
    let y0 = rng.normal_vec(t * n, 1.0);
    let ty = if accumulate {
        gpu.upload_f32("y", &y0, &[t, n]).unwrap()
    } else {
        gpu.poisoned_f32("y", &[t, n]).unwrap()
    };
    let d = match kernel {
        Kernel::Auto => matmul(gpu, &tx, &w, &ty, accumulate),
        Kernel::Tiled => matmul_tiled(gpu, &tx, &w, &ty, accumulate),
        Kernel::MatVec(shape) => matvec_with(gpu, &tx, &w, &ty, accumulate, shape),
        Kernel::Subgroup(shape) => matvec_subgroup(gpu, &tx, &w, &ty, accumulate, shape),
    }
    .unwrap();
    assert_eq!(d.cost.flops, 2 * (t * n * k) as u64);
    gpu.run(&[d]).unwrap();
    let got = gpu.read_f32(&ty).unwrap();
    let want = ref_matmul(&x, &wv, k, accumulate.then_some(&y0[..]));
    assert_close_scaled(&case, &got, &want, TOL);
}

/// Every kernel path for one weight type.
fn linear_all_paths(dtype: DType) {
    let [k0, k1] = row_lengths(dtype);
    // Decode: N not a multiple of the 4 rows per workgroup, N = 1.
    check_linear(dtype, Kernel::Auto, 1, 1000, k0, false);
    check_linear(dtype, Kernel::Auto, 1, 67, k1, false);
    check_linear(dtype, Kernel::Auto, 1, 1, k0, false);
    check_linear(dtype, Kernel::Auto, 1, 67, k1, true);
    // The fallback kernel explicitly (Auto takes the subgroup kernel where it can).
    check_linear(
        dtype,
        Kernel::MatVec(MatvecShape::for_k(k0)),
        1,
        1000,
        k0,
        false,
    );
    check_linear(
        dtype,
        Kernel::MatVec(MatvecShape::for_k(k1)),
        1,
        67,
        k1,
        true,
    );
    // Other mat-vec shapes: one row per workgroup, wide workgroups over short rows.
    let one_row = MatvecShape { lanes: 64, rows: 1 };
    check_linear(dtype, Kernel::MatVec(one_row), 1, 67, k0, false);
    let wide = MatvecShape {
        lanes: 256,
        rows: 8,
    };
    check_linear(dtype, Kernel::MatVec(wide), 1, 13, k1, true);
    // Prefill: T and N not multiples of the 32 x 64 tile.
    check_linear(dtype, Kernel::Auto, 3, 1000, k1, false);
    check_linear(dtype, Kernel::Auto, 33, 67, k0, false);
    check_linear(dtype, Kernel::Auto, 33, 130, k1, true);
    check_linear(dtype, Kernel::Tiled, 1, 67, k1, false);
    check_linear(dtype, Kernel::Tiled, 3, 1, k0, true);
}

#[test]
fn linear_f32() {
    linear_all_paths(DType::F32);
}
#[test]
fn linear_f16() {
    linear_all_paths(DType::F16);
}
#[test]
fn linear_bf16() {
    linear_all_paths(DType::BF16);
}
#[test]
fn linear_q8_0() {
    linear_all_paths(DType::Q8_0);
}
#[test]
fn linear_q4_0() {
    linear_all_paths(DType::Q4_0);
}
#[test]
fn linear_q5_0() {
    linear_all_paths(DType::Q5_0);
}
#[test]
fn linear_q4_k() {
    linear_all_paths(DType::Q4K);
}
#[test]
fn linear_q5_k() {
    linear_all_paths(DType::Q5K);
}
#[test]
fn linear_q6_k() {
    linear_all_paths(DType::Q6K);
}

/// Subgroup mat-vec shapes: the default, rows not a multiple of rows per subgroup, one
/// subgroup with one row, and many subgroups over few rows.
fn subgroup_shapes(dtype: DType) -> [SubgroupShape; 4] {
    let shape = |subgroups, rows_per_subgroup| SubgroupShape {
        subgroups,
        rows_per_subgroup,
    };
    [
        SubgroupShape::for_dtype(dtype),
        shape(3, 4),
        shape(1, 1),
        shape(8, 2),
    ]
}

/// The subgroup mat-vec for one weight type: N in {1000, 67, 13, 1} (not multiples of the
/// rows per workgroup, fewer rows than a workgroup owns), plain and accumulate, both row
/// lengths where they are whole chunks, every shape. Where the device has no subgroups the
/// kernel must refuse and `matmul` must fall back.
fn linear_subgroup(dtype: DType) {
    let gpu = test_gpu();
    let [k0, k1] = row_lengths(dtype);
    if !gpu.caps.subgroups {
        assert!(matches!(
            MatvecKind::pick(gpu, dtype, k0),
            MatvecKind::Workgroup(_)
        ));
        return;
    }
    let k1 = if k1 % 16 == 0 { k1 } else { k0 };
    let shapes = subgroup_shapes(dtype);
    let mut i = 0;
    for n in [1000, 67, 13, 1] {
        for accumulate in [false, true] {
            let k = if accumulate { k1 } else { k0 };
            check_linear(dtype, Kernel::Subgroup(shapes[i % 4]), 1, n, k, accumulate);
            i += 1;
        }
    }
}

#[test]
fn linear_subgroup_f32() {
    linear_subgroup(DType::F32);
}
#[test]
fn linear_subgroup_f16() {
    linear_subgroup(DType::F16);
}
#[test]
fn linear_subgroup_bf16() {
    linear_subgroup(DType::BF16);
}
#[test]
fn linear_subgroup_q8_0() {
    linear_subgroup(DType::Q8_0);
}
#[test]
fn linear_subgroup_q4_0() {
    linear_subgroup(DType::Q4_0);
}
#[test]
fn linear_subgroup_q5_0() {
    linear_subgroup(DType::Q5_0);
}
#[test]
fn linear_subgroup_q4_k() {
    linear_subgroup(DType::Q4K);
}
#[test]
fn linear_subgroup_q5_k() {
    linear_subgroup(DType::Q5K);
}
#[test]
fn linear_subgroup_q6_k() {
    linear_subgroup(DType::Q6K);
}

/// The subgroup kernel with one row per workgroup on a vocab-sized N: the grid spills
/// into y.
#[test]
fn matvec_subgroup_more_workgroups_than_one_dimension_holds() {
    let gpu = test_gpu();
    if !gpu.caps.subgroups {
        return;
    }
    let n = gpu.limits.max_compute_workgroups_per_dimension as usize + 4465;
    let shape = SubgroupShape {
        subgroups: 1,
        rows_per_subgroup: 1,
    };
    check_linear(DType::Q8_0, Kernel::Subgroup(shape), 1, n, 32, false);
    check_linear(DType::Q4K, Kernel::Subgroup(shape), 1, n, 256, true);
}

/// Odd row lengths of float weights: one value per row, and an odd element count (the last
/// f16 word half filled).
#[test]
fn linear_odd_float_rows() {
    for dtype in [DType::F32, DType::F16, DType::BF16] {
        check_linear(dtype, Kernel::Auto, 1, 67, 7, false);
        check_linear(dtype, Kernel::Auto, 5, 67, 1, true);
        check_linear(dtype, Kernel::Auto, 33, 3, 23, false);
    }
}

/// More than 65535 workgroups (the vocab-sized mat-vec): the grid spills into y.
#[test]
fn matvec_more_workgroups_than_one_dimension_holds() {
    let gpu = test_gpu();
    let n = gpu.limits.max_compute_workgroups_per_dimension as usize + 4465;
    let shape = MatvecShape { lanes: 32, rows: 1 };
    check_linear(DType::Q8_0, Kernel::MatVec(shape), 1, n, 32, false);
}

const ALL_TYPES: [DType; 9] = DType::ALL;

/// Upload then the dequant kernel reproduces the CPU dequantiser bit for bit: the GPU layout
/// and decoding lose nothing, so the matmul tolerances only cover accumulation.
#[test]
fn upload_dequant_round_trip() {
    let gpu = test_gpu();
    for dtype in ALL_TYPES {
        let shapes: &[[usize; 2]] = match dtype.block_size() {
            1 => &[[67, 544], [67, 7], [3, 1]],
            32 => &[[67, 96], [5, 544]],
            _ => &[[67, 512], [3, 768]],
        };
        for &[n, k] in shapes {
            let mut rng = Rng::new(7 + dtype.ggml_id() as u64 * 31 + n as u64);
            let bytes = random_weight_bytes(&mut rng, dtype, n * k);
            let w = gpu.upload_weight("w", dtype, &[n, k], &bytes).unwrap();
            assert_eq!(w.elem, wgllama_engine::Elem::Weight(dtype));
            let out = gpu.poisoned_f32("out", &[n, k]).unwrap();
            gpu.run(&[dequant(gpu, &w, &out).unwrap()]).unwrap();
            let got = gpu.read_f32(&out).unwrap();
            let want = weight_values(dtype, &bytes, n * k).unwrap();
            let bad: Vec<(usize, f32, f32)> = got
                .iter()
                .zip(&want)
                .enumerate()
                .filter(|(_, (g, w))| g.to_bits() != w.to_bits())
                .map(|(i, (&g, &w))| (i, g, w))
                .take(5)
                .collect();
            assert!(
                bad.is_empty(),
                "dequant {} [{n}, {k}]: values differ from the CPU dequantiser, (index, gpu, cpu): {bad:?}",
                dtype.name()
            );
        }
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
fn upload_weight_rejects_bad_shapes() {
    let gpu = test_gpu();
    // A row that is not whole blocks.
    let bytes = vec![0u8; 4 * 34 * 3 / 2];
    shape_error(
        gpu.upload_weight("blk.0.attn_q.weight", DType::Q8_0, &[4, 48], &bytes),
        &["blk.0.attn_q.weight", "48", "blocks"],
    );
    // Bytes that do not match the shape.
    let bytes = vec![0u8; 2 * 144];
    shape_error(
        gpu.upload_weight("ffn_down", DType::Q4K, &[2, 512], &bytes),
        &["ffn_down", "288", "576"],
    );
    let bytes = vec![0u8; 10];
    shape_error(
        gpu.upload_weight("norm", DType::F16, &[3, 2], &bytes),
        &["norm", "10", "12"],
    );
    shape_error(gpu.upload_weight("empty", DType::F32, &[], &[]), &["empty"]);
    shape_error(
        gpu.upload_weight("zero", DType::F32, &[0, 4], &[]),
        &["zero"],
    );
}

/// A tensor whose GPU layout exceeds one storage binding is refused by name, before any
/// byte is read (the zeroed host buffers below are never touched, so cost no memory).
#[test]
fn upload_weight_too_large() {
    let gpu = test_gpu();
    let limit = gpu.max_binding();
    for dtype in [DType::F32, DType::Q6K] {
        let k = 256;
        let row_bytes = (k / dtype.block_size() * dtype.block_bytes()) as u64;
        let n = (limit / row_bytes + 1) as usize;
        let bytes = vec![0u8; n * row_bytes as usize];
        match gpu.upload_weight("token_embd.weight", dtype, &[n, k], &bytes) {
            Err(e @ EngineError::TooLarge { .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("token_embd.weight") && msg.contains(&limit.to_string()),
                    "{msg}"
                );
            }
            other => panic!("{}: expected TooLarge, got {other:?}", dtype.name()),
        }
    }
}

#[test]
fn matmul_rejects_bad_operands() {
    let gpu = test_gpu();
    let mut rng = Rng::new(5);
    let (w, _) = upload_random(&mut rng, DType::Q8_0, 8, 64);
    let x = gpu.zeros_f32("x", &[2, 64]).unwrap();
    let y = gpu.zeros_f32("y", &[2, 8]).unwrap();
    assert!(matmul(gpu, &x, &w, &y, false).is_ok());
    let x_bad = gpu.zeros_f32("x", &[2, 32]).unwrap();
    shape_error(matmul(gpu, &x_bad, &w, &y, false), &["matmul", "x", "64"]);
    let y_bad = gpu.zeros_f32("y", &[2, 9]).unwrap();
    shape_error(matmul(gpu, &x, &w, &y_bad, false), &["matmul", "y"]);
    let ids = gpu.upload_u32("ids", &[0; 16], &[2, 8]).unwrap();
    shape_error(matmul(gpu, &x, &ids, &y, false), &["matmul", "w", "U32"]);
    shape_error(matmul(gpu, &ids, &w, &y, false), &["matmul", "x"]);
    let shape = MatvecShape { lanes: 64, rows: 4 };
    shape_error(
        matvec_with(gpu, &x, &w, &y, false, shape),
        &["matvec", "one token"],
    );
    let x1 = gpu.zeros_f32("x", &[1, 64]).unwrap();
    let y1 = gpu.zeros_f32("y", &[1, 8]).unwrap();
    let odd = MatvecShape { lanes: 48, rows: 4 };
    shape_error(
        matvec_with(gpu, &x1, &w, &y1, false, odd),
        &["matvec", "lanes"],
    );
    if gpu.caps.subgroups {
        let sg = SubgroupShape {
            subgroups: 4,
            rows_per_subgroup: 1,
        };
        shape_error(
            matvec_subgroup(gpu, &x, &w, &y, false, sg),
            &["matvec", "one token"],
        );
        let too_many = SubgroupShape {
            subgroups: 4,
            rows_per_subgroup: 5,
        };
        shape_error(
            matvec_subgroup(gpu, &x1, &w, &y1, false, too_many),
            &["matvec", "rows per subgroup"],
        );
        // Rows that are not whole chunks: only the fallback kernel reads them.
        let wf = gpu.zeros_f32("w", &[8, 100]).unwrap();
        let xf = gpu.zeros_f32("x", &[1, 100]).unwrap();
        shape_error(
            matvec_subgroup(gpu, &xf, &wf, &y1, false, sg),
            &["matvec", "multiple of 16"],
        );
        assert!(matches!(
            MatvecKind::pick(gpu, DType::F32, 100),
            MatvecKind::Workgroup(_)
        ));
    }
}
