//! Weight upload: a tensor's file bytes to one GPU storage buffer, in the layout the kernels
//! read (`shaders/quant.wgsl` decodes it; keep the two in step).
//!
//! GPU layouts, by type:
//! - F32: as stored, one value per u32 word.
//! - F16, BF16: as stored, two values per u32 word (value 2i in the low half); an odd count
//!   leaves the last half-word zero.
//! - Q4_K (144-byte blocks) and Q5_K (176): as stored. Both sizes are multiples of 16, so
//!   every block and its `qs` (and Q5_K's `qh`) start on a 16-byte boundary.
//! - Q8_0, Q4_0, Q5_0, Q6_K: ggml blocks of 34, 18, 22 and 210 bytes would put most
//!   fields at odd addresses, so they are repacked into *sections*: a section holds one
//!   byte range of every block, blocks in order, and sections follow each other:
//!
//!   | type | section 0 (from word 0)     | section 1            | section 2           |
//!   |------|-----------------------------|----------------------|---------------------|
//!   | Q8_0 | qs, 32 B/block              | d (f16), 2 B/block   |                     |
//!   | Q4_0 | qs, 16 B/block              | d, 2 B/block         |                     |
//!   | Q5_0 | qs, 16 B/block              | qh, 4 B/block        | d, 2 B/block        |
//!   | Q6_K | ql, qh, scales: 208 B/block | d, 2 B/block         |                     |
//!
//!   With `nb` blocks a section starts at `nb *` (bytes per block of the sections before
//!   it), so the quant bytes of each block start on a 16-byte boundary (one `vec4<u32>`
//!   load) and the f16 scales pack two per word. Keeping scales apart from quants was
//!   4-15% faster for Q8_0/Q6_K mat-vec on an H100 than interleaved blocks.
//!
//! Buffers are padded to 16 bytes by `Gpu::storage`.

use wgllama_loaders::DType;

use crate::error::{EngineError, Result};
use crate::gpu::Gpu;
use crate::tensor::{Elem, Tensor};

/// A section of a repacked type: (offset, length) of the byte range taken from every
/// ggml block.
type Section = (usize, usize);

/// The sections of a repacked type, in GPU order; `None` for types uploaded as stored.
fn sections(dtype: DType) -> Option<&'static [Section]> {
    match dtype {
        DType::Q8_0 => Some(&[(2, 32), (0, 2)]),
        DType::Q4_0 => Some(&[(2, 16), (0, 2)]),
        DType::Q5_0 => Some(&[(6, 16), (2, 4), (0, 2)]),
        DType::Q6K => Some(&[(0, 208), (208, 2)]),
        DType::F32 | DType::F16 | DType::BF16 | DType::Q4K | DType::Q5K => None,
    }
}

/// Bytes the GPU layout of `numel` values of `dtype` occupies (before the 16-byte padding).
/// `numel` must be a whole number of blocks.
pub fn gpu_bytes(dtype: DType, numel: u64) -> u64 {
    let blocks = numel / dtype.block_size() as u64;
    // Stored size, with the last section rounded up to a word: the repacked types only add
    // the rounding of their f16 scale section.
    (blocks * dtype.block_bytes() as u64).div_ceil(4) * 4
}

/// Blocks repacked per host chunk: bounded host memory (a few MiB) for any tensor size.
/// Even, so every chunk's f16 scales start on a word boundary.
const REPACK_BLOCKS: usize = 1 << 15;

impl Gpu {
    /// Uploads a weight tensor of `dtype` with `shape` (outermost first; a matrix is
    /// [out_features, in_features]) from its file bytes (ggml block layout for quantised types).
    ///
    /// Errors: `Shape` if `bytes` is not the size `dtype` and `shape` imply or a row (the last
    /// dimension) is not a whole number of blocks; `TooLarge` if the GPU layout exceeds one
    /// storage binding on this adapter.
    pub fn upload_weight(
        &self,
        name: &str,
        dtype: DType,
        shape: &[usize],
        bytes: &[u8],
    ) -> Result<Tensor> {
        let bad = |detail: String| EngineError::Shape {
            op: "upload_weight",
            detail: format!("{name} ({} {shape:?}): {detail}", dtype.name()),
        };
        let row = *shape.last().ok_or_else(|| bad("empty shape".into()))?;
        let numel = shape
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d as u64))
            .ok_or_else(|| bad("element count overflows".into()))?;
        if numel == 0 {
            return Err(bad("no elements".into()));
        }
        if !row.is_multiple_of(dtype.block_size()) {
            return Err(bad(format!(
                "rows of {row} values are not whole {} blocks of {}",
                dtype.name(),
                dtype.block_size()
            )));
        }
        let want = dtype
            .bytes_for(numel)
            .ok_or_else(|| bad("size overflows".into()))?;
        if bytes.len() as u64 != want {
            return Err(bad(format!(
                "{} bytes given, the shape needs {want}",
                bytes.len()
            )));
        }
        let buffer = match sections(dtype) {
            None => self.upload_bytes(name, bytes)?,
            Some(sections) => {
                let buffer = self.storage(name, gpu_bytes(dtype, numel))?;
                self.repack(&buffer, dtype, sections, bytes, REPACK_BLOCKS);
                buffer
            }
        };
        Ok(Tensor {
            buffer,
            elem: Elem::Weight(dtype),
            shape: shape.to_vec(),
        })
    }

    /// Writes `bytes` (whole ggml blocks) into `buffer` in the section layout, `chunk_blocks`
    /// (even) blocks at a time.
    fn repack(
        &self,
        buffer: &wgpu::Buffer,
        dtype: DType,
        sections: &[Section],
        bytes: &[u8],
        chunk_blocks: usize,
    ) {
        debug_assert!(chunk_blocks.is_multiple_of(2));
        let block = dtype.block_bytes();
        let nb = bytes.len() / block;
        let mut staging = Vec::new();
        for (chunk_index, chunk) in bytes.chunks(chunk_blocks * block).enumerate() {
            let first = chunk_index * chunk_blocks;
            let mut section_start = 0usize;
            for &(from, len) in sections {
                staging.clear();
                for b in chunk.chunks_exact(block) {
                    staging.extend_from_slice(&b[from..from + len]);
                }
                // Only the last chunk's f16 scales can end mid-word; the buffer is sized for it.
                staging.resize(staging.len().div_ceil(4) * 4, 0);
                let offset = section_start + first * len;
                self.queue.write_buffer(buffer, offset as u64, &staging);
                section_start += nb * len;
            }
            // Flush so wgpu's staging memory stays bounded for multi-GB tensors.
            self.queue.submit([]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{test_gpu, Rng};

    #[test]
    fn sections_cover_each_block_once() {
        for dtype in [DType::Q8_0, DType::Q4_0, DType::Q5_0, DType::Q6K] {
            let mut covered = vec![0; dtype.block_bytes()];
            for &(from, len) in sections(dtype).unwrap() {
                covered[from..from + len].iter_mut().for_each(|c| *c += 1);
            }
            assert!(covered.iter().all(|&c| c == 1), "{}", dtype.name());
        }
    }

    /// The repacked buffer is the documented layout, whatever the chunking: chunks of a few
    /// blocks (many chunk boundaries, an odd block count) and one chunk give the same bytes.
    #[test]
    fn repack_is_the_section_layout_for_any_chunking() {
        let gpu = test_gpu();
        let mut rng = Rng::new(11);
        for dtype in [DType::Q8_0, DType::Q4_0, DType::Q5_0, DType::Q6K] {
            let nb = 37;
            let bytes: Vec<u8> = (0..nb * dtype.block_bytes())
                .map(|_| rng.next_u64() as u8)
                .collect();
            let mut want = Vec::new();
            for &(from, len) in sections(dtype).unwrap() {
                for b in bytes.chunks_exact(dtype.block_bytes()) {
                    want.extend_from_slice(&b[from..from + len]);
                }
            }
            let size = gpu_bytes(dtype, (nb * dtype.block_size()) as u64);
            assert_eq!(size, want.len().div_ceil(4) as u64 * 4);
            for chunk_blocks in [2, 4, 36, REPACK_BLOCKS] {
                let buffer = gpu.storage("w", size).unwrap();
                gpu.repack(
                    &buffer,
                    dtype,
                    sections(dtype).unwrap(),
                    &bytes,
                    chunk_blocks,
                );
                let got = gpu.read_bytes(&buffer, want.len() as u64).unwrap();
                assert!(
                    got == want,
                    "{} in chunks of {chunk_blocks} blocks",
                    dtype.name()
                );
            }
        }
    }
}
