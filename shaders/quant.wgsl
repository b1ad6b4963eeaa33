// Weight decoding shared by the kernels that read weights (matmul, dequant, embedding).
//
// The including file declares the weight binding:
//     var<storage, read> w: array<vec4<u32>>;   // weight [rows, k] in its GPU layout
// The GPU layouts are documented in engine/src/weights.rs: F32/F16/BF16, Q4_K and Q5_K as
// stored; Q8_0, Q4_0, Q5_0 and Q6_K repacked into sections (each byte range of every block
// together), so every block's quant bytes start on a 16-byte boundary.
//
// The unit of decoding is a *chunk*: 16 consecutive values of one row, produced from one
// 16-byte load of quant bits (plus high bits and scales). Every block type splits into whole
// chunks, each under a single scale (and min), so `w16` is the one function a kernel needs.
// Values are computed with the same f32 operations, in the same order, as the CPU
// dequantiser in wgllama-loaders.

alias Chunk = array<vec4<f32>, 4>;

// ggml type ids, the values of DT.
const DT_F32: u32 = 0u;
const DT_F16: u32 = 1u;
const DT_Q4_0: u32 = 2u;
const DT_Q5_0: u32 = 6u;
const DT_Q8_0: u32 = 8u;
const DT_Q4_K: u32 = 12u;
const DT_Q5_K: u32 = 13u;
const DT_Q6_K: u32 = 14u;
const DT_BF16: u32 = 30u;

// The weight's type (a ggml type id above).
override DT: u32 = 0u;
// Rows are whole chunks (k % 16 == 0). Always true for the block types; float weights with
// other row lengths take the per-value path, which checks k.
override W_ALIGNED: bool = true;

// Byte lane shifts of the four bytes of a u32 word.
const BYTE_SHIFTS = vec4<u32>(0u, 8u, 16u, 24u);

fn w_word(i: u32) -> u32 {
    return w[i >> 2u][i & 3u];
}

// f16 number i of a section of packed f16 values starting at word `base`.
fn w_f16(base: u32, i: u32) -> f32 {
    return unpack2x16float(w_word(base + (i >> 1u)))[i & 1u];
}

// The four bytes of a word as signed values.
fn i8x4(v: u32) -> vec4<f32> {
    return vec4<f32>(bitcast<vec4<i32>>(vec4<u32>(v) << (vec4<u32>(24u) - BYTE_SHIFTS)) >> vec4<u32>(24u));
}

// The low (shift 0) or high (shift 4) nibbles of the four bytes of a word.
fn nib4(v: u32, shift: u32) -> vec4<u32> {
    return (vec4<u32>(v) >> (BYTE_SHIFTS + shift)) & vec4<u32>(15u);
}

// One bit (at `bit`) of each of the four bytes of a word.
fn bit4(v: u32, bit: u32) -> vec4<u32> {
    return (vec4<u32>(v) >> (BYTE_SHIFTS + bit)) & vec4<u32>(1u);
}

// Byte i (0..11) of the 12 packed scale bytes of a Q4_K/Q5_K block, held in words s.x..s.z.
// Selects rather than s[i / 4]: a dynamic vector index can cost a trip through local memory.
fn kq_byte(s: vec3<u32>, i: u32) -> u32 {
    let word = select(select(s.x, s.y, i >= 4u), s.z, i >= 8u);
    return (word >> ((i & 3u) * 8u)) & 255u;
}

// The 6-bit (scale, min) of sub-block j (0..7) of a Q4_K/Q5_K block: sub-blocks 0-3 keep
// them in the low 6 bits of bytes j and j+4; sub-blocks 4-7 in the nibbles of byte j+4 with
// their top 2 bits in the spare top bits of bytes j-4 (scale) and j (min).
fn kq_scale_min(s: vec3<u32>, j: u32) -> vec2<f32> {
    if (j < 4u) {
        return vec2<f32>(f32(kq_byte(s, j) & 63u), f32(kq_byte(s, j + 4u) & 63u));
    }
    let sc = (kq_byte(s, j + 4u) & 15u) | ((kq_byte(s, j - 4u) >> 6u) << 4u);
    let m = (kq_byte(s, j + 4u) >> 4u) | ((kq_byte(s, j) >> 6u) << 4u);
    return vec2<f32>(f32(sc), f32(m));
}

// ---- float types: chunk c of a row starting at value index g (a multiple of 16) ----

fn f32_chunk(g: u32) -> Chunk {
    let i = g >> 2u;
    return Chunk(bitcast<vec4<f32>>(w[i]), bitcast<vec4<f32>>(w[i + 1u]),
                 bitcast<vec4<f32>>(w[i + 2u]), bitcast<vec4<f32>>(w[i + 3u]));
}

fn f16_chunk(g: u32) -> Chunk {
    let a = w[g >> 3u];
    let b = w[(g >> 3u) + 1u];
    return Chunk(vec4<f32>(unpack2x16float(a.x), unpack2x16float(a.y)),
                 vec4<f32>(unpack2x16float(a.z), unpack2x16float(a.w)),
                 vec4<f32>(unpack2x16float(b.x), unpack2x16float(b.y)),
                 vec4<f32>(unpack2x16float(b.z), unpack2x16float(b.w)));
}

// bf16 is the top half of an f32.
fn bf16x2(v: u32) -> vec2<f32> {
    return bitcast<vec2<f32>>(vec2<u32>(v << 16u, v & 0xffff0000u));
}

fn bf16_chunk(g: u32) -> Chunk {
    let a = w[g >> 3u];
    let b = w[(g >> 3u) + 1u];
    return Chunk(vec4<f32>(bf16x2(a.x), bf16x2(a.y)), vec4<f32>(bf16x2(a.z), bf16x2(a.w)),
                 vec4<f32>(bf16x2(b.x), bf16x2(b.y)), vec4<f32>(bf16x2(b.z), bf16x2(b.w)));
}

// Value g (any index) of a float weight, for rows that are not whole chunks.
fn float_at(g: u32) -> f32 {
    switch (DT) {
        case DT_F16: { return unpack2x16float(w_word(g >> 1u))[g & 1u]; }
        case DT_BF16: { return bitcast<f32>((w_word(g >> 1u) >> ((g & 1u) * 16u)) << 16u); }
        default: { return bitcast<f32>(w_word(g)); }
    }
}

// ---- block types: chunk j of block b, nb blocks in the whole tensor ----

// Q8_0: x = d * q. Sections: qs (2 vec4 per block), then d.
fn q8_0_chunk(b: u32, j: u32, nb: u32) -> Chunk {
    let q = w[2u * b + j];
    let d = w_f16(8u * nb, b);
    return Chunk(i8x4(q.x) * d, i8x4(q.y) * d, i8x4(q.z) * d, i8x4(q.w) * d);
}

// Q4_0: x = d * (q - 8); byte i holds value i (low nibble) and value i + 16 (high nibble).
// Sections: qs (1 vec4 per block), then d. Chunk j takes nibble j of all 16 bytes.
fn q4_0_chunk(b: u32, j: u32, nb: u32) -> Chunk {
    let q = w[b];
    let d = w_f16(4u * nb, b);
    let sh = 4u * j;
    return Chunk((vec4<f32>(nib4(q.x, sh)) - 8.0) * d, (vec4<f32>(nib4(q.y, sh)) - 8.0) * d,
                 (vec4<f32>(nib4(q.z, sh)) - 8.0) * d, (vec4<f32>(nib4(q.w, sh)) - 8.0) * d);
}

// Q5_0: as Q4_0 with a fifth bit: bit i of the block's qh word is the top bit of value i,
// x = d * (q - 16). Sections: qs (1 vec4 per block), qh (1 word), d.
fn q5_0_chunk(b: u32, j: u32, nb: u32) -> Chunk {
    let q = w[b];
    // Bits 16j .. 16j + 15 of qh are the top bits of this chunk's values.
    let qh = w_word(4u * nb + b) >> (16u * j);
    let d = w_f16(5u * nb, b);
    let sh = 4u * j;
    // Written out per word (no loop over a local array): keeps everything in registers.
    return Chunk(q5_0_4(q.x, qh, sh, d), q5_0_4(q.y, qh >> 4u, sh, d),
                 q5_0_4(q.z, qh >> 8u, sh, d), q5_0_4(q.w, qh >> 12u, sh, d));
}

// Four Q5_0 values: nibbles `sh` of the bytes of `q`, top bits in the low 4 bits of `qh`.
fn q5_0_4(q: u32, qh: u32, sh: u32, d: f32) -> vec4<f32> {
    let hi = (vec4<u32>(qh) >> vec4<u32>(0u, 1u, 2u, 3u)) & vec4<u32>(1u);
    return (vec4<f32>(nib4(q, sh) | (hi << vec4<u32>(4u))) - 16.0) * d;
}

// Q4_K / Q5_K (as stored). A block is 4 groups of 64 values; group g's 32 qs bytes hold
// sub-block 2g in their low nibbles and 2g + 1 in their high nibbles; x = d*sc*q - dmin*m.
// Chunk j (0..15): group j / 4, sub-block 2(j / 4) + (j / 2) % 2, qs bytes 16 (j % 2) ..
// of the group. Q5_K's top bit of value l of sub-block s is bit s of qh byte l.
fn kq45_chunk(hdr: vec4<u32>, q: vec4<u32>, qh: vec4<u32>, has_qh: bool, j: u32) -> Chunk {
    let dm = unpack2x16float(hdr.x);
    let sub = 2u * (j / 4u) + (j / 2u) % 2u;
    let sm = kq_scale_min(hdr.yzw, sub);
    let dl = dm.x * sm.x;
    let ml = dm.y * sm.y;
    let sh = 4u * ((j / 2u) % 2u);
    // Written out per word (no loop over a local array): keeps everything in registers.
    return Chunk(kq45_4(q.x, qh.x, has_qh, sh, sub, dl, ml), kq45_4(q.y, qh.y, has_qh, sh, sub, dl, ml),
                 kq45_4(q.z, qh.z, has_qh, sh, sub, dl, ml), kq45_4(q.w, qh.w, has_qh, sh, sub, dl, ml));
}

// Four Q4_K/Q5_K values: nibbles `sh` of the bytes of `q`, top bits (Q5_K) bit `sub` of `qh`.
fn kq45_4(q: u32, qh: u32, has_qh: bool, sh: u32, sub: u32, dl: f32, ml: f32) -> vec4<f32> {
    var v = nib4(q, sh);
    if (has_qh) {
        v = v | (bit4(qh, sub) << vec4<u32>(4u));
    }
    return dl * vec4<f32>(v) - ml;
}

// Q4_K block: 9 vec4: [d dmin | scales 12 B], qs 128 B.
fn q4_k_chunk(b: u32, j: u32) -> Chunk {
    let base = 9u * b;
    return kq45_chunk(w[base], w[base + 1u + 2u * (j / 4u) + j % 2u], vec4<u32>(0u), false, j);
}

// Q5_K block: 11 vec4: [d dmin | scales 12 B], qh 32 B, qs 128 B.
fn q5_k_chunk(b: u32, j: u32) -> Chunk {
    let base = 11u * b;
    return kq45_chunk(w[base], w[base + 3u + 2u * (j / 4u) + j % 2u], w[base + 1u + j % 2u], true, j);
}

// Q6_K: x = d * sc * (q - 32), q 6 bits, 16 sub-blocks of 16 under signed 8-bit scales.
// Sections: body (13 vec4: ql 128 B, qh 64 B, scales 16 B), then d.
// A block is two halves of 128 values; in half h, value 32r + l (r = 0..3, l = 0..31) has
// its low 4 bits in nibble r / 2 of ql byte 64h + 32(r % 2) + l, its top 2 bits in bits
// 2r, 2r+1 of qh byte 32h + l, and scale 8h + l / 16 + 2r. Chunk j is h = j / 8,
// r = (j % 8) / 2, l = 16 (j % 2) .. + 15.
fn q6_k_chunk(b: u32, j: u32, nb: u32) -> Chunk {
    let base = 13u * b;
    let h = j / 8u;
    let r = (j % 8u) / 2u;
    let l16 = j % 2u;
    let ql = w[base + 4u * h + 2u * (r % 2u) + l16];
    let qh = w[base + 8u + 2u * h + l16];
    let si = 8u * h + l16 + 2u * r;
    let sc = extractBits(bitcast<i32>(w[base + 12u][si / 4u]), (si % 4u) * 8u, 8u);
    let dl = w_f16(52u * nb, b) * f32(sc);
    let lo_sh = 4u * (r / 2u);
    let hi_sh = 2u * r;
    return Chunk(q6_k_4(ql.x, qh.x, lo_sh, hi_sh, dl), q6_k_4(ql.y, qh.y, lo_sh, hi_sh, dl),
                 q6_k_4(ql.z, qh.z, lo_sh, hi_sh, dl), q6_k_4(ql.w, qh.w, lo_sh, hi_sh, dl));
}

// Four Q6_K values: nibbles `lo_sh` of the bytes of `ql`, 2-bit fields `hi_sh` of `qh`.
fn q6_k_4(ql: u32, qh: u32, lo_sh: u32, hi_sh: u32, dl: f32) -> vec4<f32> {
    let hi = (vec4<u32>(qh) >> (BYTE_SHIFTS + hi_sh)) & vec4<u32>(3u);
    let v = vec4<i32>(nib4(ql, lo_sh) | (hi << vec4<u32>(4u))) - vec4<i32>(32);
    return dl * vec4<f32>(v);
}

// Values 16c .. 16c + 15 of row `row` of a weight with k values per row and nb blocks in
// all (nb is only used by the repacked types, to find their sections). Values past the end
// of the row (only for float weights with k % 16 != 0) are 0.
fn w16(row: u32, c: u32, k: u32, nb: u32) -> Chunk {
    switch (DT) {
        case DT_Q8_0, DT_Q4_0, DT_Q5_0: {
            // 2 chunks per block; block indices fit u32 where value indices might not.
            let b = row * (k / 32u) + c / 2u;
            let j = c % 2u;
            if (DT == DT_Q8_0) { return q8_0_chunk(b, j, nb); }
            if (DT == DT_Q4_0) { return q4_0_chunk(b, j, nb); }
            return q5_0_chunk(b, j, nb);
        }
        case DT_Q4_K, DT_Q5_K, DT_Q6_K: {
            let b = row * (k / 256u) + c / 16u;
            let j = c % 16u;
            if (DT == DT_Q4_K) { return q4_k_chunk(b, j); }
            if (DT == DT_Q5_K) { return q5_k_chunk(b, j); }
            return q6_k_chunk(b, j, nb);
        }
        default: {
            if (!W_ALIGNED) {
                var out: Chunk; // zeros
                for (var i = 0u; i < 16u; i = i + 1u) {
                    let kk = 16u * c + i;
                    if (kk < k) {
                        out[i / 4u][i % 4u] = float_at(row * k + kk);
                    }
                }
                return out;
            }
            let g = row * k + 16u * c;
            if (DT == DT_F16) { return f16_chunk(g); }
            if (DT == DT_BF16) { return bf16_chunk(g); }
            return f32_chunk(g);
        }
    }
}
