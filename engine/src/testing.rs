//! Shared by the op tests and `wgllama golden kernels`: deterministic random inputs, error
//! metrics and per-op tolerances, in the manner of llama.cpp's test-backend-ops.

use std::sync::OnceLock;

pub mod pass_timer;
pub mod probe;
pub mod weights;

use crate::gpu::{Gpu, GpuOptions};

/// SplitMix64: deterministic, dependency-free random numbers for test inputs.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let u = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * u
    }
    pub fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
    /// Approximately standard normal (sum of uniforms), never all zeros or constant.
    pub fn normal_vec(&mut self, n: usize, std: f32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                let s: f32 = (0..4).map(|_| self.uniform(-1.0, 1.0)).sum();
                s * std * 0.866
            })
            .collect()
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// An op's tolerance: normalised mean squared error (mse / mean(ref^2)) and max abs error.
#[derive(Clone, Copy, Debug)]
pub struct Tol {
    pub nmse: f64,
    pub max_abs: f64,
}

/// How far `got` is from `want`.
#[derive(Clone, Copy, Debug)]
pub struct Errors {
    pub nmse: f64,
    pub max_abs: f64,
    /// Elements that are NaN/inf in `got` but finite in `want` (unwritten, poisoned outputs).
    pub non_finite: usize,
}

impl Errors {
    pub fn within(&self, tol: Tol) -> bool {
        self.non_finite == 0 && self.nmse <= tol.nmse && self.max_abs <= tol.max_abs
    }
}

pub fn errors(got: &[f32], want: &[f32]) -> Errors {
    assert_eq!(got.len(), want.len(), "output length");
    let (mut se, mut sr, mut max_abs, mut non_finite) = (0.0f64, 0.0f64, 0.0f64, 0usize);
    for (&g, &w) in got.iter().zip(want) {
        if !g.is_finite() && w.is_finite() {
            non_finite += 1;
            continue;
        }
        let d = (g as f64 - w as f64).abs();
        se += d * d;
        sr += (w as f64) * (w as f64);
        max_abs = max_abs.max(d);
    }
    let nmse = if sr > 0.0 { se / sr } else { se };
    Errors {
        nmse,
        max_abs,
        non_finite,
    }
}

/// Asserts `got` matches `want` within `tol`, printing the case's parameters on failure.
#[track_caller]
pub fn assert_close(case: &str, got: &[f32], want: &[f32], tol: Tol) {
    let e = errors(got, want);
    assert!(
        e.within(tol),
        "{case}: nmse {:.3e} (tol {:.1e}), max abs {:.3e} (tol {:.1e}), {} non-finite",
        e.nmse,
        tol.nmse,
        e.max_abs,
        tol.max_abs,
        e.non_finite
    );
}

/// `assert_close` for outputs whose error grows with their size (linear layers): `rel.max_abs`
/// is a fraction of the largest |want|. Prints every case's errors (the tolerances' evidence).
#[track_caller]
pub fn assert_close_scaled(case: &str, got: &[f32], want: &[f32], rel: Tol) {
    let scale = want.iter().fold(0f64, |m, &v| m.max(v.abs() as f64));
    let e = errors(got, want);
    let tol = Tol {
        nmse: rel.nmse,
        max_abs: rel.max_abs * scale,
    };
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

/// One device shared by all tests of a test binary (opening one per test is slow on lavapipe).
/// Tests fail, not skip, when no adapter exists: a skipped GPU test proves nothing.
pub fn test_gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        let gpu = Gpu::new(&GpuOptions::default())
            .unwrap_or_else(|e| panic!("opening a GPU for tests: {e}"));
        eprintln!("test adapter: {}", gpu.describe());
        gpu
    })
}

/// A second device on the test adapter that treats @coherent storage buffers as missing
/// (`Caps::coherent` off), so the kernels that fold work behind them take their unfolded form
/// (decode attention's merge as a dispatch of its own): tests run both where the adapter has
/// the feature.
pub fn test_gpu_without_coherent() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        let mut gpu = Gpu::new(&GpuOptions::default())
            .unwrap_or_else(|e| panic!("opening a GPU for tests: {e}"));
        gpu.caps.coherent = false;
        gpu
    })
}

/// GPU int8 words (quantize_x8.wgsl's layout) against the reference quantisation of `want`
/// (the f32 values the kernel should have quantised). The GPU computes `want` in f32 with
/// other rounding, so a value on a rounding boundary may land one step away: each dequantised
/// value must be within 0.5 d (+ 1e-4 relative slack) of `want`, d within 1e-5 relative of
/// max|want| / 127, and the 16-value sums within 1e-5 of sum |want| (f32 against f64).
pub fn assert_int8_words(case: &str, words: &[u32], want: &[f32]) {
    let k = want.len();
    let (_, d_ref, sums_ref) = crate::reference::quantize::quantize_x8(want);
    let q = |i: usize| (words[i / 4] >> (8 * (i % 4))) as u8 as i8;
    let d = |b: usize| f32::from_bits(words[k / 4 + b]);
    for (b, &dr) in d_ref.iter().enumerate() {
        assert!(
            (d(b) - dr).abs() <= 1e-5 * dr,
            "{case}: block {b}: d {} want {dr}",
            d(b)
        );
    }
    for (i, &v) in want.iter().enumerate() {
        let got = q(i) as f32 * d(i / 32);
        let step = d_ref[i / 32];
        assert!(
            (got - v).abs() <= 0.5 * step + 1e-4 * step * 127.0,
            "{case}: value {i}: dequantised {got} want {v} (d {step})"
        );
    }
    for (c, &s) in sums_ref.iter().enumerate() {
        let got = f32::from_bits(words[k / 4 + k / 32 + c]);
        let scale: f32 = want[16 * c..16 * c + 16].iter().map(|v| v.abs()).sum();
        assert!(
            (got - s).abs() <= 1e-5 * scale + 1e-30,
            "{case}: sum {c}: {got} want {s}"
        );
    }
}

/// The values of an f16 tensor (as `Elem::F16` stores them: little-endian halves).
pub fn read_f16(gpu: &Gpu, t: &crate::tensor::Tensor) -> Vec<f32> {
    let bytes = gpu
        .read_bytes(&t.buffer, 2 * t.numel() as u64)
        .expect("read f16 tensor");
    bytes
        .chunks(2)
        .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
        .collect()
}

/// Asserts that f16 outputs `got` are the f32 outputs `want` (of the same kernel's f32
/// variant, checked against the reference elsewhere) rounded to f16: within one f16 ulp (the
/// rounding of pack2x16float is left to the implementation), saturated at +-65504.
pub fn assert_f16_rounding(case: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{case}: lengths");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let w = w.clamp(-65504.0, 65504.0);
        // One ulp of f16 at w: 2^(exponent - 10), at least the subnormal step 2^-24.
        let ulp = (w.abs().max(6.1e-5)).log2().floor().exp2() / 1024.0;
        assert!(
            g.is_finite() && (g - w).abs() <= ulp.max(2f32.powi(-24)),
            "{case}: value {i}: f16 {g}, f32 {w}"
        );
    }
}
