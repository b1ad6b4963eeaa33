//! ggml's quantised block layouts as `#[repr(C)]` structs.
//!
//! Every field is a byte array (scales are raw f16 bits), so the structs have alignment 1,
//! no padding, and are `Pod`: a block can be read from any byte offset of a file with
//! `bytemuck::pod_read_unaligned`. Tensors in a GGUF file are only aligned to 32 bytes,
//! and blocks of 34 or 210 bytes are not aligned to anything, so casting a slice of a
//! memory map to `&[BlockQ8_0]` would only work by luck for wider field types.

use bytemuck::{Pod, Zeroable};
use half::f16;

/// Values per block of the "legacy" quants (Q8_0, Q4_0, Q5_0).
pub const QK: usize = 32;
/// Values per super-block of the k-quants (Q4_K, Q5_K, Q6_K).
pub const QK_K: usize = 256;
/// Bytes of packed 6-bit scales and mins in Q4_K / Q5_K.
pub const K_SCALE_SIZE: usize = 12;

fn f16_bits(b: [u8; 2]) -> f32 {
    f16::from_bits(u16::from_le_bytes(b)).to_f32()
}

/// Q8_0: 32 values `x = d * q`, q a signed byte.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ8_0 {
    /// Scale (f16 bits, little-endian).
    pub d: [u8; 2],
    pub qs: [i8; QK],
}
const _: () = assert!(std::mem::size_of::<BlockQ8_0>() == 34);

/// Q4_0: 32 values `x = d * (q - 8)`, q 4 bits. Byte j holds value j in its low nibble
/// and value j + 16 in its high nibble.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ4_0 {
    pub d: [u8; 2],
    pub qs: [u8; QK / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ4_0>() == 18);

/// Q5_0: 32 values `x = d * (q - 16)`, q 5 bits: the low 4 bits packed as in Q4_0, the
/// fifth bit of value j is bit j of `qh` read as a little-endian u32.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ5_0 {
    pub d: [u8; 2],
    pub qh: [u8; 4],
    pub qs: [u8; QK / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ5_0>() == 22);

/// Q4_K: 256 values in 8 sub-blocks of 32. Sub-block s has a 6-bit scale `sc[s]` and
/// 6-bit min `m[s]` (packed in `scales`, see [`k_scale_min`]); `x = d*sc*q - dmin*m`,
/// q 4 bits. Each 32-byte group of `qs` holds two sub-blocks: low nibbles the first,
/// high nibbles the second.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ4K {
    pub d: [u8; 2],
    pub dmin: [u8; 2],
    pub scales: [u8; K_SCALE_SIZE],
    pub qs: [u8; QK_K / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ4K>() == 144);

/// Q5_K: as Q4_K with a fifth bit per value: bit s of `qh[l]` is the high bit of
/// value l of sub-block s.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ5K {
    pub d: [u8; 2],
    pub dmin: [u8; 2],
    pub scales: [u8; K_SCALE_SIZE],
    pub qh: [u8; QK_K / 8],
    pub qs: [u8; QK_K / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ5K>() == 176);

/// Q6_K: 256 values in 16 sub-blocks of 16, `x = d * scales[s] * (q - 32)`, q 6 bits:
/// low 4 bits in `ql`, high 2 bits in `qh` (layout in [`super::dequant`]).
/// Note the scale `d` comes last in this block, unlike the others.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ6K {
    pub ql: [u8; QK_K / 2],
    pub qh: [u8; QK_K / 4],
    pub scales: [i8; QK_K / 16],
    pub d: [u8; 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ6K>() == 210);

impl BlockQ8_0 {
    pub fn scale(&self) -> f32 {
        f16_bits(self.d)
    }
}
impl BlockQ4_0 {
    pub fn scale(&self) -> f32 {
        f16_bits(self.d)
    }
}
impl BlockQ5_0 {
    pub fn scale(&self) -> f32 {
        f16_bits(self.d)
    }
}
impl BlockQ4K {
    pub fn scale(&self) -> f32 {
        f16_bits(self.d)
    }
    pub fn min_scale(&self) -> f32 {
        f16_bits(self.dmin)
    }
}
impl BlockQ5K {
    pub fn scale(&self) -> f32 {
        f16_bits(self.d)
    }
    pub fn min_scale(&self) -> f32 {
        f16_bits(self.dmin)
    }
}
impl BlockQ6K {
    pub fn scale(&self) -> f32 {
        f16_bits(self.d)
    }
}

/// The 6-bit (scale, min) of sub-block `j` (0..8) of a Q4_K / Q5_K block.
///
/// The 12 bytes pack 8 scales and 8 mins: sub-blocks 0-3 keep their scale in the low 6
/// bits of bytes 0-3 and their min in the low 6 bits of bytes 4-7. Sub-blocks 4-7 keep
/// their low 4 bits in the nibbles of bytes 8-11 (scale low nibble, min high nibble) and
/// their top 2 bits in the spare top bits of bytes 0-3 (scale) and 4-7 (min).
pub fn k_scale_min(j: usize, scales: &[u8; K_SCALE_SIZE]) -> (u8, u8) {
    if j < 4 {
        (scales[j] & 63, scales[j + 4] & 63)
    } else {
        let sc = (scales[j + 4] & 0x0f) | ((scales[j - 4] >> 6) << 4);
        let m = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
        (sc, m)
    }
}
