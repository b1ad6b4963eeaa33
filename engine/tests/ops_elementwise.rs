//! Op tests for elementwise.wgsl (add, add_in_place, silu_mul, silu_mul_fused, copy, to_f16)
//! and softmax.wgsl, against the CPU references.

use wgllama_engine::ops::elementwise::{add, add_in_place, copy, silu_mul, silu_mul_fused, to_f16};
use wgllama_engine::ops::softmax::softmax;
use wgllama_engine::reference;
use wgllama_engine::testing::{
    assert_close, assert_f16_rounding, errors, read_f16, test_gpu, Rng, Tol,
};
use wgllama_engine::EngineError;

/// f32 a + b on the GPU rounds exactly like the CPU: the results must be identical.
const EXACT: Tol = Tol {
    nmse: 0.0,
    max_abs: 0.0,
};
/// silu needs exp, which Vulkan allows a few ulp off; outputs reach ~50, where an ulp is 4e-6.
const SILU_TOL: Tol = Tol {
    nmse: 1e-13,
    max_abs: 1e-5,
};
/// Softmax outputs are <= 1; exp error (a few ulp) and the f32 sum over up to 128256 terms
/// bound the error (measured on lavapipe: nmse <= 7.4e-14, max abs <= 3e-8).
const SOFTMAX_TOL: Tol = Tol {
    nmse: 1e-12,
    max_abs: 1e-7,
};

/// Element counts that are not multiples of the workgroup (256), as (rows, cols).
const SHAPES: [(usize, usize); 4] = [(1, 1), (1, 1000), (1, 4097), (3, 4097)];

fn report(case: &str, got: &[f32], want: &[f32], tol: Tol) {
    let e = errors(got, want);
    eprintln!("{case}: nmse {:.2e} max_abs {:.2e}", e.nmse, e.max_abs);
    assert_close(case, got, want, tol);
}

#[test]
fn add_matches_reference() {
    let gpu = test_gpu();
    for (i, &(rows, cols)) in SHAPES.iter().enumerate() {
        let mut rng = Rng::new(10 + i as u64);
        let a = rng.normal_vec(rows * cols, 2.0);
        let b = rng.normal_vec(rows * cols, 0.5);
        let ta = gpu.upload_f32("a", &a, &[rows, cols]).unwrap();
        let tb = gpu.upload_f32("b", &b, &[rows, cols]).unwrap();
        let ty = gpu.poisoned_f32("y", &[rows, cols]).unwrap();
        gpu.run(&[add(gpu, &ta, &tb, &ty).unwrap()]).unwrap();
        let want = reference::elementwise::add(&a, &b);
        let case = format!("add rows={rows} cols={cols}");
        report(&case, &gpu.read_f32(&ty).unwrap(), &want, EXACT);
    }
}

#[test]
fn add_in_place_matches_reference() {
    let gpu = test_gpu();
    for (i, &(rows, cols)) in SHAPES.iter().enumerate() {
        let mut rng = Rng::new(20 + i as u64);
        let a = rng.normal_vec(rows * cols, 2.0);
        let b = rng.normal_vec(rows * cols, 0.5);
        let ta = gpu.upload_f32("acc", &a, &[rows, cols]).unwrap();
        let tb = gpu.upload_f32("b", &b, &[rows, cols]).unwrap();
        gpu.run(&[add_in_place(gpu, &ta, &tb).unwrap()]).unwrap();
        let want = reference::elementwise::add(&a, &b);
        let case = format!("add_in_place rows={rows} cols={cols}");
        report(&case, &gpu.read_f32(&ta).unwrap(), &want, EXACT);
    }
}

/// Gate values spanning silu's whole range, including the exp-overflow tail (g << 0). Element
/// 0 stays ordinary: a one-element case whose only value is a denormal would make nmse
/// measure denormal flushing, not the kernel.
fn gate_values(rng: &mut Rng, n: usize) -> Vec<f32> {
    let mut g = rng.normal_vec(n, 4.0);
    for v in g.iter_mut().skip(1).step_by(97) {
        *v = rng.uniform(-120.0, -80.0);
    }
    g
}

#[test]
fn silu_mul_matches_reference() {
    let gpu = test_gpu();
    for (i, &(rows, cols)) in SHAPES.iter().enumerate() {
        let mut rng = Rng::new(30 + i as u64);
        let g = gate_values(&mut rng, rows * cols);
        let u = rng.normal_vec(rows * cols, 1.0);
        let tg = gpu.upload_f32("gate", &g, &[rows, cols]).unwrap();
        let tu = gpu.upload_f32("up", &u, &[rows, cols]).unwrap();
        let ty = gpu.poisoned_f32("y", &[rows, cols]).unwrap();
        gpu.run(&[silu_mul(gpu, &tg, &tu, &ty).unwrap()]).unwrap();
        let want = reference::elementwise::silu_mul(&g, &u);
        let case = format!("silu_mul rows={rows} cols={cols}");
        report(&case, &gpu.read_f32(&ty).unwrap(), &want, SILU_TOL);
    }
}

#[test]
fn silu_mul_fused_matches_reference() {
    let gpu = test_gpu();
    for (i, &(rows, f)) in [(1, 1), (1, 1000), (3, 4097), (5, 333)].iter().enumerate() {
        let mut rng = Rng::new(40 + i as u64);
        let gate = gate_values(&mut rng, rows * f);
        let up = rng.normal_vec(rows * f, 1.0);
        let gu: Vec<f32> = (0..rows)
            .flat_map(|r| [&gate[r * f..(r + 1) * f], &up[r * f..(r + 1) * f]].concat())
            .collect();
        let tgu = gpu.upload_f32("gate_up", &gu, &[rows, 2 * f]).unwrap();
        let ty = gpu.poisoned_f32("y", &[rows, f]).unwrap();
        gpu.run(&[silu_mul_fused(gpu, &tgu, &ty).unwrap()]).unwrap();
        let want = reference::elementwise::silu_mul_fused(&gu, f);
        let case = format!("silu_mul_fused rows={rows} f={f}");
        report(&case, &gpu.read_f32(&ty).unwrap(), &want, SILU_TOL);
    }
}

#[test]
fn copy_is_exact() {
    let gpu = test_gpu();
    for (i, &(rows, cols)) in SHAPES.iter().enumerate() {
        let mut rng = Rng::new(50 + i as u64);
        let x = rng.normal_vec(rows * cols, 3.0);
        let tx = gpu.upload_f32("x", &x, &[rows, cols]).unwrap();
        let ty = gpu.poisoned_f32("y", &[rows, cols]).unwrap();
        gpu.run(&[copy(gpu, &tx, &ty).unwrap()]).unwrap();
        let case = format!("copy rows={rows} cols={cols}");
        report(&case, &gpu.read_f32(&ty).unwrap(), &x, EXACT);
    }
}

#[test]
fn softmax_matches_reference() {
    let gpu = test_gpu();
    let cases = [
        (1, 1, 1.0),
        (3, 1000, 0.5),
        (2, 4097, 1.0),
        (1, 32000, 1.7),
        (1, 128256, 0.8),
    ];
    for (i, &(rows, cols, temp)) in cases.iter().enumerate() {
        let mut rng = Rng::new(60 + i as u64);
        // Logit-like rows: a spread of several units, so exp spans many orders of magnitude.
        let x = rng.normal_vec(rows * cols, 3.0);
        let tx = gpu.upload_f32("x", &x, &[rows, cols]).unwrap();
        let ty = gpu.poisoned_f32("y", &[rows, cols]).unwrap();
        gpu.run(&[softmax(gpu, &tx, &ty, temp).unwrap()]).unwrap();
        let want = reference::softmax::softmax(&x, cols, temp);
        let case = format!("softmax rows={rows} cols={cols} temperature={temp}");
        report(&case, &gpu.read_f32(&ty).unwrap(), &want, SOFTMAX_TOL);
    }
}

#[test]
fn bad_operands_are_shape_errors() {
    let gpu = test_gpu();
    let a = gpu.zeros_f32("a", &[4, 8]).unwrap();
    let b = gpu.zeros_f32("b", &[4, 7]).unwrap();
    let y = gpu.zeros_f32("y", &[4, 8]).unwrap();
    let odd = gpu.zeros_f32("odd", &[4, 7]).unwrap();
    let ids = gpu.upload_u32("ids", &[0; 32], &[4, 8]).unwrap();
    let is_shape = |r: Result<_, EngineError>, op: &str| match r {
        Err(EngineError::Shape { op: o, .. }) => assert_eq!(o, op),
        Err(e) => panic!("{op}: wrong error {e}"),
        Ok(_) => panic!("{op}: bad operands accepted"),
    };
    is_shape(add(gpu, &a, &b, &y), "add");
    is_shape(add(gpu, &a, &ids, &y), "add");
    is_shape(add(gpu, &a, &y, &a), "add");
    is_shape(add_in_place(gpu, &a, &a), "add_in_place");
    is_shape(silu_mul(gpu, &a, &b, &y), "silu_mul");
    is_shape(silu_mul_fused(gpu, &odd, &y), "silu_mul_fused");
    is_shape(silu_mul_fused(gpu, &a, &y), "silu_mul_fused");
    is_shape(copy(gpu, &ids, &y), "copy");
    is_shape(softmax(gpu, &a, &b, 1.0), "softmax");
    is_shape(softmax(gpu, &a, &y, 0.0), "softmax");
    is_shape(softmax(gpu, &a, &a, 1.0), "softmax");
}

/// to_f16 against the reference's round-to-nearest-even (WGSL leaves pack2x16float's rounding
/// to the implementation, so one f16 ulp either way is allowed), values spanning f16's range:
/// subnormals, large ones and beyond +-65504 (saturated), on an odd number of pairs.
#[test]
fn to_f16_rounds_and_saturates() {
    let gpu = test_gpu();
    let mut rng = Rng::new(16);
    let n = 2 * 1031;
    let mut x: Vec<f32> = rng.normal_vec(n, 1.0);
    for (i, v) in x.iter_mut().enumerate() {
        *v *= [1e-6, 1e-3, 1.0, 300.0, 6e4, 1e6][i % 6];
    }
    let tx = gpu.upload_f32("x", &x, &[n]).unwrap();
    let ty = gpu.zeros_f16("y", &[n]).unwrap();
    gpu.run(&[to_f16(gpu, &tx, &ty).unwrap()]).unwrap();
    let got = read_f16(gpu, &ty);
    let want = reference::elementwise::to_f16(&x);
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        // One ulp of f16 at w: 2^(exponent - 10), at least the subnormal step 2^-24.
        let ulp = (w.abs().max(6.1e-5)).log2().floor().exp2() / 1024.0;
        assert!(
            (g - w).abs() <= ulp.max(2f32.powi(-24)),
            "to_f16 value {i}: x {} got {g} want {w}",
            x[i]
        );
    }
    assert!(got.iter().all(|v| v.is_finite()));
    let odd = gpu.zeros_f32("odd", &[3]).unwrap();
    let y3 = gpu.zeros_f16("y3", &[3]).unwrap();
    assert!(matches!(
        to_f16(gpu, &odd, &y3),
        Err(EngineError::Shape { .. })
    ));
}

/// silu_mul with an f16 output (the down projection's f16 input): its f32 values rounded,
/// saturated where they pass 65504, on shapes with an odd number of pairs.
#[test]
fn silu_mul_f16_out_is_f32_out_rounded() {
    let gpu = test_gpu();
    for (i, &(rows, cols)) in [(1, 2), (3, 1000), (5, 334), (2, 4098)].iter().enumerate() {
        let mut rng = Rng::new(60 + i as u64);
        let g = gate_values(&mut rng, rows * cols);
        let mut u = rng.normal_vec(rows * cols, 1.0);
        for v in u.iter_mut().step_by(5) {
            *v *= 1e5;
        }
        let tg = gpu.upload_f32("gate", &g, &[rows, cols]).unwrap();
        let tu = gpu.upload_f32("up", &u, &[rows, cols]).unwrap();
        let y32 = gpu.poisoned_f32("y", &[rows, cols]).unwrap();
        let y16 = gpu.zeros_f16("y16", &[rows, cols]).unwrap();
        gpu.run(&[
            silu_mul(gpu, &tg, &tu, &y32).unwrap(),
            silu_mul(gpu, &tg, &tu, &y16).unwrap(),
        ])
        .unwrap();
        let case = format!("silu_mul f16 out rows={rows} cols={cols}");
        assert_f16_rounding(&case, &read_f16(gpu, &y16), &gpu.read_f32(&y32).unwrap());
    }
    let odd = gpu.zeros_f32("odd", &[3]).unwrap();
    let y3 = gpu.zeros_f16("y3", &[3]).unwrap();
    assert!(matches!(
        silu_mul(gpu, &odd, &odd, &y3),
        Err(EngineError::Shape { .. })
    ));
}
