// Decode mat-vec (one token): y_s = W_s x (+ y_s with ACC) for 1-3 weights W_s sharing the
// input x in one dispatch (`matvec`), and the SwiGLU pair y = silu(W_gate x) * (W_up x)
// (`matvec_glu`; `matvec_sgr_glu` in matvec_reduce_sg.wgsl, a subgroup per row of each).
// f32 activations, f32 accumulation. quant.wgsl comes before this file (its
// value helpers; its `w16` reads weight 0 only and is not used here), and one of
// matvec_reduce_sg.wgsl / matvec_reduce_wg.wgsl after it: each holds the entry points and
// `reduce_rows`, the sum of a row's partial sums over the workgroup (subgroupAdd, or a
// workgroup-memory tree where the device has no subgroups).
//
// A workgroup of WG lanes owns R consecutive rows of one weight s (`matvec`: workgroups
// [0, wg1) weight 0, [wg1, wg2) weight 1, [wg2, wg_end) weight 2; `matvec_glu`: R rows of
// gate and the same rows of up). Its lanes stride over a row's *units* (a fixed run of
// values per weight type, one 16-byte quant load), consecutive lanes on consecutive units so
// each load instruction reads contiguous bytes; a lane loads the x values of its unit once
// and uses them for all the workgroup's rows. (The *_sgr entry points instead give each
// subgroup its own R rows: its LPR lanes stride over them and subgroupAdd alone sums them, no
// workgroup memory and no barrier; a workgroup then owns R * WG / LPR rows.) Every weight type has its own inner loop (no
// generic 16-value decoder) except Q4_0, Q5_0, Q5_K and float rows that are not whole
// 16-value chunks, which take `gen_rows` over quant.wgsl's chunk decoders.
//
// Quant values become floats without int-to-float conversions (quarter rate on NVIDIA): a
// small integer v OR-ed into the mantissa of 2^23 is the float 2^23 + v, and one exact
// subtraction leaves v (MAGIC below). Q4_K may instead keep 16 + q (nibble in the top
// mantissa bits, no subtraction) and remove 16 * sum(x) per sub-block (Q4K_OFFSET): fewer
// instructions, a few times the rounding error of the plain sum (still f32 accumulation).
//
// Weight slots are separate bindings (a weight of each type stays its own buffer); `wld(s, i)`
// switches on the slot, a workgroup-uniform value (a uniform branch per load).

struct Params {
    k: u32,         // row length of every weight = length of x
    wg1: u32,       // matvec: first workgroup of weight 1 (= workgroups of weight 0)
    wg2: u32,       // matvec: first workgroup of weight 2
    wg_end: u32,    // workgroups in all
    n: vec4<u32>,   // rows of weights 0..2 (.w unused)
    nb: vec4<u32>,  // blocks in weights 0..2 (the repacked types' section offsets)
    norm: vec4<f32>, // NORM_IN: .x = the RMSNorm's eps (.yzw unused)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;   // [k] (padded to 16 bytes)
@group(0) @binding(2) var<storage, read> w: array<vec4<u32>>;   // weight 0 [n0, k], GPU layout of DT0
@group(0) @binding(3) var<storage, read> w1: array<vec4<u32>>;  // weight 1 [n1, k] of DT1 (weight 0 again if unused)
@group(0) @binding(4) var<storage, read> w2: array<vec4<u32>>;  // weight 2 [n2, k] of DT2 (weight 0 again if unused)
@group(0) @binding(5) var<storage, read_write> y0: array<f32>;  // [n0]; matvec_glu, matvec_sgr_glu (f32): [n0] = silu(gate) * up
@group(0) @binding(6) var<storage, read_write> y1: array<f32>;  // [n1] (matvec only; y0 again if unused)
@group(0) @binding(7) var<storage, read_write> y2: array<f32>;  // [n2] (matvec only; y0 again if unused)
// With XQ: x quantised to int8 by quantize_x8.wgsl ([11 k / 32] words, layout there; x is
// then bound to the same buffer and unused). Without XQ: x's buffer again, unused.
@group(0) @binding(8) var<storage, read> xq: array<vec4<u32>>;
// matvec_sgr_norm only (the next RMSNorm folded into a residual mat-vec; layout under "RMSNorm
// folded" below): its output for the next mat-vecs, per-block sums of squares, tickets and
// staged rows, and the norm weight [n0]. matvec_sgr_glu with XQ: its int8 output, tickets and
// staged rows in nt (no norm weight).
@group(0) @binding(9) var<storage, read_write> nt: array<atomic<u32>>;
@group(0) @binding(10) var<storage, read> nw: array<f32>;

override WG: u32 = 64u;          // lanes per workgroup, a power of two <= MAX_WG
// Lanes that share a row (`lid` of the row loops counts them): WG, or the subgroup size where
// each subgroup owns its own rows (matvec_reduce_sg.wgsl's *_sgr entry points).
override LPR: u32 = 64u;
override DT0: u32 = 12u;         // ggml type of weight 0 (DT_* in quant.wgsl)
override DT1: u32 = 12u;
override DT2: u32 = 12u;
// Row counts are constants (not function arguments) wherever they bound a loop over an
// array, so the arrays stay in registers whether or not the driver inlines the functions.
override R: u32 = 2u;            // rows per workgroup of each weight (glu: of gate and of up)
override RL: u32 = 2u;           // rows per row-loop call: R, or 2R (glu, same types: gate and up)
override RT: u32 = 2u;           // rows reduced per workgroup: R (matvec), 2R (glu); <= MAX_R
override NW: u32 = 3u;           // matvec: weights bound (1: the slot is the constant 0)
override ACC: bool = false;      // matvec: y += W x
override Q4K_OFFSET: bool = false;
override VEC_K: bool = true;     // k % 16 == 0: float weights take their vector loops
override UNROLL: u32 = 1u;       // units per lane per loop step (independent loads in flight)
override XQ: bool = false;       // int8 activations (Q4_K, Q6_K, Q8_0 weights only): dot4I8Packed
// x is matvec_sgr_norm's output, w * h not yet divided by rms(h) (int8 blocks with XQ, else
// f32), followed by per-block sums of h^2: outputs are scaled by 1 / rms(h) here.
override NORM_IN: bool = false;

const MAX_R: u32 = 8u;
const MAX_WG: u32 = 256u;
// 2^23 as bits, and as a float: (MAGIC | v) is the f32 2^23 + v for v < 2^23.
const MAGIC: u32 = 0x4b000000u;
const TWO23: f32 = 8388608.0;
const SHIFT4 = vec4<u32>(0u, 8u, 16u, 24u);

// Per-row partial sums of one lane; a vec4 per row keeps four independent FMA chains.
alias Acc = array<vec4<f32>, MAX_R>;

fn wld(s: u32, i: u32) -> vec4<u32> {
    switch (s) {
        case 0u: { return w[i]; }
        case 1u: { return w1[i]; }
        default: { return w2[i]; }
    }
}

fn wword(s: u32, i: u32) -> u32 {
    return wld(s, i >> 2u)[i & 3u];
}

// f16 number i of the section of packed f16 values of weight s starting at word `base`.
fn wf16(s: u32, base: u32, i: u32) -> f32 {
    return unpack2x16float(wword(s, base + (i >> 1u)))[i & 1u];
}

fn dt_of(s: u32) -> u32 {
    return select(select(DT0, DT1, s == 1u), DT2, s == 2u);
}

// The rows a call of a row loop computes: RL rows, rows r < R are rows a0 + r of weight sa,
// the others (glu) rows b0 + r - R of weight sb. Rows past a weight's end read its last row
// (whole workgroups stay busy; the caller drops those sums).
struct Rows {
    sa: u32,
    sb: u32,
    a0: u32,
    b0: u32,
}

fn slot_of(rs: Rows, r: u32) -> u32 {
    return select(rs.sa, rs.sb, r >= R);
}

fn row_of(rs: Rows, r: u32) -> u32 {
    let s = slot_of(rs, r);
    return min(select(rs.a0 + r, rs.b0 + r - R, r >= R), p.n[s] - 1u);
}

// x vec4 i, or zeros where `ok` is false (a lane past the row's end).
fn xl(i: u32, ok: bool) -> vec4<f32> {
    return select(vec4<f32>(0.0), x[i], ok);
}

fn hsum(v: vec4<f32>) -> f32 {
    return (v.x + v.y) + (v.z + v.w);
}

// ---- Q4_K (as stored, 9 vec4 per block: [d dmin | 12 scale bytes], qs 128 B) ----------------
// Unit: one qs vec4, 32 values. Unit j (0..7) of a block is group g = j / 2 (values
// 64g .. 64g + 63), half h = j % 2: its bytes' low nibbles are values 64g + 16h + (0..15)
// (sub-block 2g), high nibbles 64g + 32 + 16h + (0..15) (sub-block 2g + 1).

// Low / high nibbles of the four bytes of a word, as floats: q (exact) or 16 + q (offset).
fn q4_lo(v: u32) -> vec4<f32> {
    if (Q4K_OFFSET) {
        let t = vec4<u32>(v << 19u, v << 11u, v << 3u, v >> 5u);
        return bitcast<vec4<f32>>((t & vec4<u32>(0x780000u)) | vec4<u32>(0x41800000u));
    }
    return bitcast<vec4<f32>>(((vec4<u32>(v) >> SHIFT4) & vec4<u32>(15u)) | vec4<u32>(MAGIC)) - TWO23;
}

fn q4_hi(v: u32) -> vec4<f32> {
    if (Q4K_OFFSET) {
        let t = vec4<u32>(v << 15u, v << 7u, v >> 1u, v >> 9u);
        return bitcast<vec4<f32>>((t & vec4<u32>(0x780000u)) | vec4<u32>(0x41800000u));
    }
    return bitcast<vec4<f32>>(((vec4<u32>(v) >> (SHIFT4 + vec4<u32>(4u))) & vec4<u32>(15u)) | vec4<u32>(MAGIC)) - TWO23;
}

fn q4k_rows(rs: Rows, lid: u32) -> Acc {
    var acc: Acc;
    let bpr = p.k / 256u;
    let units = bpr * 8u;
    for (var u0 = lid; u0 < units; u0 = u0 + LPR * UNROLL) {
        for (var e = 0u; e < UNROLL; e = e + 1u) {
            // Unit u0 + e LPR; past the row's end a lane re-reads the last unit with x taken as 0.
            let ok = u0 + e * LPR < units;
            let u = min(u0 + e * LPR, units - 1u);
            // LPR is a multiple of 8, so a lane's unit within its block is lid % 8 (also for a
            // clamped tail unit, which stays inside the last block).
            let bi = u >> 3u;
            let j = lid & 7u;
            let g = j >> 1u;
            // x vec4 of the first low-nibble value: (256 bi + 64 g + 16 h) / 4; high: 8 further.
            let xi = bi * 64u + g * 16u + (j & 1u) * 4u;
            let xl0 = xl(xi, ok);
            let xl1 = xl(xi + 1u, ok);
            let xl2 = xl(xi + 2u, ok);
            let xl3 = xl(xi + 3u, ok);
            let xh0 = xl(xi + 8u, ok);
            let xh1 = xl(xi + 9u, ok);
            let xh2 = xl(xi + 10u, ok);
            let xh3 = xl(xi + 11u, ok);
            // Sums of x over each sub-block's 16 values here (the min term, and the offset).
            let xs = vec2<f32>(hsum((xl0 + xl1) + (xl2 + xl3)), hsum((xh0 + xh1) + (xh2 + xh3)));
            let hi_g = g >= 2u;
            let sh = (g & 1u) * 16u;
            for (var r = 0u; r < RL; r = r + 1u) {
                let s = slot_of(rs, r);
                let blk = row_of(rs, r) * bpr + bi;
                let hdr = wld(s, 9u * blk);
                let q = wld(s, 9u * blk + 1u + j);
                // Branch-free 6-bit scales: byte i of `scw` / `mw` is the scale / min of
                // sub-block i (g < 2) or 4 + i (g >= 2).
                let scw = select(hdr.y & 0x3f3f3f3fu,
                                 (hdr.w & 0x0f0f0f0fu) | ((hdr.y >> 2u) & 0x30303030u), hi_g);
                let mw = select(hdr.z & 0x3f3f3f3fu,
                                ((hdr.w >> 4u) & 0x0f0f0f0fu) | ((hdr.z >> 2u) & 0x30303030u), hi_g);
                let dm = unpack2x16float(hdr.x);
                let sc = vec2<f32>(vec2<u32>(scw >> sh, scw >> (sh + 8u)) & vec2<u32>(255u)) * dm.x;
                let mn = vec2<f32>(vec2<u32>(mw >> sh, mw >> (sh + 8u)) & vec2<u32>(255u)) * dm.y;
                let al = xl0 * q4_lo(q.x) + xl1 * q4_lo(q.y) + xl2 * q4_lo(q.z) + xl3 * q4_lo(q.w);
                let ah = xh0 * q4_hi(q.x) + xh1 * q4_hi(q.y) + xh2 * q4_hi(q.z) + xh3 * q4_hi(q.w);
                var c = dot(mn, xs);
                if (Q4K_OFFSET) {
                    c = c + 16.0 * dot(sc, xs);
                }
                acc[r] = acc[r] + sc.x * al + sc.y * ah;
                acc[r].x = acc[r].x - c;
            }
        }
    }
    return acc;
}

// ---- Q6_K (repacked: body 13 vec4 per block [ql 128 B, qh 64 B, scales 16 B], then d) -------
// Unit: 64 values, one qh vec4 and the two ql vec4 it completes. Unit j (0..3) of a block is
// half h = j / 2, l = j % 2: value 128h + 32t + 16l + i (t = 0..3, i = 0..15) has its low 4
// bits in nibble t / 2 of byte i of ql vec4 4h + 2(t % 2) + l, its top 2 bits in bits
// 2t, 2t + 1 of byte i of qh vec4 8 + 2h + l, and scale byte 8h + l + 2t.

// The four 6-bit values of the bytes of `v` minus 32, exactly.
fn q6_vals(v: u32) -> vec4<f32> {
    return bitcast<vec4<f32>>(((vec4<u32>(v) >> SHIFT4) & vec4<u32>(255u)) | vec4<u32>(MAGIC)) - (TWO23 + 32.0);
}

// Group t's 6-bit values in the bytes of a word: low nibbles from ql, top bits from qh.
fn q6_join(t: u32, qa: u32, qb: u32, qh: u32) -> u32 {
    let ql = select(qa, qb, (t & 1u) == 1u);
    let lo = (ql >> (4u * (t >> 1u))) & 0x0f0f0f0fu;
    let hi = select(qh << (4u - 2u * t), qh >> (2u * t - 4u), t >= 2u) & 0x30303030u;
    return lo | hi;
}

fn q6k_rows(rs: Rows, lid: u32) -> Acc {
    var acc: Acc;
    let bpr = p.k / 256u;
    let units = bpr * 4u;
    for (var u0 = lid; u0 < units; u0 = u0 + LPR * UNROLL) {
        for (var e = 0u; e < UNROLL; e = e + 1u) {
            // Unit u0 + e LPR; past the row's end a lane re-reads the last unit with x taken as 0.
            let ok = u0 + e * LPR < units;
            let u = min(u0 + e * LPR, units - 1u);
            let bi = u >> 2u;
            let h = (lid >> 1u) & 1u;
            let l = lid & 1u;
            let xi = bi * 64u + h * 32u + l * 4u;  // x vec4 of value 128h + 16l; group t at + 8t
            // This unit's quant words and d * scale of each group, per row, loaded up front.
            var qa: array<vec4<u32>, MAX_R>;
            var qb: array<vec4<u32>, MAX_R>;
            var qh: array<vec4<u32>, MAX_R>;
            var sc: array<vec4<f32>, MAX_R>;
            for (var r = 0u; r < RL; r = r + 1u) {
                let s = slot_of(rs, r);
                let blk = row_of(rs, r) * bpr + bi;
                let base = 13u * blk;
                qa[r] = wld(s, base + 4u * h + l);
                qb[r] = wld(s, base + 4u * h + 2u + l);
                qh[r] = wld(s, base + 8u + 2u * h + l);
                let sv = wld(s, base + 12u);
                // Scale bytes 8h + l + 2t: bytes l, l + 2 of word 2h (t = 0, 1) and 2h + 1 (t = 2, 3).
                let s01 = bitcast<i32>(select(sv.x, sv.z, h == 1u));
                let s23 = bitcast<i32>(select(sv.y, sv.w, h == 1u));
                let d = wf16(s, 52u * p.nb[s], blk);
                sc[r] = d * vec4<f32>(vec4<i32>(extractBits(s01, 8u * l, 8u), extractBits(s01, 8u * l + 16u, 8u),
                                                extractBits(s23, 8u * l, 8u), extractBits(s23, 8u * l + 16u, 8u)));
            }
            for (var t = 0u; t < 4u; t = t + 1u) {
                let x0 = xl(xi + 8u * t, ok);
                let x1 = xl(xi + 8u * t + 1u, ok);
                let x2 = xl(xi + 8u * t + 2u, ok);
                let x3 = xl(xi + 8u * t + 3u, ok);
                for (var r = 0u; r < RL; r = r + 1u) {
                    let a = x0 * q6_vals(q6_join(t, qa[r].x, qb[r].x, qh[r].x))
                          + x1 * q6_vals(q6_join(t, qa[r].y, qb[r].y, qh[r].y))
                          + x2 * q6_vals(q6_join(t, qa[r].z, qb[r].z, qh[r].z))
                          + x3 * q6_vals(q6_join(t, qa[r].w, qb[r].w, qh[r].w));
                    acc[r] = acc[r] + sc[r][t] * a;
                }
            }
        }
    }
    return acc;
}

// ---- Q8_0 (repacked: qs 2 vec4 per block, then d) ---------------------------------------------
// Unit: one qs vec4, 16 values (half a block).

// The four signed bytes of `v`, exactly: (byte ^ 0x80) = q + 128 in the mantissa of 2^23.
fn q8_vals(v: u32) -> vec4<f32> {
    return bitcast<vec4<f32>>(((vec4<u32>(v) >> SHIFT4) & vec4<u32>(255u)) ^ vec4<u32>(MAGIC | 0x80u)) - (TWO23 + 128.0);
}

fn q8_0_rows(rs: Rows, lid: u32) -> Acc {
    var acc: Acc;
    let bpr = p.k / 32u;
    let units = bpr * 2u;
    for (var u0 = lid; u0 < units; u0 = u0 + LPR * UNROLL) {
        for (var e = 0u; e < UNROLL; e = e + 1u) {
            // Unit u0 + e LPR; past the row's end a lane re-reads the last unit with x taken as 0.
            let ok = u0 + e * LPR < units;
            let u = min(u0 + e * LPR, units - 1u);
            let xi = u * 4u;
            let x0 = xl(xi, ok);
            let x1 = xl(xi + 1u, ok);
            let x2 = xl(xi + 2u, ok);
            let x3 = xl(xi + 3u, ok);
            for (var r = 0u; r < RL; r = r + 1u) {
                let s = slot_of(rs, r);
                let blk = row_of(rs, r) * bpr + (u >> 1u);
                let q = wld(s, 2u * blk + (lid & 1u));
                let d = wf16(s, 8u * p.nb[s], blk);
                let a = x0 * q8_vals(q.x) + x1 * q8_vals(q.y) + x2 * q8_vals(q.z) + x3 * q8_vals(q.w);
                acc[r] = acc[r] + d * a;
            }
        }
    }
    return acc;
}

// ---- F16, BF16 (8 values per vec4), F32 (4): rows of whole 16-value chunks ---------------------

fn f32_rows(rs: Rows, lid: u32) -> Acc {
    var acc: Acc;
    let units = p.k / 4u;
    for (var u0 = lid; u0 < units; u0 = u0 + LPR * UNROLL) {
        for (var e = 0u; e < UNROLL; e = e + 1u) {
            let u = min(u0 + e * LPR, units - 1u);
            let xv = xl(u, u0 + e * LPR < units);
            for (var r = 0u; r < RL; r = r + 1u) {
                let v = wld(slot_of(rs, r), row_of(rs, r) * units + u);
                acc[r] = acc[r] + xv * bitcast<vec4<f32>>(v);
            }
        }
    }
    return acc;
}

fn f16_rows(rs: Rows, lid: u32) -> Acc {
    var acc: Acc;
    let units = p.k / 8u;
    for (var u0 = lid; u0 < units; u0 = u0 + LPR * UNROLL) {
        for (var e = 0u; e < UNROLL; e = e + 1u) {
            let ok = u0 + e * LPR < units;
            let u = min(u0 + e * LPR, units - 1u);
            let x0 = xl(2u * u, ok);
            let x1 = xl(2u * u + 1u, ok);
            for (var r = 0u; r < RL; r = r + 1u) {
                let v = wld(slot_of(rs, r), row_of(rs, r) * units + u);
                acc[r] = acc[r] + x0 * vec4<f32>(unpack2x16float(v.x), unpack2x16float(v.y))
                                + x1 * vec4<f32>(unpack2x16float(v.z), unpack2x16float(v.w));
            }
        }
    }
    return acc;
}

fn bf16_rows(rs: Rows, lid: u32) -> Acc {
    var acc: Acc;
    let units = p.k / 8u;
    for (var u0 = lid; u0 < units; u0 = u0 + LPR * UNROLL) {
        for (var e = 0u; e < UNROLL; e = e + 1u) {
            let ok = u0 + e * LPR < units;
            let u = min(u0 + e * LPR, units - 1u);
            let x0 = xl(2u * u, ok);
            let x1 = xl(2u * u + 1u, ok);
            for (var r = 0u; r < RL; r = r + 1u) {
                let v = wld(slot_of(rs, r), row_of(rs, r) * units + u);
                acc[r] = acc[r] + x0 * vec4<f32>(bf16x2(v.x), bf16x2(v.y))
                                + x1 * vec4<f32>(bf16x2(v.z), bf16x2(v.w));
            }
        }
    }
    return acc;
}

// ---- int8 activations (XQ): Q4_K, Q6_K, Q8_0 ------------------------------------------------
// The same units as the f32 loops; x comes as int8 in blocks of 32 (quantize_x8.wgsl), so a
// 16-value run of x is one vec4 of xq and its products with 16 quant bytes are four
// dot4I8Packed. Word offsets in xq: d of 32-value block b at k/4 + b, the exact sum of x over
// 16 values c at k/4 + k/32 + c.

fn xq_word(i: u32) -> u32 {
    return xq[i >> 2u][i & 3u];
}

// x's scale of 32-value block b.
fn xq_d(b: u32) -> f32 {
    return bitcast<f32>(xq_word(p.k / 4u + b));
}

// The exact sum of x over values 16c .. 16c + 15.
fn xq_sum(c: u32) -> f32 {
    return bitcast<f32>(xq_word(p.k / 4u + p.k / 32u + c));
}

// sum_i a.i * b.i over the four words' signed bytes.
fn dot16(a: vec4<u32>, b: vec4<u32>) -> i32 {
    return dot4I8Packed(a.x, b.x) + dot4I8Packed(a.y, b.y) + dot4I8Packed(a.z, b.z) + dot4I8Packed(a.w, b.w);
}

fn q4k8_rows(rs: Rows, lid: u32) -> Acc {
    var acc: Acc;
    let bpr = p.k / 256u;
    let units = bpr * 8u;
    let m4 = vec4<u32>(0x0f0f0f0fu);
    for (var u0 = lid; u0 < units; u0 = u0 + LPR * UNROLL) {
        for (var e = 0u; e < UNROLL; e = e + 1u) {
            let ok = u0 + e * LPR < units;
            let u = min(u0 + e * LPR, units - 1u);
            let bi = u >> 3u;
            let j = lid & 7u;
            let g = j >> 1u;
            // 16-value runs of x: low nibbles 256 bi + 64 g + 16 h, high nibbles 32 further.
            let c = bi * 16u + g * 4u + (j & 1u);
            let xa = xq[c];
            let xb = xq[c + 2u];
            // Past the row's end (ok false) the scales are 0, so the unit adds nothing.
            let dx = select(vec2<f32>(0.0), vec2<f32>(xq_d(c >> 1u), xq_d((c + 2u) >> 1u)), ok);
            let xs = select(vec2<f32>(0.0), vec2<f32>(xq_sum(c), xq_sum(c + 2u)), ok);
            let hi_g = g >= 2u;
            let sh = (g & 1u) * 16u;
            for (var r = 0u; r < RL; r = r + 1u) {
                let s = slot_of(rs, r);
                let blk = row_of(rs, r) * bpr + bi;
                let hdr = wld(s, 9u * blk);
                let q = wld(s, 9u * blk + 1u + j);
                let scw = select(hdr.y & 0x3f3f3f3fu,
                                 (hdr.w & 0x0f0f0f0fu) | ((hdr.y >> 2u) & 0x30303030u), hi_g);
                let mw = select(hdr.z & 0x3f3f3f3fu,
                                ((hdr.w >> 4u) & 0x0f0f0f0fu) | ((hdr.z >> 2u) & 0x30303030u), hi_g);
                let dm = unpack2x16float(hdr.x);
                let sc = vec2<f32>(vec2<u32>(scw >> sh, scw >> (sh + 8u)) & vec2<u32>(255u)) * dm.x;
                let mn = vec2<f32>(vec2<u32>(mw >> sh, mw >> (sh + 8u)) & vec2<u32>(255u)) * dm.y;
                let sums = vec2<f32>(f32(dot16(q & m4, xa)), f32(dot16((q >> vec4<u32>(4u)) & m4, xb)));
                acc[r].x = acc[r].x + dot(sc * dx, sums);
                acc[r].y = acc[r].y - dot(mn, xs);
            }
        }
    }
    return acc;
}

// Q6_K with int8 x takes units of 32 values, 8 lanes per block (the f32 loop's units hold 64):
// unit m (0..7) is ql vec4 m, h = m / 4, a = (m / 2) % 2, l = m % 2. Its bytes' low nibbles
// are group t = a (values 128h + 32a + 16l + i), high nibbles group t = a + 2; their top bits
// are bits 2t, 2t + 1 of byte i of qh vec4 8 + 2h + l (which the unit of the other a also
// reads), so each group is one mask of ql OR one shifted mask of qh, with lane-constant shifts
// (the 4-lane unit re-assembled its four groups with per-group variable shifts and selects:
// ~2x the instructions per value). The -32 offset comes off in integers: 32 * sum(int8 x).
fn q6k8_rows(rs: Rows, lid: u32) -> Acc {
    var acc: Acc;
    let bpr = p.k / 256u;
    let units = bpr * 8u;
    let m = lid & 7u;   // LPR is a multiple of 8: a lane's unit within its block
    let h = m >> 2u;
    let a = (m >> 1u) & 1u;
    let m4 = vec4<u32>(0x0f0f0f0fu);
    let m2 = vec4<u32>(0x30303030u);
    let up = vec4<u32>(4u - 2u * a);  // qh bits 2a, 2a + 1 -> 4, 5 (group a)
    let dn = vec4<u32>(2u * a);       // qh bits 2a + 4, 2a + 5 -> 4, 5 (group a + 2)
    let bsh = 8u * (m & 3u);          // scale bytes 8h + (m % 4) and + 4: byte m % 4 of words 2h, 2h + 1
    for (var u0 = lid; u0 < units; u0 = u0 + LPR * UNROLL) {
        for (var e = 0u; e < UNROLL; e = e + 1u) {
            let ok = u0 + e * LPR < units;
            let u = min(u0 + e * LPR, units - 1u);
            let bi = u >> 3u;
            // 16-value runs of x of groups a and a + 2: 256 bi + 128 h + 32 t + 16 l.
            let c = bi * 16u + h * 8u + (m & 3u);
            let xa = xq[c];
            let xb = xq[c + 4u];
            // Past the row's end (ok false) the scales are 0, so the unit adds nothing.
            let dx = select(vec2<f32>(0.0), vec2<f32>(xq_d(c >> 1u), xq_d((c + 4u) >> 1u)), ok);
            let ones = vec4<u32>(0x01010101u);
            let xs = 32 * vec2<i32>(dot16(ones, xa), dot16(ones, xb));
            for (var r = 0u; r < RL; r = r + 1u) {
                let s = slot_of(rs, r);
                let blk = row_of(rs, r) * bpr + bi;
                let base = 13u * blk;
                let ql = wld(s, base + m);
                let qh = wld(s, base + 8u + 2u * h + (m & 1u));
                let sv = wld(s, base + 12u);
                let s0 = extractBits(bitcast<i32>(select(sv.x, sv.z, h == 1u)), bsh, 8u);
                let s1 = extractBits(bitcast<i32>(select(sv.y, sv.w, h == 1u)), bsh, 8u);
                let d = wf16(s, 52u * p.nb[s], blk);
                let lo = (ql & m4) | ((qh << up) & m2);
                let hi = ((ql >> vec4<u32>(4u)) & m4) | ((qh >> dn) & m2);
                let sums = vec2<f32>(vec2<i32>(dot16(lo, xa), dot16(hi, xb)) - xs);
                acc[r].x = acc[r].x + dot(d * vec2<f32>(f32(s0), f32(s1)), dx * sums);
            }
        }
    }
    return acc;
}

fn q8_08_rows(rs: Rows, lid: u32) -> Acc {
    var acc: Acc;
    let bpr = p.k / 32u;
    let units = bpr * 2u;
    for (var u0 = lid; u0 < units; u0 = u0 + LPR * UNROLL) {
        for (var e = 0u; e < UNROLL; e = e + 1u) {
            let ok = u0 + e * LPR < units;
            let u = min(u0 + e * LPR, units - 1u);
            let xv = xq[u];
            let dx = select(0.0, xq_d(u >> 1u), ok);
            for (var r = 0u; r < RL; r = r + 1u) {
                let s = slot_of(rs, r);
                let blk = row_of(rs, r) * bpr + (u >> 1u);
                let q = wld(s, 2u * blk + (lid & 1u));
                let d = wf16(s, 8u * p.nb[s], blk);
                acc[r].x = acc[r].x + d * dx * f32(dot16(q, xv));
            }
        }
    }
    return acc;
}

// ---- the rest: Q4_0, Q5_0, Q5_K, and float rows that are not whole chunks -------------------
// Unit: one 16-value chunk, decoded by quant.wgsl's value helpers from this slot's words.

// Value g of a float weight s of type dt.
fn float_value(s: u32, dt: u32, g: u32) -> f32 {
    switch (dt) {
        case DT_F16: { return unpack2x16float(wword(s, g >> 1u))[g & 1u]; }
        case DT_BF16: { return bitcast<f32>((wword(s, g >> 1u) >> ((g & 1u) * 16u)) << 16u); }
        default: { return bitcast<f32>(wword(s, g)); }
    }
}

// Values 16c .. 16c + 15 of row `row` of weight s (type dt); zeros past the row's end.
fn gen_chunk(s: u32, dt: u32, row: u32, c: u32) -> Chunk {
    let k = p.k;
    let nb = p.nb[s];
    switch (dt) {
        case DT_Q4_0: {
            let b = row * (k / 32u) + c / 2u;
            let q = wld(s, b);
            let d = wf16(s, 4u * nb, b);
            let sh = 4u * (c % 2u);
            return Chunk((vec4<f32>(nib4(q.x, sh)) - 8.0) * d, (vec4<f32>(nib4(q.y, sh)) - 8.0) * d,
                         (vec4<f32>(nib4(q.z, sh)) - 8.0) * d, (vec4<f32>(nib4(q.w, sh)) - 8.0) * d);
        }
        case DT_Q5_0: {
            let b = row * (k / 32u) + c / 2u;
            let q = wld(s, b);
            let qh = wword(s, 4u * nb + b) >> (16u * (c % 2u));
            let d = wf16(s, 5u * nb, b);
            let sh = 4u * (c % 2u);
            return Chunk(q5_0_4(q.x, qh, sh, d), q5_0_4(q.y, qh >> 4u, sh, d),
                         q5_0_4(q.z, qh >> 8u, sh, d), q5_0_4(q.w, qh >> 12u, sh, d));
        }
        case DT_Q5_K: {
            let base = 11u * (row * (k / 256u) + c / 16u);
            let j = c % 16u;
            return kq45_chunk(wld(s, base), wld(s, base + 3u + 2u * (j / 4u) + j % 2u),
                              wld(s, base + 1u + j % 2u), true, j);
        }
        default: {
            var out: Chunk; // zeros
            for (var i = 0u; i < 16u; i = i + 1u) {
                let kk = 16u * c + i;
                if (kk < k) {
                    out[i / 4u][i % 4u] = float_value(s, dt, row * k + kk);
                }
            }
            return out;
        }
    }
}

// x[16c .. 16c + 15], zeros past k.
fn x_chunk(c: u32) -> Chunk {
    if (VEC_K) {
        let i = 4u * c;
        return Chunk(x[i], x[i + 1u], x[i + 2u], x[i + 3u]);
    }
    var out: Chunk; // zeros
    for (var e = 0u; e < 16u; e = e + 1u) {
        let kk = 16u * c + e;
        if (kk < p.k) {
            out[e / 4u][e % 4u] = x[kk >> 2u][kk & 3u];
        }
    }
    return out;
}

fn gen_rows(dt: u32, rs: Rows, lid: u32) -> Acc {
    var acc: Acc;
    let chunks = (p.k + 15u) / 16u;
    for (var c = lid; c < chunks; c = c + LPR) {
        let xv = x_chunk(c);
        for (var r = 0u; r < RL; r = r + 1u) {
            let v = gen_chunk(slot_of(rs, r), dt, row_of(rs, r), c);
            acc[r] = acc[r] + xv[0] * v[0] + xv[1] * v[1] + xv[2] * v[2] + xv[3] * v[3];
        }
    }
    return acc;
}

// The partial sums of the rows `rs` (all of type dt) over this lane's units.
fn rows_dot(dt: u32, rs: Rows, lid: u32) -> Acc {
    if (XQ) {
        // The host allows only these types with int8 activations.
        switch (dt) {
            case DT_Q4_K: { return q4k8_rows(rs, lid); }
            case DT_Q6_K: { return q6k8_rows(rs, lid); }
            default: { return q8_08_rows(rs, lid); }
        }
    }
    switch (dt) {
        case DT_Q4_K: { return q4k_rows(rs, lid); }
        case DT_Q6_K: { return q6k_rows(rs, lid); }
        case DT_Q8_0: { return q8_0_rows(rs, lid); }
        case DT_F32: {
            if (VEC_K) {
                return f32_rows(rs, lid);
            }
            return gen_rows(dt, rs, lid);
        }
        case DT_F16: {
            if (VEC_K) {
                return f16_rows(rs, lid);
            }
            return gen_rows(dt, rs, lid);
        }
        case DT_BF16: {
            if (VEC_K) {
                return bf16_rows(rs, lid);
            }
            return gen_rows(dt, rs, lid);
        }
        default: { return gen_rows(dt, rs, lid); }
    }
}

// ---- flat single-row loops (the subgroup-rows entries with R = 1) ----------------------------
// The loops above keep R rows' partial sums in arrays indexed by the row loop, which the H100's
// compiler leaves slow (R = 2 ran at half the bandwidth of R = 1, and R = 1 itself gained
// 14-19% when flat). These hold one row in plain variables, and the UNROLL units of a step are
// all loaded before any is used. A unit past the row's end reads the last unit with x's scale
// (or x) taken as 0. One load helper and one unit helper per type; units as above.

struct Q4K8Unit {
    hdr: vec4<u32>,  // the block's d, dmin, scales
    q: vec4<u32>,    // the unit's quant word (low nibbles: x run xa, high: xb)
    xa: vec4<u32>,
    xb: vec4<u32>,
    dx: vec2<f32>,   // x's scales of the two runs
    xs: vec2<f32>,   // x's exact sums over the two runs
}

fn q4k8_load(s: u32, row: u32, u0: u32, j: u32) -> Q4K8Unit {
    let bpr = p.k / 256u;
    let ok = u0 < bpr * 8u;
    let bi = min(u0, bpr * 8u - 1u) >> 3u;
    let c = bi * 16u + (j >> 1u) * 4u + (j & 1u);
    let blk = row * bpr + bi;
    return Q4K8Unit(wld(s, 9u * blk), wld(s, 9u * blk + 1u + j), xq[c], xq[c + 2u],
                    select(vec2<f32>(0.0), vec2<f32>(xq_d(c >> 1u), xq_d((c + 2u) >> 1u)), ok),
                    select(vec2<f32>(0.0), vec2<f32>(xq_sum(c), xq_sum(c + 2u)), ok));
}

fn q4k8_unit(t: Q4K8Unit, j: u32) -> f32 {
    let m4 = vec4<u32>(0x0f0f0f0fu);
    let g = j >> 1u;
    let hi_g = g >= 2u;
    let sh = (g & 1u) * 16u;
    let scw = select(t.hdr.y & 0x3f3f3f3fu, (t.hdr.w & 0x0f0f0f0fu) | ((t.hdr.y >> 2u) & 0x30303030u), hi_g);
    let mw = select(t.hdr.z & 0x3f3f3f3fu, ((t.hdr.w >> 4u) & 0x0f0f0f0fu) | ((t.hdr.z >> 2u) & 0x30303030u), hi_g);
    let dm = unpack2x16float(t.hdr.x);
    let sc = vec2<f32>(vec2<u32>(scw >> sh, scw >> (sh + 8u)) & vec2<u32>(255u)) * dm.x;
    let mn = vec2<f32>(vec2<u32>(mw >> sh, mw >> (sh + 8u)) & vec2<u32>(255u)) * dm.y;
    let sums = vec2<f32>(f32(dot16(t.q & m4, t.xa)), f32(dot16((t.q >> vec4<u32>(4u)) & m4, t.xb)));
    return dot(sc * t.dx, sums) - dot(mn, t.xs);
}

fn q4k8_flat(s: u32, row: u32, lid: u32) -> f32 {
    let units = (p.k / 256u) * 8u;
    let j = lid & 7u;
    var acc = vec4<f32>(0.0);
    for (var u0 = lid; u0 < units; u0 = u0 + LPR * UNROLL) {
        let t0 = q4k8_load(s, row, u0, j);
        var t1 = t0;
        var t2 = t0;
        var t3 = t0;
        if (UNROLL > 1u) {
            t1 = q4k8_load(s, row, u0 + LPR, j);
        }
        if (UNROLL > 2u) {
            t2 = q4k8_load(s, row, u0 + 2u * LPR, j);
            t3 = q4k8_load(s, row, u0 + 3u * LPR, j);
        }
        acc.x = acc.x + q4k8_unit(t0, j);
        if (UNROLL > 1u) {
            acc.y = acc.y + q4k8_unit(t1, j);
        }
        if (UNROLL > 2u) {
            acc.z = acc.z + q4k8_unit(t2, j);
            acc.w = acc.w + q4k8_unit(t3, j);
        }
    }
    return hsum(acc);
}

struct Q6K8Unit {
    ql: vec4<u32>,
    qh: vec4<u32>,
    sv: vec4<u32>,   // the block's 16 scale bytes
    d: f32,
    xa: vec4<u32>,
    xb: vec4<u32>,
    dx: vec2<f32>,
}

fn q6k8_load(s: u32, row: u32, u0: u32, m: u32) -> Q6K8Unit {
    let bpr = p.k / 256u;
    let ok = u0 < bpr * 8u;
    let bi = min(u0, bpr * 8u - 1u) >> 3u;
    let h = m >> 2u;
    let c = bi * 16u + h * 8u + (m & 3u);
    let blk = row * bpr + bi;
    let base = 13u * blk;
    return Q6K8Unit(wld(s, base + m), wld(s, base + 8u + 2u * h + (m & 1u)), wld(s, base + 12u),
                    wf16(s, 52u * p.nb[s], blk), xq[c], xq[c + 4u],
                    select(vec2<f32>(0.0), vec2<f32>(xq_d(c >> 1u), xq_d((c + 4u) >> 1u)), ok));
}

fn q6k8_unit(t: Q6K8Unit, m: u32) -> f32 {
    let h = m >> 2u;
    let a = (m >> 1u) & 1u;
    let m4 = vec4<u32>(0x0f0f0f0fu);
    let m2 = vec4<u32>(0x30303030u);
    let bsh = 8u * (m & 3u);
    let ones = vec4<u32>(0x01010101u);
    let xs = 32 * vec2<i32>(dot16(ones, t.xa), dot16(ones, t.xb));
    let s0 = extractBits(bitcast<i32>(select(t.sv.x, t.sv.z, h == 1u)), bsh, 8u);
    let s1 = extractBits(bitcast<i32>(select(t.sv.y, t.sv.w, h == 1u)), bsh, 8u);
    let lo = (t.ql & m4) | ((t.qh << vec4<u32>(4u - 2u * a)) & m2);
    let hi = ((t.ql >> vec4<u32>(4u)) & m4) | ((t.qh >> vec4<u32>(2u * a)) & m2);
    let sums = vec2<f32>(vec2<i32>(dot16(lo, t.xa), dot16(hi, t.xb)) - xs);
    return dot(t.d * vec2<f32>(f32(s0), f32(s1)), t.dx * sums);
}

fn q6k8_flat(s: u32, row: u32, lid: u32) -> f32 {
    let units = (p.k / 256u) * 8u;
    let m = lid & 7u;
    var acc = vec4<f32>(0.0);
    for (var u0 = lid; u0 < units; u0 = u0 + LPR * UNROLL) {
        let t0 = q6k8_load(s, row, u0, m);
        var t1 = t0;
        var t2 = t0;
        var t3 = t0;
        if (UNROLL > 1u) {
            t1 = q6k8_load(s, row, u0 + LPR, m);
        }
        if (UNROLL > 2u) {
            t2 = q6k8_load(s, row, u0 + 2u * LPR, m);
            t3 = q6k8_load(s, row, u0 + 3u * LPR, m);
        }
        acc.x = acc.x + q6k8_unit(t0, m);
        if (UNROLL > 1u) {
            acc.y = acc.y + q6k8_unit(t1, m);
        }
        if (UNROLL > 2u) {
            acc.z = acc.z + q6k8_unit(t2, m);
            acc.w = acc.w + q6k8_unit(t3, m);
        }
    }
    return hsum(acc);
}

struct Q808Unit {
    q: vec4<u32>,
    d: f32,
    xv: vec4<u32>,
    dx: f32,
}

fn q808_load(s: u32, row: u32, u0: u32, lid: u32) -> Q808Unit {
    let bpr = p.k / 32u;
    let u = min(u0, bpr * 2u - 1u);
    let blk = row * bpr + (u >> 1u);
    return Q808Unit(wld(s, 2u * blk + (lid & 1u)), wf16(s, 8u * p.nb[s], blk), xq[u],
                    select(0.0, xq_d(u >> 1u), u0 < bpr * 2u));
}

fn q808_unit(t: Q808Unit) -> f32 {
    return t.d * t.dx * f32(dot16(t.q, t.xv));
}

fn q808_flat(s: u32, row: u32, lid: u32) -> f32 {
    let units = (p.k / 32u) * 2u;
    var acc = vec4<f32>(0.0);
    for (var u0 = lid; u0 < units; u0 = u0 + LPR * UNROLL) {
        let t0 = q808_load(s, row, u0, lid);
        var t1 = t0;
        var t2 = t0;
        var t3 = t0;
        if (UNROLL > 1u) {
            t1 = q808_load(s, row, u0 + LPR, lid);
        }
        if (UNROLL > 2u) {
            t2 = q808_load(s, row, u0 + 2u * LPR, lid);
            t3 = q808_load(s, row, u0 + 3u * LPR, lid);
        }
        acc.x = acc.x + q808_unit(t0);
        if (UNROLL > 1u) {
            acc.y = acc.y + q808_unit(t1);
        }
        if (UNROLL > 2u) {
            acc.z = acc.z + q808_unit(t2);
            acc.w = acc.w + q808_unit(t3);
        }
    }
    return hsum(acc);
}

// F16 and BF16 rows of whole 16-value chunks: a unit is one vec4 of 8 weights.
struct HalfUnit {
    w: vec4<u32>,
    x0: vec4<f32>,
    x1: vec4<f32>,
}

fn half_load(s: u32, row: u32, u0: u32) -> HalfUnit {
    let units = p.k / 8u;
    let ok = u0 < units;
    let u = min(u0, units - 1u);
    return HalfUnit(wld(s, row * units + u), xl(2u * u, ok), xl(2u * u + 1u, ok));
}

fn half_unit(t: HalfUnit, bf: bool) -> vec4<f32> {
    if (bf) {
        return t.x0 * vec4<f32>(bf16x2(t.w.x), bf16x2(t.w.y)) + t.x1 * vec4<f32>(bf16x2(t.w.z), bf16x2(t.w.w));
    }
    return t.x0 * vec4<f32>(unpack2x16float(t.w.x), unpack2x16float(t.w.y))
         + t.x1 * vec4<f32>(unpack2x16float(t.w.z), unpack2x16float(t.w.w));
}

fn half_flat(s: u32, row: u32, lid: u32, bf: bool) -> f32 {
    let units = p.k / 8u;
    var acc = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    for (var u0 = lid; u0 < units; u0 = u0 + LPR * UNROLL) {
        let t0 = half_load(s, row, u0);
        var t1 = t0;
        var t2 = t0;
        var t3 = t0;
        if (UNROLL > 1u) {
            t1 = half_load(s, row, u0 + LPR);
        }
        if (UNROLL > 2u) {
            t2 = half_load(s, row, u0 + 2u * LPR);
            t3 = half_load(s, row, u0 + 3u * LPR);
        }
        acc = acc + half_unit(t0, bf);
        if (UNROLL > 1u) {
            acc1 = acc1 + half_unit(t1, bf);
        }
        if (UNROLL > 2u) {
            acc = acc + half_unit(t2, bf);
            acc1 = acc1 + half_unit(t3, bf);
        }
    }
    return hsum(acc + acc1);
}

// Whether `row_flat` has a loop for weights of type dt (else the row loops above serve).
fn has_flat(dt: u32) -> bool {
    if (XQ) {
        return true;  // Q4_K, Q6_K, Q8_0: the host allows no other type with int8 x
    }
    return VEC_K && (dt == DT_F16 || dt == DT_BF16);
}

// The dot product of row `row` of weight s (type dt, has_flat) with x over this lane's units.
fn row_flat(s: u32, dt: u32, row: u32, lid: u32) -> f32 {
    if (XQ) {
        switch (dt) {
            case DT_Q4_K: { return q4k8_flat(s, row, lid); }
            case DT_Q6_K: { return q6k8_flat(s, row, lid); }
            default: { return q808_flat(s, row, lid); }
        }
    }
    return half_flat(s, row, lid, dt == DT_BF16);
}

fn store(s: u32, i: u32, v: f32) {
    switch (s) {
        case 0u: { if (ACC) { y0[i] = y0[i] + v; } else { y0[i] = v; } }
        case 1u: { if (ACC) { y1[i] = y1[i] + v; } else { y1[i] = v; } }
        default: { if (ACC) { y2[i] = y2[i] + v; } else { y2[i] = v; } }
    }
}

// The weight slot workgroup `wg` works on, and its index among that weight's workgroups.
fn slot_and_index(wg: u32) -> vec2<u32> {
    var s = select(select(0u, 1u, wg >= p.wg1), 2u, wg >= p.wg2);
    if (NW == 1u) {
        s = 0u;
    }
    return vec2<u32>(s, wg - select(select(0u, p.wg1, s == 1u), p.wg2, s == 2u));
}

fn matvec_main(wg: u32, lanes: Lanes) {
    // Whole workgroups take the same branch, so the barriers in reduce_rows stay uniform.
    if (wg >= p.wg_end) {
        return;
    }
    // One call site for every weight: the weight's type and binding are workgroup-uniform
    // runtime choices (a uniform branch), the row counts constants.
    let si = slot_and_index(wg);
    let s = si.x;
    let row0 = si.y * R;
    let acc = rows_dot(dt_of(s), Rows(s, s, row0, row0), lanes.lid);
    let total = reduce_rows(acc, lanes);
    if (lanes.lid < R && row0 + lanes.lid < p.n[s]) {
        store(s, row0 + lanes.lid, total);
    }
}

// Row totals of matvec_glu, gate then up, passed between lanes.
var<workgroup> glu_tot: array<f32, MAX_R>;


// This lane's partial sums of gate rows row0 .. + R - 1 (acc[r]) and the same up rows
// (acc[R + r]): RL = 2R where both have one type (one loop over both weights: each x load
// serves 2R rows), else RL = R and two loops.
fn glu_rows_dot(row0: u32, lid: u32) -> Acc {
    if (DT0 == DT1) {
        return rows_dot(DT0, Rows(0u, 1u, row0, row0), lid);
    }
    var acc = rows_dot(DT0, Rows(0u, 0u, row0, row0), lid);
    let up = rows_dot(DT1, Rows(1u, 1u, row0, row0), lid);
    for (var r = 0u; r < R; r = r + 1u) {
        acc[R + r] = up[r];
    }
    return acc;
}

// Rows wg * R .. + R - 1 of gate (weight 0) and up (weight 1).
fn glu_main(wg: u32, lanes: Lanes) {
    if (wg >= p.wg_end) {
        return;
    }
    let row0 = wg * R;
    let acc = glu_rows_dot(row0, lanes.lid);
    let total = reduce_rows(acc, lanes);
    if (lanes.lid < RT) {
        glu_tot[lanes.lid] = total;
    }
    workgroupBarrier();
    if (lanes.lid < R && row0 + lanes.lid < p.n[0]) {
        y0[row0 + lanes.lid] = silu(glu_tot[lanes.lid]) * glu_tot[R + lanes.lid];
    }
}

// ---- RMSNorm folded into the mat-vecs around it (decode) ----
//
// rmsnorm(h) = w * h / rms(h), and 1 / rms(h) is one scalar: a mat-vec of it is the mat-vec of
// w * h times 1 / rms(h). So the residual mat-vec producing h (matvec_sgr_norm) writes w * h
// and each 32-value block's sum of h^2, and the mat-vecs reading them (NORM_IN) scale their dot
// products by 1 / rms(h) = inverseSqrt(sum / k + eps): no RMSNorm dispatch between them. With
// int8 activations (XQ) w * h is written as int8 blocks: q = round(v / d), d = max|v| / 127, is
// the same for v and v / rms, only d and the 16-value sums scale.
// The sum of a block needs its 32 rows, which several workgroups finish; the last of them to
// finish (an atomic ticket per block) sums the block (and with XQ quantises it). Its rows reach
// it through `nt` by atomicStore / atomicLoad: plain loads after storageBarrier() read stale L1
// lines on the H100 (examples/probe_ticket.rs). (inv_rms and the entry point matvec_sgr_norm
// are in matvec_reduce_sg.wgsl: subgroups only.)
// Layout of nt (u32 words, n = rows of h), XQ: [45 n / 32]    f32: [2 n + n / 16]
//   w * h             [0, 11n/32) int8 (quantize_x8.wgsl)   [0, n) f32 bits
//   sums of h^2       [11n/32, 12n/32)                       [n, n + n/32)
//   tickets           [12n/32, 13n/32)                       [n + n/32, n + n/16)
//   h, staged         [13n/32, 45n/32)                       [n + n/16, 2n + n/16)
// Tickets are zero between dispatches: each block's last workgroup resets its own.
// matvec_sgr_glu with XQ writes a = silu(W_gate x) * (W_up x) in the XQ layout (its sums of
// squares unused): int8 blocks for the down projection, staged by rows, one ticket a block.

// Word offsets of nt's sums, tickets and staged h.
fn ss_at(n: u32) -> u32 {
    return select(n, 11u * n / 32u, XQ);
}

fn ticket_at(n: u32) -> u32 {
    return ss_at(n) + n / 32u;
}

fn stage_at(n: u32) -> u32 {
    return ss_at(n) + n / 16u;
}

var<workgroup> nb_v: array<f32, 32>;   // w * h of the block
var<workgroup> nb_h2: array<f32, 32>;  // h^2
var<workgroup> nb_d: f32;              // the block's scale
var<workgroup> nb_ticket: u32;

// Block b of h (rows 32b .. 32b + 31): its sum of h^2 and with XQ its int8 form, by the
// block's last workgroup (WG >= 32 lanes; uniform control flow: every lane calls it).
fn norm_block(b: u32, lid: u32) {
    let n = p.n[0];
    if (lid < 32u) {
        let i = 32u * b + lid;
        let h = bitcast<f32>(atomicLoad(&nt[stage_at(n) + i]));
        nb_v[lid] = h * nw[i];
        nb_h2[lid] = h * h;
    }
    workgroupBarrier();
    if (lid == 0u) {
        var ss = 0.0;
        for (var j = 0u; j < 16u; j = j + 1u) {
            ss = ss + (nb_h2[j] + nb_h2[j + 16u]);
        }
        atomicStore(&nt[ss_at(n) + b], bitcast<u32>(ss));
    }
    if (XQ) {
        int8_block(b, lid);
    }
}

// The int8 form of block b (the 32 values in nb_v, written before a barrier) into nt's first
// words (quantize_x8.wgsl's layout), by a whole workgroup (of at least 32 lanes: its callers
// fill nb_v with one lane a value).
fn int8_block(b: u32, lid: u32) {
    let n = p.n[0];
    if (lid == 0u) {
        var m = 0.0;
        var s0 = 0.0;
        var s1 = 0.0;
        for (var j = 0u; j < 16u; j = j + 1u) {
            m = max(m, max(abs(nb_v[j]), abs(nb_v[j + 16u])));
            s0 = s0 + nb_v[j];
            s1 = s1 + nb_v[j + 16u];
        }
        let d = int8_scale(m);
        nb_d = d;
        atomicStore(&nt[n / 4u + b], bitcast<u32>(d));
        atomicStore(&nt[n / 4u + n / 32u + 2u * b], bitcast<u32>(s0));
        atomicStore(&nt[n / 4u + n / 32u + 2u * b + 1u], bitcast<u32>(s1));
    }
    workgroupBarrier();
    if (lid < 8u) {
        let v = vec4<f32>(nb_v[4u * lid], nb_v[4u * lid + 1u], nb_v[4u * lid + 2u], nb_v[4u * lid + 3u]);
        atomicStore(&nt[8u * b + lid], int8_pack(v, nb_d));
    }
}

// Block b of a = silu(gate) * up (matvec_sgr_glu with XQ): its int8 form from the staged rows,
// by the block's last workgroup (every lane calls it).
fn glu_block(b: u32, lid: u32) {
    if (lid < 32u) {
        nb_v[lid] = bitcast<f32>(atomicLoad(&nt[stage_at(p.n[0]) + 32u * b + lid]));
    }
    workgroupBarrier();
    int8_block(b, lid);
}
