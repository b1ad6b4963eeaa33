//! `rope.wgsl`: rotary position embedding applied in place to q or k, and the CPU-side
//! frequency table (`rope_inv_freq`) computed once at load.

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

/// Llama 3.x frequency scaling (`rope_scaling` with `rope_type: "llama3"` in config.json).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Llama3RopeScaling {
    pub factor: f32,
    pub low_freq_factor: f32,
    pub high_freq_factor: f32,
    pub original_max_position_embeddings: u32,
}

/// inv_freq[i] = theta^(-2i/head_dim) for i < head_dim/2, with Llama 3 scaling if given.
///
/// Follows transformers' `_compute_default_rope_parameters` and `_compute_llama3_parameters`
/// step by step in f32, as torch evaluates them: the exponent 2i/head_dim is rounded to f32,
/// the power is rounded once from f64 (torch's f32 `pow` is within an ulp of that), and every
/// scaling step is an f32 operation in the same order. Results agree with transformers to an
/// ulp or two.
pub fn rope_inv_freq(head_dim: usize, theta: f32, scaling: Option<Llama3RopeScaling>) -> Vec<f32> {
    let mut inv_freq: Vec<f32> = (0..head_dim / 2)
        .map(|i| {
            let exponent = (2 * i) as f32 / head_dim as f32;
            1.0f32 / (theta as f64).powf(exponent as f64) as f32
        })
        .collect();
    if let Some(s) = scaling {
        let old_context_len = s.original_max_position_embeddings as f32;
        let low_freq_wavelen = old_context_len / s.low_freq_factor;
        let high_freq_wavelen = old_context_len / s.high_freq_factor;
        for f in inv_freq.iter_mut() {
            let wavelen = (2.0 * std::f64::consts::PI) as f32 / *f;
            // Long wavelengths (low frequencies) are slowed by `factor`, short ones kept, and
            // the band between blends the two linearly in old_context_len / wavelen.
            let llama = if wavelen > low_freq_wavelen {
                *f / s.factor
            } else {
                *f
            };
            let smooth = (old_context_len / wavelen - s.low_freq_factor)
                / (s.high_freq_factor - s.low_freq_factor);
            let smoothed = (1.0 - smooth) * llama / s.factor + smooth * llama;
            // transformers: ~(wavelen < high) * ~(wavelen > low); wavelen is never NaN.
            let medium = wavelen >= high_freq_wavelen && wavelen <= low_freq_wavelen;
            *f = if medium { smoothed } else { llama };
        }
    }
    inv_freq
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
/// `inv_freq`: [head_dim / 2] f32 from `rope_inv_freq`; `step`: the `StepBuffer`'s buffer.
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
        pipeline,
        bind_group,
        workgroups: grid(gpu, (n_pairs as u32).div_ceil(WG)),
        cost: Cost {
            bytes: 4 * (2 * t * n_heads * head_dim) as u64,
            flops: 40 * n_pairs as u64,
        },
    })
}
