//! Op tests for RoPE (`rope.wgsl`) and the load-time frequency table `rope_inv_freq`.

use wgllama_engine::ops::rope::{rope, RopeStyle};
use wgllama_engine::reference;
use wgllama_engine::step::{Step, StepBuffer};
use wgllama_engine::testing::{assert_close, errors, test_gpu, Rng, Tol};
use wgllama_loaders::config::{rope_inv_freqs, RopeScaling};

/// The frequency table the engine uploads for a model (the loaders' formula).
fn rope_inv_freq(head_dim: usize, theta: f32, scaling: Option<RopeScaling>) -> Vec<f32> {
    rope_inv_freqs(head_dim, theta, &scaling.unwrap_or(RopeScaling::None))
}

/// Llama 3.1 8B's `rope_scaling`.
const LLAMA31: RopeScaling = RopeScaling::Llama3 {
    factor: 8.0,
    low_freq_factor: 1.0,
    high_freq_factor: 4.0,
    original_max_position_embeddings: 8192,
};

/// The GPU's angle is the same f32 product as the reference's; what differs is its own
/// sin/cos (range reduction + polynomial, ~2e-7 absolute) and f32 rotation products, on
/// inputs of magnitude up to ~3. Measured on lavapipe: max abs 2.4e-7 (an ulp at 2-4),
/// nmse <= 2.9e-15, the same at position 4M as at 3.
const TOL: Tol = Tol {
    nmse: 1e-14,
    max_abs: 5e-7,
};

#[test]
fn rope_matches_reference() {
    let gpu = test_gpu();
    let step = StepBuffer::new(gpu).unwrap();
    // (T, n_heads, head_dim, pos, theta, scaling): odd head counts, positions past 512, and
    // one past 100k where a built-in cos would already be off by ~1e-3 on real GPUs.
    let cases = [
        (1, 1, 64, 0, 10000.0, None),
        (5, 7, 64, 3, 10000.0, None),
        (37, 3, 128, 600, 500000.0, Some(LLAMA31)),
        (11, 5, 96, 1000, 10000.0, None),
        (4, 9, 80, 517, 500000.0, Some(LLAMA31)),
        (3, 2, 256, 131_000, 500000.0, Some(LLAMA31)),
        (2, 3, 128, 4_000_000, 1_000_000.0, None),
    ];
    for (ci, &(t, n_heads, head_dim, pos, theta, scaling)) in cases.iter().enumerate() {
        let inv_freq = rope_inv_freq(head_dim, theta, scaling);
        let tf = gpu
            .upload_f32("inv_freq", &inv_freq, &[head_dim / 2])
            .unwrap();
        for style in [RopeStyle::Interleaved, RopeStyle::RotateHalf] {
            let mut rng = Rng::new(1000 + ci as u64);
            let x = rng.normal_vec(t * n_heads * head_dim, 1.0);
            // In place: the input is its own output, so an unwritten element would keep its
            // input value and differ from the reference (every rotation angle is nonzero for
            // pos + t > 0; the pos = 0 case checks t = 0 stays put).
            let tx = gpu.upload_f32("x", &x, &[t, n_heads, head_dim]).unwrap();
            step.write(
                gpu,
                &Step {
                    pos: pos as u32,
                    n_tokens: t as u32,
                    ..Default::default()
                },
            );
            gpu.run(&[rope(gpu, &tx, &tf, &step.buffer, style).unwrap()])
                .unwrap();
            let got = gpu.read_f32(&tx).unwrap();
            let want = reference::rope::rope(&x, n_heads, head_dim, pos, &inv_freq, style);
            let case = format!(
                "rope {style:?} T={t} n_heads={n_heads} head_dim={head_dim} pos={pos} \
                 theta={theta} llama3={}",
                scaling.is_some()
            );
            eprintln!("{case}: {:?}", errors(&got, &want));
            assert_close(&case, &got, &want, TOL);
        }
    }
}

#[test]
fn rope_rejects_bad_operands() {
    let gpu = test_gpu();
    let step = StepBuffer::new(gpu).unwrap();
    let f = gpu.upload_f32("f", &[1.0; 32], &[32]).unwrap();
    let x2d = gpu.zeros_f32("x", &[4, 64]).unwrap();
    let odd = gpu.zeros_f32("x", &[1, 2, 63]).unwrap();
    let ok = gpu.zeros_f32("x", &[1, 2, 64]).unwrap();
    let short = gpu.upload_f32("f", &[1.0; 31], &[31]).unwrap();
    for (x, f) in [(&x2d, &f), (&odd, &f), (&ok, &short)] {
        let r = rope(gpu, x, f, &step.buffer, RopeStyle::RotateHalf);
        assert!(
            matches!(
                r,
                Err(wgllama_engine::EngineError::Shape { op: "rope", .. })
            ),
            "x {:?} inv_freq {:?}",
            x.shape,
            f.shape
        );
    }
}

/// Default frequencies: theta^(-2i/d), no scaling.
#[test]
fn rope_inv_freq_default() {
    let f = rope_inv_freq(128, 10000.0, None);
    assert_eq!(f.len(), 64);
    for (i, &v) in f.iter().enumerate() {
        let want = 10000f64.powf(-((2 * i) as f64) / 128.0);
        assert!(
            ((v as f64 - want) / want).abs() < 3e-7,
            "i={i}: {v} vs {want}"
        );
    }
}

/// Goldens from a numpy float32 transcription of transformers' `_compute_default_rope_parameters`
/// and `_compute_llama3_parameters` (every operation on np.float32 arrays, in torch's order:
/// `inv = f32(1) / (f32(base) ** (arange(0, dim, 2).astype(f32) / f32(dim)))`,
/// `wavelen = f32(2*pi) / inv`, ..., `np.where(medium, smoothed, inv_llama)`), each printed
/// with `str()` (shortest round-trip f32). Both: base 500000, low/high 1/4, original 8192.
#[test]
fn rope_inv_freq_llama3_goldens() {
    #[rustfmt::skip]
    let llama31_d128_f8: [f32; 64] = [
        1.0, 0.8146172, 0.6636012, 0.540581, 0.44036663, 0.35873023, 0.2922278, 0.23805384,
        0.19392276, 0.15797281, 0.12868738, 0.10483095, 0.0853971, 0.06956595, 0.05666962,
        0.046164047, 0.03760603, 0.03063452, 0.024955409, 0.020329105, 0.01656044, 0.013490421,
        0.010989529, 0.008952259, 0.007292665, 0.0059407298, 0.0048394212, 0.003942276, 0.003211446,
        0.0021665706, 0.0013718937, 0.00085675146, 0.000524846, 0.00031269365, 0.00017850779,
        9.556213e-05, 7.7846555e-05, 6.3415144e-05, 5.1659074e-05, 4.2082367e-05, 3.4281024e-05,
        2.792591e-05, 2.2748927e-05, 1.853167e-05, 1.5096218e-05, 1.2297639e-05, 1.0017868e-05,
        8.160728e-06, 6.6478706e-06, 5.4154693e-06, 4.4115345e-06, 3.5937123e-06, 2.9274997e-06,
        2.3847917e-06, 1.9426925e-06, 1.5825508e-06, 1.2891732e-06, 1.0501826e-06, 8.554969e-07,
        6.9690253e-07, 5.677088e-07, 4.6246538e-07, 3.767323e-07, 3.068926e-07,
    ];
    #[rustfmt::skip]
    let llama32_d64_f32: [f32; 32] = [
        1.0, 0.6636012, 0.44036663, 0.2922278, 0.19392276, 0.12868738, 0.0853971, 0.05666962,
        0.03760603, 0.024955409, 0.01656044, 0.010989529, 0.007292665, 0.0048394212, 0.003211446,
        0.001290548, 0.0004295567, 9.708286e-05, 1.9461639e-05, 1.2914768e-05, 8.570256e-06,
        5.687232e-06, 3.7740544e-06, 2.504467e-06, 1.6619676e-06, 1.1028836e-06, 7.3187493e-07,
        4.856731e-07, 3.222933e-07, 2.1387423e-07, 1.419272e-07, 9.418307e-08,
    ];
    let cases: [(usize, f32, &[f32]); 2] = [
        (128, 8.0, &llama31_d128_f8[..]),
        (64, 32.0, &llama32_d64_f32[..]),
    ];
    for (head_dim, factor, golden) in cases {
        let got = rope_inv_freq(
            head_dim,
            500000.0,
            Some(RopeScaling::Llama3 {
                factor,
                low_freq_factor: 1.0,
                high_freq_factor: 4.0,
                original_max_position_embeddings: 8192,
            }),
        );
        for (i, (&g, &w)) in got.iter().zip(golden).enumerate() {
            // rope_inv_freq's power is correctly rounded; numpy's (and torch's) f32 pow is
            // within an ulp or so of it, and the scaling steps repeat the difference: measured
            // at most 2 ulps, 0 for most entries.
            let ulps = (g.to_bits() as i64 - w.to_bits() as i64).abs();
            assert!(
                ulps <= 2,
                "llama3 factor={factor} head_dim={head_dim} i={i}: {g:e} vs golden {w:e} ({ulps} ulps)"
            );
        }
    }
}
