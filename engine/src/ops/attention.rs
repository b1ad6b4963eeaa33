//! `attention.wgsl`: causal GQA attention of a batch's queries against a layer's KV cache,
//! flash style (online softmax, no score matrix), optionally split over the key range and
//! merged by `attention_merge.wgsl` (flash-decoding); and `attention`, the entry the graph
//! calls, which takes the faster `attention_decode` / `attention_prefill` kernels wherever
//! they apply (head_dim a multiple of 4).

use crate::dispatch::{grid, Cost, Dispatch};
use crate::error::{EngineError, Result};
use crate::gpu::Gpu;
use crate::ops::attention_decode::{attention_decode, attention_decode_x8, supports_x8};
use crate::ops::attention_merge::attention_merge;
use crate::ops::attention_prefill::attention_prefill;
use crate::ops::expect;
use crate::tensor::{Elem, Tensor};

/// Mirrors `Params` in attention.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct AttentionParams {
    pub n_tokens: u32,
    pub n_heads: u32,
    pub n_kv_heads: u32,
    pub ctx: u32,
    pub n_row_blocks: u32,
    pub n_splits: u32,
    pub scale: f32,
    pub _pad: u32,
}

/// Invocations per workgroup; attention.wgsl sizes its reduction arrays for this.
const WG: usize = 128;
/// Workgroup-memory budgets of attention.wgsl, in f32s: the Q tile [R, HD], the K/V tile
/// [BK, HD + 1] and the probability tile [R, BK].
const Q_TILE: usize = 2048;
const KV_TILE: usize = 4160;
const MAX_HEAD_DIM: usize = 256;
/// Splits beyond this buy nothing: each split already covers at least one tile.
pub const MAX_SPLITS: usize = 64;

/// The tiling attention.wgsl runs with, chosen from the shapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionTiling {
    /// Query rows (token, head-in-group) per workgroup.
    pub rows: usize,
    /// Keys per tile.
    pub keys: usize,
    /// Workgroups along the query rows, per kv head.
    pub row_blocks: usize,
}

pub fn tiling(n_tokens: usize, group: usize, head_dim: usize) -> AttentionTiling {
    let head_dim = head_dim.clamp(2, MAX_HEAD_DIM);
    // R must be a power of two (WG / R invocations score each row) with R * HD <= Q_TILE.
    let cap = 1 << (Q_TILE / head_dim).min(16).ilog2();
    // Decode has only `group` rows per kv head: a smaller R leaves fewer rows idle.
    let rows = (n_tokens * group).max(1).next_power_of_two().min(cap);
    let keys = (KV_TILE / (head_dim + 1)).min(64);
    AttentionTiling {
        rows,
        keys,
        row_blocks: (n_tokens * group).div_ceil(rows),
    }
}

/// Key-range splits for a batch: one when there are already enough workgroups (prompts),
/// else enough to give a GPU a few hundred workgroups, each at least ~256 cache slots long.
/// A heuristic to tune on real GPUs; any value in 1..=MAX_SPLITS gives the same result.
pub fn auto_splits(
    n_tokens: usize,
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
    ctx: usize,
) -> usize {
    let n_kv_heads = n_kv_heads.max(1);
    let blocks = n_kv_heads * tiling(n_tokens, n_heads / n_kv_heads, head_dim).row_blocks;
    if blocks >= 128 {
        return 1;
    }
    ctx.div_ceil(256)
        .min(256usize.div_ceil(blocks.max(1)))
        .clamp(1, MAX_SPLITS)
}

/// Shapes of a valid attention call.
pub(crate) struct Shapes {
    pub t: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub ctx: usize,
    pub kv_f16: bool,
}

impl Shapes {
    /// Cost of a prompt-attention kernel that takes `n_row_blocks` row blocks per kv head
    /// (attention_prefill, attention_coop): each block reads K and V once at a full cache;
    /// causal flops (QK^T and PV) at position 0.
    pub(crate) fn prompt_cost(&self, n_row_blocks: usize) -> Cost {
        let kv_bytes = if self.kv_f16 { 2 } else { 4 };
        let rows = self.t * self.n_heads;
        Cost {
            bytes: (n_row_blocks * 2 * self.ctx * self.n_kv_heads * self.head_dim * kv_bytes
                + 2 * rows * self.head_dim * 4) as u64,
            flops: (2 * rows * self.t * self.head_dim) as u64,
        }
    }
}

fn shape_error(what: &str, want: &str, t: &Tensor) -> EngineError {
    EngineError::Shape {
        op: "attention",
        detail: format!("{what}: want {want}, got {:?} {:?}", t.elem, t.shape),
    }
}

pub(crate) fn check(
    q: &Tensor,
    k_cache: &Tensor,
    v_cache: &Tensor,
    out: &Tensor,
) -> Result<Shapes> {
    check_out(q, k_cache, v_cache, out, Elem::F32)
}

/// `check` with the output of type `out_elem` (f16 for attention_coop's f16 output).
pub(crate) fn check_out(
    q: &Tensor,
    k_cache: &Tensor,
    v_cache: &Tensor,
    out: &Tensor,
    out_elem: Elem,
) -> Result<Shapes> {
    let &[ctx, n_kv_heads, head_dim] = k_cache.shape.as_slice() else {
        return Err(shape_error(
            "k_cache",
            "[ctx, n_kv_heads, head_dim]",
            k_cache,
        ));
    };
    let kv_f16 = match k_cache.elem {
        Elem::F32 => false,
        Elem::F16 => true,
        _ => return Err(shape_error("k_cache", "F32 or F16", k_cache)),
    };
    if !head_dim.is_multiple_of(2)
        || head_dim == 0
        || head_dim > MAX_HEAD_DIM
        || ctx == 0
        || n_kv_heads == 0
    {
        return Err(shape_error(
            "k_cache",
            "[ctx > 0, n_kv_heads > 0, head_dim even and <= 256]",
            k_cache,
        ));
    }
    if v_cache.shape != k_cache.shape || v_cache.elem != k_cache.elem {
        return Err(shape_error(
            "v_cache",
            "the same type and shape as k_cache",
            v_cache,
        ));
    }
    let &[t, n_heads, qd] = q.shape.as_slice() else {
        return Err(shape_error("q", "[T, n_heads, head_dim]", q));
    };
    if q.elem != Elem::F32
        || qd != head_dim
        || t == 0
        || n_heads == 0
        || !n_heads.is_multiple_of(n_kv_heads)
    {
        return Err(shape_error(
            "q",
            &format!("F32 [T > 0, a multiple of {n_kv_heads} heads, {head_dim}]"),
            q,
        ));
    }
    if t > ctx {
        return Err(shape_error("q", &format!("at most ctx = {ctx} tokens"), q));
    }
    expect("attention", "out", out, out_elem, t * n_heads * head_dim)?;
    Ok(Shapes {
        t,
        n_heads,
        n_kv_heads,
        head_dim,
        ctx,
        kv_f16,
    })
}

/// Query rows per kv head (T * group) up to which `attention` takes the decode kernel.
pub const DECODE_MAX_ROWS: usize = 16;

/// out[T, n_heads, head_dim] = causal attention of q[T, n_heads, head_dim] (f32, after RoPE)
/// against cache slots 0 ..= step.pos + t of k_cache, v_cache [ctx, n_kv_heads, head_dim]
/// (both F32 or both F16), scale 1/sqrt(head_dim). The caches must already hold this batch's
/// rows (`kv_write` or `rope_kv` first). One dispatch: with head_dim a multiple of 4,
/// `attention_decode` (flash-decoding that follows step.pos) for up to `DECODE_MAX_ROWS`
/// query rows per kv head, else `attention_prefill`; other head dims take attention.wgsl
/// (split as `auto_splits` says, with a merge pass for decode).
pub fn attention(
    gpu: &Gpu,
    q: &Tensor,
    k_cache: &Tensor,
    v_cache: &Tensor,
    step: &wgpu::Buffer,
    out: &Tensor,
) -> Result<Vec<Dispatch>> {
    let s = check(q, k_cache, v_cache, out)?;
    if s.head_dim.is_multiple_of(4) {
        let rows = s.t * (s.n_heads / s.n_kv_heads);
        return if rows <= DECODE_MAX_ROWS {
            attention_decode(gpu, q, k_cache, v_cache, step, out)
        } else {
            Ok(vec![attention_prefill(
                gpu, q, k_cache, v_cache, step, out,
            )?])
        };
    }
    let splits = auto_splits(s.t, s.n_heads, s.n_kv_heads, s.head_dim, s.ctx);
    attention_with_splits(gpu, q, k_cache, v_cache, step, out, splits)
}

/// `attention` for one token, then its output in int8 blocks (`matvec::quantize_x8`'s layout;
/// xq: u32 [`int8_words`(n_heads * head_dim)]) for an int8 Wo mat-vec: quantised by
/// `attention_decode` (its merge, or a lone split) where it can (`supports_x8`), else by a `quantize_x8`
/// dispatch after `attention`.
///
/// [`int8_words`]: crate::ops::matvec::int8_words
pub fn attention_x8(
    gpu: &Gpu,
    q: &Tensor,
    k_cache: &Tensor,
    v_cache: &Tensor,
    step: &wgpu::Buffer,
    out: &Tensor,
    xq: &Tensor,
) -> Result<Vec<Dispatch>> {
    let s = check(q, k_cache, v_cache, out)?;
    let rows = s.t * (s.n_heads / s.n_kv_heads);
    // supports_x8 implies head_dim % 4 == 0, so `attention` would take attention_decode too.
    if rows <= DECODE_MAX_ROWS && supports_x8(gpu, s.t, s.n_heads, s.n_kv_heads, s.head_dim, s.ctx)
    {
        return attention_decode_x8(gpu, q, k_cache, v_cache, step, out, xq);
    }
    let mut ds = attention(gpu, q, k_cache, v_cache, step, out)?;
    let flat = out.reshaped(&[s.t * s.n_heads * s.head_dim]);
    ds.push(crate::ops::matvec::quantize_x8(gpu, &flat, xq)?);
    Ok(ds)
}

/// Whether decode attention over these shapes takes rope_kv's work (`attention_decode_rope`):
/// one token on the `attention_decode` path, head_dim a multiple of 8, and with an int8 output
/// (`int8`) only where it quantises its own output (`supports_x8`).
pub fn rope_fused(
    gpu: &Gpu,
    t: usize,
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
    ctx: usize,
    int8: bool,
) -> bool {
    crate::ops::attention_decode::rope_fusable(t, head_dim)
        && t * (n_heads / n_kv_heads.max(1)) <= DECODE_MAX_ROWS
        && (!int8 || supports_x8(gpu, t, n_heads, n_kv_heads, head_dim, ctx))
}

/// `attention` with an explicit number of key-range splits (1: one kernel, no merge pass).
pub fn attention_with_splits(
    gpu: &Gpu,
    q: &Tensor,
    k_cache: &Tensor,
    v_cache: &Tensor,
    step: &wgpu::Buffer,
    out: &Tensor,
    n_splits: usize,
) -> Result<Vec<Dispatch>> {
    let Shapes {
        t,
        n_heads,
        n_kv_heads,
        head_dim,
        ctx,
        kv_f16,
    } = check(q, k_cache, v_cache, out)?;
    if n_splits == 0 || n_splits > MAX_SPLITS {
        return Err(EngineError::Shape {
            op: "attention",
            detail: format!("n_splits: want 1..={MAX_SPLITS}, got {n_splits}"),
        });
    }

    let group = n_heads / n_kv_heads;
    let tl = tiling(t, group, head_dim);
    let params = AttentionParams {
        n_tokens: t as u32,
        n_heads: n_heads as u32,
        n_kv_heads: n_kv_heads as u32,
        ctx: ctx as u32,
        n_row_blocks: tl.row_blocks as u32,
        n_splits: n_splits as u32,
        scale: 1.0 / (head_dim as f32).sqrt(),
        _pad: 0,
    };
    let split = n_splits > 1;
    let pipeline = gpu.pipeline(
        &wgllama_shaders::ATTENTION,
        "main",
        &[
            ("WG", WG as f64),
            ("HD", head_dim as f64),
            ("R", tl.rows as f64),
            ("BK", tl.keys as f64),
            ("KV_F16", kv_f16 as u32 as f64),
        ],
    )?;
    let u = gpu.uniform("attention.params", &params);
    let rows = t * n_heads;
    // Split mode's partials: acc [n_splits, rows, head_dim] then (max, sum) [n_splits, rows, 2].
    let partials = if split {
        Some(gpu.storage(
            "attention.partials",
            (n_splits * rows * (head_dim + 2) * 4) as u64,
        )?)
    } else {
        None
    };
    let dst = partials.as_ref().unwrap_or(&out.buffer);
    let bind_group = gpu.bind(
        "attention",
        &pipeline,
        &[&u, step, &q.buffer, &k_cache.buffer, &v_cache.buffer, dst],
    );
    let workgroups = n_kv_heads * tl.row_blocks * n_splits;
    let kv_bytes = if kv_f16 { 2 } else { 4 };
    // Costs at a full cache (the most a step can cost): every row block reads K and V once.
    let mut dispatches = vec![Dispatch {
        label: "attention",
        idle_keys: 0,
        pipeline,
        bind_group,
        workgroups: grid(gpu, workgroups as u32),
        cost: Cost {
            bytes: (tl.row_blocks * 2 * ctx * n_kv_heads * head_dim * kv_bytes
                + 2 * rows * head_dim * 4) as u64,
            flops: (4 * rows * ctx * head_dim) as u64,
        },
    }];
    if let Some(partials) = &partials {
        dispatches.push(attention_merge(
            gpu, partials, out, n_splits, rows, head_dim,
        )?);
    }
    Ok(dispatches)
}
