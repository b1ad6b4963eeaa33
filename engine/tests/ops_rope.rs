//! Op tests for RoPE (`rope.wgsl`) and the load-time frequency table `rope_inv_freq`.

use wgllama_engine::ops::rope::{rope, rope_inv_freq, Llama3RopeScaling, RopeStyle};
use wgllama_engine::reference;
use wgllama_engine::step::{Step, StepBuffer};
use wgllama_engine::testing::{assert_close, errors, test_gpu, Rng, Tol};

/// Llama 3.1 8B's `rope_scaling`.
const LLAMA31: Llama3RopeScaling = Llama3RopeScaling {
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
            matches!(r, Err(wgllama_engine::EngineError::Shape { op: "rope", .. })),
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
        assert!(((v as f64 - want) / want).abs() < 3e-7, "i={i}: {v} vs {want}");
    }
}

/// Goldens from a numpy float32 transcription of transformers' `_compute_default_rope_parameters`
/// + `_compute_llama3_parameters` (every operation on np.float32 arrays, in torch's order):
///   inv = f32(1) / (f32(base) ** (arange(0, dim, 2).astype(f32) / f32(dim)))
///   wavelen = f32(2*pi) / inv; ... np.where(medium, smoothed, inv_llama)
/// printed with repr(float(x)). Both configs use base 500000, low/high 1/4, original 8192.
#[test]
fn rope_inv_freq_llama3_goldens() {
    #[rustfmt::skip]
    let llama31_d128_f8: [f32; 64] = [
        1.0, 0.8146172165870667, 0.6636012196540833, 0.5405809879302979, 0.44036662578582764,
        0.3587302267551422, 0.2922278046607971, 0.2380538433790207, 0.193922758102417,
        0.1579728126525879, 0.12868738174438477, 0.10483095049858093, 0.08539710193872452,
        0.06956595182418823, 0.05666961893439293, 0.046164046972990036, 0.03760603070259094,
        0.030634520575404167, 0.02495540864765644, 0.020329104736447334, 0.016560440883040428,
        0.013490420766174793, 0.010989529080688953, 0.008952259086072445, 0.00729266507551074,
        0.0059407297521829605, 0.00483942124992609, 0.003942275885492563, 0.0032114461064338684,
        0.0021665706299245358, 0.0013718936825171113, 0.0008567514596506953,
        0.0005248460220173001, 0.0003126936499029398, 0.0001785077911335975,
        9.556212899042293e-05, 7.784655463183299e-05, 6.341514381347224e-05,
        5.1659073506016284e-05, 4.208236714475788e-05, 3.428102354519069e-05,
        2.7925909307668917e-05, 2.274892722198274e-05, 1.8531669411459006e-05,
        1.5096217794052791e-05, 1.2297638932068367e-05, 1.0017867680289783e-05,
        8.160727702488657e-06, 6.647870577580761e-06, 5.415469331637723e-06,
        4.411534519022098e-06, 3.593712335714372e-06, 2.927499735960737e-06,
        2.3847917418606812e-06, 1.9426925064180978e-06, 1.5825507944100536e-06,
        1.289173155782919e-06, 1.050182618200779e-06, 8.554969213037111e-07,
        6.969025321268418e-07, 5.677088097399974e-07, 4.6246537976912805e-07,
        3.767322880321444e-07, 3.068925877869333e-07,
    ];
    #[rustfmt::skip]
    let llama32_d64_f32: [f32; 32] = [
        1.0, 0.6636012196540833, 0.44036662578582764, 0.2922278046607971, 0.193922758102417,
        0.12868738174438477, 0.08539710193872452, 0.05666961893439293, 0.03760603070259094,
        0.02495540864765644, 0.016560440883040428, 0.010989529080688953, 0.00729266507551074,
        0.00483942124992609, 0.0032114461064338684, 0.0012905480107292533,
        0.000429556705057621, 9.708286233944818e-05, 1.9461638657958247e-05,
        1.2914768376504071e-05, 8.570255886297673e-06, 5.687231805495685e-06,
        3.7740544485131977e-06, 2.5044669200724456e-06, 1.6619676443951903e-06,
        1.1028836297555245e-06, 7.318749339901842e-07, 4.856731266045244e-07,
        3.2229328894572973e-07, 2.1387423032592778e-07, 1.4192720243499934e-07,
        9.41830720080361e-08,
    ];
    let cases: [(usize, f32, &[f32]); 2] = [
        (128, 8.0, &llama31_d128_f8[..]),
        (64, 32.0, &llama32_d64_f32[..]),
    ];
    for (head_dim, factor, golden) in cases {
        let got = rope_inv_freq(
            head_dim,
            500000.0,
            Some(Llama3RopeScaling {
                factor,
                ..LLAMA31
            }),
        );
        for (i, (&g, &w)) in got.iter().zip(golden).enumerate() {
            // torch's f32 pow may differ from a correctly rounded one by an ulp; the scaling
            // steps then add at most a few more roundings.
            assert!(
                ((g - w) / w).abs() <= 4.0 * f32::EPSILON,
                "llama3 factor={factor} head_dim={head_dim} i={i}: {g:e} vs golden {w:e}"
            );
        }
    }
}
