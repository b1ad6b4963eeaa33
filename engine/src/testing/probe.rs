//! Set-up shared by the probes and micro-benchmarks in `engine/examples/` that run WGSL of
//! their own, outside the engine's ops.

use crate::gpu::Gpu;
use crate::testing::Rng;

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

/// A second wgpu buffer over `buffer`'s Vulkan buffer (None off Vulkan). wgpu tracks the two
/// apart, so a dispatch writing one and the next reading the other get no barrier between
/// them: the probes that order such dispatches themselves (counters in memory) use it. The
/// alias keeps `buffer` alive until wgpu destroys the alias.
///
/// # Safety
/// Every access through either buffer must be ordered by the shaders themselves (or by a
/// barrier that wgpu inserts for some other reason); wgpu no longer sees the hazard.
#[cfg(any(target_os = "linux", target_os = "windows", target_os = "android"))]
pub unsafe fn alias(gpu: &Gpu, buffer: &wgpu::Buffer) -> Option<wgpu::Buffer> {
    use wgpu::hal::api::Vulkan;
    let raw = unsafe { buffer.as_hal::<Vulkan>()?.raw_handle() };
    let keep = buffer.clone();
    let hal = unsafe {
        wgpu::hal::vulkan::Buffer::from_raw_externally_owned(raw, Box::new(move || drop(keep)))
    };
    Some(unsafe {
        gpu.device.create_buffer_from_hal::<Vulkan>(
            hal,
            &wgpu::BufferDescriptor {
                label: Some("alias"),
                size: buffer.size(),
                usage: buffer.usage(),
                mapped_at_creation: false,
            },
        )
    })
}

/// `alias` where wgpu builds no Vulkan backend: always None.
///
/// # Safety
/// None needed; kept `unsafe` to match the Vulkan version.
#[cfg(not(any(target_os = "linux", target_os = "windows", target_os = "android")))]
pub unsafe fn alias(_gpu: &Gpu, _buffer: &wgpu::Buffer) -> Option<wgpu::Buffer> {
    None
}

/// `bytes` bytes of random f16 values of magnitude [2^(exp-15), 2^(exp-14)), either sign: the
/// weights of the mat-vec chain probes (x keeps roughly its size along a chain).
pub fn random_f16_bytes(rng: &mut Rng, bytes: usize, exp: u16) -> Vec<u8> {
    let mut b = Vec::with_capacity(bytes + 8);
    while b.len() < bytes {
        let r = rng.next_u64();
        for i in 0..4 {
            let h = ((r >> (16 * i)) as u16 & 0x83ff) | (exp << 10);
            b.extend_from_slice(&h.to_le_bytes());
        }
    }
    b.truncate(bytes);
    b
}

/// Little-endian f32 values of a read-back buffer.
pub fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}
