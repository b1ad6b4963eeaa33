//! CPU reference dequantisation: the ground truth the GPU kernels are tested against.
//! Written for clarity, one block at a time; results match the `gguf` Python package
//! bit for bit (see `tests/dequant_golden.rs`), so the arithmetic order below matters:
//! e.g. Q4_K computes `(d * sc) * q - (dmin * m)` in f32, never fused.

use bytemuck::pod_read_unaligned;
use half::{bf16, f16};

use super::blocks::*;
use crate::{DType, LoadError};

/// Dequantises `n` values of `dtype` from `bytes`, which must hold exactly those values
/// (a whole number of blocks).
pub fn dequantize(dtype: DType, bytes: &[u8], n: usize) -> Result<Vec<f32>, LoadError> {
    let mut out = vec![0f32; checked_len(dtype, bytes, n)?];
    dequantize_into(dtype, bytes, &mut out)?;
    Ok(out)
}

/// As [`dequantize`], writing into `out` (its length is the value count).
pub fn dequantize_into(dtype: DType, bytes: &[u8], out: &mut [f32]) -> Result<(), LoadError> {
    checked_len(dtype, bytes, out.len())?;
    match dtype {
        DType::F32 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes(c.try_into().expect("chunk of 4"));
            }
        }
        DType::F16 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = f16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
        DType::BF16 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = bf16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
        DType::Q8_0 => each_block(bytes, out, q8_0_block),
        DType::Q4_0 => each_block(bytes, out, q4_0_block),
        DType::Q5_0 => each_block(bytes, out, q5_0_block),
        DType::Q4K => each_block(bytes, out, q4k_block),
        DType::Q5K => each_block(bytes, out, q5k_block),
        DType::Q6K => each_block(bytes, out, q6k_block),
    }
    Ok(())
}

fn checked_len(dtype: DType, bytes: &[u8], n: usize) -> Result<usize, LoadError> {
    match dtype.bytes_for(n as u64) {
        Some(len) if len == bytes.len() as u64 => Ok(n),
        Some(len) => Err(LoadError::BadData {
            dtype: dtype.name(),
            problem: format!("{n} values need {len} bytes, got {}", bytes.len()),
        }),
        None => Err(LoadError::BadData {
            dtype: dtype.name(),
            problem: format!(
                "{n} values are not a whole number of blocks of {}",
                dtype.block_size()
            ),
        }),
    }
}

/// Reads each block with an unaligned read (blocks in a file sit at any offset) and
/// hands it to `f` with the block's slice of the output.
fn each_block<B: bytemuck::Pod, const N: usize>(
    bytes: &[u8],
    out: &mut [f32],
    f: fn(&B, &mut [f32; N]),
) {
    let size = std::mem::size_of::<B>();
    for (raw, dst) in bytes.chunks_exact(size).zip(out.chunks_exact_mut(N)) {
        let block: B = pod_read_unaligned(raw);
        f(&block, dst.try_into().expect("chunk of N"));
    }
}

fn q8_0_block(b: &BlockQ8_0, y: &mut [f32; QK]) {
    let d = b.scale();
    for (y, &q) in y.iter_mut().zip(&b.qs) {
        *y = q as f32 * d;
    }
}

fn q4_0_block(b: &BlockQ4_0, y: &mut [f32; QK]) {
    let d = b.scale();
    for (j, &byte) in b.qs.iter().enumerate() {
        y[j] = d * ((byte & 0x0f) as i32 - 8) as f32;
        y[j + QK / 2] = d * ((byte >> 4) as i32 - 8) as f32;
    }
}

fn q5_0_block(b: &BlockQ5_0, y: &mut [f32; QK]) {
    let d = b.scale();
    let qh = u32::from_le_bytes(b.qh);
    for (j, &byte) in b.qs.iter().enumerate() {
        let hi_lo = (((qh >> j) & 1) << 4) as i32;
        let hi_hi = (((qh >> (j + QK / 2)) & 1) << 4) as i32;
        y[j] = d * (((byte & 0x0f) as i32 | hi_lo) - 16) as f32;
        y[j + QK / 2] = d * (((byte >> 4) as i32 | hi_hi) - 16) as f32;
    }
}

/// Q4_K and Q5_K share their scale packing and sub-block order; Q5_K adds a high bit.
fn k_quant_4_5(
    d: f32,
    dmin: f32,
    scales: &[u8; K_SCALE_SIZE],
    qs: &[u8; QK_K / 2],
    qh: Option<&[u8; QK_K / 8]>,
    y: &mut [f32; QK_K],
) {
    // Four groups of 64 values; each group is two 32-value sub-blocks sharing 32 bytes of qs.
    for group in 0..4 {
        let (sc_lo, m_lo) = k_scale_min(2 * group, scales);
        let (sc_hi, m_hi) = k_scale_min(2 * group + 1, scales);
        let (d_lo, min_lo) = (d * sc_lo as f32, dmin * m_lo as f32);
        let (d_hi, min_hi) = (d * sc_hi as f32, dmin * m_hi as f32);
        let q = &qs[32 * group..32 * group + 32];
        let y = &mut y[64 * group..64 * group + 64];
        for l in 0..32 {
            let (mut lo, mut hi) = ((q[l] & 0x0f) as u32, (q[l] >> 4) as u32);
            if let Some(qh) = qh {
                lo |= (((qh[l] >> (2 * group)) & 1) as u32) << 4;
                hi |= (((qh[l] >> (2 * group + 1)) & 1) as u32) << 4;
            }
            y[l] = d_lo * lo as f32 - min_lo;
            y[l + 32] = d_hi * hi as f32 - min_hi;
        }
    }
}

fn q4k_block(b: &BlockQ4K, y: &mut [f32; QK_K]) {
    k_quant_4_5(b.scale(), b.min_scale(), &b.scales, &b.qs, None, y);
}

fn q5k_block(b: &BlockQ5K, y: &mut [f32; QK_K]) {
    k_quant_4_5(b.scale(), b.min_scale(), &b.scales, &b.qs, Some(&b.qh), y);
}

fn q6k_block(b: &BlockQ6K, y: &mut [f32; QK_K]) {
    let d = b.scale();
    // Two halves of 128 values; each half uses 64 bytes of ql, 32 of qh, 8 scales.
    // Within a half, byte l of ql/qh feeds values l, l+32, l+64, l+96 (low nibble of
    // ql[l], low nibble of ql[l+32], high nibble of ql[l], high nibble of ql[l+32]),
    // taking successive 2-bit fields of qh[l] as their high bits.
    for half in 0..2 {
        let ql = &b.ql[64 * half..64 * half + 64];
        let qh = &b.qh[32 * half..32 * half + 32];
        let sc = &b.scales[8 * half..8 * half + 8];
        let y = &mut y[128 * half..128 * half + 128];
        for l in 0..32 {
            let is = l / 16; // 16 values per scale
            let q1 = ((ql[l] & 0x0f) | ((qh[l] & 3) << 4)) as i32 - 32;
            let q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            y[l] = d * sc[is] as f32 * q1 as f32;
            y[l + 32] = d * sc[is + 2] as f32 * q2 as f32;
            y[l + 64] = d * sc[is + 4] as f32 * q3 as f32;
            y[l + 96] = d * sc[is + 6] as f32 * q4 as f32;
        }
    }
}
