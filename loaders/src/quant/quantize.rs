//! CPU quantisers for every storage type: float conversions, the simple block formats
//! (Q8_0, Q4_0, Q5_0) here, the k-quants (Q4_K, Q5_K, Q6_K) in [`super::kquants`].

use bytemuck::bytes_of;
use half::{bf16, f16};

use super::blocks::*;
use super::kquants;
use crate::{DType, LoadError};

/// Encodes `values` as `dtype`. The count must be a whole number of blocks.
pub fn quantize(dtype: DType, values: &[f32]) -> Result<Vec<u8>, LoadError> {
    let mut out = Vec::new();
    quantize_into(dtype, values, &mut out)?;
    Ok(out)
}

/// As [`quantize`], appending to `out` (so a caller can reuse one buffer per thread).
pub fn quantize_into(dtype: DType, values: &[f32], out: &mut Vec<u8>) -> Result<(), LoadError> {
    if !values.len().is_multiple_of(dtype.block_size()) {
        return Err(LoadError::BadData {
            dtype: dtype.name(),
            problem: format!(
                "{} values are not a whole number of blocks of {}",
                values.len(),
                dtype.block_size()
            ),
        });
    }
    out.reserve(values.len() / dtype.block_size() * dtype.block_bytes());
    match dtype {
        DType::F32 => values
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        DType::F16 => values
            .iter()
            .for_each(|&v| out.extend_from_slice(&f16::from_f32(v).to_le_bytes())),
        DType::BF16 => values
            .iter()
            .for_each(|&v| out.extend_from_slice(&bf16::from_f32(v).to_le_bytes())),
        DType::Q8_0 => values
            .chunks_exact(QK)
            .for_each(|x| out.extend_from_slice(bytes_of(&q8_0_block(x)))),
        DType::Q4_0 => values
            .chunks_exact(QK)
            .for_each(|x| out.extend_from_slice(bytes_of(&q4_0_block(x)))),
        DType::Q5_0 => values
            .chunks_exact(QK)
            .for_each(|x| out.extend_from_slice(bytes_of(&q5_0_block(x)))),
        DType::Q4K => each_super_block(values, out, kquants::q4k_block),
        DType::Q5K => each_super_block(values, out, kquants::q5k_block),
        DType::Q6K => each_super_block(values, out, kquants::q6k_block),
    }
    Ok(())
}

fn each_super_block<B: bytemuck::Pod>(values: &[f32], out: &mut Vec<u8>, f: fn(&[f32; QK_K]) -> B) {
    for x in values.chunks_exact(QK_K) {
        out.extend_from_slice(bytes_of(&f(x.try_into().expect("chunk of QK_K"))));
    }
}

fn f16_le(x: f32) -> [u8; 2] {
    f16::from_f32(x).to_le_bytes()
}

/// Symmetric 8-bit: scale so the largest magnitude maps to ±127, round to nearest.
fn q8_0_block(x: &[f32]) -> BlockQ8_0 {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let inv = if d == 0.0 { 0.0 } else { 1.0 / d };
    let mut qs = [0i8; QK];
    for (q, &v) in qs.iter_mut().zip(x) {
        *q = (v * inv).round() as i8;
    }
    BlockQ8_0 { d: f16_le(d), qs }
}

/// The value of largest magnitude, with its sign: Q4_0/Q5_0 map it to the most negative
/// code so the full signed range is used on the side where the extreme value lies.
fn signed_absmax(x: &[f32]) -> f32 {
    x.iter()
        .fold(0f32, |m, &v| if v.abs() > m.abs() { v } else { m })
}

/// 4 bits, offset 8: `q = clamp(trunc(x/d + 8.5), 0, 15)` with `d = max / -8`.
fn q4_0_block(x: &[f32]) -> BlockQ4_0 {
    let d = signed_absmax(x) / -8.0;
    let inv = if d == 0.0 { 0.0 } else { 1.0 / d };
    let code = |v: f32| ((v * inv + 8.5) as u8).min(15);
    let mut qs = [0u8; QK / 2];
    for (j, q) in qs.iter_mut().enumerate() {
        *q = code(x[j]) | (code(x[j + QK / 2]) << 4);
    }
    BlockQ4_0 { d: f16_le(d), qs }
}

/// 5 bits, offset 16: `q = clamp(trunc(x/d + 16.5), 0, 31)` with `d = max / -16`.
fn q5_0_block(x: &[f32]) -> BlockQ5_0 {
    let d = signed_absmax(x) / -16.0;
    let inv = if d == 0.0 { 0.0 } else { 1.0 / d };
    let code = |v: f32| ((v * inv + 16.5) as u8).min(31);
    let mut qs = [0u8; QK / 2];
    let mut qh = 0u32;
    for (j, q) in qs.iter_mut().enumerate() {
        let (lo, hi) = (code(x[j]), code(x[j + QK / 2]));
        *q = (lo & 0x0f) | ((hi & 0x0f) << 4);
        qh |= ((lo as u32 >> 4) << j) | ((hi as u32 >> 4) << (j + QK / 2));
    }
    BlockQ5_0 {
        d: f16_le(d),
        qh: qh.to_le_bytes(),
        qs,
    }
}
