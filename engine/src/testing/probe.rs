//! Set-up shared by the probes and micro-benchmarks in `engine/examples/` that run WGSL of
//! their own, outside the engine's ops.

use crate::gpu::Gpu;

/// A shader module from WGSL source (validated by wgpu, bounds checks as the device's default).
pub fn wgsl_module(gpu: &Gpu, label: &str, src: &str) -> wgpu::ShaderModule {
    gpu.device
        .create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(label),
            source: wgpu::ShaderSource::Wgsl(src.into()),
        })
}

/// A zeroed storage buffer of `size` bytes that can be written from the queue and read back
/// (`Gpu::read_bytes`).
pub fn storage(gpu: &Gpu, label: &str, size: u64) -> wgpu::Buffer {
    gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size,
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}
