//! `rope.wgsl`: rotary position embedding applied in place to q or k. The frequency table
//! comes from `wgllama_loaders::config::rope_inv_freqs`, computed once at load.

use crate::dispatch::{grid, Cost, Dispatch};
use crate::error::{EngineError, Result};
use crate::gpu::Gpu;
use crate::ops::expect;
use crate::tensor::{Elem, Tensor};

/// Which elements of a head form a rotating pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeStyle {
    /// Pairs (2i, 2i+1): GGUF files, whose Q/K rows llama.cpp's converter permuted.
    Interleaved,
    /// Pairs (i, i + head_dim/2): HF checkpoints (`rotate_half`).
    RotateHalf,
}

/// Mirrors `Params` in rope.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct RopeParams {
    pub n_pairs: u32,
    pub half_dim: u32,
    pub n_heads: u32,
    pub _pad: u32,
}

const WG: u32 = 64;

/// Rotates x: [T, n_heads, head_dim] (f32) in place; token t is at position `step.pos + t`.
/// `inv_freq`: [head_dim / 2] f32 from `wgllama_loaders::config::rope_inv_freqs`; `step`: the `StepBuffer`'s buffer.
pub fn rope(
    gpu: &Gpu,
    x: &Tensor,
    inv_freq: &Tensor,
    step: &wgpu::Buffer,
    style: RopeStyle,
) -> Result<Dispatch> {
    let &[t, n_heads, head_dim] = x.shape.as_slice() else {
        return Err(EngineError::Shape {
            op: "rope",
            detail: format!("x: want [T, n_heads, head_dim], got {:?}", x.shape),
        });
    };
    if !head_dim.is_multiple_of(2) || x.elem != Elem::F32 {
        return Err(EngineError::Shape {
            op: "rope",
            detail: format!(
                "x: want f32 with an even head_dim, got {:?} {:?}",
                x.elem, x.shape
            ),
        });
    }
    expect("rope", "inv_freq", inv_freq, Elem::F32, head_dim / 2)?;
    let n_pairs = t * n_heads * head_dim / 2;
    let params = RopeParams {
        n_pairs: n_pairs as u32,
        half_dim: (head_dim / 2) as u32,
        n_heads: n_heads as u32,
        _pad: 0,
    };
    let interleaved = style == RopeStyle::Interleaved;
    let pipeline = gpu.pipeline(
        &wgllama_shaders::ROPE,
        "main",
        &[
            ("WG", WG as f64),
            ("INTERLEAVED", interleaved as u32 as f64),
        ],
    )?;
    let u = gpu.uniform("rope.params", &params);
    let bind_group = gpu.bind("rope", &pipeline, &[&u, step, &inv_freq.buffer, &x.buffer]);
    Ok(Dispatch {
        label: "rope",
        idle_keys: 0,
        pipeline,
        bind_group,
        workgroups: grid(gpu, (n_pairs as u32).div_ceil(WG)),
        cost: Cost {
            bytes: 4 * (2 * t * n_heads * head_dim) as u64,
            flops: 40 * n_pairs as u64,
        },
    })
}
