//! `attention_coop.wgsl`: causal GQA prompt attention on cooperative matrices (tensor cores),
//! flash-style (online softmax, no score matrix), one dispatch.
//!
//! q (scaled), k, the softmax weights p and v are rounded to f16 before the products (sums stay
//! f32): an opt-in precision choice like `matmul_coop`, taken on `Precision::Fast` only.

use crate::dispatch::{grid, Dispatch};
use crate::error::{EngineError, Result};
use crate::gpu::Gpu;
use crate::ops::attention::check_out;
use crate::ops::matmul_coop::coop_available;
use crate::tensor::{Elem, Tensor};

const OP: &str = "attention_coop";

/// Mirrors `Params` in attention_coop.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct AttentionCoopParams {
    pub n_tokens: u32,
    pub n_heads: u32,
    pub n_kv_heads: u32,
    pub ctx: u32,
    pub n_row_blocks: u32,
    pub scale: f32,
    pub _pad: [u32; 2],
}

/// Query rows per workgroup (4 subgroups of 16) and invocations (4 subgroups of 32).
const BR: usize = 64;
const LANES: usize = 128;

/// Workgroup memory of the kernel for head_dim `hd`, `bc` keys per tile and q rows of `ldq`
/// f16: K and V tiles (f16, rows padded by 8), q (f16), scores (f32, rows padded by 4) and p
/// (f16) of 64 rows, and the vote (4 floats after the scores).
pub fn workgroup_bytes(hd: usize, bc: usize, ldq: usize) -> usize {
    2 * bc * (hd + 8) * 2 + BR * ldq * 2 + BR * (bc + 4) * 4 + 16 + BR * (bc + 8) * 2
}

/// The q row stride (f16) for `bc` keys per tile within `limit` bytes of workgroup memory:
/// padded by 8 (spreads the rows over the banks) where that fits, else unpadded (head_dim 128
/// with 32 keys misses 48 KiB by 16 bytes padded); None if neither fits.
pub fn q_stride(hd: usize, bc: usize, limit: usize) -> Option<usize> {
    [hd + 8, hd]
        .into_iter()
        .find(|&ldq| workgroup_bytes(hd, bc, ldq) <= limit)
}

/// Keys per tile: 32 (on the H100, T = 512, 1.05-1.4x faster than 64 in the first version's
/// bench, `benches/results/2026-11-23-h100-s4/`), or 64 where 32 does not fit (never, for
/// head dims up to 128 in 48 KiB).
pub fn keys_per_tile(hd: usize, limit: usize) -> usize {
    if q_stride(hd, 32, limit).is_some() {
        32
    } else {
        64
    }
}

/// Whether `attention_coop` runs this shape on this device: cooperative matrices as
/// `matmul_coop` needs them, 32-lane subgroups (the softmax gives each row 2 lanes), head_dim a
/// multiple of 16 up to 128 (the kernel keeps at most 8 tiles of q and of the output per
/// subgroup).
pub fn supports(gpu: &Gpu, head_dim: usize) -> bool {
    coop_available(gpu)
        && gpu.caps.subgroup_size == (32, 32)
        && head_dim.is_multiple_of(16)
        && (16..=128).contains(&head_dim)
        && q_stride(
            head_dim,
            32,
            gpu.limits.max_compute_workgroup_storage_size as usize,
        )
        .is_some()
        && LANES <= gpu.limits.max_compute_invocations_per_workgroup as usize
}

/// out[T, n_heads, head_dim] = causal attention of q (f32, after RoPE) against cache slots
/// 0 ..= step.pos + t of k_cache, v_cache [ctx, n_kv_heads, head_dim] (F32 or F16), as
/// `ops::attention::attention`, on tensor cores. `EngineError::Unsupported` where
/// `!supports(gpu, head_dim)`.
pub fn attention_coop(
    gpu: &Gpu,
    q: &Tensor,
    k_cache: &Tensor,
    v_cache: &Tensor,
    step: &wgpu::Buffer,
    out: &Tensor,
) -> Result<Dispatch> {
    let s = check_out(q, k_cache, v_cache, out, out_elem(out))?;
    let limit = gpu.limits.max_compute_workgroup_storage_size as usize;
    attention_coop_with(
        gpu,
        q,
        k_cache,
        v_cache,
        step,
        out,
        keys_per_tile(s.head_dim, limit),
        Q_IN_REGISTERS,
    )
}

/// The output's type: f32, or f16 where the caller passes an f16 tensor (the input of a
/// tensor-core Wo, which then needs no `to_f16` pass).
fn out_elem(out: &Tensor) -> Elem {
    if out.elem == Elem::F16 {
        Elem::F16
    } else {
        Elem::F32
    }
}

/// Whether the kernel keeps each subgroup's q tiles in registers across the key loop (the
/// shader's QREG) rather than re-loading them from workgroup memory for every score tile.
pub const Q_IN_REGISTERS: bool = true;

/// `attention_coop` with an explicit number of keys per tile (32 or 64) and q tiles kept in
/// registers or re-loaded (`q_regs`).
#[allow(clippy::too_many_arguments)]
pub fn attention_coop_with(
    gpu: &Gpu,
    q: &Tensor,
    k_cache: &Tensor,
    v_cache: &Tensor,
    step: &wgpu::Buffer,
    out: &Tensor,
    keys: usize,
    q_regs: bool,
) -> Result<Dispatch> {
    let s = check_out(q, k_cache, v_cache, out, out_elem(out))?;
    if !supports(gpu, s.head_dim) {
        return Err(EngineError::Unsupported {
            op: OP,
            detail: format!(
                "needs cooperative matrices 16x16x16 f16 -> f32, f16 shaders and subgroups of \
                 32 lanes (subgroups {:?}), head_dim a multiple of 16 up to 128 (got {})",
                gpu.caps.subgroup_size, s.head_dim
            ),
            adapter: gpu.info.name.clone(),
        });
    }
    let limit = gpu.limits.max_compute_workgroup_storage_size as usize;
    let ldq = match q_stride(s.head_dim, keys, limit) {
        Some(ldq) if keys == 32 || keys == 64 => ldq,
        _ => {
            return Err(EngineError::Shape {
                op: OP,
                detail: format!(
                    "{keys} keys per tile: want 32 or 64 within {limit} B of workgroup memory \
                     (needs {})",
                    workgroup_bytes(s.head_dim, keys, s.head_dim)
                ),
            })
        }
    };
    let group = s.n_heads / s.n_kv_heads;
    let n_row_blocks = (s.t * group).div_ceil(BR);
    let params = AttentionCoopParams {
        n_tokens: s.t as u32,
        n_heads: s.n_heads as u32,
        n_kv_heads: s.n_kv_heads as u32,
        ctx: s.ctx as u32,
        n_row_blocks: n_row_blocks as u32,
        scale: 1.0 / (s.head_dim as f32).sqrt(),
        _pad: [0; 2],
    };
    let pipeline = gpu.pipeline(
        &wgllama_shaders::ATTENTION_COOP,
        "main",
        &[
            ("HD", s.head_dim as f64),
            ("BC", keys as f64),
            ("KV_F16", s.kv_f16 as u32 as f64),
            ("LDQ", ldq as f64),
            ("QREG", q_regs as u32 as f64),
            ("O16", (out.elem == Elem::F16) as u32 as f64),
        ],
    )?;
    let u = gpu.uniform("attention_coop.params", &params);
    let bind_group = gpu.bind(
        OP,
        &pipeline,
        &[
            &u,
            step,
            &q.buffer,
            &k_cache.buffer,
            &v_cache.buffer,
            &out.buffer,
            &out.buffer, // the f16 slot (O16) or unused
        ],
    );
    Ok(Dispatch {
        label: OP,
        idle_keys: 0,
        pipeline,
        bind_group,
        workgroups: grid(gpu, (n_row_blocks * s.n_kv_heads) as u32),
        cost: s.prompt_cost(n_row_blocks),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layouts the H100 runs (48 KiB of workgroup memory): head_dim 64 with padded q rows,
    /// 128 only with unpadded ones, and 32 keys per tile for both.
    #[test]
    fn layouts_fit_48_kib() {
        let limit = 48 << 10;
        assert_eq!(q_stride(64, 32, limit), Some(72));
        assert_eq!(q_stride(128, 32, limit), Some(128));
        assert_eq!(q_stride(128, 64, limit), None);
        assert_eq!(keys_per_tile(128, limit), 32);
        // The arrays of attention_coop.wgsl for head_dim 64, 32 keys: K+V, q, scores + vote, p.
        assert_eq!(
            workgroup_bytes(64, 32, 72),
            2 * 32 * 72 * 2 + 64 * 72 * 2 + (4 * 16 * 36 + 4) * 4 + 4 * 16 * 40 * 2
        );
    }
}
