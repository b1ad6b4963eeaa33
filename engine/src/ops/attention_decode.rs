//! `attention_decode.wgsl`: attention for decode steps (T = 1 or a few tokens), flash-decoding
//! whose work follows `step.pos`: the grid holds `max_splits` workgroups per row block, each
//! run cuts the live keys into chunks of at least `min_chunk`, workgroups past the live range
//! return at once, and the live splits are combined either by a second dispatch (`merge`, one
//! workgroup per row block, which returns at once when one split wrote the output) or, where
//! the device has @coherent storage buffers (`DecodeConfig::fold`), by the last live split of
//! each row block to finish, through an atomic ticket, in the same dispatch. (The first
//! session's ticket merge read stale partials on the H100 now and then: its partials binding
//! was not @coherent; examples/probe_ticket.rs.)
//! Subgroup shuffles where the adapter has them (`attention_decode_sg.wgsl`), workgroup memory
//! otherwise (`attention_decode_wg.wgsl`).

use crate::dispatch::{grid, Cost, Dispatch};
use crate::error::{EngineError, Result};
use crate::gpu::Gpu;
use crate::ops::attention::{check, Shapes};
use crate::ops::rope::RopeStyle;
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
    /// With an int8 copy of the output (`attention_decode_x8`): its length, n_heads * head_dim.
    pub xq_k: u32,
}

/// Row blocks (kv heads x blocks of query rows) up to which `DecodeConfig::pick` takes
/// shorter splits.
const FEW_BLOCKS: usize = 4;

/// Sizes of the kernel's workgroup arrays (see the WGSL).
const SM_QUADS: usize = 1024;
const SM_ROWS: usize = 256;

/// How attention_decode.wgsl runs: its override constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeConfig {
    /// Invocations per workgroup.
    pub wg: usize,
    /// Lanes sharing one key (a power of two; at most the subgroup size with subgroups).
    pub lanes: usize,
    /// Quads (4 dims) of a row per lane: 1 or 2; lanes * quads >= head_dim / 4.
    pub quads: usize,
    /// Groups of 4 query rows (token, head-in-group) per workgroup: 1 or 2.
    pub row_groups: usize,
    /// Keys per key group and batch: 1, 2 or 4.
    pub batch: usize,
    /// Workgroups along the key range per row block (the grid); a multiple of 8.
    pub max_splits: usize,
    /// Fewest keys per split; a multiple of the keys per batch.
    pub min_chunk: usize,
    /// Subgroup shuffles (else workgroup memory) for the lane sums.
    pub subgroups: bool,
    /// The merge folded into the split pass (the shader's FOLD): the last live split of a row
    /// block to finish merges, so no merge dispatch runs. Needs `fold_supported`.
    pub fold: bool,
}

impl DecodeConfig {
    /// Query rows per workgroup.
    pub fn rows(&self) -> usize {
        4 * self.row_groups
    }

    /// Keys one batch of the whole workgroup covers.
    pub fn keys_per_batch(&self) -> usize {
        self.wg / self.lanes.max(1) * self.batch
    }

    /// Whether the kernel's fixed arrays and assumptions hold for this head_dim and device.
    pub fn validate(&self, gpu: &Gpu, head_dim: usize) -> Result<()> {
        let hd4 = head_dim / 4;
        let kg = self.wg / self.lanes.max(1);
        let rows = self.rows();
        let pow2 = |x: usize| x.is_power_of_two();
        let sg_ok = !self.subgroups
            || (gpu.caps.subgroups
                && self.lanes <= gpu.caps.subgroup_size.0 as usize
                && gpu.caps.subgroup_size.1 > 0
                && self.wg.is_multiple_of(gpu.caps.subgroup_size.1 as usize));
        let ok = pow2(self.wg)
            && (32..=128).contains(&self.wg)
            && pow2(self.lanes)
            && self.lanes <= self.wg
            && (1..=2).contains(&self.quads)
            && self.lanes * self.quads >= hd4
            && (1..=2).contains(&self.row_groups)
            && rows < self.wg
            && matches!(self.batch, 1 | 2 | 4)
            && head_dim.is_multiple_of(4)
            && (4..=256).contains(&head_dim)
            && kg * rows <= SM_ROWS
            && kg * rows * hd4 <= SM_QUADS
            && self.max_splits >= 8
            && self.max_splits.is_multiple_of(8)
            && self.max_splits * rows <= SM_QUADS
            && self.min_chunk >= self.keys_per_batch()
            && self.min_chunk.is_multiple_of(self.keys_per_batch())
            && sg_ok;
        if !ok {
            return Err(EngineError::Shape {
                op: "attention_decode",
                detail: format!("config {self:?} does not fit head_dim {head_dim} on this device"),
            });
        }
        if self.fold && !fold_supported(gpu) {
            return Err(EngineError::Shape {
                op: "attention_decode",
                detail: format!(
                    "config {self:?} folds the merge, which needs @coherent storage buffers on \
                     Vulkan (this device: coherent {}, {:?})",
                    gpu.caps.coherent, gpu.info.backend
                ),
            });
        }
        Ok(())
    }

    /// The configuration for `n_rows` = T * group query rows per kv head.
    pub fn pick(
        gpu: &Gpu,
        n_rows: usize,
        head_dim: usize,
        n_kv_heads: usize,
        ctx: usize,
    ) -> DecodeConfig {
        let hd4 = (head_dim / 4).max(1);
        let (sg_min, sg_max) = (
            gpu.caps.subgroup_size.0 as usize,
            gpu.caps.subgroup_size.1 as usize,
        );
        // One quad per lane where a subgroup covers the row, else two; without usable
        // subgroups the lane sums go through workgroup memory (any power of two).
        let lanes_for = |quads: usize| hd4.div_ceil(quads).next_power_of_two();
        let sg_usable = |quads: usize| {
            gpu.caps.subgroups && sg_min >= 4 && sg_max <= 128 && lanes_for(quads) <= sg_min
        };
        let (quads, subgroups) = if sg_usable(1) {
            (1, true)
        } else if sg_usable(2) {
            (2, true)
        } else {
            (if hd4 <= 32 { 1 } else { 2 }, false)
        };
        let lanes = lanes_for(quads);
        let row_groups = if n_rows <= 4 { 1 } else { 2 };
        let rows = 4 * row_groups;
        let blocks = n_kv_heads.max(1) * n_rows.div_ceil(rows);
        // Few row blocks (TinyLlama's 4 kv heads, one token) leave a short context to a
        // handful of workgroups: there splits of 16 keys, two a key group per batch, spread it
        // over more (TinyLlama decode plain pass -2.1% Q4_K_M, -1.0% F16 on the H100;
        // attention alone -11% to +0.7% at 128-2048 keys, +1.4-5.8% at 4095:
        // benches/results/2026-11-25-h100-s19/). Llama-2-7B's 32 blocks lost with them.
        let few = blocks <= FEW_BLOCKS;
        // Four keys in flight per lane, two when each lane already holds four quad pairs.
        let batch = if quads * row_groups > 2 || few { 2 } else { 4 };
        let mut wg = 128;
        while wg > 32 && (wg / lanes * rows * hd4 > SM_QUADS || wg / lanes * rows > SM_ROWS) {
            wg /= 2;
        }
        let wg = wg
            .max(lanes.next_power_of_two())
            .max(sg_max.next_power_of_two());
        let kb = wg / lanes * batch;
        let fewest: usize = if few { 16 } else { 32 };
        let min_chunk = fewest.div_ceil(kb) * kb;
        // Enough workgroups to fill a large GPU at long contexts (~512), no more than the
        // context can use, and few enough that the merging workgroup's reads stay short.
        let useful = ctx.div_ceil(min_chunk).next_multiple_of(8);
        let max_splits = (512 / blocks)
            .next_multiple_of(8)
            .min(32)
            .min(useful)
            .min(SM_QUADS / rows / 8 * 8)
            .max(8);
        DecodeConfig {
            wg,
            lanes,
            quads,
            row_groups,
            batch,
            max_splits,
            min_chunk,
            subgroups,
            fold: fold_supported(gpu),
        }
    }
}

/// Whether the merge can be folded into the split pass on `gpu` (`DecodeConfig::fold`): the
/// partials binding can be @coherent (`Caps::coherent`), and the backend is Vulkan, where naga
/// makes WGSL's storageBarrier a device-scope release / acquire (Metal's threadgroup barrier,
/// for one, orders memory within a workgroup only). Measured on the H100 (Vulkan) and lavapipe.
pub fn fold_supported(gpu: &Gpu) -> bool {
    gpu.caps.coherent && gpu.info.backend == wgpu::Backend::Vulkan
}

/// Decode attention with the picked configuration; see `attention_decode_with`.
pub fn attention_decode(
    gpu: &Gpu,
    q: &Tensor,
    k_cache: &Tensor,
    v_cache: &Tensor,
    step: &wgpu::Buffer,
    out: &Tensor,
) -> Result<Vec<Dispatch>> {
    let s = check(q, k_cache, v_cache, out)?;
    attention_decode_with(gpu, q, k_cache, v_cache, step, out, picked(gpu, &s))
}

/// `DecodeConfig::pick` for these shapes (T * group query rows per kv head).
fn picked(gpu: &Gpu, s: &Shapes) -> DecodeConfig {
    let group = s.n_heads / s.n_kv_heads.max(1);
    DecodeConfig::pick(gpu, s.t * group, s.head_dim, s.n_kv_heads, s.ctx)
}

/// out[T, n_heads, head_dim] = causal attention of q (f32, after RoPE) against cache slots
/// 0 ..= step.pos + t of k_cache, v_cache [ctx, n_kv_heads, head_dim] (F32 or F16; head_dim a
/// multiple of 4), as `ops::attention::attention`, for any T (meant for T * group up to a few
/// dozen rows): one dispatch with `cfg.fold`, else the split pass and its merge. Owns its
/// partials (and tickets) buffers.
pub fn attention_decode_with(
    gpu: &Gpu,
    q: &Tensor,
    k_cache: &Tensor,
    v_cache: &Tensor,
    step: &wgpu::Buffer,
    out: &Tensor,
    cfg: DecodeConfig,
) -> Result<Vec<Dispatch>> {
    decode_dispatches(gpu, q, k_cache, v_cache, step, out, None, None, cfg)
}

/// Whether `attention_decode_x8` can quantise its output (in the merge pass, or in a lone live
/// split): one token, head_dim a multiple of 32 (int8 blocks stay inside a head), and the
/// picked block of rows staged in workgroup memory (R * head_dim / 4 <= 512 quads).
pub fn supports_x8(
    gpu: &Gpu,
    t: usize,
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
    ctx: usize,
) -> bool {
    let group = n_heads / n_kv_heads.max(1);
    x8_fits(
        &DecodeConfig::pick(gpu, t * group, head_dim, n_kv_heads, ctx),
        t,
        head_dim,
    )
}

fn x8_fits(cfg: &DecodeConfig, t: usize, head_dim: usize) -> bool {
    t == 1 && head_dim.is_multiple_of(32) && cfg.rows() * head_dim / 4 <= QX_QUADS
}

/// Checks an int8 output for `cfg`: it can quantise (`x8_fits`) and xq has the length.
fn check_x8(s: &Shapes, cfg: &DecodeConfig, xq: &Tensor) -> Result<()> {
    let op = "attention_decode_x8";
    if !x8_fits(cfg, s.t, s.head_dim) {
        return Err(EngineError::Shape {
            op,
            detail: format!(
                "T = {}, head_dim {}: needs one token and head_dim a multiple of 32, at most {} \
                 with {} rows per block",
                s.t,
                s.head_dim,
                QX_QUADS * 4 / cfg.rows(),
                cfg.rows()
            ),
        });
    }
    let words = crate::ops::matvec::int8_words(s.n_heads * s.head_dim);
    crate::ops::expect(op, "xq", xq, crate::tensor::Elem::U32, words)
}

/// Storage buffers attention_decode.wgsl's split pass binds (step, q, caches, out, partials,
/// xq, inv_freq, new k and v, tickets). (The tickets' binding is in the plain module too: its
/// code sits behind FOLD in the body. A build that moved it into the part files, so that only
/// the folding module binds 11, measured TinyLlama Q4_K_M's tg128 at 853 against 868-871 in one
/// A/B on the H100, within that model's run-to-run spread; not kept, not settled:
/// benches/results/2026-11-24-h100-s17/review/.)
const STORAGE_BUFFERS: u32 = 11;

/// Quads quantize_rows stages (attention_decode.wgsl: sm4 from QX_STAGE, smw twice).
const QX_QUADS: usize = 512;

/// `attention_decode` for one token whose merge pass also writes the output as int8 blocks
/// (`ops::matvec::quantize_x8`'s layout and rounding) into xq: u32 [`int8_words`(n_heads *
/// head_dim)], for an int8 Wo mat-vec with no quantise dispatch of its own. See `supports_x8`.
///
/// [`int8_words`]: crate::ops::matvec::int8_words
pub fn attention_decode_x8(
    gpu: &Gpu,
    q: &Tensor,
    k_cache: &Tensor,
    v_cache: &Tensor,
    step: &wgpu::Buffer,
    out: &Tensor,
    xq: &Tensor,
) -> Result<Vec<Dispatch>> {
    let s = check(q, k_cache, v_cache, out)?;
    let cfg = picked(gpu, &s);
    check_x8(&s, &cfg, xq)?;
    decode_dispatches(gpu, q, k_cache, v_cache, step, out, Some(xq), None, cfg)
}

/// rope_kv's work done by decode attention itself (one token): q [1, n_heads, head_dim] is
/// rotated as it is loaded (q's buffer is left as it was), and the split that holds the new key
/// rotates `k` and writes it, and `v` (both [1, n_kv_heads, head_dim] f32, before rotation), to
/// cache slot step.pos, as `rope_kv::rope_kv` would. Saves rope_kv's dispatch per layer.
#[derive(Clone, Copy, Debug)]
pub struct FusedRope<'a> {
    pub k: &'a Tensor,
    pub v: &'a Tensor,
    /// [head_dim / 2] f32, `wgllama_loaders::config::rope_inv_freqs`.
    pub inv_freq: &'a Tensor,
    pub style: RopeStyle,
}

impl FusedRope<'_> {
    /// attention_decode.wgsl's ROPE constant.
    fn mode(&self) -> u32 {
        match self.style {
            RopeStyle::RotateHalf => 1,
            RopeStyle::Interleaved => 2,
        }
    }

    fn check(&self, s: &Shapes) -> Result<()> {
        let op = "attention_decode (fused rope)";
        if !rope_fusable(s.t, s.head_dim) {
            return Err(EngineError::Shape {
                op,
                detail: format!(
                    "T = {}, head_dim {}: needs one token and head_dim a multiple of 8",
                    s.t, s.head_dim
                ),
            });
        }
        let kv = s.n_kv_heads * s.head_dim;
        crate::ops::expect(op, "k", self.k, crate::tensor::Elem::F32, kv)?;
        crate::ops::expect(op, "v", self.v, crate::tensor::Elem::F32, kv)?;
        crate::ops::expect(
            op,
            "inv_freq",
            self.inv_freq,
            crate::tensor::Elem::F32,
            s.head_dim / 2,
        )
    }
}

/// Whether decode attention can take rope_kv's work (`FusedRope`): one token, and head_dim a
/// multiple of 8 (a rotate-half partner quad is then a whole quad).
pub fn rope_fusable(t: usize, head_dim: usize) -> bool {
    t == 1 && head_dim.is_multiple_of(8)
}

/// `attention_decode` (with `xq`: `attention_decode_x8`) doing rope_kv's work too (`FusedRope`).
#[allow(clippy::too_many_arguments)]
pub fn attention_decode_rope(
    gpu: &Gpu,
    q: &Tensor,
    k_cache: &Tensor,
    v_cache: &Tensor,
    step: &wgpu::Buffer,
    out: &Tensor,
    xq: Option<&Tensor>,
    rope: &FusedRope<'_>,
) -> Result<Vec<Dispatch>> {
    let s = check(q, k_cache, v_cache, out)?;
    attention_decode_rope_with(
        gpu,
        q,
        k_cache,
        v_cache,
        step,
        out,
        xq,
        rope,
        picked(gpu, &s),
    )
}

/// `attention_decode_rope` with an explicit configuration (op tests).
#[allow(clippy::too_many_arguments)]
pub fn attention_decode_rope_with(
    gpu: &Gpu,
    q: &Tensor,
    k_cache: &Tensor,
    v_cache: &Tensor,
    step: &wgpu::Buffer,
    out: &Tensor,
    xq: Option<&Tensor>,
    rope: &FusedRope<'_>,
    cfg: DecodeConfig,
) -> Result<Vec<Dispatch>> {
    let s = check(q, k_cache, v_cache, out)?;
    rope.check(&s)?;
    if let Some(xq) = xq {
        check_x8(&s, &cfg, xq)?;
    }
    decode_dispatches(gpu, q, k_cache, v_cache, step, out, xq, Some(rope), cfg)
}

#[allow(clippy::too_many_arguments)]
fn decode_dispatches(
    gpu: &Gpu,
    q: &Tensor,
    k_cache: &Tensor,
    v_cache: &Tensor,
    step: &wgpu::Buffer,
    out: &Tensor,
    xq: Option<&Tensor>,
    rope: Option<&FusedRope<'_>>,
    cfg: DecodeConfig,
) -> Result<Vec<Dispatch>> {
    let s = check(q, k_cache, v_cache, out)?;
    cfg.validate(gpu, s.head_dim)?;
    if let Some(r) = rope {
        r.check(&s)?;
    }
    // The split pass binds 11 storage buffers whatever its constants (bindings behind a
    // constant-false branch stay in the layout): more than WebGPU's guaranteed 8.
    let storage = gpu.limits.max_storage_buffers_per_shader_stage;
    if storage < STORAGE_BUFFERS {
        return Err(EngineError::Shape {
            op: "attention_decode",
            detail: format!(
                "needs {STORAGE_BUFFERS} storage buffers per shader stage, the adapter allows {storage}"
            ),
        });
    }
    let group = s.n_heads / s.n_kv_heads;
    let rows_per_block = cfg.rows();
    let n_row_blocks = (s.t * group).div_ceil(rows_per_block);
    let blocks = s.n_kv_heads * n_row_blocks;
    let hd4 = s.head_dim / 4;
    // Each split's records padded to whole 128-byte lines (8 quads), as the shader's RS / MLS.
    let acc_quads = blocks * cfg.max_splits * (rows_per_block * hd4).next_multiple_of(8);
    let ml_quads = blocks * cfg.max_splits * rows_per_block.next_multiple_of(8);
    let params = AttentionDecodeParams {
        n_tokens: s.t as u32,
        n_heads: s.n_heads as u32,
        n_kv_heads: s.n_kv_heads as u32,
        ctx: s.ctx as u32,
        n_row_blocks: n_row_blocks as u32,
        scale: 1.0 / (s.head_dim as f32).sqrt(),
        ml_base: acc_quads as u32,
        xq_k: (s.n_heads * s.head_dim) as u32,
    };
    let shader = match (cfg.subgroups, cfg.fold) {
        (true, false) => &wgllama_shaders::ATTENTION_DECODE_SG,
        (false, false) => &wgllama_shaders::ATTENTION_DECODE_WG,
        (true, true) => &wgllama_shaders::ATTENTION_DECODE_SG_FOLD,
        (false, true) => &wgllama_shaders::ATTENTION_DECODE_WG_FOLD,
    };
    let constants = [
        ("WG", cfg.wg as f64),
        ("HD", s.head_dim as f64),
        ("L", cfg.lanes as f64),
        ("NV", cfg.quads as f64),
        ("RG", cfg.row_groups as f64),
        ("B", cfg.batch as f64),
        ("S_MAX", cfg.max_splits as f64),
        ("CH_MIN", cfg.min_chunk as f64),
        ("KV_F16", s.kv_f16 as u32 as f64),
        ("QX", xq.is_some() as u32 as f64),
        ("ROPE", rope.map_or(0, |r| r.mode()) as f64),
        ("FOLD", cfg.fold as u32 as f64),
    ];
    let pipeline = gpu.pipeline(shader, "main", &constants)?;
    let u = gpu.uniform("attention_decode.params", &params);
    let part = gpu.storage(
        "attention_decode.partials",
        ((acc_quads + ml_quads) * 16) as u64,
    )?;
    // FOLD: a ticket per row block (binding 11), zero as created (wgpu zeroes new buffers);
    // the merging split resets its block's. Without FOLD the partials stand in, unused.
    let tickets = if cfg.fold {
        Some(gpu.storage("attention_decode.tickets", (blocks * 4) as u64)?)
    } else {
        None
    };
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
            xq.map_or(&part, |t| &t.buffer),
            rope.map_or(&q.buffer, |r| &r.inv_freq.buffer),
            rope.map_or(&q.buffer, |r| &r.k.buffer),
            rope.map_or(&q.buffer, |r| &r.v.buffer),
            tickets.as_ref().unwrap_or(&part),
        ],
    );
    let kv_bytes = if s.kv_f16 { 2 } else { 4 };
    let rows = s.t * s.n_heads;
    // The merge: at most every split's partials, read once, and the output (and xq) written.
    let merge_cost = Cost {
        bytes: ((acc_quads + ml_quads) * 16 + rows * s.head_dim * 4) as u64
            + xq.map_or(0, |t| t.buffer.size()),
        flops: (2 * rows * cfg.max_splits * s.head_dim) as u64,
    };
    let split_cost = Cost {
        // At a full cache: each row block reads K and V once.
        bytes: (n_row_blocks * 2 * s.ctx * s.n_kv_heads * s.head_dim * kv_bytes
            + 2 * rows * s.head_dim * 4) as u64,
        flops: (4 * rows * s.ctx * s.head_dim) as u64,
    };
    let main = Dispatch {
        label: "attention_decode",
        idle_keys: 0,
        pipeline,
        bind_group,
        workgroups: grid(gpu, (blocks * cfg.max_splits) as u32),
        cost: if cfg.fold {
            Cost {
                bytes: split_cost.bytes + merge_cost.bytes,
                flops: split_cost.flops + merge_cost.flops,
            }
        } else {
            split_cost
        },
    };
    if cfg.fold {
        // The last live split of each row block merges: no merge dispatch.
        return Ok(vec![main]);
    }
    let merge_pipeline = gpu.pipeline(shader, "merge", &constants)?;
    // The merge reads only params, step, the partials and writes out and xq: bindings 0, 1,
    // 5, 6, 7. (xq's binding stays in both layouts with QX off: the partials stand in, unused.)
    let merge_bind_group = gpu.bind_at(
        "attention_decode.merge",
        &merge_pipeline,
        &[
            (0, &u),
            (1, step),
            (5, &out.buffer),
            (6, &part),
            (7, xq.map_or(&part, |t| &t.buffer)),
        ],
    );
    let merge = Dispatch {
        label: "attention_decode_merge",
        // n_keys <= CH_MIN: one live split, which wrote the output itself.
        idle_keys: cfg.min_chunk,
        pipeline: merge_pipeline,
        bind_group: merge_bind_group,
        workgroups: grid(gpu, blocks as u32),
        cost: merge_cost,
    };
    Ok(vec![main, merge])
}
