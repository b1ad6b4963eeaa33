//! `embedding.wgsl`: out[T, D] = rows `tokens` of the embedding table [vocab, D], any
//! weight type. A token id >= vocab gives a row of zeros (never an out-of-bounds read).

use crate::dispatch::{grid, Cost, Dispatch};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::ops::expect;
use crate::ops::matmul::{aligned, check_weight};
use crate::tensor::{Elem, Tensor};

/// Mirrors `Params` in embedding.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct EmbeddingParams {
    pub t: u32,
    pub vocab: u32,
    pub d: u32,
    pub nb: u32,
}

/// Workgroup size of embedding.wgsl (EMB_WG).
const WG: usize = 64;

/// out[T, D] (f32) = table[tokens[t], :]; tokens: u32 [T], table: weight [vocab, D].
pub fn embedding(gpu: &Gpu, table: &Tensor, tokens: &Tensor, out: &Tensor) -> Result<Dispatch> {
    let (dtype, vocab, d) = check_weight("embedding", "table", table)?;
    let t = tokens.numel();
    expect("embedding", "tokens", tokens, Elem::U32, t)?;
    expect("embedding", "out", out, Elem::F32, t * d)?;
    let params = EmbeddingParams {
        t: t as u32,
        vocab: vocab as u32,
        d: d as u32,
        nb: (vocab * d / dtype.block_size()) as u32,
    };
    let pipeline = gpu.pipeline(
        &wgllama_shaders::EMBEDDING,
        "main",
        &[("DT", dtype.ggml_id() as f64), ("W_ALIGNED", aligned(d))],
    )?;
    let u = gpu.uniform("embedding.params", &params);
    let bind_group = gpu.bind(
        "embedding",
        &pipeline,
        &[&u, &table.buffer, &tokens.buffer, &out.buffer],
    );
    let chunks = t * d.div_ceil(16);
    // Bytes of the rows read, at the table's density, plus ids and output.
    let row_bytes = crate::weights::gpu_bytes(dtype, d as u64);
    Ok(Dispatch {
        label: "embedding",
        idle_keys: 0,
        pipeline,
        bind_group,
        workgroups: grid(gpu, chunks.max(1).div_ceil(WG) as u32),
        cost: Cost {
            bytes: t as u64 * (row_bytes + 4 + 4 * d as u64),
            flops: 0,
        },
    })
}
