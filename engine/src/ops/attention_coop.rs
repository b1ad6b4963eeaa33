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

/// Workgroup memory of the kernel's `Staged` layout for head_dim `hd`, `bc` keys per tile
/// and q rows of `ldq` f16: K and V tiles (f16, rows padded by 8), q (f16), scores (f32, rows
/// padded by 4) and p (f16) of 64 rows, and the vote (4 floats after the scores).
pub fn workgroup_bytes(hd: usize, bc: usize, ldq: usize) -> usize {
    2 * bc * (hd + 8) * 2 + BR * ldq * 2 + scores_bytes(bc)
}

/// The scores (+ the vote) and p arrays, the same in every layout.
fn scores_bytes(bc: usize) -> usize {
    BR * (bc + 4) * 4 + 16 + BR * (bc + 8) * 2
}

/// The q row stride (f16) for `bc` keys per tile within `limit` bytes of workgroup memory:
/// padded by 8 (spreads the rows over the banks) where that fits, else unpadded (head_dim 128
/// with 32 keys misses 48 KiB by 16 bytes padded); None if neither fits.
pub fn q_stride(hd: usize, bc: usize, limit: usize) -> Option<usize> {
    [hd + 8, hd]
        .into_iter()
        .find(|&ldq| workgroup_bytes(hd, bc, ldq) <= limit)
}

/// Where a workgroup stages q and the K/V tiles (the shader's QREG, QKV and SPLITKV).
///
/// Why it matters: the H100's driver gives an SM as much workgroup memory in all as one
/// workgroup may have (48 KiB; `probe_resident`: a 128-lane kernel of 8 KiB runs 6 workgroups
/// an SM, of 24 KiB 2, of 25-48 KiB 1). The `Staged` layout needs 32-48 KiB, so one workgroup
/// (4 subgroups) ran per SM and every load, barrier and product of its key loop was exposed
/// (the ablations added up). The other layouts fit in half, two workgroups an SM
/// (`half_memory`; op-tested with f32 outputs, not yet picked: see `pick`):
/// `bench_attention coop` at T = 512, 3584 cached keys, 34-35 -> 54-58 TFLOP/s (TinyLlama,
/// `QInKv`), 38-46 -> 65-72 (Llama-2-7B, `SplitKv`); from position 0 +8-15%
/// (benches/results/2026-11-24-h100-s16/).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoopLayout {
    /// q staged in an array of its own (rows of `q_stride`); its tiles kept in registers
    /// (`q_regs`) or re-loaded from workgroup memory for every score tile.
    Staged { q_regs: bool },
    /// q staged through the K/V tile buffer (64 rows fit in 2 x `bc` key rows) and kept in
    /// registers: no q array.
    QInKv,
    /// K and V take turns in one tile buffer (V loaded during the softmax), q staged through
    /// it 16 dims a round and kept in registers: half the K/V memory.
    SplitKv,
}

impl CoopLayout {
    /// Workgroup bytes of this layout for head_dim `hd` and `bc` keys per tile within `limit`,
    /// or None where it cannot take them.
    pub fn workgroup_bytes(self, hd: usize, bc: usize, limit: usize) -> Option<usize> {
        // The q placeholder of QInKv and SplitKv keeps 128 bytes (see the shader's QS_LEN).
        let bytes = match self {
            CoopLayout::Staged { .. } => {
                q_stride(hd, bc, limit).map(|ldq| workgroup_bytes(hd, bc, ldq))
            }
            CoopLayout::QInKv => {
                (BR <= 2 * bc).then(|| 2 * bc * (hd + 8) * 2 + 128 + scores_bytes(bc))
            }
            CoopLayout::SplitKv => {
                // A q round is 64 rows of 16 dims at a stride of 24 f16.
                (bc * (hd + 8) >= BR * 24).then(|| bc * (hd + 8) * 2 + 128 + scores_bytes(bc))
            }
        }?;
        // The shader stages at most 8 K (and V) quads a lane.
        (bytes <= limit && bc * hd <= 8 * 4 * LANES).then_some(bytes)
    }

    /// The layout the model takes: `Staged` with q in registers. The half-memory layouts are
    /// not picked yet: with them the model's prompt passes ran no faster at 512 tokens
    /// (two workgroups an SM lengthen the heaviest row blocks' serial key loop, which decides
    /// a pass from position 0) and only ~2% faster at 2048, and `QInKv` with an f16 output
    /// wrote zeros on the H100 (the f32 output matches the reference): not understood yet.
    pub fn pick(_hd: usize, _bc: usize, _limit: usize) -> CoopLayout {
        CoopLayout::Staged { q_regs: true }
    }

    /// The first of `QInKv` and `SplitKv` that fits in half of `limit` (two workgroups an SM
    /// on the H100), if any.
    pub fn half_memory(hd: usize, bc: usize, limit: usize) -> Option<CoopLayout> {
        [CoopLayout::QInKv, CoopLayout::SplitKv]
            .into_iter()
            .find(|l| {
                l.workgroup_bytes(hd, bc, limit)
                    .is_some_and(|b| b <= limit / 2)
            })
    }
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
        CoopLayout::pick(s.head_dim, keys_per_tile(s.head_dim, limit), limit),
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

/// `attention_coop` with an explicit number of keys per tile (32 or 64) and layout.
#[allow(clippy::too_many_arguments)]
pub fn attention_coop_with(
    gpu: &Gpu,
    q: &Tensor,
    k_cache: &Tensor,
    v_cache: &Tensor,
    step: &wgpu::Buffer,
    out: &Tensor,
    keys: usize,
    layout: CoopLayout,
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
    if !(keys == 32 || keys == 64) || layout.workgroup_bytes(s.head_dim, keys, limit).is_none() {
        return Err(EngineError::Shape {
            op: OP,
            detail: format!(
                "{keys} keys per tile in layout {layout:?}: want 32 or 64 within {limit} B of \
                 workgroup memory (head_dim {})",
                s.head_dim
            ),
        });
    }
    // Staged's q row stride; the other layouts bind LDQ to nothing.
    let ldq = q_stride(s.head_dim, keys, limit).unwrap_or(s.head_dim);
    let q_regs = !matches!(layout, CoopLayout::Staged { q_regs: false });
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
            ("QKV", (layout == CoopLayout::QInKv) as u32 as f64),
            ("SPLITKV", (layout == CoopLayout::SplitKv) as u32 as f64),
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
        // Two workgroups an SM (24 KiB each) for the TinyLlama and Llama-2-7B head dims.
        assert_eq!(
            CoopLayout::half_memory(64, 32, limit),
            Some(CoopLayout::QInKv)
        );
        assert_eq!(
            CoopLayout::QInKv.workgroup_bytes(64, 32, limit),
            Some(23_696)
        );
        assert_eq!(
            CoopLayout::half_memory(128, 32, limit),
            Some(CoopLayout::SplitKv)
        );
        // 64 keys of head_dim 128 would be 16 quads a lane.
        assert_eq!(CoopLayout::SplitKv.workgroup_bytes(128, 64, limit), None);
        assert_eq!(
            CoopLayout::SplitKv.workgroup_bytes(128, 32, limit),
            Some(23_184)
        );
        assert_eq!(
            CoopLayout::QInKv.workgroup_bytes(128, 32, limit),
            Some(31_888)
        );
        // Too small a K/V buffer for a q round (head_dim 32: 32 x 40 < 64 x 24 f16).
        assert_eq!(CoopLayout::SplitKv.workgroup_bytes(32, 32, limit), None);
        // Neither fits in half of lavapipe's 32 KiB.
        assert_eq!(CoopLayout::half_memory(128, 32, 32 << 10), None);
        assert_eq!(
            CoopLayout::pick(64, 32, limit),
            CoopLayout::Staged { q_regs: true }
        );
        // The arrays of attention_coop.wgsl for head_dim 64, 32 keys: K+V, q, scores + vote, p.
        assert_eq!(
            workgroup_bytes(64, 32, 72),
            2 * 32 * 72 * 2 + 64 * 72 * 2 + (4 * 16 * 36 + 4) * 4 + 4 * 16 * 40 * 2
        );
    }
}
