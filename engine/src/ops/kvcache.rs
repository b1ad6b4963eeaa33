//! `kvcache.wgsl`: appends a step's k and v rows to one layer's caches at slots `step.pos + t`.

use crate::dispatch::{grid, Cost, Dispatch};
use crate::error::{EngineError, Result};
use crate::gpu::Gpu;
use crate::ops::expect;
use crate::tensor::{Elem, Tensor};

/// Mirrors `Params` in kvcache.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct KvWriteParams {
    pub n_words: u32,
    pub row_words: u32,
    pub ctx: u32,
    pub _pad: u32,
}

const WG: u32 = 64;

/// Writes k, v: [T, n_kv_heads, head_dim] f32 into k_cache, v_cache: [ctx, n_kv_heads,
/// head_dim] (both F32 or both F16) at slots `step.pos .. step.pos + T`. Rows that would land
/// at or past ctx are dropped; the caller keeps pos + T <= ctx.
pub fn kv_write(
    gpu: &Gpu,
    k: &Tensor,
    v: &Tensor,
    k_cache: &Tensor,
    v_cache: &Tensor,
    step: &wgpu::Buffer,
) -> Result<Dispatch> {
    let &[ctx, n_kv_heads, head_dim] = k_cache.shape.as_slice() else {
        return Err(EngineError::Shape {
            op: "kv_write",
            detail: format!(
                "k_cache: want [ctx, n_kv_heads, head_dim], got {:?}",
                k_cache.shape
            ),
        });
    };
    let f16 = match k_cache.elem {
        Elem::F32 => false,
        Elem::F16 if head_dim.is_multiple_of(2) => true,
        _ => {
            return Err(EngineError::Shape {
                op: "kv_write",
                detail: format!(
                    "k_cache: want F32, or F16 with an even head_dim, got {:?} {:?}",
                    k_cache.elem, k_cache.shape
                ),
            })
        }
    };
    if v_cache.shape != k_cache.shape || v_cache.elem != k_cache.elem {
        return Err(EngineError::Shape {
            op: "kv_write",
            detail: format!(
                "v_cache: want {:?} {:?} like k_cache, got {:?} {:?}",
                k_cache.elem, k_cache.shape, v_cache.elem, v_cache.shape
            ),
        });
    }
    let row = n_kv_heads * head_dim;
    let t = k.shape.first().copied().unwrap_or(0);
    if k.shape != [t, n_kv_heads, head_dim] {
        return Err(EngineError::Shape {
            op: "kv_write",
            detail: format!("k: want [T, {n_kv_heads}, {head_dim}], got {:?}", k.shape),
        });
    }
    expect("kv_write", "k", k, Elem::F32, t * row)?;
    expect("kv_write", "v", v, Elem::F32, t * row)?;
    let row_words = if f16 { row / 2 } else { row };
    let params = KvWriteParams {
        n_words: (t * row_words) as u32,
        row_words: row_words as u32,
        ctx: ctx as u32,
        _pad: 0,
    };
    let pipeline = gpu.pipeline(
        &wgllama_shaders::KVCACHE,
        "main",
        &[("WG", WG as f64), ("KV_F16", f16 as u32 as f64)],
    )?;
    let u = gpu.uniform("kv_write.params", &params);
    let bind_group = gpu.bind(
        "kv_write",
        &pipeline,
        &[
            &u,
            step,
            &k.buffer,
            &v.buffer,
            &k_cache.buffer,
            &v_cache.buffer,
        ],
    );
    Ok(Dispatch {
        label: "kv_write",
        idle_keys: 0,
        pipeline,
        bind_group,
        workgroups: grid(gpu, (t * row_words).div_ceil(WG as usize) as u32),
        cost: Cost {
            bytes: (2 * t * row * (4 + if f16 { 2 } else { 4 })) as u64,
            flops: 0,
        },
    })
}
