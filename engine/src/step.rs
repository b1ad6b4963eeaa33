//! The per-step values: a small storage buffer written once per forward pass with
//! `queue.write_buffer`, bound by every position-dependent dispatch at load time, so the
//! decode loop never rebuilds a bind group.

use crate::error::Result;
use crate::gpu::Gpu;

/// Mirrors `struct Step` in the WGSL kernels (`var<storage, read> step: Step`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Step {
    /// Position of the first token of this batch: token t sits at `pos + t`.
    pub pos: u32,
    /// Tokens in this batch. RoPE, KV writes and attention take T from their tensor shapes
    /// (fixed when the graph is built), not from here.
    pub n_tokens: u32,
    /// A fresh random u32 for sampling.
    pub rand: u32,
    pub _pad: u32,
}

/// The GPU copy of `Step`.
pub struct StepBuffer {
    pub buffer: wgpu::Buffer,
}

impl StepBuffer {
    pub fn new(gpu: &Gpu) -> Result<StepBuffer> {
        let buffer = gpu.storage("step", std::mem::size_of::<Step>() as u64)?;
        Ok(StepBuffer { buffer })
    }

    /// Queues the write; it lands before the next submitted command buffer runs.
    pub fn write(&self, gpu: &Gpu, step: &Step) {
        gpu.queue
            .write_buffer(&self.buffer, 0, bytemuck::bytes_of(step));
    }
}
