//! `dequant.wgsl`: a whole weight to f32 [N, K], decoded exactly as the matmul kernels do.

use crate::dispatch::{grid, Cost, Dispatch};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::ops::expect;
use crate::ops::matmul::{aligned, check_weight};
use crate::tensor::{Elem, Tensor};

/// Mirrors `Params` in dequant.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct DequantParams {
    pub n: u32,
    pub k: u32,
    pub nb: u32,
    pub _pad: u32,
}

/// Workgroup size of dequant.wgsl (DQ_WG).
const WG: usize = 64;

/// out[N, K] (f32) = the values of weight w [N, K].
pub fn dequant(gpu: &Gpu, w: &Tensor, out: &Tensor) -> Result<Dispatch> {
    let (dtype, n, k) = check_weight("dequant", "w", w)?;
    expect("dequant", "out", out, Elem::F32, n * k)?;
    let params = DequantParams {
        n: n as u32,
        k: k as u32,
        nb: (n * k / dtype.block_size()) as u32,
        _pad: 0,
    };
    let pipeline = gpu.pipeline(
        &wgllama_shaders::DEQUANT,
        "main",
        &[("DT", dtype.ggml_id() as f64), ("W_ALIGNED", aligned(k))],
    )?;
    let u = gpu.uniform("dequant.params", &params);
    let bind_group = gpu.bind("dequant", &pipeline, &[&u, &w.buffer, &out.buffer]);
    let chunks = n * k.div_ceil(16);
    Ok(Dispatch {
        label: "dequant",
        idle_keys: 0,
        pipeline,
        bind_group,
        workgroups: grid(gpu, chunks.div_ceil(WG) as u32),
        cost: Cost {
            bytes: crate::weights::gpu_bytes(dtype, (n * k) as u64) + 4 * (n * k) as u64,
            flops: (n * k) as u64,
        },
    })
}
