//! `rmsnorm.wgsl`: RMSNorm with weight over the last dimension, one workgroup per row.

use crate::dispatch::{grid, Cost, Dispatch};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::ops::expect;
use crate::tensor::{Elem, Tensor};

/// Mirrors `Params` in rmsnorm.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct RmsNormParams {
    pub dim: u32,
    pub rows: u32,
    pub eps: f32,
    pub _pad: u32,
}

const WG: u32 = 256;

/// y[rows, dim] = rmsnorm(x[rows, dim]) * w[dim].
pub fn rmsnorm(gpu: &Gpu, x: &Tensor, w: &Tensor, y: &Tensor, eps: f32) -> Result<Dispatch> {
    let dim = *x.shape.last().unwrap_or(&0);
    let rows = x.numel() / dim.max(1);
    expect("rmsnorm", "w", w, Elem::F32, dim)?;
    expect("rmsnorm", "y", y, Elem::F32, rows * dim)?;
    let params = RmsNormParams {
        dim: dim as u32,
        rows: rows as u32,
        eps,
        _pad: 0,
    };
    let pipeline = gpu.pipeline(&wgllama_shaders::RMSNORM, "main", &[("WG", WG as f64)])?;
    let u = gpu.uniform("rmsnorm.params", &params);
    let bind_group = gpu.bind("rmsnorm", &pipeline, &[&u, &x.buffer, &w.buffer, &y.buffer]);
    Ok(Dispatch {
        label: "rmsnorm",
        pipeline,
        bind_group,
        workgroups: grid(gpu, rows as u32),
        cost: Cost {
            bytes: 4 * (2 * rows * dim + dim) as u64,
            flops: 4 * (rows * dim) as u64,
        },
    })
}
