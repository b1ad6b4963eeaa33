//! `smoke.wgsl`: y = 2x + 1, the device round-trip check.

use crate::dispatch::{Cost, Dispatch};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::ops::expect;
use crate::tensor::{Elem, Tensor};

pub fn smoke(gpu: &Gpu, x: &Tensor, y: &Tensor) -> Result<Dispatch> {
    let n = x.numel();
    expect("smoke", "x", x, Elem::F32, n)?;
    expect("smoke", "y", y, Elem::F32, n)?;
    let pipeline = gpu.pipeline(&wgllama_shaders::SMOKE, "main", &[])?;
    let bind_group = gpu.bind("smoke", &pipeline, &[&x.buffer, &y.buffer]);
    Ok(Dispatch {
        label: "smoke",
        idle_keys: 0,
        pipeline,
        bind_group,
        workgroups: [(n as u32).div_ceil(64), 1, 1],
        cost: Cost {
            bytes: 8 * n as u64,
            flops: 2 * n as u64,
        },
    })
}
