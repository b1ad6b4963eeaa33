//! The k-quant quantisers (Q4_K, Q5_K, Q6_K): reconstruction error on Gaussian data,
//! edge cases, and an independent check through the `gguf` Python package's dequantisers.
//!
//! The error here is measured with our dequantiser, which matches gguf-py bit for bit
//! (`dequant_golden.rs`). `independent_check_with_gguf_py` additionally writes a GGUF and
//! has `golden/loaders/check_kquants.py` dequantise it with gguf-py, when python3 has `gguf`.

mod common;

use wgllama_loaders::gguf::GgufWriter;
use wgllama_loaders::quant::{dequantize, quantize};
use wgllama_loaders::DType;

/// Box-Muller normals from a splitmix64 stream: plain, deterministic, exact Gaussians.
fn gaussian(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let (u1, u2) = (1.0 - next(), next());
            ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
        })
        .collect()
}

fn nmse(got: &[f32], want: &[f32]) -> f64 {
    let err: f64 = got
        .iter()
        .zip(want)
        .map(|(g, w)| ((g - w) as f64).powi(2))
        .sum();
    let power: f64 = want.iter().map(|&w| (w as f64).powi(2)).sum();
    err / power
}

fn round_trip(dtype: DType, x: &[f32]) -> Vec<f32> {
    let bytes = quantize(dtype, x).unwrap();
    assert_eq!(bytes.len() as u64, dtype.bytes_for(x.len() as u64).unwrap());
    dequantize(dtype, &bytes, x.len()).unwrap()
}

/// Measured on unit Gaussians: 5.05e-3 (Q4_K), 1.30e-3 (Q5_K), 3.18e-4 (Q6_K). The plain
/// min/max (Q4_K) and absmax (Q6_K) writers of golden/make_models.py give 6.0e-3 and
/// 3.7e-4, so these bounds catch a scale search that stopped helping; the issue asks for
/// well under 1e-2 (Q4_K) and 1e-3 (Q6_K).
const BOUNDS: [(DType, f64); 3] = [
    (DType::Q4K, 5.5e-3),
    (DType::Q5K, 1.4e-3),
    (DType::Q6K, 3.4e-4),
];

#[test]
fn gaussian_reconstruction_error_is_small() {
    let x = gaussian(256 * 256, 7);
    for (dtype, bound) in BOUNDS {
        let e = nmse(&round_trip(dtype, &x), &x);
        println!("{}: nmse {e:.3e} (bound {bound:.1e})", dtype.name());
        assert!(e < bound, "{}: nmse {e:.3e} over {bound:.1e}", dtype.name());
    }
}

#[test]
fn scale_does_not_matter() {
    // Tiny and huge magnitudes (within f16's range for the block scales).
    let x = gaussian(256 * 16, 8);
    for factor in [1e-3f32, 30.0] {
        let y: Vec<f32> = x.iter().map(|v| v * factor).collect();
        for (dtype, bound) in BOUNDS {
            let e = nmse(&round_trip(dtype, &y), &y);
            assert!(
                e < bound * 1.5,
                "{} at ×{factor}: nmse {e:.3e}",
                dtype.name()
            );
        }
    }
}

#[test]
fn degenerate_blocks() {
    let zeros = vec![0f32; 512];
    let constant = vec![0.75f32; 512];
    let mut one_spike = vec![0f32; 512];
    one_spike[300] = -4.0;
    let positive: Vec<f32> = gaussian(512, 9).iter().map(|v| v.abs() + 1.0).collect();
    for dtype in [DType::Q4K, DType::Q5K, DType::Q6K] {
        assert!(round_trip(dtype, &zeros).iter().all(|&v| v == 0.0));
        for (what, x) in [
            ("constant", &constant),
            ("spike", &one_spike),
            ("positive", &positive),
        ] {
            let y = round_trip(dtype, x);
            assert!(y.iter().all(|v| v.is_finite()), "{what}");
            let e = nmse(&y, x);
            assert!(e < 2e-2, "{} {what}: nmse {e:.3e}", dtype.name());
        }
    }
}

#[test]
fn refuses_partial_super_blocks() {
    let err = quantize(DType::Q4K, &[0.0; 100]).unwrap_err().to_string();
    assert!(err.contains("256"), "{err}");
}

#[test]
fn independent_check_with_gguf_py() {
    let python_has_gguf = std::process::Command::new("python3")
        .args(["-c", "import gguf, numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !python_has_gguf {
        eprintln!("skipped: python3 with the gguf package is not available");
        return;
    }
    let dir = common::TempDir::new("kquants-py");
    let path = dir.join("kquants.gguf");
    let x = gaussian(256 * 64, 11);
    let mut w = GgufWriter::new();
    let shape = [64usize, 256];
    w.add_tensor("x", DType::F32, &shape, quantize(DType::F32, &x).unwrap())
        .unwrap();
    for (dtype, _) in BOUNDS {
        w.add_tensor(dtype.name(), dtype, &shape, quantize(dtype, &x).unwrap())
            .unwrap();
    }
    w.write_file(&path).unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../golden/loaders/check_kquants.py"
    );
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(&path)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    println!("{text}");
    assert!(out.status.success(), "gguf-py check failed:\n{text}");
}
