//! `prefetch.wgsl`: pulls a byte range of a weight buffer into the GPU's L2 cache while a
//! decode kernel that streams little memory runs, so the next mat-vec reads it from L2.
//!
//! Recorded with no barrier before it (it only reads weights and writes a sink buffer of its
//! own, first used in the pass), it runs beside the kernel recorded just before it; the next
//! dependent dispatch's barrier waits for both, so a prefetch must be sized to finish inside
//! that kernel's time.

use crate::dispatch::{grid, Cost, Dispatch};
use crate::error::{EngineError, Result};
use crate::gpu::Gpu;
use crate::ops::expect;
use crate::tensor::{Elem, Tensor};

/// Mirrors `Params` in prefetch.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct PrefetchParams {
    pub start: u32,
    pub words: u32,
    pub _pad: [u32; 2],
}

/// Workgroup size of prefetch.wgsl (PF_WG).
const WG: usize = 256;
/// Words between touched words (the shader's STRIDE): one 32-byte L2 sector.
pub const STRIDE: usize = 8;
/// Words a workgroup covers (the shader's PER_WG): 8 lines a lane, enough loads in flight per
/// lane to hide latency without a long tail.
pub const PER_WG: usize = WG * STRIDE * 8;

/// Sink words `prefetch` writes for a range of `bytes`: one per workgroup.
pub fn sink_len(bytes: u64) -> usize {
    (bytes.div_ceil(4) as usize).div_ceil(PER_WG).max(1)
}

/// Touches bytes [from, from + bytes) of `src` (rounded out to whole words, clamped to the
/// buffer); each workgroup writes the XOR of the words it touched to `sink` (u32
/// [`sink_len`(bytes)]), `reference::prefetch::xor_lines`.
pub fn prefetch(
    gpu: &Gpu,
    src: &wgpu::Buffer,
    from: u64,
    bytes: u64,
    sink: &Tensor,
) -> Result<Dispatch> {
    let size = src.size();
    let start = from / 4;
    let end = (from + bytes).div_ceil(4).min(size / 4);
    if start >= end || end > u32::MAX as u64 {
        return Err(EngineError::Shape {
            op: "prefetch",
            detail: format!(
                "bytes {from}..{} of a {size}-byte buffer: empty or past 2^32 words",
                from + bytes
            ),
        });
    }
    let words = (end - start) as usize;
    expect(
        "prefetch",
        "sink",
        sink,
        Elem::U32,
        sink_len(words as u64 * 4),
    )?;
    let params = PrefetchParams {
        start: start as u32,
        words: words as u32,
        _pad: [0; 2],
    };
    let pipeline = gpu.pipeline(&wgllama_shaders::PREFETCH, "main", &[])?;
    let u = gpu.uniform("prefetch.params", &params);
    let bind_group = gpu.bind("prefetch", &pipeline, &[&u, src, &sink.buffer]);
    Ok(Dispatch {
        label: "prefetch",
        idle_keys: 0,
        pipeline,
        bind_group,
        workgroups: grid(gpu, words.div_ceil(PER_WG) as u32),
        // No bytes: they reach DRAM once, counted by the mat-vec that reads them (the
        // profiler's bandwidth floor sums every dispatch's bytes).
        cost: Cost { bytes: 0, flops: 0 },
    })
}
