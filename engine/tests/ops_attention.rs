//! Op tests for the KV cache write (`kvcache.wgsl`) and attention (`attention.wgsl`, with
//! `attention_merge.wgsl` for split decode), and a prompt step followed by decode steps
//! through one set of bind groups.

use half::f16;
use wgllama_engine::kv_cache::{KvCache, KvDtype};
use wgllama_engine::ops::attention::{attention, attention_with_splits, attention_x8, auto_splits};
use wgllama_engine::ops::attention_coop::{attention_coop_with, q_stride, supports};
use wgllama_engine::ops::attention_decode::{
    attention_decode_rope_with, attention_decode_with, attention_decode_x8, fold_supported,
    DecodeConfig, FusedRope,
};
use wgllama_engine::ops::attention_prefill::{attention_prefill_with, PrefillConfig};
use wgllama_engine::ops::kvcache::kv_write;
use wgllama_engine::ops::matvec::int8_words;
use wgllama_engine::ops::rope::{rope, RopeStyle};
use wgllama_engine::ops::rope_kv::rope_kv;
use wgllama_engine::reference;
use wgllama_engine::step::{Step, StepBuffer};
use wgllama_engine::testing::{
    assert_close, assert_f16_rounding, assert_int8_words, errors, read_f16, test_gpu,
    test_gpu_without_coherent, Rng, Tol,
};
use wgllama_engine::{Elem, EngineError, Gpu, Tensor};
use wgllama_loaders::config::{rope_inv_freqs, RopeScaling};

/// f32 caches, and f16 caches against a reference fed the same f16-rounded K/V: the kernel's
/// only error is f32 arithmetic, mostly the score dots (up to 256 terms of size ~2, so a score
/// is off by ~1e-6, and an output by about as much). Measured on lavapipe: nmse <= 1.8e-12,
/// max abs <= 2.9e-6.
const TOL_ATTN: Tol = Tol {
    nmse: 5e-12,
    max_abs: 6e-6,
};
/// f16 caches against the reference on the unrounded f32 K/V: adds the f16 rounding of K and
/// V (relative 2^-11 each). Measured on lavapipe: nmse <= 2.7e-7, max abs <= 1.5e-3.
const TOL_ATTN_F16_VS_F32: Tol = Tol {
    nmse: 1e-6,
    max_abs: 3e-3,
};

/// attention_coop (tensor cores) against the f64 reference on the caches' values: q (scaled),
/// k, the softmax weights p and v are rounded to f16 (relative 2^-11 each), so scores of std
/// ~2 move by ~1e-3 and outputs (averages of v, std 1) by about as much. Measured on the H100
/// (2026-11-24, every case below): nmse <= 4.5e-7, max abs <= 2.4e-3.
const TOL_ATTN_COOP: Tol = Tol {
    nmse: 2e-6,
    max_abs: 6e-3,
};

/// RoPE's tolerance (ops_rope.rs): the GPU's own sin/cos and f32 rotation products.
const TOL_ROPE: Tol = Tol {
    nmse: 1e-14,
    max_abs: 5e-7,
};

fn round_f16(x: &[f32]) -> Vec<f32> {
    x.iter().map(|&v| f16::from_f32(v).to_f32()).collect()
}

/// A cache tensor [ctx, n_kv_heads, head_dim] holding `rows` (slots 0 .. rows.len() / row) and
/// NaN in every later slot, so reading past the causal limit poisons the output.
fn upload_cache(gpu: &Gpu, rows: &[f32], shape: [usize; 3], dtype: KvDtype) -> Tensor {
    let n = shape.iter().product::<usize>();
    let mut all = rows.to_vec();
    all.resize(n, f32::NAN);
    let bytes: Vec<u8> = match dtype {
        KvDtype::F32 => bytemuck::cast_slice(&all).to_vec(),
        KvDtype::F16 => {
            let halves: Vec<u16> = all.iter().map(|&v| f16::from_f32(v).to_bits()).collect();
            bytemuck::cast_slice(&halves).to_vec()
        }
    };
    Tensor {
        buffer: gpu.upload_bytes("cache", &bytes).unwrap(),
        elem: dtype.elem(),
        shape: shape.to_vec(),
    }
}

/// Reads a cache back as f32 values.
fn read_cache(gpu: &Gpu, t: &Tensor) -> Vec<f32> {
    match t.elem {
        Elem::F16 => {
            let bytes = gpu.read_bytes(&t.buffer, t.numel() as u64 * 2).unwrap();
            let halves: Vec<u16> = bytemuck::pod_collect_to_vec(&bytes);
            halves.iter().map(|&h| f16::from_bits(h).to_f32()).collect()
        }
        _ => gpu.read_f32(t).unwrap(),
    }
}

struct Case {
    head_dim: usize,
    n_heads: usize,
    n_kv_heads: usize,
    t: usize,
    pos: usize,
    dtype: KvDtype,
}

/// A test case (shorthand for the case tables).
fn case_of(
    head_dim: usize,
    n_heads: usize,
    n_kv_heads: usize,
    t: usize,
    pos: usize,
    dtype: KvDtype,
) -> Case {
    Case {
        head_dim,
        n_heads,
        n_kv_heads,
        t,
        pos,
        dtype,
    }
}

/// Runs attention for one case with each split count in `splits` (0: auto) and checks it.
fn check_attention(gpu: &Gpu, step: &StepBuffer, c: &Case, seed: u64, splits: &[usize]) {
    let (d, h, kv, t, pos) = (c.head_dim, c.n_heads, c.n_kv_heads, c.t, c.pos);
    let ctx = pos + t + 19; // slots past the batch stay NaN
    let filled = pos + t;
    let mut rng = Rng::new(seed);
    // std 1.5 for q and k: scores of std ~2, so the softmax is peaked enough for the running
    // max to change between tiles.
    let q = rng.normal_vec(t * h * d, 1.5);
    let k = rng.normal_vec(filled * kv * d, 1.5);
    let v = rng.normal_vec(filled * kv * d, 1.0);
    let tq = gpu.upload_f32("q", &q, &[t, h, d]).unwrap();
    let kc = upload_cache(gpu, &k, [ctx, kv, d], c.dtype);
    let vc = upload_cache(gpu, &v, [ctx, kv, d], c.dtype);
    step.write(
        gpu,
        &Step {
            pos: pos as u32,
            n_tokens: t as u32,
            ..Default::default()
        },
    );
    let (k_seen, v_seen) = match c.dtype {
        KvDtype::F32 => (k.clone(), v.clone()),
        KvDtype::F16 => (round_f16(&k), round_f16(&v)),
    };
    let want = reference::attention::attention(&q, &k_seen, &v_seen, h, kv, d, pos);
    let want_f32 = reference::attention::attention(&q, &k, &v, h, kv, d, pos);
    for &s in splits {
        let out = gpu.poisoned_f32("out", &[t, h, d]).unwrap();
        let dispatches = if s == 0 {
            attention(gpu, &tq, &kc, &vc, &step.buffer, &out).unwrap()
        } else {
            attention_with_splits(gpu, &tq, &kc, &vc, &step.buffer, &out, s).unwrap()
        };
        let n_splits = if s == 0 {
            auto_splits(t, h, kv, d, ctx)
        } else {
            s
        };
        gpu.run(&dispatches).unwrap();
        let got = gpu.read_f32(&out).unwrap();
        let case = format!(
            "attention head_dim={d} heads={h}/{kv} T={t} pos={pos} ctx={ctx} {:?} splits={n_splits}",
            c.dtype
        );
        eprintln!("{case}: {:?}", errors(&got, &want));
        assert_close(&case, &got, &want, TOL_ATTN);
        if c.dtype == KvDtype::F16 {
            eprintln!("{case} vs f32 K/V: {:?}", errors(&got, &want_f32));
            assert_close(
                &format!("{case} vs f32 K/V"),
                &got,
                &want_f32,
                TOL_ATTN_F16_VS_F32,
            );
        }
    }
}

/// Prompts: T > 1, GQA ratios 1/3/4/8, head_dim 64/80/96/128/256, positions past 512, one
/// split (the prompt path) and forced splits.
#[test]
fn attention_prompt_matches_reference() {
    let gpu = test_gpu();
    let step = StepBuffer::new(gpu).unwrap();
    let cases = [
        Case {
            head_dim: 64,
            n_heads: 8,
            n_kv_heads: 8,
            t: 37,
            pos: 0,
            dtype: KvDtype::F32,
        },
        Case {
            head_dim: 128,
            n_heads: 9,
            n_kv_heads: 3,
            t: 5,
            pos: 600,
            dtype: KvDtype::F32,
        },
        Case {
            head_dim: 96,
            n_heads: 8,
            n_kv_heads: 2,
            t: 5,
            pos: 600,
            dtype: KvDtype::F16,
        },
        Case {
            head_dim: 64,
            n_heads: 8,
            n_kv_heads: 1,
            t: 37,
            pos: 20,
            dtype: KvDtype::F16,
        },
        Case {
            head_dim: 80,
            n_heads: 6,
            n_kv_heads: 2,
            t: 5,
            pos: 513,
            dtype: KvDtype::F32,
        },
        Case {
            head_dim: 256,
            n_heads: 4,
            n_kv_heads: 2,
            t: 5,
            pos: 100,
            dtype: KvDtype::F16,
        },
        Case {
            head_dim: 64,
            n_heads: 3,
            n_kv_heads: 3,
            t: 37,
            pos: 600,
            dtype: KvDtype::F32,
        },
        Case {
            head_dim: 128,
            n_heads: 4,
            n_kv_heads: 1,
            t: 37,
            pos: 530,
            dtype: KvDtype::F16,
        },
    ];
    for (i, c) in cases.iter().enumerate() {
        check_attention(gpu, &step, c, 200 + i as u64, &[1, 3]);
    }
}

/// Decode: T = 1 with the automatic split count (flash-decoding + merge) and unsplit.
#[test]
fn attention_decode_matches_reference() {
    let gpu = test_gpu();
    let step = StepBuffer::new(gpu).unwrap();
    let cases = [
        Case {
            head_dim: 128,
            n_heads: 8,
            n_kv_heads: 8,
            t: 1,
            pos: 600,
            dtype: KvDtype::F32,
        },
        Case {
            head_dim: 64,
            n_heads: 9,
            n_kv_heads: 3,
            t: 1,
            pos: 700,
            dtype: KvDtype::F16,
        },
        Case {
            head_dim: 96,
            n_heads: 8,
            n_kv_heads: 2,
            t: 1,
            pos: 1000,
            dtype: KvDtype::F32,
        },
        Case {
            head_dim: 128,
            n_heads: 8,
            n_kv_heads: 1,
            t: 1,
            pos: 513,
            dtype: KvDtype::F16,
        },
        Case {
            head_dim: 256,
            n_heads: 8,
            n_kv_heads: 2,
            t: 1,
            pos: 300,
            dtype: KvDtype::F32,
        },
        Case {
            head_dim: 64,
            n_heads: 4,
            n_kv_heads: 4,
            t: 1,
            pos: 0,
            dtype: KvDtype::F32,
        },
    ];
    for (i, c) in cases.iter().enumerate() {
        check_attention(gpu, &step, c, 300 + i as u64, &[0, 1]);
    }
}

/// kv_write puts row t at slot pos + t (f32 bit-exact; f16 = round-to-nearest-even of the f32)
/// and leaves every other slot as it was.
#[test]
fn kv_write_matches_reference() {
    let gpu = test_gpu();
    let step = StepBuffer::new(gpu).unwrap();
    for (i, &(t, kv, d, pos, dtype)) in [
        (37, 3, 64, 0, KvDtype::F32),
        (5, 2, 96, 600, KvDtype::F16),
        (1, 1, 128, 700, KvDtype::F16),
        (7, 5, 80, 513, KvDtype::F32),
    ]
    .iter()
    .enumerate()
    {
        let ctx = pos + t + 3;
        let mut rng = Rng::new(400 + i as u64);
        let k = rng.normal_vec(t * kv * d, 2.0);
        let v = rng.normal_vec(t * kv * d, 2.0);
        // Old contents: distinct values in every slot, to see what was overwritten.
        let old_k = rng.normal_vec(ctx * kv * d, 1.0);
        let old_v = rng.normal_vec(ctx * kv * d, 1.0);
        let kc = upload_cache(gpu, &old_k, [ctx, kv, d], dtype);
        let vc = upload_cache(gpu, &old_v, [ctx, kv, d], dtype);
        let tk = gpu.upload_f32("k", &k, &[t, kv, d]).unwrap();
        let tv = gpu.upload_f32("v", &v, &[t, kv, d]).unwrap();
        step.write(
            gpu,
            &Step {
                pos: pos as u32,
                n_tokens: t as u32,
                ..Default::default()
            },
        );
        gpu.run(&[kv_write(gpu, &tk, &tv, &kc, &vc, &step.buffer).unwrap()])
            .unwrap();
        for (new, old, cache, name) in [(&k, &old_k, &kc, "k"), (&v, &old_v, &vc, "v")] {
            let mut want = old.clone();
            want[pos * kv * d..][..t * kv * d].copy_from_slice(new);
            let want = match dtype {
                KvDtype::F32 => want,
                KvDtype::F16 => round_f16(&want),
            };
            let got = read_cache(gpu, cache);
            assert_close(
                &format!("kv_write {name} T={t} n_kv_heads={kv} head_dim={d} pos={pos} {dtype:?}"),
                &got,
                &want,
                Tol {
                    nmse: 0.0,
                    max_abs: 0.0,
                },
            );
        }
    }
}

/// One attention layer as the Llama graph runs it: RoPE on q and k, kv_write, attention (or the
/// fused rope_kv, attention); a 150-token prompt, then three decode steps that reuse their
/// dispatches with only the Step buffer (and the inputs) rewritten. Each output is checked
/// against the reference on CPU-roped q and the cache as the GPU holds it, and the cache
/// against CPU-roped k and v.
#[test]
fn prompt_then_decode_through_one_cache() {
    let gpu = test_gpu();
    let (h, kv, d, prompt, ctx) = (8, 2, 64, 150, 600);
    let inv_freq = rope_inv_freqs(d, 500000.0, &RopeScaling::None);
    let tf = gpu.upload_f32("inv_freq", &inv_freq, &[d / 2]).unwrap();
    for (dtype, fused) in [
        (KvDtype::F32, false),
        (KvDtype::F16, false),
        (KvDtype::F32, true),
        (KvDtype::F16, true),
    ] {
        let cache = KvCache::new(gpu, 1, ctx, kv, d, dtype).unwrap();
        let layer = &cache.layers[0];
        let step = StepBuffer::new(gpu).unwrap();
        let mut rng = Rng::new(500);
        // Graph-build time: one set of dispatches per batch shape.
        let build = |t: usize| {
            let q = gpu.zeros_f32("q", &[t, h, d]).unwrap();
            let k = gpu.zeros_f32("k", &[t, kv, d]).unwrap();
            let v = gpu.zeros_f32("v", &[t, kv, d]).unwrap();
            let out = gpu.zeros_f32("out", &[t, h, d]).unwrap();
            let mut ds = if fused {
                vec![rope_kv(
                    gpu,
                    &q,
                    &k,
                    &v,
                    &tf,
                    &step.buffer,
                    RopeStyle::RotateHalf,
                    &layer.k,
                    &layer.v,
                )
                .unwrap()]
            } else {
                vec![
                    rope(gpu, &q, &tf, &step.buffer, RopeStyle::RotateHalf).unwrap(),
                    rope(gpu, &k, &tf, &step.buffer, RopeStyle::RotateHalf).unwrap(),
                    kv_write(gpu, &k, &v, &layer.k, &layer.v, &step.buffer).unwrap(),
                ]
            };
            ds.extend(attention(gpu, &q, &layer.k, &layer.v, &step.buffer, &out).unwrap());
            (q, k, v, out, ds)
        };
        let prompt_graph = build(prompt);
        let decode_graph = build(1);
        // Decode attention is two dispatches (the splits, then their merge), or one where the
        // merge is folded into the splits (@coherent storage buffers).
        let merge = usize::from(!fold_supported(gpu));
        assert_eq!(decode_graph.4.len(), if fused { 2 } else { 4 } + merge);
        let (mut all_k, mut all_v) = (Vec::new(), Vec::new());
        let mut pos = 0;
        for t in [prompt, 1, 1, 1] {
            let (q, k, v, out, ds) = if t == prompt {
                &prompt_graph
            } else {
                &decode_graph
            };
            let xq = rng.normal_vec(t * h * d, 1.5);
            let xk = rng.normal_vec(t * kv * d, 1.5);
            let xv = rng.normal_vec(t * kv * d, 1.0);
            for (tensor, x) in [(q, &xq), (k, &xk), (v, &xv)] {
                gpu.queue
                    .write_buffer(&tensor.buffer, 0, bytemuck::cast_slice(x));
            }
            gpu.queue.write_buffer(
                &out.buffer,
                0,
                bytemuck::cast_slice(&vec![f32::NAN; t * h * d]),
            );
            step.write(
                gpu,
                &Step {
                    pos: pos as u32,
                    n_tokens: t as u32,
                    ..Default::default()
                },
            );
            gpu.run(ds).unwrap();

            let rq = reference::rope::rope(&xq, h, d, pos, &inv_freq, RopeStyle::RotateHalf);
            all_k.extend(reference::rope::rope(
                &xk,
                kv,
                d,
                pos,
                &inv_freq,
                RopeStyle::RotateHalf,
            ));
            all_v.extend(xv);
            let n = (pos + t) * kv * d;
            let case = format!("layer {dtype:?} fused={fused} step pos={pos} T={t}");
            let got_k = read_cache(gpu, &layer.k);
            let got_v = read_cache(gpu, &layer.v);
            // The cache matches the CPU path to the rope tolerance (f32), or to one f16 step:
            // GPU and CPU rope differ by an f32 ulp, which can tip an f16 rounding.
            for (got, want, name) in [(&got_k, &all_k, "k"), (&got_v, &all_v, "v")] {
                for (j, (&g, &w)) in got[..n].iter().zip(want.iter()).enumerate() {
                    let allowed = match dtype {
                        KvDtype::F32 => 5e-7,
                        KvDtype::F16 => w.abs().max(6.1e-5) * 2f32.powi(-10),
                    };
                    assert!(
                        (g - w).abs() <= allowed,
                        "{case}: cache {name}[{j}] = {g}, want {w}"
                    );
                }
            }
            let want =
                reference::attention::attention(&rq, &got_k[..n], &got_v[..n], h, kv, d, pos);
            let got = gpu.read_f32(out).unwrap();
            eprintln!("{case}: {:?}", errors(&got, &want));
            assert_close(&case, &got, &want, TOL_ATTN);
            pos += t;
        }
    }
}

#[test]
fn attention_and_cache_reject_bad_operands() {
    let gpu = test_gpu();
    let step = StepBuffer::new(gpu).unwrap();
    let q = gpu.zeros_f32("q", &[2, 8, 64]).unwrap();
    let out = gpu.zeros_f32("out", &[2, 8, 64]).unwrap();
    let kc = gpu.zeros_f32("kc", &[16, 3, 64]).unwrap(); // 8 heads over 3 kv heads
    let kc_ok = gpu.zeros_f32("kc", &[16, 2, 64]).unwrap();
    let kc_u32 = gpu
        .upload_u32("kc", &vec![0; 16 * 2 * 64], &[16, 2, 64])
        .unwrap();
    let kc_hd = gpu.zeros_f32("kc", &[16, 2, 32]).unwrap();
    let q_wide = gpu.zeros_f32("q", &[1, 2, 4096]).unwrap(); // head_dim past 256
    let kc_wide = gpu.zeros_f32("kc", &[4, 2, 4096]).unwrap();
    let out_wide = gpu.zeros_f32("out", &[1, 2, 4096]).unwrap();
    let bad = [
        attention(gpu, &q, &kc, &kc, &step.buffer, &out).err(),
        attention(gpu, &q, &kc_ok, &kc_hd, &step.buffer, &out).err(),
        attention(gpu, &q, &kc_u32, &kc_u32, &step.buffer, &out).err(),
        attention(gpu, &q, &kc_hd, &kc_hd, &step.buffer, &out).err(),
        attention(gpu, &q, &kc_ok, &kc_ok, &step.buffer, &kc_ok).err(),
        attention_with_splits(gpu, &q, &kc_ok, &kc_ok, &step.buffer, &out, 0).err(),
        attention(gpu, &q_wide, &kc_wide, &kc_wide, &step.buffer, &out_wide).err(),
    ];
    for (i, e) in bad.into_iter().enumerate() {
        assert!(
            matches!(
                e,
                Some(EngineError::Shape {
                    op: "attention",
                    ..
                })
            ),
            "case {i}: {e:?}"
        );
    }
    let k = gpu.zeros_f32("k", &[2, 2, 64]).unwrap();
    let v3 = gpu.zeros_f32("v", &[3, 2, 64]).unwrap();
    let kc16 = KvCache::new(gpu, 1, 16, 2, 64, KvDtype::F16).unwrap();
    assert!(matches!(
        kv_write(gpu, &k, &v3, &kc_ok, &kc_ok, &step.buffer),
        Err(EngineError::Shape { op: "kv_write", .. })
    ));
    assert!(matches!(
        kv_write(gpu, &k, &k, &kc_ok, &kc16.layers[0].v, &step.buffer),
        Err(EngineError::Shape { op: "kv_write", .. })
    ));
    assert!(matches!(
        kv_write(gpu, &q, &q, &kc_ok, &kc_ok, &step.buffer),
        Err(EngineError::Shape { op: "kv_write", .. })
    ));
    // A cache over the binding limit names the limit instead of failing inside wgpu.
    let too_long = (gpu.max_binding() / (8 * 128 * 4) + 1) as usize;
    assert!(matches!(
        KvCache::new(gpu, 2, too_long, 8, 128, KvDtype::F32),
        Err(EngineError::TooLarge { .. })
    ));
}

// ---- attention_decode.wgsl / attention_prefill.wgsl / rope_kv.wgsl ----

/// Random q and caches for one case: the caches hold `pos + t` filled slots and NaN in the
/// `extra` slots after them. Returns (q, k rows, v rows, q tensor, k cache, v cache, reference).
struct Inputs {
    ctx: usize,
    q: Tensor,
    kc: Tensor,
    vc: Tensor,
    k_seen: Vec<f32>,
    v_seen: Vec<f32>,
    q_host: Vec<f32>,
}

fn inputs(gpu: &Gpu, c: &Case, seed: u64, extra: usize) -> Inputs {
    let (d, h, kv, t, pos) = (c.head_dim, c.n_heads, c.n_kv_heads, c.t, c.pos);
    let ctx = pos + t + extra;
    let filled = pos + t;
    let mut rng = Rng::new(seed);
    let q = rng.normal_vec(t * h * d, 1.5);
    let k = rng.normal_vec(filled * kv * d, 1.5);
    let v = rng.normal_vec(filled * kv * d, 1.0);
    let (k_seen, v_seen) = match c.dtype {
        KvDtype::F32 => (k.clone(), v.clone()),
        KvDtype::F16 => (round_f16(&k), round_f16(&v)),
    };
    Inputs {
        ctx,
        q: gpu.upload_f32("q", &q, &[t, h, d]).unwrap(),
        kc: upload_cache(gpu, &k, [ctx, kv, d], c.dtype),
        vc: upload_cache(gpu, &v, [ctx, kv, d], c.dtype),
        k_seen,
        v_seen,
        q_host: q,
    }
}

/// The f64 reference attention of a case's inputs (on the K/V the cache holds).
fn reference_of(inp: &Inputs, c: &Case) -> Vec<f32> {
    reference::attention::attention(
        &inp.q_host,
        &inp.k_seen,
        &inp.v_seen,
        c.n_heads,
        c.n_kv_heads,
        c.head_dim,
        c.pos,
    )
}

fn write_step(gpu: &Gpu, step: &StepBuffer, pos: usize, t: usize) {
    step.write(
        gpu,
        &Step {
            pos: pos as u32,
            n_tokens: t as u32,
            ..Default::default()
        },
    );
}

/// Decode configurations to try for a case: the picked one, its workgroup-memory variant,
/// forced many-split variants (small chunks, so the merge pass runs at short contexts too),
/// one split up to 1024 keys, each only where it fits.
fn decode_configs(gpu: &Gpu, c: &Case, ctx: usize) -> Vec<DecodeConfig> {
    let group = c.n_heads / c.n_kv_heads;
    let auto = DecodeConfig::pick(gpu, c.t * group, c.head_dim, c.n_kv_heads, ctx);
    let kb = auto.keys_per_batch();
    let candidates = [
        auto,
        DecodeConfig {
            subgroups: false,
            ..auto
        },
        // Many small splits: the merge pass runs at short contexts too.
        DecodeConfig {
            min_chunk: kb,
            max_splits: 8,
            ..auto
        },
        DecodeConfig {
            min_chunk: kb,
            max_splits: 64,
            subgroups: false,
            ..auto
        },
        // One split up to 1024 keys (most cases): the split writes the output, the merge
        // pass only returns.
        DecodeConfig {
            min_chunk: 1024usize.div_ceil(kb) * kb,
            ..auto
        },
        // Two quads per lane on half the lanes, one key per batch.
        DecodeConfig {
            lanes: (auto.lanes / 2).max(1),
            quads: 2,
            batch: 1,
            min_chunk: 2 * auto.wg / (auto.lanes / 2).max(1),
            ..auto
        },
        // The other row-group count (padding rows, or more row blocks), two keys per batch.
        DecodeConfig {
            row_groups: 3 - auto.row_groups,
            batch: 2,
            wg: 64,
            min_chunk: 64 / auto.lanes * 2 * 4,
            ..auto
        },
    ];
    let mut all: Vec<DecodeConfig> = Vec::new();
    // The picked one and the 8-split one (merging at short contexts too) also with the merge
    // the other way (folded into the split pass, or a dispatch of its own), where the device
    // can fold; the others as picked.
    let toggled = candidates[..3]
        .iter()
        .filter(|c| c.max_splits == 8 || **c == auto);
    let toggled: Vec<DecodeConfig> = toggled
        .map(|c| DecodeConfig {
            fold: !c.fold,
            ..*c
        })
        .collect();
    for cfg in candidates.into_iter().chain(toggled) {
        if cfg.validate(gpu, c.head_dim).is_ok() && !all.contains(&cfg) {
            all.push(cfg);
        }
    }
    all
}

fn decode_cases() -> Vec<Case> {
    vec![
        case_of(64, 8, 1, 1, 700, KvDtype::F16),
        case_of(64, 32, 4, 1, 1500, KvDtype::F32),
        case_of(128, 8, 8, 1, 600, KvDtype::F32),
        case_of(80, 9, 3, 1, 513, KvDtype::F16),
        case_of(128, 4, 1, 2, 1000, KvDtype::F32),
        case_of(64, 12, 4, 3, 530, KvDtype::F16),
        case_of(128, 16, 2, 1, 0, KvDtype::F32),
        case_of(96, 8, 2, 4, 2000, KvDtype::F32),
        case_of(64, 4, 4, 1, 4095, KvDtype::F16),
        case_of(256, 4, 2, 1, 300, KvDtype::F32),
        case_of(64, 3, 3, 7, 90, KvDtype::F32),
    ]
}

/// attention_decode against the f64 reference: GQA 1/3/4/8, head_dim 64/80/96/128/256, T 1-7,
/// positions 0 to 4095, f32 and f16 caches, each picked and forced configuration.
#[test]
fn attention_decode_kernel_matches_reference() {
    let gpu = test_gpu();
    let step = StepBuffer::new(gpu).unwrap();
    for (i, c) in decode_cases().iter().enumerate() {
        let inp = inputs(gpu, c, 700 + i as u64, 21);
        write_step(gpu, &step, c.pos, c.t);
        let want = reference_of(&inp, c);
        for cfg in decode_configs(gpu, c, inp.ctx) {
            let out = gpu
                .poisoned_f32("out", &[c.t, c.n_heads, c.head_dim])
                .unwrap();
            let d = attention_decode_with(gpu, &inp.q, &inp.kc, &inp.vc, &step.buffer, &out, cfg)
                .unwrap();
            gpu.run(&d).unwrap();
            let got = gpu.read_f32(&out).unwrap();
            let case = format!(
                "attention_decode head_dim={} heads={}/{} T={} pos={} ctx={} {:?} {cfg:?}",
                c.head_dim, c.n_heads, c.n_kv_heads, c.t, c.pos, inp.ctx, c.dtype
            );
            eprintln!("{case}: {:?}", errors(&got, &want));
            assert_close(&case, &got, &want, TOL_ATTN);
        }
    }
}

/// The folded merge's tickets return to zero after each run: the same dispatches run three
/// times, the output poisoned before each, and every run matches the reference (a ticket left
/// at its count would skip the merge and leave the poison). Many splits (small chunks), GQA
/// 4 and 1, f32 and f16 caches.
#[test]
fn attention_decode_fold_runs_again() {
    let gpu = test_gpu();
    if !fold_supported(gpu) {
        eprintln!("attention_decode_fold_runs_again: no @coherent storage buffers; skipped");
        return;
    }
    let step = StepBuffer::new(gpu).unwrap();
    for (i, c) in [
        case_of(64, 8, 2, 1, 700, KvDtype::F32),
        case_of(128, 8, 8, 1, 333, KvDtype::F16),
    ]
    .iter()
    .enumerate()
    {
        let inp = inputs(gpu, c, 900 + i as u64, 5);
        write_step(gpu, &step, c.pos, c.t);
        let want = reference_of(&inp, c);
        let group = c.n_heads / c.n_kv_heads;
        let auto = DecodeConfig::pick(gpu, c.t * group, c.head_dim, c.n_kv_heads, inp.ctx);
        let cfg = DecodeConfig {
            min_chunk: auto.keys_per_batch(),
            max_splits: 16,
            fold: true,
            ..auto
        };
        let out = gpu
            .poisoned_f32("out", &[c.t, c.n_heads, c.head_dim])
            .unwrap();
        let d =
            attention_decode_with(gpu, &inp.q, &inp.kc, &inp.vc, &step.buffer, &out, cfg).unwrap();
        assert_eq!(d.len(), 1, "folded: one dispatch");
        for run in 0..3 {
            let nan = vec![f32::NAN; c.t * c.n_heads * c.head_dim];
            gpu.queue
                .write_buffer(&out.buffer, 0, bytemuck::cast_slice(&nan));
            gpu.run(&d).unwrap();
            let got = gpu.read_f32(&out).unwrap();
            let case = format!(
                "attention_decode fold run {run} head_dim={} heads={}/{} pos={} {:?} {cfg:?}",
                c.head_dim, c.n_heads, c.n_kv_heads, c.pos, c.dtype
            );
            assert_close(&case, &got, &want, TOL_ATTN);
        }
    }
}

/// attention_x8 (decode attention whose merge pass also writes the output as int8 blocks for
/// Wo): the output against the f64 reference, and the int8 words against the reference
/// quantisation of that output. One split (quantising its own output: pos 0, and 31 within a
/// 32-key minimum chunk where the picked batch covers at most 32 keys) and several (quantised
/// by the merge pass), GQA 8 and 1, head_dim 64, 96
/// and 128, f32 and f16 caches; head_dim 80 (not a multiple of 32) takes attention +
/// quantize_x8 instead. attention_decode_x8 itself refuses what it cannot quantise. With the
/// merge folded into the split pass and (a device without @coherent buffers) as a dispatch.
#[test]
fn attention_x8_quantises_its_output() {
    x8_cases(test_gpu());
    x8_cases(test_gpu_without_coherent());
}

fn x8_cases(gpu: &Gpu) {
    let step = StepBuffer::new(gpu).unwrap();
    let cases = [
        case_of(64, 32, 4, 1, 0, KvDtype::F32),
        case_of(64, 32, 4, 1, 40, KvDtype::F32),
        case_of(64, 32, 4, 1, 31, KvDtype::F32),
        case_of(64, 32, 4, 1, 32, KvDtype::F16),
        case_of(64, 32, 4, 1, 700, KvDtype::F16),
        case_of(128, 8, 8, 1, 600, KvDtype::F16),
        case_of(96, 8, 2, 1, 300, KvDtype::F32),
        case_of(80, 8, 2, 1, 513, KvDtype::F16),
    ];
    for (i, c) in cases.iter().enumerate() {
        let inp = inputs(gpu, c, 900 + i as u64, 5);
        write_step(gpu, &step, c.pos, c.t);
        let want = reference_of(&inp, c);
        let k = c.n_heads * c.head_dim;
        let out = gpu
            .poisoned_f32("out", &[1, c.n_heads, c.head_dim])
            .unwrap();
        let xq = gpu
            .upload_u32("xq", &vec![0xffff_ffff; int8_words(k)], &[int8_words(k)])
            .unwrap();
        let ds = attention_x8(gpu, &inp.q, &inp.kc, &inp.vc, &step.buffer, &out, &xq).unwrap();
        gpu.run(&ds).unwrap();
        let got = gpu.read_f32(&out).unwrap();
        let case = format!(
            "attention_x8 head_dim={} heads={}/{} pos={} {:?} ({} dispatches)",
            c.head_dim,
            c.n_heads,
            c.n_kv_heads,
            c.pos,
            c.dtype,
            ds.len()
        );
        assert_close(&case, &got, &want, TOL_ATTN);
        let words = gpu.read_u32(&xq).unwrap();
        assert_int8_words(&case, &words, &got);
        // Quantised in the merge (a second dispatch, or folded into the first where the
        // device has @coherent storage buffers) wherever head_dim allows; else by quantize_x8.
        let merge = usize::from(!fold_supported(gpu));
        let want = if c.head_dim % 32 == 0 { 1 } else { 2 } + merge;
        assert_eq!(ds.len(), want, "{case}");
    }
    // What the merge pass cannot quantise is refused, naming the op.
    for c in [
        case_of(80, 9, 3, 1, 5, KvDtype::F32),
        case_of(64, 8, 2, 2, 5, KvDtype::F32),
    ] {
        let inp = inputs(gpu, &c, 1, 1);
        let out = gpu.zeros_f32("out", &[c.t, c.n_heads, c.head_dim]).unwrap();
        let k = c.n_heads * c.head_dim;
        let xq = gpu
            .upload_u32("xq", &vec![0; int8_words(k)], &[int8_words(k)])
            .unwrap();
        let err = attention_decode_x8(gpu, &inp.q, &inp.kc, &inp.vc, &step.buffer, &out, &xq)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("attention_decode_x8"), "{err:?}");
    }
}

/// One recorded decode dispatch replayed at many positions (the grid is fixed; the live splits
/// and the merge follow step.pos, and every merge must leave its ticket at 0 for the next run),
/// including the same position twice and positions going back down.
#[test]
fn attention_decode_replays_across_positions() {
    let gpu = test_gpu();
    let step = StepBuffer::new(gpu).unwrap();
    for (ci, c) in [
        Case {
            head_dim: 64,
            n_heads: 8,
            n_kv_heads: 2,
            t: 1,
            pos: 1500,
            dtype: KvDtype::F16,
        },
        Case {
            head_dim: 128,
            n_heads: 4,
            n_kv_heads: 4,
            t: 1,
            pos: 1500,
            dtype: KvDtype::F32,
        },
    ]
    .iter()
    .enumerate()
    {
        // The caches are filled up to 1501 slots; each run only sees 0 ..= pos.
        let inp = inputs(gpu, c, 800 + ci as u64, 20);
        for cfg in decode_configs(gpu, c, inp.ctx) {
            let out = gpu
                .poisoned_f32("out", &[1, c.n_heads, c.head_dim])
                .unwrap();
            let d = attention_decode_with(gpu, &inp.q, &inp.kc, &inp.vc, &step.buffer, &out, cfg)
                .unwrap();
            for pos in [0, 1, 63, 64, 65, 200, 200, 513, 1000, 1500, 777, 3] {
                write_step(gpu, &step, pos, 1);
                gpu.queue.write_buffer(
                    &out.buffer,
                    0,
                    bytemuck::cast_slice(&vec![f32::NAN; c.n_heads * c.head_dim]),
                );
                gpu.run(&d).unwrap();
                let got = gpu.read_f32(&out).unwrap();
                let n = (pos + 1) * c.n_kv_heads * c.head_dim;
                let want = reference::attention::attention(
                    &inp.q_host,
                    &inp.k_seen[..n],
                    &inp.v_seen[..n],
                    c.n_heads,
                    c.n_kv_heads,
                    c.head_dim,
                    pos,
                );
                let case = format!(
                    "decode replay head_dim={} heads={}/{} pos={pos} {:?} {cfg:?}",
                    c.head_dim, c.n_heads, c.n_kv_heads, c.dtype
                );
                assert_close(&case, &got, &want, TOL_ATTN);
            }
        }
    }
}

/// attention_prefill against the f64 reference: T 1-300, GQA 1/3/4/8, head_dim
/// 64/80/96/128/256, positions 0 to 600, f32 and f16 caches, 32- and 64-row blocks and
/// several chunk sizes. Also `attention` (which picks the kernel) on each case.
#[test]
fn attention_prefill_kernel_matches_reference() {
    let gpu = test_gpu();
    let step = StepBuffer::new(gpu).unwrap();
    let cases = [
        case_of(64, 8, 8, 37, 0, KvDtype::F32),
        case_of(128, 9, 3, 100, 600, KvDtype::F32),
        case_of(80, 6, 2, 65, 513, KvDtype::F16),
        case_of(64, 32, 4, 128, 0, KvDtype::F16),
        case_of(256, 4, 2, 33, 100, KvDtype::F16),
        case_of(128, 4, 1, 300, 530, KvDtype::F32),
        case_of(96, 8, 2, 17, 1000, KvDtype::F32),
        case_of(64, 3, 3, 1, 20, KvDtype::F32),
        case_of(64, 8, 1, 70, 3, KvDtype::F16),
    ];
    for (i, c) in cases.iter().enumerate() {
        let inp = inputs(gpu, c, 900 + i as u64, 19);
        write_step(gpu, &step, c.pos, c.t);
        let want = reference_of(&inp, c);
        let group = c.n_heads / c.n_kv_heads;
        let auto = PrefillConfig::pick(c.t * group, c.n_kv_heads, c.head_dim);
        let mut cfgs = vec![Some(auto), None];
        for rows in [32, 64] {
            for (kc, vc) in [(16, 16), (32, 8), (8, 32), (12, 64)] {
                let cfg = PrefillConfig { rows, kc, vc };
                if cfg.validate(c.head_dim).is_ok() && cfg != auto {
                    cfgs.push(Some(cfg));
                }
            }
        }
        for cfg in cfgs {
            let out = gpu
                .poisoned_f32("out", &[c.t, c.n_heads, c.head_dim])
                .unwrap();
            let ds = match cfg {
                Some(cfg) => vec![attention_prefill_with(
                    gpu,
                    &inp.q,
                    &inp.kc,
                    &inp.vc,
                    &step.buffer,
                    &out,
                    cfg,
                )
                .unwrap()],
                None => attention(gpu, &inp.q, &inp.kc, &inp.vc, &step.buffer, &out).unwrap(),
            };
            gpu.run(&ds).unwrap();
            let got = gpu.read_f32(&out).unwrap();
            let name = format!(
                "attention_prefill head_dim={} heads={}/{} T={} pos={} ctx={} {:?} {cfg:?}",
                c.head_dim, c.n_heads, c.n_kv_heads, c.t, c.pos, inp.ctx, c.dtype
            );
            eprintln!("{name}: {:?}", errors(&got, &want));
            assert_close(&name, &got, &want, TOL_ATTN);
        }
    }
}

/// attention_coop against the f64 reference: T 3-300, GQA 1/3/4/8, head_dim 16/64/80/96/128,
/// positions 0 to 600, f32 and f16 caches, 32 and 64 keys per tile (where they fit). Runs
/// where the device has cooperative matrices (the H100); elsewhere it checks the refusal.
#[test]
fn attention_coop_kernel_matches_reference() {
    let gpu = test_gpu();
    let step = StepBuffer::new(gpu).unwrap();
    let cases = [
        case_of(64, 8, 8, 37, 0, KvDtype::F32),
        case_of(128, 9, 3, 100, 600, KvDtype::F32),
        case_of(80, 6, 2, 65, 513, KvDtype::F16),
        case_of(64, 32, 4, 128, 0, KvDtype::F32),
        case_of(64, 32, 4, 70, 130, KvDtype::F16),
        case_of(96, 8, 2, 17, 1000, KvDtype::F32),
        case_of(128, 4, 1, 300, 530, KvDtype::F32),
        case_of(128, 4, 4, 200, 0, KvDtype::F16),
        case_of(16, 4, 2, 3, 5, KvDtype::F32),
        case_of(64, 8, 1, 70, 3, KvDtype::F16),
    ];
    let limit = gpu.limits.max_compute_workgroup_storage_size as usize;
    let mut ran = 0;
    let mut failed = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let inp = inputs(gpu, c, 1300 + i as u64, 19);
        if !supports(gpu, c.head_dim) {
            let out = gpu.zeros_f32("out", &[c.t, c.n_heads, c.head_dim]).unwrap();
            let e =
                attention_coop_with(gpu, &inp.q, &inp.kc, &inp.vc, &step.buffer, &out, 32, true);
            assert!(
                matches!(e, Err(EngineError::Unsupported { .. })),
                "head_dim {} on {}: want Unsupported, got {:?}",
                c.head_dim,
                gpu.info.name,
                e.map(|d| d.label)
            );
            continue;
        }
        write_step(gpu, &step, c.pos, c.t);
        let want = reference_of(&inp, c);
        for (keys, q_regs) in [(32, true), (32, false), (64, true)] {
            if q_stride(c.head_dim, keys, limit).is_none() {
                continue;
            }
            let out = gpu
                .poisoned_f32("out", &[c.t, c.n_heads, c.head_dim])
                .unwrap();
            let d = attention_coop_with(
                gpu,
                &inp.q,
                &inp.kc,
                &inp.vc,
                &step.buffer,
                &out,
                keys,
                q_regs,
            )
            .unwrap();
            gpu.run(&[d]).unwrap();
            let got = gpu.read_f32(&out).unwrap();
            let name = format!(
                "attention_coop head_dim={} heads={}/{} T={} pos={} ctx={} {:?} keys/tile={keys} q_regs={q_regs}",
                c.head_dim, c.n_heads, c.n_kv_heads, c.t, c.pos, inp.ctx, c.dtype
            );
            let e = errors(&got, &want);
            eprintln!("{name}: {e:?}");
            if e.nmse > TOL_ATTN_COOP.nmse || e.max_abs > TOL_ATTN_COOP.max_abs || e.non_finite > 0
            {
                failed.push(format!("{name}: {e:?}"));
            }
            ran += 1;
        }
    }
    eprintln!("attention_coop: {ran} runs on {}", gpu.info.name);
    assert!(
        failed.is_empty(),
        "{} of {ran} runs outside {TOL_ATTN_COOP:?}:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

/// attention_coop with an f16 output (Wo's tensor-core input): the f32 output rounded to f16,
/// on GQA and non-GQA cases, both cache types.
#[test]
fn attention_coop_f16_out_is_f32_out_rounded() {
    let gpu = test_gpu();
    let step = StepBuffer::new(gpu).unwrap();
    let limit = gpu.limits.max_compute_workgroup_storage_size as usize;
    for (i, c) in [
        case_of(64, 32, 4, 128, 0, KvDtype::F32),
        case_of(128, 4, 4, 70, 33, KvDtype::F16),
    ]
    .iter()
    .enumerate()
    {
        if !supports(gpu, c.head_dim) {
            eprintln!(
                "attention_coop f16 out: skipped, unsupported on {}",
                gpu.info.name
            );
            return;
        }
        let inp = inputs(gpu, c, 1400 + i as u64, 19);
        write_step(gpu, &step, c.pos, c.t);
        let keys = if q_stride(c.head_dim, 64, limit).is_some() {
            64
        } else {
            32
        };
        let shape = [c.t, c.n_heads, c.head_dim];
        let o32 = gpu.poisoned_f32("out", &shape).unwrap();
        let o16 = gpu.zeros_f16("out16", &shape).unwrap();
        let run = |out| {
            attention_coop_with(gpu, &inp.q, &inp.kc, &inp.vc, &step.buffer, out, keys, true)
                .unwrap()
        };
        gpu.run(&[run(&o32), run(&o16)]).unwrap();
        let case = format!(
            "attention_coop f16 out head_dim={} heads={}/{} T={} pos={} {:?}",
            c.head_dim, c.n_heads, c.n_kv_heads, c.t, c.pos, c.dtype
        );
        assert_f16_rounding(&case, &read_f16(gpu, &o16), &gpu.read_f32(&o32).unwrap());
        eprintln!("{case}: ok");
    }
}

/// attention_coop refuses what it cannot run, naming itself: head dims that are not a
/// multiple of 16 or above 128, and a tile size other than 32 or 64 keys.
#[test]
fn attention_coop_rejects_unsupported_shapes() {
    let gpu = test_gpu();
    let step = StepBuffer::new(gpu).unwrap();
    for (hd, keys) in [(72, 32), (256, 32), (64, 48)] {
        let c = Case {
            head_dim: hd,
            n_heads: 4,
            n_kv_heads: 2,
            t: 20,
            pos: 0,
            dtype: KvDtype::F32,
        };
        let inp = inputs(gpu, &c, 77, 0);
        let out = gpu.zeros_f32("out", &[c.t, c.n_heads, hd]).unwrap();
        let e = attention_coop_with(
            gpu,
            &inp.q,
            &inp.kc,
            &inp.vc,
            &step.buffer,
            &out,
            keys,
            true,
        );
        let msg = format!("{:?}", e.as_ref().map(|d| d.label));
        assert!(
            matches!(
                e,
                Err(EngineError::Unsupported { .. } | EngineError::Shape { .. })
            ),
            "head_dim {hd}, {keys} keys: {msg}"
        );
        assert!(format!("{}", e.err().unwrap()).contains("attention_coop"));
    }
}

/// rope_kv = rope(q), rope(k), kv_write(k, v): q against the CPU reference (rope's tolerance),
/// the written cache slots against CPU-roped k and v (f32: rope's tolerance; f16: one f16 step),
/// every other slot and the k, v inputs untouched, and all of it against the unfused GPU ops.
#[test]
fn rope_kv_matches_reference_and_unfused_ops() {
    let gpu = test_gpu();
    let step = StepBuffer::new(gpu).unwrap();
    // (T, n_heads, n_kv_heads, head_dim, pos, dtype)
    let cases = [
        (1, 32, 4, 64, 0, KvDtype::F32),
        (5, 9, 3, 128, 600, KvDtype::F16),
        (37, 7, 1, 80, 513, KvDtype::F32),
        (2, 3, 3, 6, 700, KvDtype::F16),
        (4, 8, 2, 96, 100_000, KvDtype::F16),
        (3, 5, 5, 256, 1030, KvDtype::F32),
    ];
    for (ci, &(t, h, kv, d, pos, dtype)) in cases.iter().enumerate() {
        let inv_freq = rope_inv_freqs(d, 500000.0, &RopeScaling::None);
        let tf = gpu.upload_f32("inv_freq", &inv_freq, &[d / 2]).unwrap();
        let ctx = pos + t + 3;
        for style in [RopeStyle::Interleaved, RopeStyle::RotateHalf] {
            let mut rng = Rng::new(1000 + ci as u64);
            let xq = rng.normal_vec(t * h * d, 1.5);
            let xk = rng.normal_vec(t * kv * d, 1.5);
            let xv = rng.normal_vec(t * kv * d, 1.0);
            let old_k = rng.normal_vec(ctx * kv * d, 1.0);
            let old_v = rng.normal_vec(ctx * kv * d, 1.0);
            write_step(gpu, &step, pos, t);
            // Fused, and the unfused ops on their own copies.
            let run = |fused: bool| {
                let q = gpu.upload_f32("q", &xq, &[t, h, d]).unwrap();
                let k = gpu.upload_f32("k", &xk, &[t, kv, d]).unwrap();
                let v = gpu.upload_f32("v", &xv, &[t, kv, d]).unwrap();
                let kc = upload_cache(gpu, &old_k, [ctx, kv, d], dtype);
                let vc = upload_cache(gpu, &old_v, [ctx, kv, d], dtype);
                let ds = if fused {
                    vec![rope_kv(gpu, &q, &k, &v, &tf, &step.buffer, style, &kc, &vc).unwrap()]
                } else {
                    vec![
                        rope(gpu, &q, &tf, &step.buffer, style).unwrap(),
                        rope(gpu, &k, &tf, &step.buffer, style).unwrap(),
                        kv_write(gpu, &k, &v, &kc, &vc, &step.buffer).unwrap(),
                    ]
                };
                gpu.run(&ds).unwrap();
                (
                    gpu.read_f32(&q).unwrap(),
                    gpu.read_f32(&k).unwrap(),
                    gpu.read_f32(&v).unwrap(),
                    read_cache(gpu, &kc),
                    read_cache(gpu, &vc),
                )
            };
            let (gq, gk, gv, gkc, gvc) = run(true);
            let (uq, _, _, ukc, uvc) = run(false);
            let case =
                format!("rope_kv {style:?} T={t} heads={h}/{kv} head_dim={d} pos={pos} {dtype:?}");
            let want_q = reference::rope::rope(&xq, h, d, pos, &inv_freq, style);
            assert_close(&format!("{case} q"), &gq, &want_q, TOL_ROPE);
            assert_close(&format!("{case} q vs unfused"), &gq, &uq, TOL_ROPE);
            assert_eq!(gk, xk, "{case}: k input changed");
            assert_eq!(gv, xv, "{case}: v input changed");
            let rk = reference::rope::rope(&xk, kv, d, pos, &inv_freq, style);
            let row = kv * d;
            for (got, unfused, old, new, name) in [
                (&gkc, &ukc, &old_k, &rk, "k"),
                (&gvc, &uvc, &old_v, &xv, "v"),
            ] {
                let old = match dtype {
                    KvDtype::F32 => old.clone(),
                    KvDtype::F16 => round_f16(old),
                };
                for (j, &g) in got.iter().enumerate() {
                    let slot = j / row;
                    if slot < pos || slot >= pos + t {
                        assert_eq!(
                            g.to_bits(),
                            old[j].to_bits(),
                            "{case}: cache {name}[{j}] overwritten"
                        );
                        continue;
                    }
                    let w = new[j - pos * row];
                    let allowed = match dtype {
                        KvDtype::F32 => 5e-7,
                        KvDtype::F16 => w.abs().max(6.1e-5) * 2f32.powi(-10),
                    };
                    assert!(
                        (g - w).abs() <= allowed,
                        "{case}: cache {name}[{j}] = {g}, want {w}"
                    );
                    assert!(
                        (g - unfused[j]).abs() <= allowed,
                        "{case}: cache {name}[{j}] = {g}, unfused {}",
                        unfused[j]
                    );
                }
            }
        }
    }
}

#[test]
fn rope_kv_rejects_bad_operands() {
    let gpu = test_gpu();
    let step = StepBuffer::new(gpu).unwrap();
    let f = gpu.upload_f32("f", &[1.0; 32], &[32]).unwrap();
    let q = gpu.zeros_f32("q", &[2, 8, 64]).unwrap();
    let k = gpu.zeros_f32("k", &[2, 2, 64]).unwrap();
    let k3 = gpu.zeros_f32("k", &[3, 2, 64]).unwrap();
    let q_hd = gpu.zeros_f32("q", &[2, 8, 32]).unwrap();
    let c = KvCache::new(gpu, 1, 16, 2, 64, KvDtype::F32).unwrap();
    let c16 = KvCache::new(gpu, 1, 16, 2, 64, KvDtype::F16).unwrap();
    let short = gpu.upload_f32("f", &[1.0; 31], &[31]).unwrap();
    let (kc, vc) = (&c.layers[0].k, &c.layers[0].v);
    let s = RopeStyle::RotateHalf;
    let bad = [
        rope_kv(gpu, &q, &k3, &k, &f, &step.buffer, s, kc, vc).err(),
        rope_kv(gpu, &q, &k, &k3, &f, &step.buffer, s, kc, vc).err(),
        rope_kv(gpu, &q_hd, &k, &k, &f, &step.buffer, s, kc, vc).err(),
        rope_kv(gpu, &q, &k, &k, &short, &step.buffer, s, kc, vc).err(),
        rope_kv(gpu, &q, &k, &k, &f, &step.buffer, s, kc, &c16.layers[0].v).err(),
        rope_kv(gpu, &q, &k, &k, &f, &step.buffer, s, &q, &q).err(),
    ];
    for (i, e) in bad.into_iter().enumerate() {
        assert!(
            matches!(e, Some(EngineError::Shape { op: "rope_kv", .. })),
            "case {i}: {e:?}"
        );
    }
    assert!(rope_kv(gpu, &q, &k, &k, &f, &step.buffer, s, kc, vc).is_ok());
}

/// attention_decode_rope (RoPE and the new key's cache write inside decode attention) against
/// rope_kv followed by attention_decode (and its x8 form) on copies of the same inputs: the
/// same output and cache contents (to f32 rounding, or the f16 cache's), int8 words that
/// quantise the output, q left unrotated. Both pair
/// styles, f32 and f16 caches, GQA 8 / 1 / 12 (two row blocks writing the same slot), head_dim
/// 64 / 128 / 96, one split (pos 0, 20) and several (pos 200, 700), forced configurations too.
#[test]
fn attention_decode_rope_matches_rope_kv_then_attention() {
    let gpu = test_gpu();
    let step = StepBuffer::new(gpu).unwrap();
    let cases = [
        case_of(64, 32, 4, 1, 0, KvDtype::F32),
        case_of(64, 32, 4, 1, 20, KvDtype::F16),
        case_of(64, 32, 4, 1, 700, KvDtype::F32),
        case_of(128, 8, 8, 1, 200, KvDtype::F16),
        case_of(64, 12, 1, 1, 300, KvDtype::F32),
        case_of(96, 8, 2, 1, 45, KvDtype::F16),
    ];
    for (ci, c) in cases.iter().enumerate() {
        let (h, kv, d, pos) = (c.n_heads, c.n_kv_heads, c.head_dim, c.pos);
        let ctx = pos + 1 + 7;
        let inv_freq = rope_inv_freqs(d, 10000.0, &RopeScaling::None);
        let tf = gpu.upload_f32("inv_freq", &inv_freq, &[d / 2]).unwrap();
        let mut rng = Rng::new(3000 + ci as u64);
        let xq = rng.normal_vec(h * d, 1.5);
        let xk = rng.normal_vec(kv * d, 1.5);
        let xv = rng.normal_vec(kv * d, 1.0);
        // Slots 0 .. pos hold earlier keys; slot pos holds garbage until this step writes it.
        let old_k = rng.normal_vec((pos + 1) * kv * d, 1.5);
        let old_v = rng.normal_vec((pos + 1) * kv * d, 1.0);
        write_step(gpu, &step, pos, 1);
        let group = h / kv;
        let auto = DecodeConfig::pick(gpu, group, d, kv, ctx);
        // Every case: both styles, with and without int8, the picked configuration; one case
        // also the workgroup-memory variant and many small splits (lavapipe compiles each
        // variant: keep the list short).
        let kb = auto.keys_per_batch();
        let mut runs = Vec::new();
        for style in [RopeStyle::Interleaved, RopeStyle::RotateHalf] {
            for int8 in [false, true] {
                if !int8 || d % 32 == 0 {
                    runs.push((style, int8, auto));
                }
            }
        }
        if ci == 2 {
            // Two quads per lane (the new key's second quad), as decode_configs forces it.
            let two_quads = DecodeConfig {
                lanes: (auto.lanes / 2).max(1),
                quads: 2,
                batch: 1,
                min_chunk: 2 * auto.wg / (auto.lanes / 2).max(1),
                ..auto
            };
            for cfg in [
                DecodeConfig {
                    subgroups: false,
                    ..auto
                },
                DecodeConfig {
                    min_chunk: kb,
                    max_splits: 8,
                    ..auto
                },
                two_quads,
            ] {
                if cfg.validate(gpu, d).is_ok() && cfg != auto {
                    runs.push((RopeStyle::RotateHalf, false, cfg));
                }
            }
            // The merge the other way (folded, or a dispatch of its own), with the int8 output.
            let other = DecodeConfig {
                fold: !auto.fold,
                ..auto
            };
            if other.validate(gpu, d).is_ok() {
                runs.push((RopeStyle::RotateHalf, true, other));
            }
        }
        for (style, int8, cfg) in runs {
            let run = |fused: bool| {
                let q = gpu.upload_f32("q", &xq, &[1, h, d]).unwrap();
                let k = gpu.upload_f32("k", &xk, &[1, kv, d]).unwrap();
                let v = gpu.upload_f32("v", &xv, &[1, kv, d]).unwrap();
                let kc = upload_cache(gpu, &old_k, [ctx, kv, d], c.dtype);
                let vc = upload_cache(gpu, &old_v, [ctx, kv, d], c.dtype);
                let out = gpu.poisoned_f32("out", &[1, h, d]).unwrap();
                let words = int8_words(h * d);
                let xqt = gpu
                    .upload_u32("xq", &vec![0xffff_ffff; words], &[words])
                    .unwrap();
                let x8 = int8.then_some(&xqt);
                let ds = if fused {
                    let rope = FusedRope {
                        k: &k,
                        v: &v,
                        inv_freq: &tf,
                        style,
                    };
                    attention_decode_rope_with(
                        gpu,
                        &q,
                        &kc,
                        &vc,
                        &step.buffer,
                        &out,
                        x8,
                        &rope,
                        cfg,
                    )
                    .unwrap()
                } else {
                    let mut ds =
                        vec![rope_kv(gpu, &q, &k, &v, &tf, &step.buffer, style, &kc, &vc).unwrap()];
                    if int8 {
                        ds.extend(
                            attention_decode_x8(gpu, &q, &kc, &vc, &step.buffer, &out, &xqt)
                                .unwrap(),
                        );
                    } else {
                        ds.extend(
                            attention_decode_with(gpu, &q, &kc, &vc, &step.buffer, &out, cfg)
                                .unwrap(),
                        );
                    }
                    ds
                };
                gpu.run(&ds).unwrap();
                (
                    gpu.read_f32(&q).unwrap(),
                    gpu.read_f32(&out).unwrap(),
                    read_cache(gpu, &kc),
                    read_cache(gpu, &vc),
                    gpu.read_u32(&xqt).unwrap(),
                )
            };
            let (fq, fout, fkc, fvc, fxq) = run(true);
            let (_, uout, ukc, uvc, _) = run(false);
            let case = format!(
                "attention_decode_rope {style:?} int8={int8} head_dim={d} heads={h}/{kv} \
                         pos={pos} {:?} {cfg:?}",
                c.dtype
            );
            assert_eq!(fq, xq, "{case}: q changed");
            // The two kernels' rotations may round differently (a driver may contract
            // x c - y s into an fma in one and not the other: 1 ulp of f32), and with an f16
            // cache such a difference can flip the key's f16 rounding (2^-11 relative); the
            // unfused x8 path also picks its own configuration. (Bit-identical on lavapipe; on
            // the H100 an f16 case differed by 4e-4.)
            let (tol_out, tol_k) = match c.dtype {
                KvDtype::F32 => (TOL_ATTN, TOL_ROPE),
                KvDtype::F16 => (TOL_ATTN_F16_VS_F32, TOL_ATTN_F16_VS_F32),
            };
            assert_close(&format!("{case} out"), &fout, &uout, tol_out);
            // Slots past pos were never written (NaN in both).
            let n = (pos + 1) * kv * d;
            assert_close(&format!("{case} k cache"), &fkc[..n], &ukc[..n], tol_k);
            assert_eq!(fvc[..n], uvc[..n], "{case}: v cache");
            if int8 {
                assert_int8_words(&case, &fxq, &fout);
            }
        }
    }
}
