//! `elementwise.wgsl`: residual add (out of place and in place), SwiGLU's silu(gate) * up
//! (separate or fused gate/up), and copy. One invocation per output element.

use crate::dispatch::{grid, Cost, Dispatch};
use crate::error::{EngineError, Result};
use crate::gpu::Gpu;
use crate::ops::expect;
use crate::tensor::{Elem, Tensor};

/// Mirrors `Params` in elementwise.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ElementwiseParams {
    pub n: u32,
    pub cols: u32,
    pub _pad0: u32,
    pub _pad1: u32,
}

const WG: u32 = 256;

/// Builds the dispatch of `entry` over `n` output elements.
fn build(
    gpu: &Gpu,
    label: &'static str,
    entry: &str,
    n: usize,
    cols: usize,
    buffers: &[&wgpu::Buffer],
    cost: Cost,
) -> Result<Dispatch> {
    let params = ElementwiseParams {
        n: n as u32,
        cols: cols as u32,
        _pad0: 0,
        _pad1: 0,
    };
    let pipeline = gpu.pipeline(&wgllama_shaders::ELEMENTWISE, entry, &[("WG", WG as f64)])?;
    let u = gpu.uniform(label, &params);
    let mut all = vec![&u];
    all.extend_from_slice(buffers);
    let bind_group = gpu.bind(label, &pipeline, &all);
    Ok(Dispatch {
        label,
        idle_keys: 0,
        pipeline,
        bind_group,
        workgroups: grid(gpu, (n as u32).div_ceil(WG)),
        cost,
    })
}

/// wgpu rejects one buffer bound twice when one binding writes it; say so with the op's name.
fn distinct(op: &'static str, what: &str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.buffer == b.buffer {
        return Err(EngineError::Shape {
            op,
            detail: format!("{what} must be different buffers"),
        });
    }
    Ok(())
}

/// y = a + b, all f32 with the same element count; y must alias neither input.
pub fn add(gpu: &Gpu, a: &Tensor, b: &Tensor, y: &Tensor) -> Result<Dispatch> {
    let n = a.numel();
    expect("add", "a", a, Elem::F32, n)?;
    expect("add", "b", b, Elem::F32, n)?;
    expect("add", "y", y, Elem::F32, n)?;
    distinct("add", "y and a", y, a)?;
    distinct("add", "y and b", y, b)?;
    let cost = Cost {
        bytes: 12 * n as u64,
        flops: n as u64,
    };
    let buffers = [&a.buffer, &b.buffer, &y.buffer];
    build(gpu, "add", "add", n, 0, &buffers, cost)
}

/// acc += b (the residual stream), f32 with the same element count; b must not alias acc.
pub fn add_in_place(gpu: &Gpu, acc: &Tensor, b: &Tensor) -> Result<Dispatch> {
    let n = acc.numel();
    expect("add_in_place", "acc", acc, Elem::F32, n)?;
    expect("add_in_place", "b", b, Elem::F32, n)?;
    distinct("add_in_place", "acc and b", acc, b)?;
    let cost = Cost {
        bytes: 12 * n as u64,
        flops: n as u64,
    };
    let buffers = [&acc.buffer, &b.buffer];
    build(gpu, "add_in_place", "add_in_place", n, 0, &buffers, cost)
}

/// y[T, F] = silu(gate[T, F]) * up[T, F]; y f32, or f16 (rounded, saturating at +-65504; an
/// even element count) as the tensor-core down projection of a prompt takes it, with no
/// `to_f16` after it.
pub fn silu_mul(gpu: &Gpu, gate: &Tensor, up: &Tensor, y: &Tensor) -> Result<Dispatch> {
    let n = gate.numel();
    let y16 = y.elem == Elem::F16;
    if y16 && !n.is_multiple_of(2) {
        return Err(EngineError::Shape {
            op: "silu_mul",
            detail: format!(
                "f16 y: an even number of values wanted, got {:?}",
                gate.shape
            ),
        });
    }
    expect("silu_mul", "gate", gate, Elem::F32, n)?;
    expect("silu_mul", "up", up, Elem::F32, n)?;
    expect(
        "silu_mul",
        "y",
        y,
        if y16 { Elem::F16 } else { Elem::F32 },
        n,
    )?;
    distinct("silu_mul", "y and gate", y, gate)?;
    distinct("silu_mul", "y and up", y, up)?;
    let buffers = [&gate.buffer, &up.buffer, &y.buffer];
    let (entry, threads, y_bytes) = if y16 {
        ("silu_mul_f16", n / 2, 2)
    } else {
        ("silu_mul", n, 4)
    };
    let cost = Cost {
        bytes: (8 + y_bytes) * n as u64,
        flops: 5 * n as u64,
    };
    build(gpu, "silu_mul", entry, threads, 0, &buffers, cost)
}

/// y[T, F] = silu(gate) * up where gate_up[T, 2F] holds each row's gate half then its up half
/// (the layout of a fused gate/up mat-mul's output).
pub fn silu_mul_fused(gpu: &Gpu, gate_up: &Tensor, y: &Tensor) -> Result<Dispatch> {
    let two_f = *gate_up.shape.last().unwrap_or(&0);
    if two_f == 0 || !two_f.is_multiple_of(2) {
        return Err(EngineError::Shape {
            op: "silu_mul_fused",
            detail: format!(
                "gate_up: last dimension must be 2F > 0, got {:?}",
                gate_up.shape
            ),
        });
    }
    let f = two_f / 2;
    let rows = gate_up.numel() / two_f;
    expect(
        "silu_mul_fused",
        "gate_up",
        gate_up,
        Elem::F32,
        rows * two_f,
    )?;
    expect("silu_mul_fused", "y", y, Elem::F32, rows * f)?;
    distinct("silu_mul_fused", "y and gate_up", y, gate_up)?;
    let n = rows * f;
    let cost = Cost {
        bytes: 12 * n as u64,
        flops: 5 * n as u64,
    };
    let buffers = [&gate_up.buffer, &y.buffer];
    build(
        gpu,
        "silu_mul_fused",
        "silu_mul_fused",
        n,
        f,
        &buffers,
        cost,
    )
}

/// y = x rounded to f16 (saturating at +-65504): the f16 input of a tensor-core mat-mul, which
/// then stages it as straight copies. x: f32, y: f16, the same even element count.
pub fn to_f16(gpu: &Gpu, x: &Tensor, y: &Tensor) -> Result<Dispatch> {
    let n = x.numel();
    if !n.is_multiple_of(2) {
        return Err(EngineError::Shape {
            op: "to_f16",
            detail: format!("x: an even number of values wanted, got {:?}", x.shape),
        });
    }
    expect("to_f16", "x", x, Elem::F32, n)?;
    expect("to_f16", "y", y, Elem::F16, n)?;
    distinct("to_f16", "y and x", y, x)?;
    let cost = Cost {
        bytes: 6 * n as u64,
        flops: 0,
    };
    build(
        gpu,
        "to_f16",
        "to_f16",
        n / 2,
        0,
        &[&x.buffer, &y.buffer],
        cost,
    )
}

/// y = x, f32 with the same element count.
pub fn copy(gpu: &Gpu, x: &Tensor, y: &Tensor) -> Result<Dispatch> {
    let n = x.numel();
    expect("copy", "x", x, Elem::F32, n)?;
    expect("copy", "y", y, Elem::F32, n)?;
    distinct("copy", "y and x", y, x)?;
    let cost = Cost {
        bytes: 8 * n as u64,
        flops: 0,
    };
    build(gpu, "copy", "copy", n, 0, &[&x.buffer, &y.buffer], cost)
}
