//! `rmsnorm.wgsl`: RMSNorm with weight over the last dimension, one workgroup per row.

use crate::dispatch::{grid, Cost, Dispatch};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::ops::expect;
use crate::ops::matvec::Reduction;
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

/// Lanes per row: 256 for prompts (many rows fill the GPU); for one row (decode) one lane
/// per vec4 of the row, up to 1024 and the adapter's limit, so nothing loops.
fn lanes(gpu: &Gpu, rows: usize, dim: usize) -> u32 {
    if rows > 1 {
        return 256;
    }
    let limit = gpu.limits.max_compute_invocations_per_workgroup.min(1024);
    let limit = if limit.is_power_of_two() {
        limit
    } else {
        limit.next_power_of_two() / 2
    };
    (dim.div_ceil(4).next_power_of_two() as u32).clamp(64, limit.max(64))
}

/// y[rows, dim] = rmsnorm(x[rows, dim]) * w[dim]; y f32, or f16 (rounded, saturating at
/// +-65504; dim a multiple of 4) as the tensor-core prompt mat-muls take it.
pub fn rmsnorm(gpu: &Gpu, x: &Tensor, w: &Tensor, y: &Tensor, eps: f32) -> Result<Dispatch> {
    rmsnorm_with(gpu, x, w, y, eps, crate::ops::sg_reduction(gpu))
}

/// `rmsnorm` summing through `reduction`: subgroups (rmsnorm_sg.wgsl, where
/// `ops::sg_reduction` allows) or workgroup memory (rmsnorm_wg.wgsl, any adapter).
pub fn rmsnorm_with(
    gpu: &Gpu,
    x: &Tensor,
    w: &Tensor,
    y: &Tensor,
    eps: f32,
    reduction: Reduction,
) -> Result<Dispatch> {
    if reduction == Reduction::Subgroup && crate::ops::sg_reduction(gpu) != Reduction::Subgroup {
        return Err(crate::error::EngineError::Shape {
            op: "rmsnorm",
            detail: "subgroup variant: the device's subgroups do not fit".into(),
        });
    }
    let dim = *x.shape.last().unwrap_or(&0);
    let rows = x.numel() / dim.max(1);
    let y16 = y.elem == Elem::F16;
    expect("rmsnorm", "w", w, Elem::F32, dim)?;
    expect(
        "rmsnorm",
        "y",
        y,
        if y16 { Elem::F16 } else { Elem::F32 },
        rows * dim,
    )?;
    if y16 && !dim.is_multiple_of(4) {
        return Err(crate::error::EngineError::Shape {
            op: "rmsnorm",
            detail: format!("f16 y: rows of whole vec4s wanted, got a row length of {dim}"),
        });
    }
    let params = RmsNormParams {
        dim: dim as u32,
        rows: rows as u32,
        eps,
        _pad: 0,
    };
    let wg = lanes(gpu, rows, dim);
    let vec4 = dim.is_multiple_of(4);
    let shader = match reduction {
        Reduction::Subgroup => &wgllama_shaders::RMSNORM_SG,
        Reduction::Workgroup => &wgllama_shaders::RMSNORM,
    };
    let pipeline = gpu.pipeline(
        shader,
        "main",
        &[
            ("WG", wg as f64),
            ("VEC4", vec4 as u32 as f64),
            ("Y16", y16 as u32 as f64),
        ],
    )?;
    let u = gpu.uniform("rmsnorm.params", &params);
    // y fills both output slots; the kernel writes the one its Y16 names.
    let bind_group = gpu.bind(
        "rmsnorm",
        &pipeline,
        &[&u, &x.buffer, &w.buffer, &y.buffer, &y.buffer],
    );
    Ok(Dispatch {
        label: "rmsnorm",
        idle_keys: 0,
        pipeline,
        bind_group,
        workgroups: grid(gpu, rows as u32),
        cost: Cost {
            bytes: (4 * (rows * dim + dim) + if y16 { 2 } else { 4 } * rows * dim) as u64,
            flops: 4 * (rows * dim) as u64,
        },
    })
}
