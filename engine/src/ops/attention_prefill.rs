//! `attention_prefill.wgsl`: causal GQA attention for prompt chunks, register-tiled f32
//! (online softmax, no score matrix), one dispatch.

use crate::dispatch::{grid, Dispatch};
use crate::error::{EngineError, Result};
use crate::gpu::Gpu;
use crate::ops::attention::check;
use crate::tensor::Tensor;

/// Mirrors `Params` in attention_prefill.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct AttentionPrefillParams {
    pub n_tokens: u32,
    pub n_heads: u32,
    pub n_kv_heads: u32,
    pub ctx: u32,
    pub n_row_blocks: u32,
    pub n_pairs: u32,
    pub scale: f32,
    pub _pad: u32,
}

/// Workgroup-memory quads of each of the kernel's two arrays.
const BUF_QUADS: usize = 1024;
/// Keys per tile (BC) and invocations across a tile (TX).
const BC: usize = 64;
const TX: usize = 16;

/// How attention_prefill.wgsl runs: its override constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrefillConfig {
    /// Query rows per block: 32 or 64 (128 or 256 invocations).
    pub rows: usize,
    /// Head dims per score chunk (a multiple of 4).
    pub kc: usize,
    /// Keys per value chunk (divides 64).
    pub vc: usize,
}

impl PrefillConfig {
    pub fn validate(&self, head_dim: usize) -> Result<()> {
        let wg = self.rows / 4 * TX;
        let hd4 = head_dim / 4;
        let ok = (self.rows == 32 || self.rows == 64)
            && head_dim.is_multiple_of(4)
            && (4..=256).contains(&head_dim)
            && self.kc >= 4
            && self.kc.is_multiple_of(4)
            && self.kc * (self.rows + BC) <= 4 * BUF_QUADS
            && (self.rows * self.kc / 4).div_ceil(wg) <= 2
            && (BC * self.kc / 4).div_ceil(wg) <= 2
            && self.vc >= 1
            && BC.is_multiple_of(self.vc)
            && self.vc * hd4 <= BUF_QUADS
            && (self.vc * hd4).div_ceil(wg) <= 2
            && hd4.div_ceil(TX) <= 4
            && BC * self.rows / 4 <= BUF_QUADS;
        if ok {
            Ok(())
        } else {
            Err(EngineError::Shape {
                op: "attention_prefill",
                detail: format!("config {self:?} does not fit head_dim {head_dim}"),
            })
        }
    }

    /// 64-row blocks when their workgroups (two blocks each) reach ~128, else 32; 16-dim
    /// score chunks; the largest value chunk that fits.
    pub fn pick(n_rows: usize, n_kv_heads: usize, head_dim: usize) -> PrefillConfig {
        let rows = if n_rows.div_ceil(64).div_ceil(2) * n_kv_heads >= 128 {
            64
        } else {
            32
        };
        let mut cfg = PrefillConfig {
            rows,
            kc: 16,
            vc: 32,
        };
        while cfg.vc > 1 && cfg.validate(head_dim).is_err() {
            cfg.vc /= 2;
        }
        cfg
    }
}

/// Prompt attention with the picked configuration; see `attention_prefill_with`.
pub fn attention_prefill(
    gpu: &Gpu,
    q: &Tensor,
    k_cache: &Tensor,
    v_cache: &Tensor,
    step: &wgpu::Buffer,
    out: &Tensor,
) -> Result<Dispatch> {
    let s = check(q, k_cache, v_cache, out)?;
    let cfg = PrefillConfig::pick(s.t * (s.n_heads / s.n_kv_heads), s.n_kv_heads, s.head_dim);
    attention_prefill_with(gpu, q, k_cache, v_cache, step, out, cfg)
}

/// out[T, n_heads, head_dim] = causal attention of q (f32, after RoPE) against cache slots
/// 0 ..= step.pos + t of k_cache, v_cache [ctx, n_kv_heads, head_dim] (F32 or F16; head_dim a
/// multiple of 4, <= 256), as `ops::attention::attention`.
pub fn attention_prefill_with(
    gpu: &Gpu,
    q: &Tensor,
    k_cache: &Tensor,
    v_cache: &Tensor,
    step: &wgpu::Buffer,
    out: &Tensor,
    cfg: PrefillConfig,
) -> Result<Dispatch> {
    let s = check(q, k_cache, v_cache, out)?;
    cfg.validate(s.head_dim)?;
    let group = s.n_heads / s.n_kv_heads;
    let n_row_blocks = (s.t * group).div_ceil(cfg.rows);
    let n_pairs = n_row_blocks.div_ceil(2);
    let params = AttentionPrefillParams {
        n_tokens: s.t as u32,
        n_heads: s.n_heads as u32,
        n_kv_heads: s.n_kv_heads as u32,
        ctx: s.ctx as u32,
        n_row_blocks: n_row_blocks as u32,
        n_pairs: n_pairs as u32,
        scale: 1.0 / (s.head_dim as f32).sqrt(),
        _pad: 0,
    };
    let pipeline = gpu.pipeline(
        &wgllama_shaders::ATTENTION_PREFILL,
        "main",
        &[
            ("BR", cfg.rows as f64),
            ("HD", s.head_dim as f64),
            ("KC", cfg.kc as f64),
            ("VC", cfg.vc as f64),
            ("KV_F16", s.kv_f16 as u32 as f64),
        ],
    )?;
    let u = gpu.uniform("attention_prefill.params", &params);
    let bind_group = gpu.bind(
        "attention_prefill",
        &pipeline,
        &[
            &u,
            step,
            &q.buffer,
            &k_cache.buffer,
            &v_cache.buffer,
            &out.buffer,
        ],
    );
    Ok(Dispatch {
        label: "attention_prefill",
        idle_keys: 0,
        pipeline,
        bind_group,
        workgroups: grid(gpu, (s.n_kv_heads * n_pairs) as u32),
        cost: s.prompt_cost(n_row_blocks),
    })
}
