//! `softmax.wgsl`: numerically stable row softmax with temperature, one workgroup per row.

use crate::dispatch::{grid, Cost, Dispatch};
use crate::error::{EngineError, Result};
use crate::gpu::Gpu;
use crate::ops::expect;
use crate::tensor::{Elem, Tensor};

/// Mirrors `Params` in softmax.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct SoftmaxParams {
    pub cols: u32,
    pub rows: u32,
    pub temperature: f32,
    pub _pad: u32,
}

const WG: u32 = 256;

/// y[rows, cols] = softmax(x[rows, cols] / temperature) over the last dimension;
/// temperature must be finite and > 0. y must not alias x.
pub fn softmax(gpu: &Gpu, x: &Tensor, y: &Tensor, temperature: f32) -> Result<Dispatch> {
    let cols = *x.shape.last().unwrap_or(&0);
    let rows = x.numel() / cols.max(1);
    expect("softmax", "x", x, Elem::F32, rows * cols)?;
    expect("softmax", "y", y, Elem::F32, rows * cols)?;
    if !(temperature > 0.0 && temperature.is_finite()) {
        return Err(EngineError::Shape {
            op: "softmax",
            detail: format!("temperature must be finite and > 0, got {temperature}"),
        });
    }
    if x.buffer == y.buffer {
        return Err(EngineError::Shape {
            op: "softmax",
            detail: "y and x must be different buffers".into(),
        });
    }
    let params = SoftmaxParams {
        cols: cols as u32,
        rows: rows as u32,
        temperature,
        _pad: 0,
    };
    let pipeline = gpu.pipeline(&wgllama_shaders::SOFTMAX, "main", &[("WG", WG as f64)])?;
    let u = gpu.uniform("softmax.params", &params);
    let bind_group = gpu.bind("softmax", &pipeline, &[&u, &x.buffer, &y.buffer]);
    Ok(Dispatch {
        label: "softmax",
        idle_keys: 0,
        pipeline,
        bind_group,
        workgroups: grid(gpu, rows as u32),
        cost: Cost {
            bytes: 12 * (rows * cols) as u64,
            flops: 8 * (rows * cols) as u64,
        },
    })
}
