//! `rope_kv.wgsl`: RoPE on q (in place) and k, and the layer's KV-cache write of the roped k
//! and v, in one dispatch (replaces `rope(q)`, `rope(k)` and `kv_write`).

use crate::dispatch::{grid, Cost, Dispatch};
use crate::error::{EngineError, Result};
use crate::gpu::Gpu;
use crate::ops::expect;
use crate::ops::rope::RopeStyle;
use crate::tensor::{Elem, Tensor};

/// Mirrors `Params` in rope_kv.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct RopeKvParams {
    pub n_items: u32,
    pub half_dim: u32,
    pub n_heads: u32,
    pub n_kv_heads: u32,
    pub ctx: u32,
    pub _pad: [u32; 3],
}

const WG: u32 = 64;

fn shape_error(detail: String) -> EngineError {
    EngineError::Shape {
        op: "rope_kv",
        detail,
    }
}

/// For the T tokens of a step (token t at position `step.pos + t`): rotates q [T, n_heads,
/// head_dim] in place and k [T, n_kv_heads, head_dim] (both f32; `inv_freq` [head_dim / 2] f32
/// from `wgllama_loaders::config::rope_inv_freqs`; pairs as `style`), and writes the rotated k
/// and v [T, n_kv_heads, head_dim] (f32) to slots `step.pos + t` of k_cache, v_cache [ctx,
/// n_kv_heads, head_dim] (both F32 or both F16). k and v are left as they were. The same
/// results as `rope(q)`, `rope(k)`, `kv_write(k, v)`; rows that would land at or past ctx are
/// dropped (the caller keeps pos + T <= ctx).
#[allow(clippy::too_many_arguments)]
pub fn rope_kv(
    gpu: &Gpu,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    inv_freq: &Tensor,
    step: &wgpu::Buffer,
    style: RopeStyle,
    k_cache: &Tensor,
    v_cache: &Tensor,
) -> Result<Dispatch> {
    let &[ctx, n_kv_heads, head_dim] = k_cache.shape.as_slice() else {
        return Err(shape_error(format!(
            "k_cache: want [ctx, n_kv_heads, head_dim], got {:?}",
            k_cache.shape
        )));
    };
    let f16 = match k_cache.elem {
        Elem::F32 => false,
        Elem::F16 => true,
        _ => {
            return Err(shape_error(format!(
                "k_cache: want F32 or F16, got {:?}",
                k_cache.elem
            )))
        }
    };
    if head_dim == 0 || !head_dim.is_multiple_of(2) || ctx == 0 || n_kv_heads == 0 {
        return Err(shape_error(format!(
            "k_cache: want [ctx > 0, n_kv_heads > 0, head_dim even], got {:?}",
            k_cache.shape
        )));
    }
    if v_cache.shape != k_cache.shape || v_cache.elem != k_cache.elem {
        return Err(shape_error(format!(
            "v_cache: want {:?} {:?} like k_cache, got {:?} {:?}",
            k_cache.elem, k_cache.shape, v_cache.elem, v_cache.shape
        )));
    }
    let &[t, n_heads, qd] = q.shape.as_slice() else {
        return Err(shape_error(format!(
            "q: want [T, n_heads, head_dim], got {:?}",
            q.shape
        )));
    };
    if q.elem != Elem::F32 || qd != head_dim || t == 0 || n_heads == 0 {
        return Err(shape_error(format!(
            "q: want F32 [T > 0, n_heads > 0, {head_dim}], got {:?} {:?}",
            q.elem, q.shape
        )));
    }
    for (name, x) in [("k", k), ("v", v)] {
        if x.shape != [t, n_kv_heads, head_dim] {
            return Err(shape_error(format!(
                "{name}: want [{t}, {n_kv_heads}, {head_dim}], got {:?}",
                x.shape
            )));
        }
        expect("rope_kv", name, x, Elem::F32, t * n_kv_heads * head_dim)?;
    }
    expect("rope_kv", "inv_freq", inv_freq, Elem::F32, head_dim / 2)?;
    let half = head_dim / 2;
    let n_items = t * (n_heads + n_kv_heads) * half;
    if n_items > u32::MAX as usize {
        return Err(shape_error(format!("{n_items} items do not fit u32")));
    }
    let params = RopeKvParams {
        n_items: n_items as u32,
        half_dim: half as u32,
        n_heads: n_heads as u32,
        n_kv_heads: n_kv_heads as u32,
        ctx: ctx as u32,
        _pad: [0; 3],
    };
    let pipeline = gpu.pipeline(
        &wgllama_shaders::ROPE_KV,
        "main",
        &[
            ("WG", WG as f64),
            (
                "INTERLEAVED",
                (style == RopeStyle::Interleaved) as u32 as f64,
            ),
            ("KV_F16", f16 as u32 as f64),
        ],
    )?;
    let u = gpu.uniform("rope_kv.params", &params);
    let bind_group = gpu.bind(
        "rope_kv",
        &pipeline,
        &[
            &u,
            step,
            &inv_freq.buffer,
            &q.buffer,
            &k.buffer,
            &v.buffer,
            &k_cache.buffer,
            &v_cache.buffer,
        ],
    );
    let kv_row = t * n_kv_heads * head_dim;
    Ok(Dispatch {
        label: "rope_kv",
        idle_keys: 0,
        pipeline,
        bind_group,
        workgroups: grid(gpu, (n_items as u32).div_ceil(WG)),
        cost: Cost {
            bytes: (8 * t * n_heads * head_dim + 2 * kv_row * (4 + if f16 { 2 } else { 4 })) as u64,
            flops: 40 * n_items as u64,
        },
    })
}
