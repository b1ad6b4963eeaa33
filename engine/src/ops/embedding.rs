//! `embedding.wgsl`: out[T, D] = rows `tokens` of the embedding table [vocab, D], any
//! weight type. A token id >= vocab gives a row of zeros (never an out-of-bounds read).
//! `embedding_norm` (decode) also writes the first layer's folded RMSNorm input.

use crate::dispatch::{grid, Cost, Dispatch};
use crate::error::{EngineError, Result};
use crate::gpu::Gpu;
use crate::ops::expect;
use crate::ops::matmul::{aligned, check_weight};
use crate::tensor::{Elem, Tensor};
use wgllama_loaders::DType;

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
    let constants = [("DT", dtype.ggml_id() as f64), ("W_ALIGNED", aligned(d))];
    let pipeline = gpu.pipeline(&wgllama_shaders::EMBEDDING, "main", &constants)?;
    let u = gpu.uniform("embedding.params", &params(dtype, vocab, d, t));
    let bind_group = gpu.bind(
        "embedding",
        &pipeline,
        &[&u, &table.buffer, &tokens.buffer, &out.buffer],
    );
    // Bytes of the rows read, at the table's density, plus ids and output.
    let bytes = t as u64 * (crate::weights::gpu_bytes(dtype, d as u64) + 4 + 4 * d as u64);
    Ok(lookup(
        "embedding",
        gpu,
        pipeline,
        bind_group,
        t * d.div_ceil(16),
        bytes,
    ))
}

/// Whether `embedding_norm` can write the fold output for rows of `d` values: d a multiple of
/// 128, as the folded mat-vecs reading it need (`matvec::normed_supported`).
pub fn norm_supported(d: usize) -> bool {
    d.is_multiple_of(128)
}

/// `embedding` for one token that also writes the first layer's RMSNorm input into `xn` as
/// `matvec::matvec_norm` does for later layers: norm_w * h, not yet divided by rms(h), with
/// each 32-value block's sum of h^2; as int8 blocks where `xn` is u32 (`norm_int8_words(D)`
/// words), else f32 (`norm_f32_len(D)` values), both in `crate::ops::matvec`.
/// `matvec::matvec_multi_normed` then reads it, and the RMSNorm dispatch between them is gone.
/// Needs `norm_supported`.
pub fn embedding_norm(
    gpu: &Gpu,
    table: &Tensor,
    tokens: &Tensor,
    out: &Tensor,
    norm_w: &Tensor,
    xn: &Tensor,
) -> Result<Dispatch> {
    use crate::ops::matvec::{norm_f32_len, norm_int8_words};
    let op = "embedding_norm";
    let (dtype, vocab, d) = check_weight(op, "table", table)?;
    expect(op, "tokens", tokens, Elem::U32, 1)?;
    expect(op, "out", out, Elem::F32, d)?;
    expect(op, "norm_w", norm_w, Elem::F32, d)?;
    let int8 = xn.elem == Elem::U32;
    if int8 {
        expect(op, "xn", xn, Elem::U32, norm_int8_words(d))?;
    } else {
        expect(op, "xn", xn, Elem::F32, norm_f32_len(d))?;
    }
    if !norm_supported(d) {
        return Err(EngineError::Shape {
            op,
            detail: format!("rows of {d} values: the fold needs a multiple of 128"),
        });
    }
    let constants = [
        ("DT", dtype.ggml_id() as f64),
        ("W_ALIGNED", aligned(d)),
        ("XQ", if int8 { 1.0 } else { 0.0 }),
    ];
    let pipeline = gpu.pipeline(&wgllama_shaders::EMBEDDING, "main_norm", &constants)?;
    let u = gpu.uniform("embedding_norm.params", &params(dtype, vocab, d, 1));
    let bind_group = gpu.bind(
        op,
        &pipeline,
        &[
            &u,
            &table.buffer,
            &tokens.buffer,
            &out.buffer,
            &norm_w.buffer,
            &xn.buffer,
        ],
    );
    // The row, id, norm weight, h and the fold output (at most d words and the sums).
    let bytes = crate::weights::gpu_bytes(dtype, d as u64) + 4 + 12 * d as u64;
    Ok(lookup(op, gpu, pipeline, bind_group, d / 16, bytes))
}

/// The uniform for `t` lookups in a table of `vocab` rows of `d` values of `dtype`.
fn params(dtype: DType, vocab: usize, d: usize, t: usize) -> EmbeddingParams {
    EmbeddingParams {
        t: t as u32,
        vocab: vocab as u32,
        d: d as u32,
        nb: (vocab * d / dtype.block_size()) as u32,
    }
}

/// A dispatch of one thread per 16-value chunk of the output (`chunks` of them).
fn lookup(
    label: &'static str,
    gpu: &Gpu,
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    chunks: usize,
    bytes: u64,
) -> Dispatch {
    Dispatch {
        label,
        idle_keys: 0,
        pipeline,
        bind_group,
        workgroups: grid(gpu, chunks.max(1).div_ceil(WG) as u32),
        cost: Cost { bytes, flops: 0 },
    }
}
