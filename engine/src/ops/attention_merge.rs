//! `attention_merge.wgsl`: combines the key-range splits of split attention (flash-decoding).

use crate::dispatch::{grid, Cost, Dispatch};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::ops::expect;
use crate::tensor::{Elem, Tensor};

/// Mirrors `Params` in attention_merge.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct AttentionMergeParams {
    pub n_rows: u32,
    pub n_splits: u32,
    pub head_dim: u32,
    pub _pad: u32,
}

const WG: u32 = 64;

/// out[n_rows, head_dim] from `partials` (acc [n_splits, n_rows, head_dim] then (max, sum)
/// [n_splits, n_rows, 2], as attention.wgsl's split mode writes them).
pub fn attention_merge(
    gpu: &Gpu,
    partials: &wgpu::Buffer,
    out: &Tensor,
    n_splits: usize,
    n_rows: usize,
    head_dim: usize,
) -> Result<Dispatch> {
    expect("attention_merge", "out", out, Elem::F32, n_rows * head_dim)?;
    let params = AttentionMergeParams {
        n_rows: n_rows as u32,
        n_splits: n_splits as u32,
        head_dim: head_dim as u32,
        _pad: 0,
    };
    let pipeline = gpu.pipeline(
        &wgllama_shaders::ATTENTION_MERGE,
        "main",
        &[("WG", WG as f64)],
    )?;
    let u = gpu.uniform("attention_merge.params", &params);
    let bind_group = gpu.bind("attention_merge", &pipeline, &[&u, partials, &out.buffer]);
    Ok(Dispatch {
        label: "attention_merge",
        idle_keys: 0,
        pipeline,
        bind_group,
        workgroups: grid(gpu, n_rows as u32),
        cost: Cost {
            bytes: (4 * n_rows * (n_splits * (head_dim + 2) + head_dim)) as u64,
            flops: (2 * n_rows * n_splits * head_dim) as u64,
        },
    })
}
