//! `attention_decode.wgsl`: attention for decode steps (T = 1 or a few tokens) in one dispatch,
//! flash-decoding whose work follows `step.pos`: the grid holds `max_splits` workgroups per
//! row block, each run cuts the live keys into chunks of at least `min_chunk`, workgroups past
//! the live range return at once, and the last split of a row block to finish merges the
//! others (an atomic ticket) — no second pass. Subgroup shuffles where the adapter has them
//! (`attention_decode_sg.wgsl`), workgroup memory otherwise (`attention_decode_wg.wgsl`).

use crate::dispatch::{grid, Cost, Dispatch};
use crate::error::{EngineError, Result};
use crate::gpu::Gpu;
use crate::ops::attention::check;
use crate::tensor::Tensor;

/// Mirrors `Params` in attention_decode.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct AttentionDecodeParams {
    pub n_tokens: u32,
    pub n_heads: u32,
    pub n_kv_heads: u32,
    pub ctx: u32,
    pub n_row_blocks: u32,
    pub scale: f32,
    pub ml_base: u32,
    pub _pad: u32,
}

/// Sizes of the kernel's register and workgroup arrays (see the WGSL).
const REG_QUADS: usize = 8;
const SCORES: usize = 32;
const SM_FLOATS: usize = 4096;
const SM_ROWS: usize = 256;
const MAX_ROWS: usize = 16;

/// How attention_decode.wgsl runs: its override constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeConfig {
    /// Invocations per workgroup.
    pub wg: usize,
    /// Lanes sharing one key (a power of two; at most the subgroup size with subgroups).
    pub lanes: usize,
    /// Query rows (token, head-in-group) per workgroup: a power of two <= 16.
    pub rows: usize,
    /// Keys per key group and batch.
    pub batch: usize,
    /// Workgroups along the key range per row block (the grid); a multiple of 8.
    pub max_splits: usize,
    /// Fewest keys per split; a multiple of the keys per batch.
    pub min_chunk: usize,
    /// Subgroup shuffles (else workgroup memory) for the lane sums.
    pub subgroups: bool,
}

impl DecodeConfig {
    /// Keys one batch of the whole workgroup covers.
    pub fn keys_per_batch(&self) -> usize {
        self.wg / self.lanes * self.batch
    }

    /// Quads (4 dims) of a row each lane holds.
    fn quads_per_lane(&self, head_dim: usize) -> usize {
        (head_dim / 4).div_ceil(self.lanes)
    }

    /// Whether the kernel's fixed arrays and assumptions hold for this head_dim and device.
    pub fn validate(&self, gpu: &Gpu, head_dim: usize) -> Result<()> {
        let nv = self.quads_per_lane(head_dim);
        let kg = self.wg / self.lanes.max(1);
        let pow2 = |x: usize| x.is_power_of_two();
        let sg_ok = !self.subgroups
            || (gpu.caps.subgroups
                && self.lanes <= gpu.caps.subgroup_size.0 as usize
                && gpu.caps.subgroup_size.1 > 0
                && self.wg.is_multiple_of(gpu.caps.subgroup_size.1 as usize));
        let ok = pow2(self.wg)
            && (32..=256).contains(&self.wg)
            && pow2(self.lanes)
            && self.lanes <= self.wg
            && pow2(self.rows)
            && self.rows <= MAX_ROWS
            && self.rows < self.wg
            && self.batch >= 1
            && head_dim.is_multiple_of(4)
            && head_dim <= 256
            && self.rows * nv <= REG_QUADS
            && self.batch * nv <= REG_QUADS
            && self.batch * self.rows <= SCORES
            && kg * self.rows <= SM_ROWS
            && self.wg * self.batch * self.rows <= SM_FLOATS
            && kg * self.rows * head_dim <= SM_FLOATS
            && self.max_splits >= 8
            && self.max_splits.is_multiple_of(8)
            && self.max_splits * self.rows + 4 * self.wg <= SM_FLOATS
            && self.min_chunk >= self.keys_per_batch()
            && self.min_chunk.is_multiple_of(self.keys_per_batch())
            && sg_ok;
        if ok {
            Ok(())
        } else {
            Err(EngineError::Shape {
                op: "attention_decode",
                detail: format!("config {self:?} does not fit head_dim {head_dim} on this device"),
            })
        }
    }

    /// The configuration for `n_rows` = T * group query rows per kv head.
    pub fn pick(
        gpu: &Gpu,
        n_rows: usize,
        head_dim: usize,
        n_kv_heads: usize,
        ctx: usize,
    ) -> DecodeConfig {
        let wg = 128;
        let (sg_min, sg_max) = gpu.caps.subgroup_size;
        let subgroups = gpu.caps.subgroups
            && sg_min >= 4
            && (sg_max as usize) <= wg
            && wg.is_multiple_of(sg_max.max(1) as usize);
        let max_lanes = if subgroups { sg_min as usize } else { 32 };
        let hd4 = (head_dim / 4).max(1);
        // Most rows per workgroup (fewest re-reads of K/V) whose q and accumulators fit the
        // registers; then the fewest lanes per key with at most 4 quads per lane.
        let mut rows = n_rows.clamp(1, MAX_ROWS).next_power_of_two();
        let lanes = loop {
            let fits = (0..=max_lanes.ilog2()).map(|e| 1usize << e).find(|&l| {
                let nv = hd4.div_ceil(l);
                rows * nv <= REG_QUADS && nv <= 4
            });
            match fits {
                Some(l) => break l,
                None if rows > 1 => rows /= 2,
                None => break max_lanes,
            }
        };
        let nv = hd4.div_ceil(lanes);
        let batch = (REG_QUADS / nv).min(SCORES / rows).clamp(1, 4);
        let kb = wg / lanes * batch;
        let min_chunk = 64usize.div_ceil(kb) * kb;
        let blocks = n_kv_heads.max(1) * n_rows.div_ceil(rows);
        // Enough workgroups to fill a large GPU at long contexts, no more than the context
        // can use, and few enough that the merging workgroup's reads stay short.
        let useful = ctx.div_ceil(min_chunk).next_multiple_of(8);
        let max_splits = (512 / blocks)
            .next_multiple_of(8)
            .min(64)
            .min(useful)
            .min((SM_FLOATS - 4 * wg) / rows / 8 * 8)
            .max(8);
        DecodeConfig {
            wg,
            lanes,
            rows,
            batch,
            max_splits,
            min_chunk,
            subgroups,
        }
    }
}

/// Decode attention with the picked configuration; see `attention_decode_with`.
pub fn attention_decode(
    gpu: &Gpu,
    q: &Tensor,
    k_cache: &Tensor,
    v_cache: &Tensor,
    step: &wgpu::Buffer,
    out: &Tensor,
) -> Result<Dispatch> {
    let s = check(q, k_cache, v_cache, out)?;
    let group = s.n_heads / s.n_kv_heads;
    let cfg = DecodeConfig::pick(gpu, s.t * group, s.head_dim, s.n_kv_heads, s.ctx);
    attention_decode_with(gpu, q, k_cache, v_cache, step, out, cfg)
}

/// out[T, n_heads, head_dim] = causal attention of q (f32, after RoPE) against cache slots
/// 0 ..= step.pos + t of k_cache, v_cache [ctx, n_kv_heads, head_dim] (F32 or F16; head_dim a
/// multiple of 4), as `ops::attention::attention`, in one dispatch for any T (meant for T *
/// group up to a few dozen rows). Owns its partials and tickets buffers.
pub fn attention_decode_with(
    gpu: &Gpu,
    q: &Tensor,
    k_cache: &Tensor,
    v_cache: &Tensor,
    step: &wgpu::Buffer,
    out: &Tensor,
    cfg: DecodeConfig,
) -> Result<Dispatch> {
    let s = check(q, k_cache, v_cache, out)?;
    cfg.validate(gpu, s.head_dim)?;
    let group = s.n_heads / s.n_kv_heads;
    let n_row_blocks = (s.t * group).div_ceil(cfg.rows);
    let blocks = s.n_kv_heads * n_row_blocks;
    let hd4 = s.head_dim / 4;
    let acc_quads = blocks * cfg.max_splits * cfg.rows * hd4;
    let ml_quads = blocks * cfg.max_splits * cfg.rows;
    let params = AttentionDecodeParams {
        n_tokens: s.t as u32,
        n_heads: s.n_heads as u32,
        n_kv_heads: s.n_kv_heads as u32,
        ctx: s.ctx as u32,
        n_row_blocks: n_row_blocks as u32,
        scale: 1.0 / (s.head_dim as f32).sqrt(),
        ml_base: acc_quads as u32,
        _pad: 0,
    };
    let shader = if cfg.subgroups {
        &wgllama_shaders::ATTENTION_DECODE_SG
    } else {
        &wgllama_shaders::ATTENTION_DECODE_WG
    };
    let pipeline = gpu.pipeline(
        shader,
        "main",
        &[
            ("WG", cfg.wg as f64),
            ("HD", s.head_dim as f64),
            ("L", cfg.lanes as f64),
            ("R", cfg.rows as f64),
            ("B", cfg.batch as f64),
            ("S_MAX", cfg.max_splits as f64),
            ("CH_MIN", cfg.min_chunk as f64),
            ("KV_F16", s.kv_f16 as u32 as f64),
        ],
    )?;
    let u = gpu.uniform("attention_decode.params", &params);
    let part = gpu.storage(
        "attention_decode.partials",
        ((acc_quads + ml_quads) * 16) as u64,
    )?;
    // Zero-filled by wgpu at creation; every merge leaves its ticket at 0 again.
    let tickets = gpu.storage("attention_decode.tickets", (blocks * 4) as u64)?;
    let bind_group = gpu.bind(
        "attention_decode",
        &pipeline,
        &[
            &u,
            step,
            &q.buffer,
            &k_cache.buffer,
            &v_cache.buffer,
            &out.buffer,
            &part,
            &tickets,
        ],
    );
    let kv_bytes = if s.kv_f16 { 2 } else { 4 };
    let rows = s.t * s.n_heads;
    Ok(Dispatch {
        label: "attention_decode",
        pipeline,
        bind_group,
        workgroups: grid(gpu, (blocks * cfg.max_splits) as u32),
        // At a full cache: each row block reads K and V once.
        cost: Cost {
            bytes: (n_row_blocks * 2 * s.ctx * s.n_kv_heads * s.head_dim * kv_bytes
                + 2 * rows * s.head_dim * 4) as u64,
            flops: (4 * rows * s.ctx * s.head_dim) as u64,
        },
    })
}
