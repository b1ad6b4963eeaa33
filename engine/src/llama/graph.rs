//! The dispatch list of one forward pass over T tokens, built once per T and replayed.
//!
//! Per layer (x is the residual stream [T, D]):
//!   h = rmsnorm(x) · attn_norm;  q, k, v = h Wq^T, h Wk^T, h Wv^T;  rope(q), rope(k)
//!   cache[pos..pos+T] = k, v;    att = attention(q, cache);          x += att Wo^T
//!   h = rmsnorm(x) · ffn_norm;   x += (silu(h Wgate^T) * h Wup^T) Wdown^T
//! then logits = rmsnorm(x) · out_norm · Wout^T, and (decode) the sampled token id.
//! Positions come from the step buffer, so a graph serves every position.
//!
//! Fused dispatches: rope(q), rope(k) and the cache write are one `rope_kv` for prompts, and
//! part of decode attention (`attention_decode_rope`: q rotated as it is loaded, the new key's
//! slot written by the split that holds it) for one token; decode attention is the split pass
//! and its merge (one dispatch where the merge is folded in: `attention_decode::fold_supported`,
//! one fewer a layer than counted here); the residual adds ride on the Wo and Wdown mat-muls;
//! for decode, q/k/v are one mat-vec and gate/up/SiLU another: 8 dispatches per layer. Prompts on tensor cores run
//! q/k/v as one GEMM for float weights, and for quantised ones where the group is small
//! (`FUSE_MAX_FLOPS`), and for float weights gate/up/SiLU as one GEMM writing the down
//! projection's f16 input (`matmul_coop_glu`). Decode also records L2 prefetches of the next
//! weights beside attention (`prefetch.rs`; no barrier before them, no effect on results).
//!
//! Decode on the fast path feeds Q4_K/Q6_K/Q8_0 mat-vecs int8 activations (`int8_group`):
//! the RMSNorms write int8 directly (`rmsnorm_x8`), decode attention (its merge, or a lone split) quantises the
//! attention output for Wo (`attention_x8`), gate and up come from one int8 mat-vec and
//! `silu_mul_x8` quantises the down projection's input (or, up to `SWIGLU_MAX_ROWS`, the
//! gate/up mat-vec writes it itself: `matvec_swiglu`): 9 (8) dispatches per layer, the mat-vecs
//! ~1.6-3.5x faster than with f32 activations. (An RMSNorm inside the float mat-vecs ran 2-5x slower than
//! RMSNorm + `matvec_multi` on the H100 and was removed: benches/results/2026-11-23-h100-s3/
//! norm.txt and final-norm-fused/.)

use crate::dispatch::Dispatch;
use crate::error::Result;
use crate::gpu::Gpu;
use crate::kv_cache::KvCache;
use crate::llama::dequant_scratch::{prompt_views, prompt_weights, DequantScratch};
use crate::llama::prefetch::{Budgets, Prefetches};
use crate::llama::weights::LlamaWeights;
use crate::ops::attention_decode::{self, FusedRope};
use crate::ops::{
    attention, attention_coop, elementwise, embedding, matmul, matmul_coop, matvec, rmsnorm,
    rope_kv, sample,
};
use crate::precision::Precision;
use crate::tensor::{Elem, Tensor};

/// Which rows get logits: the last (generation) or every row (`wgllama logits`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogitRows {
    Last,
    All,
}

/// Scratch tensors of a T-token pass. Sized at build time, reused every replay.
pub struct Activations {
    pub x: Tensor,      // [T, D] residual stream
    pub h: Tensor,      // [T, D] normed ([1, 1], unused, with `half`)
    pub q: Tensor,      // [T, n_heads, head_dim]
    pub k: Tensor,      // [T, n_kv_heads, head_dim]
    pub v: Tensor,      // [T, n_kv_heads, head_dim]
    pub att: Tensor,    // [T, n_heads, head_dim]
    pub gate: Tensor,   // [T, F]
    pub up: Tensor,     // [T, F]
    pub act: Tensor,    // [T, F] ([1, 1], unused, with `half`)
    pub x_last: Tensor, // [1, D] last row of x, when only its logits are wanted
    pub hn: Tensor,     // [R, D] final-normed rows (R = 1 or T)
    pub logits: Tensor, // [R, vocab]
    pub xq_d: Tensor,   // int8 form of a D-vector (decode, fast path): [int8_words(D)]
    pub xq_f: Tensor, // int8 form of an F-vector (the down projection's input): [swiglu_int8_words(F)]
    /// The next RMSNorm's input written by Wo and down with the norm folded in (decode, fast
    /// path: `Folds`): u32 [norm_int8_words(D)] or f32 [norm_f32_len(D)]; one word otherwise.
    pub xn: Tensor,
    /// f16 copies of the tensor-core mat-muls' inputs (prompts on the fast path): h, att, act.
    pub half: Option<HalfInputs>,
}

/// f16 copies of a prompt pass's mat-mul inputs, so every tensor-core mat-mul stages x as
/// straight 16-byte copies, half the bytes of f32. Their producers write them directly
/// (rmsnorm, attention_coop, silu_mul with an f16 output); only the plain attention kernel's output takes a
/// `to_f16` dispatch (separate copies cost 88-128 dispatches a TinyLlama / 7B prompt pass).
pub struct HalfInputs {
    pub h: Tensor,   // [T, D]
    pub att: Tensor, // [T, n_heads * head_dim]
    pub act: Tensor, // [T, F]
}

impl Activations {
    fn new(
        gpu: &Gpu,
        w: &LlamaWeights,
        t: usize,
        rows: LogitRows,
        half: bool,
        glu: bool,
    ) -> Result<Activations> {
        let c = &w.config;
        let (d, f, hd) = (c.hidden_size, c.ffn_size, c.head_dim);
        let r = if rows == LogitRows::All { t } else { 1 };
        let z = |label: &str, shape: &[usize]| gpu.zeros_f32(label, shape);
        let u = |label: &str, words: usize| gpu.upload_u32(label, &vec![0; words], &[words]);
        let gate_up = if glu { [1, 1] } else { [t, f] };
        // With f16 mat-mul inputs (`half`) the prompt's norms and SwiGLU write the f16 copies
        // only: the f32 h and act are never bound (one value each, not T rows).
        let (h, act) = if half {
            ([1, 1], [1, 1])
        } else {
            ([t, d], [t, f])
        };
        Ok(Activations {
            x: z("x", &[t, d])?,
            h: z("h", &h)?,
            q: z("q", &[t, c.n_heads, hd])?,
            k: z("k", &[t, c.n_kv_heads, hd])?,
            v: z("v", &[t, c.n_kv_heads, hd])?,
            att: z("att", &[t, c.n_heads, hd])?,
            // With `glu` (every layer's SwiGLU in its GEMM) never used: one value each.
            gate: z("gate", &gate_up)?,
            up: z("up", &gate_up)?,
            act: z("act", &act)?,
            x_last: z("x_last", &[1, d])?,
            hn: z("hn", &[r, d])?,
            logits: z("logits", &[r, c.vocab_size])?,
            // Prompts never use them: one word keeps their graphs' memory as before.
            xq_d: u("xq_d", if t == 1 { matvec::int8_words(d) } else { 1 })?,
            // Decode: room for matvec_swiglu's tickets and staged rows after the int8 form.
            xq_f: u(
                "xq_f",
                if t == 1 {
                    matvec::swiglu_int8_words(f)
                } else {
                    1
                },
            )?,
            xn: u("xn", 1)?,
            half: if half {
                Some(HalfInputs {
                    h: gpu.zeros_f16("h16", &[t, d])?,
                    att: gpu.zeros_f16("att16", &[t, c.n_heads * hd])?,
                    act: gpu.zeros_f16("act16", &[t, f])?,
                })
            } else {
                None
            },
        })
    }
}

/// A T-token forward pass: `body` (embedding through the last layer), an optional copy of the
/// last row, then `head` (final norm, LM head, and for decode the sampler).
pub struct Graph {
    pub t: usize,
    pub rows: LogitRows,
    pub acts: Activations,
    pub body: Vec<Dispatch>,
    pub head: Vec<Dispatch>,
}

/// Buffers a graph reads or writes besides its own activations.
pub struct GraphIo<'a> {
    /// Token ids [T] the embedding reads.
    pub tokens: &'a Tensor,
    /// The step buffer (`Step`: pos, n_tokens, rand).
    pub step: &'a wgpu::Buffer,
    pub kv: &'a KvCache,
    /// Where the sampler writes the chosen id (index 0), when sampling.
    pub sampled: Option<(&'a Tensor, &'a sample::Sampling)>,
    pub precision: Precision,
    /// Decode's L2 prefetch budgets (T = 1; prompts ignore them).
    pub prefetch: Budgets,
    /// f16 copies of quantised weights for prompt passes of at least its `min_tokens` tokens
    /// (with f16 GEMM inputs); None: GEMMs decode quantised weights as they stage them.
    pub scratch: Option<&'a DequantScratch>,
}

/// Most gate/up rows for which decode on the fast path writes SwiGLU from the gate/up mat-vec
/// (`matvec::matvec_swiglu`) instead of a silu_mul(_x8) dispatch after it. Measured on the
/// H100 in the decode chain (benches/results/2026-11-25-h100-s18/): TinyLlama's 5632 rows
/// (K = 2048) gained (plain pass Q4_K_M 1115 -> 1101 us, F16 1469 -> 1405), Llama-2-7B's 11008
/// (K = 4096) lost at every workgroup size tried (64, 128, 256 lanes: F16 5761 -> 5865-5911 us,
/// Q4_K_M 2781-2786 -> 2786-2818): there the paired rows' kernel ran ~3 us slower than the
/// separate gate/up dispatch plus silu_mul.
const SWIGLU_MAX_ROWS: usize = 8192;

/// Whether decode computes silu(gate) * up in the mat-vec itself. Its kernel loops over the
/// rows of both weights together; that was fast for Q4_K (and Q8_0) on the H100 but not for
/// F16 (matvec_glu f16 on Llama-2-7B: 247 us a call, 730 GB/s, where matvec_multi over the
/// same two weights ran at 2.1 TB/s; 2026-11-23, benches/results/2026-11-23-h100-s2), so the
/// other types take matvec_multi + silu_mul.
fn glu_fused(gate: &Tensor, up: &Tensor) -> bool {
    use wgllama_loaders::DType;
    gate.elem == up.elem && matches!(gate.elem, Elem::Weight(DType::Q4K | DType::Q8_0))
}

/// Whether a decode mat-vec over `w` takes int8 activations on the fast path: Q4_K, Q6_K and
/// Q8_0. (Q6_K joined in the fifth session, when its int8 loop moved to 8 lanes per block;
/// before, it ran only up to 1.3x faster than f32 and lost as a lone mat-vec.)
fn int8_pays(w: &Tensor) -> bool {
    use wgllama_loaders::DType;
    matches!(w.elem, Elem::Weight(DType::Q4K | DType::Q6K | DType::Q8_0))
}

/// Whether weights sharing one input all take int8 activations (one int8 copy serves them all).
fn int8_group(precision: Precision, ws: &[&Tensor]) -> bool {
    precision == Precision::Fast && ws.iter().all(|w| int8_pays(w))
}

/// Which RMSNorms decode folds into the mat-vecs around it (matvec.wgsl, "RMSNorm folded"):
/// the residual mat-vec before a norm (Wo, down) writes w * h unnormalised with the blocks'
/// sums of h^2 into `Activations::xn`, and the mat-vecs after it divide by rms themselves, so
/// the norm's dispatch is gone (`matvec::matvec_norm`, `matvec_multi_normed`). With quantised
/// weights on the fast path the activations are int8 blocks, with F16/BF16 weights f32; fast path only
/// (the exact path keeps the plain order of operations the golden checks were made with).
struct Folds {
    /// int8 activations (else f32).
    int8: bool,
    /// [layer]: Wo writes ffn_norm's input, gate/up reads it.
    ffn: Vec<bool>,
    /// [layer]: the down before (layer 0: the embedding, `embedding_norm`) writes attn_norm's
    /// input, q/k/v read it (after layer 0, only after a folded ffn norm, whose branch records
    /// the down).
    attn: Vec<bool>,
    /// The last down writes out_norm's input and the LM head reads it.
    head: bool,
}

impl Folds {
    fn plan(gpu: &Gpu, w: &LlamaWeights, t: usize, precision: Precision) -> Folds {
        let n = w.layers.len();
        let mut f = Folds {
            int8: false,
            ffn: vec![false; n],
            attn: vec![false; n],
            head: false,
        };
        if t != 1 || precision != Precision::Fast {
            return f;
        }
        let all: Vec<&Tensor> = w
            .layers
            .iter()
            .flat_map(|lw| {
                [
                    &lw.wq, &lw.wk, &lw.wv, &lw.wo, &lw.w_gate, &lw.w_up, &lw.w_down,
                ]
            })
            .chain([&w.output])
            .collect();
        f.int8 = int8_group(precision, &all);
        let int8 = f.int8;
        let float = |ws: &[&Tensor]| {
            ws.iter().all(|w| {
                matches!(
                    w.elem,
                    Elem::Weight(wgllama_loaders::DType::F16 | wgllama_loaders::DType::BF16)
                )
            })
        };
        if !int8 && !float(&all) {
            return f;
        }
        let out = |w: &Tensor| matvec::norm_out_supported(gpu, w, int8);
        let inp = |ws: &[&Tensor]| matvec::normed_supported(gpu, ws, int8);
        if let Some(l0) = w.layers.first() {
            f.attn[0] =
                embedding::norm_supported(w.config.hidden_size) && inp(&[&l0.wq, &l0.wk, &l0.wv]);
        }
        for (l, lw) in w.layers.iter().enumerate() {
            f.ffn[l] = out(&lw.wo) && inp(&[&lw.w_gate, &lw.w_up]);
            let (down_ok, next_ok) = (
                out(&lw.w_down),
                match w.layers.get(l + 1) {
                    Some(nl) => inp(&[&nl.wq, &nl.wk, &nl.wv]),
                    None => inp(&[&w.output]),
                },
            );
            let fold = f.ffn[l] && down_ok && next_ok;
            match f.attn.get_mut(l + 1) {
                Some(a) => *a = fold,
                None => f.head = fold,
            }
        }
        f
    }
}

/// The mat-mul input for `x`: its f16 copy `half` (after a `to_f16` dispatch pushed onto
/// `body`) where the pass has one, else x itself.
fn half_of<'a>(
    gpu: &Gpu,
    body: &mut Vec<Dispatch>,
    x: &'a Tensor,
    half: Option<&'a Tensor>,
) -> Result<&'a Tensor> {
    match half {
        Some(h) => {
            body.push(elementwise::to_f16(gpu, &x.reshaped(&h.shape), h)?);
            Ok(h)
        }
        None => Ok(x),
    }
}

/// Tokens (rows) of a mat-mul input x [.., K].
fn tokens_of(x: &Tensor) -> usize {
    x.numel() / x.shape.last().copied().unwrap_or(1).max(1)
}

/// Whether mat-muls over x take the tensor cores: x already f16, or with `Fast` a prompt
/// (T > 1) with K a multiple of 16 on an adapter that has them; everything else is exact.
fn on_tensor_cores(gpu: &Gpu, x: &Tensor, precision: Precision) -> bool {
    let k = x.shape.last().copied().unwrap_or(0);
    x.elem == Elem::F16
        || (precision == Precision::Fast
            && tokens_of(x) > 1
            && k.is_multiple_of(16)
            && matmul_coop::coop_available(gpu))
}

/// Whether prompt passes (T > 1) of a model with this config take the tensor-core mat-muls
/// with f16 inputs: the fast path, cooperative matrices, and every GEMM's row length (hidden,
/// attention output, FFN) a multiple of 16. (The f16 copies' scratch is only made then.)
pub(crate) fn tensor_core_prompts(
    gpu: &Gpu,
    c: &wgllama_loaders::LlamaConfig,
    precision: Precision,
) -> bool {
    precision == Precision::Fast
        && matmul_coop::coop_available(gpu)
        && [c.hidden_size, c.n_heads * c.head_dim, c.ffn_size]
            .iter()
            .all(|k| k.is_multiple_of(16))
}

/// A linear layer y (+)= x W^T on the path `on_tensor_cores` picks.
fn linear(
    gpu: &Gpu,
    x: &Tensor,
    w: &Tensor,
    y: &Tensor,
    accumulate: bool,
    precision: Precision,
) -> Result<crate::dispatch::Dispatch> {
    if on_tensor_cores(gpu, x, precision) {
        return matmul_coop::matmul_coop(gpu, x, w, y, accumulate);
    }
    matmul::matmul(gpu, x, w, y, accumulate)
}

/// Largest group of prompt GEMMs (2 T sum(N) K flops) of quantised weights that `linears` runs
/// as one dispatch. Measured on the H100 at T = 512 (benches/results/2026-11-24-h100-s8/multi/):
/// fused, TinyLlama's q/k/v (5.4 GFLOP) and gate/up (23.6) cut the prompt pass 6% (Q4_K_M) and
/// 11% (F16), but Llama-2-7B's (51.5 and 185) ran 12% slower a GEMM (the fused kernel picked
/// its weight by a branch per load) with nothing to gain: each of its GEMMs already fills the
/// GPU. Float weights have no such branch since the shader's SPLIT (fused 7B f16 GEMMs
/// measured 1-3% faster than single ones, s9/split/bench-multi.txt), so they always fuse.
const FUSE_MAX_FLOPS: usize = 32_000_000_000;

/// Linear layers sharing x (q, k, v; gate, up): `linear` each, except that on the tensor-core
/// path float weights and small groups of quantised ones (`FUSE_MAX_FLOPS`) run each run of
/// weights of one type as one
/// `matmul_coop_multi` dispatch (TinyLlama's k and v alone make 32 workgroups each; gate and
/// up alone each end in a part-filled wave).
fn linears(
    gpu: &Gpu,
    x: &Tensor,
    ws: &[&Tensor],
    ys: &[&Tensor],
    precision: Precision,
) -> Result<Vec<Dispatch>> {
    let k = x.shape.last().copied().unwrap_or(0);
    let rows: usize = ws
        .iter()
        .map(|w| w.shape.first().copied().unwrap_or(0))
        .sum();
    let float = ws.iter().all(|w| matmul_coop::CoopTile::float_weight(w));
    if !on_tensor_cores(gpu, x, precision)
        || (!float && 2 * tokens_of(x) * rows * k > FUSE_MAX_FLOPS)
    {
        return ws
            .iter()
            .zip(ys)
            .map(|(w, y)| linear(gpu, x, w, y, false, precision))
            .collect();
    }
    let mut at = 0;
    ws.chunk_by(|a, b| a.elem == b.elem)
        .map(|run| {
            let d = matmul_coop::matmul_coop_multi(gpu, x, run, &ys[at..at + run.len()]);
            at += run.len();
            d
        })
        .collect()
}

impl Graph {
    pub fn build(
        gpu: &Gpu,
        w: &LlamaWeights,
        t: usize,
        rows: LogitRows,
        io: &GraphIo<'_>,
    ) -> Result<Graph> {
        let c = &w.config;
        // Prompts on the fast path feed the tensor-core mat-muls f16 inputs (matmul_coop stages
        // x as straight copies: 4-11% less GEMM time on the H100,
        // benches/results/2026-11-23-h100-s3/README.md), written by their producers.
        let half = t > 1 && tensor_core_prompts(gpu, c, io.precision);
        // Quantised weights decoded once to f16 copies before their GEMMs (long prompts).
        let dq = io.scratch.filter(|s| half && t >= s.min_tokens);
        // Every layer's SwiGLU inside its gate/up GEMM: the f32 gate and up are never written.
        let glu = half
            && w.layers.iter().all(|lw| {
                let gu = prompt_views(dq, &[&lw.w_gate, &lw.w_up]);
                matmul_coop::glu_supported(gpu, t, &gu[0], &gu[1])
            });
        let mut a = Activations::new(gpu, w, t, rows, half, glu)?;
        let folds = Folds::plan(gpu, w, t, io.precision);
        if folds.ffn.iter().chain(&folds.attn).any(|&f| f) {
            let d = c.hidden_size;
            a.xn = if folds.int8 {
                let words = matvec::norm_int8_words(d);
                gpu.upload_u32("xn", &vec![0; words], &[words])?
            } else {
                gpu.zeros_f32("xn", &[matvec::norm_f32_len(d)])?
            };
        }
        let a = a;
        let eps = c.rms_norm_eps;
        // A folded norm's producer (Wo, down: y += W x, then the next norm's input into xn)
        // and consumers (ys = W rmsnorm(h) from xn).
        let norm_out = |x: &Tensor, wt: &Tensor, norm: &Tensor| {
            matvec::matvec_norm(gpu, x, wt, &a.x, norm, &a.xn)
        };
        let normed =
            |ws: &[&Tensor], ys: &[&Tensor]| matvec::matvec_multi_normed(gpu, &a.xn, ws, ys, eps);
        let q_flat = a.q.reshaped(&[t, c.n_heads * c.head_dim]);
        let k_flat = a.k.reshaped(&[t, c.n_kv_heads * c.head_dim]);
        let v_flat = a.v.reshaped(&[t, c.n_kv_heads * c.head_dim]);
        let att_flat = a.att.reshaped(&[t, c.n_heads * c.head_dim]);
        // The down projection's int8 input: the first words of xq_f (decode).
        let xq_f8 = a.xq_f.leading(if t == 1 {
            matvec::int8_words(c.ffn_size)
        } else {
            1
        });
        let mut body = match w.layers.first() {
            // Decode, folds: the first layer's norm input written with the embedding.
            Some(l0) if folds.attn[0] => vec![embedding::embedding_norm(
                gpu,
                &w.embed,
                io.tokens,
                &a.x,
                &l0.attn_norm,
                &a.xn,
            )?],
            _ => vec![embedding::embedding(gpu, &w.embed, io.tokens, &a.x)?],
        };
        let fast = io.precision;
        // The RMSNorms' output: f16 where the prompt's mat-muls take f16 inputs.
        let normed_out = a.half.as_ref().map_or(&a.h, |hf| &hf.h);
        let mut pf = Prefetches::new(if t == 1 {
            io.prefetch
        } else {
            Budgets::default()
        });
        for (l, lw) in w.layers.iter().enumerate() {
            let qkv = [&lw.wq, &lw.wk, &lw.wv];
            // The norm after this layer's down (the next layer's or the last) and whether it
            // is folded.
            let next_norm = w.layers.get(l + 1).map_or(&w.out_norm, |n| &n.attn_norm);
            let down_folded = *folds.attn.get(l + 1).unwrap_or(&folds.head);
            if folds.attn[l] {
                // The previous down wrote this norm's input (unnormalised) into xn.
                body.push(normed(&qkv, &[&q_flat, &k_flat, &v_flat])?);
            } else if t == 1 && int8_group(fast, &qkv) {
                // Decode, fast: RMSNorm straight to int8, then q, k, v in one int8 mat-vec.
                body.push(matvec::rmsnorm_x8(gpu, &a.x, &lw.attn_norm, &a.xq_d, eps)?);
                body.push(matvec::matvec_multi_int8(
                    gpu,
                    &a.xq_d,
                    &qkv,
                    &[&q_flat, &k_flat, &v_flat],
                )?);
            } else if t == 1 {
                // Decode: q, k and v in one mat-vec dispatch (each weight keeps its type).
                body.push(rmsnorm::rmsnorm(gpu, &a.x, &lw.attn_norm, &a.h, eps)?);
                body.push(matvec::matvec_multi(
                    gpu,
                    &a.h,
                    &qkv,
                    &[&q_flat, &k_flat, &v_flat],
                )?);
            } else {
                // Prompts: with f16 mat-mul inputs (`half`) the RMSNorm writes them itself.
                let h = normed_out;
                body.push(rmsnorm::rmsnorm(gpu, &a.x, &lw.attn_norm, h, eps)?);
                let ws = prompt_weights(gpu, dq, &mut body, &qkv)?;
                let ws: Vec<&Tensor> = ws.iter().collect();
                body.extend(linears(gpu, h, &ws, &[&q_flat, &k_flat, &v_flat], fast)?);
            }
            let layer = &io.kv.layers[l];
            let wo_int8 = t == 1 && int8_group(fast, &[&lw.wo]);
            let ctx = layer.k.shape[0];
            if attention::rope_fused(gpu, t, c.n_heads, c.n_kv_heads, c.head_dim, ctx, wo_int8) {
                // Decode: attention rotates q as it loads it and writes the new key's cache
                // slot itself (rope_kv's work, without its dispatch); with an int8 Wo its merge
                // pass also quantises the output.
                let rope = FusedRope {
                    k: &k_flat,
                    v: &v_flat,
                    inv_freq: &w.inv_freq,
                    style: w.rope_style,
                };
                let xq = wo_int8.then_some(&a.xq_d);
                let at = body.len();
                body.extend(attention_decode::attention_decode_rope(
                    gpu, &a.q, &layer.k, &layer.v, io.step, &a.att, xq, &rope,
                )?);
                pf.attention(at, body.len() - at, &[&lw.wo, &lw.w_gate, &lw.w_up]);
                body.push(match (folds.ffn[l], wo_int8) {
                    (true, true) => norm_out(&a.xq_d, &lw.wo, &lw.ffn_norm)?,
                    (true, false) => norm_out(&att_flat, &lw.wo, &lw.ffn_norm)?,
                    (false, true) => matvec::matvec_int8(gpu, &a.xq_d, &lw.wo, &a.x, true)?,
                    (false, false) => linear(gpu, &att_flat, &lw.wo, &a.x, true, fast)?,
                });
            } else if wo_int8 {
                body.push(rope_kv_of(gpu, &a, w, io, layer)?);
                // Decode, fast: attention's output also as int8 for Wo, quantised in the
                // attention merge pass (or by quantize_x8 where that cannot).
                body.extend(attention::attention_x8(
                    gpu, &a.q, &layer.k, &layer.v, io.step, &a.att, &a.xq_d,
                )?);
                body.push(if folds.ffn[l] {
                    norm_out(&a.xq_d, &lw.wo, &lw.ffn_norm)?
                } else {
                    matvec::matvec_int8(gpu, &a.xq_d, &lw.wo, &a.x, true)?
                });
            } else {
                // RoPE on q and k and the cache write of k, v: one dispatch.
                body.push(rope_kv_of(gpu, &a, w, io, layer)?);
                let att = if t * (c.n_heads / c.n_kv_heads) > attention::DECODE_MAX_ROWS
                    && fast == Precision::Fast
                    && attention_coop::supports(gpu, c.head_dim)
                {
                    // Prompts on the fast path: flash attention on tensor cores (f16 inputs),
                    // writing Wo's f16 input itself where the pass has one.
                    let out = a.half.as_ref().map_or(&a.att, |hf| &hf.att);
                    body.push(attention_coop::attention_coop(
                        gpu, &a.q, &layer.k, &layer.v, io.step, out,
                    )?);
                    a.half.as_ref().map_or(&att_flat, |hf| &hf.att)
                } else {
                    body.extend(attention::attention(
                        gpu, &a.q, &layer.k, &layer.v, io.step, &a.att,
                    )?);
                    half_of(gpu, &mut body, &att_flat, a.half.as_ref().map(|hf| &hf.att))?
                };
                let wo = prompt_weights(gpu, dq, &mut body, &[&lw.wo])?;
                body.push(if folds.ffn[l] {
                    norm_out(att, &wo[0], &lw.ffn_norm)?
                } else {
                    linear(gpu, att, &wo[0], &a.x, true, fast)?
                });
            }
            let gate_up = [&lw.w_gate, &lw.w_up];
            // Decode, fast: SwiGLU from the gate/up mat-vec itself where it can write the
            // down's input (int8 blocks or f32): no silu_mul(_x8) dispatch.
            let swiglu = |int8: bool, normed: bool| {
                t == 1
                    && fast == Precision::Fast
                    && c.ffn_size <= SWIGLU_MAX_ROWS
                    && matvec::swiglu_supported(gpu, &lw.w_gate, &lw.w_up, int8, normed)
            };
            if folds.ffn[l] {
                // Wo wrote this norm's input; down writes the next one's where that is folded.
                let act = if folds.int8 { &xq_f8 } else { &a.act };
                if swiglu(folds.int8, true) {
                    let out = if folds.int8 { &a.xq_f } else { &a.act };
                    body.push(matvec::matvec_swiglu(
                        gpu,
                        &a.xn,
                        &lw.w_gate,
                        &lw.w_up,
                        out,
                        Some(eps),
                    )?);
                } else {
                    body.push(normed(&gate_up, &[&a.gate, &a.up])?);
                    pf.glu(body.len(), &lw.w_down);
                    body.push(if folds.int8 {
                        matvec::silu_mul_x8(gpu, &a.gate, &a.up, act)?
                    } else {
                        elementwise::silu_mul(gpu, &a.gate, &a.up, act)?
                    });
                }
                if let Some(nl) = w.layers.get(l + 1) {
                    pf.down(body.len(), &[&nl.wq, &nl.wk, &nl.wv]);
                }
                body.push(match (down_folded, folds.int8) {
                    (true, _) => norm_out(act, &lw.w_down, next_norm)?,
                    (false, true) => matvec::matvec_int8(gpu, act, &lw.w_down, &a.x, true)?,
                    (false, false) => linear(gpu, act, &lw.w_down, &a.x, true, fast)?,
                });
                continue;
            }
            if t == 1 && int8_group(fast, &gate_up) {
                // Decode, fast: gate and up from int8 x; SiLU * up quantised for an int8 down
                // projection (by the mat-vec itself where it can), or kept f32 for the others.
                body.push(matvec::rmsnorm_x8(gpu, &a.x, &lw.ffn_norm, &a.xq_d, eps)?);
                let down_int8 = int8_group(fast, &[&lw.w_down]);
                let fused = down_int8 && swiglu(true, false);
                if fused {
                    body.push(matvec::matvec_swiglu(
                        gpu, &a.xq_d, &lw.w_gate, &lw.w_up, &a.xq_f, None,
                    )?);
                } else {
                    body.push(matvec::matvec_multi_int8(
                        gpu,
                        &a.xq_d,
                        &gate_up,
                        &[&a.gate, &a.up],
                    )?);
                }
                if down_int8 {
                    if !fused {
                        body.push(matvec::silu_mul_x8(gpu, &a.gate, &a.up, &xq_f8)?);
                    }
                    body.push(matvec::matvec_int8(gpu, &xq_f8, &lw.w_down, &a.x, true)?);
                } else {
                    body.push(elementwise::silu_mul(gpu, &a.gate, &a.up, &a.act)?);
                    body.push(linear(gpu, &a.act, &lw.w_down, &a.x, true, fast)?);
                }
                continue;
            }
            body.push(rmsnorm::rmsnorm(gpu, &a.x, &lw.ffn_norm, normed_out, eps)?);
            let gu = prompt_weights(gpu, dq, &mut body, &gate_up)?;
            let gate_up = [&gu[0], &gu[1]];
            let mut act = &a.act;
            if t == 1 && glu_fused(gate_up[0], gate_up[1]) {
                // Decode: silu(gate) * up straight from one mat-vec dispatch.
                body.push(matvec::matvec_glu(
                    gpu, &a.h, gate_up[0], gate_up[1], &a.act,
                )?);
            } else if t == 1 {
                // Decode, other types: gate and up in one mat-vec dispatch, then SiLU * up.
                body.push(matvec::matvec_multi(
                    gpu,
                    &a.h,
                    &gate_up,
                    &[&a.gate, &a.up],
                )?);
                body.push(elementwise::silu_mul(gpu, &a.gate, &a.up, &a.act)?);
            } else if let Some(hf) = a
                .half
                .as_ref()
                .filter(|_| matmul_coop::glu_supported(gpu, t, gate_up[0], gate_up[1]))
            {
                // Prompts on tensor cores (f16 inputs), float weights: SiLU * up from the
                // gate/up GEMM itself, in f16.
                body.push(matmul_coop::matmul_coop_glu(
                    gpu, normed_out, gate_up[0], gate_up[1], &hf.act,
                )?);
                act = &hf.act;
            } else {
                body.extend(linears(gpu, normed_out, &gate_up, &[&a.gate, &a.up], fast)?);
                if let Some(hf) = &a.half {
                    // The down projection's f16 input, straight from SiLU * up.
                    body.push(elementwise::silu_mul(gpu, &a.gate, &a.up, &hf.act)?);
                    act = &hf.act;
                } else {
                    body.push(elementwise::silu_mul(gpu, &a.gate, &a.up, &a.act)?);
                }
            }
            let down = prompt_weights(gpu, dq, &mut body, &[&lw.w_down])?;
            body.push(linear(gpu, act, &down[0], &a.x, true, fast)?);
        }
        let head_in = if rows == LogitRows::All || t == 1 {
            &a.x
        } else {
            &a.x_last
        };
        let mut head = if folds.head {
            // The last down wrote the final norm's input.
            vec![normed(&[&w.output], &[&a.logits])?]
        } else if t == 1 && int8_group(fast, &[&w.output]) {
            vec![
                matvec::rmsnorm_x8(gpu, head_in, &w.out_norm, &a.xq_d, eps)?,
                matvec::matvec_int8(gpu, &a.xq_d, &w.output, &a.logits, false)?,
            ]
        } else {
            vec![
                rmsnorm::rmsnorm(gpu, head_in, &w.out_norm, &a.hn, eps)?,
                linear(gpu, &a.hn, &w.output, &a.logits, false, fast)?,
            ]
        };
        pf.insert(gpu, &mut body)?;
        if let Some((sampled, params)) = io.sampled {
            let last = a.logits.reshaped(&[c.vocab_size]);
            head.push(sample::sample(gpu, &last, io.step, sampled, 0, params)?);
        }
        Ok(Graph {
            t,
            rows,
            acts: a,
            body,
            head,
        })
    }

    /// Records the pass in parts of `every` body dispatches, submitting each part as
    /// soon as it is recorded so the GPU starts while the CPU records the rest (wgpu encodes a
    /// dispatch in ~3 us of CPU: ~1.4 ms for a Llama-2-7B prompt pass, which otherwise leaves
    /// the GPU idle and lets its clock drop). `keys`: as in `record`. Returns the encoder
    /// holding the last part, the last-row copy and the head, for the caller to submit (with
    /// its readback).
    pub fn record_in_parts(&self, gpu: &Gpu, every: usize, keys: usize) -> wgpu::CommandEncoder {
        let body: Vec<&Dispatch> = self.body_at(keys).collect();
        let parts: Vec<&[&Dispatch]> = body.chunks(every.max(1)).collect();
        let (last, leading) = parts
            .split_last()
            .map_or((&[][..], &[][..]), |(l, r)| (*l, r));
        for part in leading {
            let mut enc = gpu.device.create_command_encoder(&Default::default());
            record_dispatches(&mut enc, part.iter().copied());
            gpu.queue.submit([enc.finish()]);
        }
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        record_dispatches(&mut enc, last.iter().copied());
        if self.needs_last_row_copy() {
            self.record_last_row_copy(&mut enc);
        }
        record_dispatches(&mut enc, self.head_at(keys));
        enc
    }

    /// Records the whole pass into `enc`: body, last-row copy (prefill only), head. `keys`:
    /// the keys the pass's last token attends to (position + t), which leaves out dispatches
    /// with nothing to do there (`Dispatch::idle_keys`).
    pub fn record(&self, enc: &mut wgpu::CommandEncoder, keys: usize) {
        let mut pass = enc.begin_compute_pass(&Default::default());
        for d in self.body_at(keys) {
            d.record(&mut pass);
        }
        if self.needs_last_row_copy() {
            // A copy cannot sit inside a compute pass: end it, copy, start the head's pass.
            drop(pass);
            self.record_last_row_copy(enc);
            pass = enc.begin_compute_pass(&Default::default());
        }
        for d in self.head_at(keys) {
            d.record(&mut pass);
        }
    }

    /// The body dispatches a pass attending to `keys` keys records.
    pub fn body_at(&self, keys: usize) -> impl Iterator<Item = &Dispatch> {
        self.body.iter().filter(move |d| d.works_at(keys))
    }

    /// The head dispatches a pass attending to `keys` keys records.
    pub fn head_at(&self, keys: usize) -> impl Iterator<Item = &Dispatch> {
        self.head.iter().filter(move |d| d.works_at(keys))
    }

    /// Whether the head reads a copy of the last row, made between the body's pass and the
    /// head's (prefill with logits of the last row only).
    pub fn needs_last_row_copy(&self) -> bool {
        self.rows == LogitRows::Last && self.t > 1
    }

    /// The copy of x's last row into `x_last`; must sit outside a compute pass.
    pub fn record_last_row_copy(&self, enc: &mut wgpu::CommandEncoder) {
        let d = self.acts.x.shape[1] as u64 * 4;
        let from = (self.t as u64 - 1) * d;
        enc.copy_buffer_to_buffer(&self.acts.x.buffer, from, &self.acts.x_last.buffer, 0, d);
    }

    /// Every dispatch of the pass, in order (for the profiler and dispatch counts; a pass
    /// records those of `dispatches_at`).
    pub fn dispatches(&self) -> impl Iterator<Item = &Dispatch> {
        self.body.iter().chain(&self.head)
    }

    /// The dispatches a pass attending to `keys` keys records, in order.
    pub fn dispatches_at(&self, keys: usize) -> impl Iterator<Item = &Dispatch> {
        self.body_at(keys).chain(self.head_at(keys))
    }
}

/// rope_kv over the pass's q, k, v into `layer`'s cache slots.
fn rope_kv_of(
    gpu: &Gpu,
    a: &Activations,
    w: &LlamaWeights,
    io: &GraphIo<'_>,
    layer: &crate::kv_cache::LayerCache,
) -> Result<Dispatch> {
    rope_kv::rope_kv(
        gpu,
        &a.q,
        &a.k,
        &a.v,
        &w.inv_freq,
        io.step,
        w.rope_style,
        &layer.k,
        &layer.v,
    )
}

/// Body dispatches per submission in `Graph::record_in_parts` (the session's default): ~48
/// dispatches per submit overlapped encoding with the GPU in the shared/README measurements.
pub const SUBMIT_EVERY: usize = 48;

/// `ds` in one compute pass of `enc`.
fn record_dispatches<'d>(enc: &mut wgpu::CommandEncoder, ds: impl Iterator<Item = &'d Dispatch>) {
    let mut pass = enc.begin_compute_pass(&Default::default());
    for d in ds {
        d.record(&mut pass);
    }
}

impl Tensor {
    /// The first `n` elements of the same buffer, as a 1-D tensor (a kernel output whose
    /// consumers read only its leading part, e.g. matvec_swiglu's int8 form before its tickets).
    pub fn leading(&self, n: usize) -> Tensor {
        assert!(
            n <= self.numel(),
            "{n} leading elements of {:?}",
            self.shape
        );
        Tensor {
            buffer: self.buffer.clone(),
            elem: self.elem,
            shape: vec![n],
        }
    }

    /// The same buffer seen with another shape of the same element count.
    pub fn reshaped(&self, shape: &[usize]) -> Tensor {
        debug_assert_eq!(
            shape.iter().product::<usize>(),
            self.numel(),
            "reshape of {:?}",
            self.shape
        );
        debug_assert!(self.elem == Elem::F32 || self.elem == Elem::U32);
        Tensor {
            buffer: self.buffer.clone(),
            elem: self.elem,
            shape: shape.to_vec(),
        }
    }
}
