enable f16;
enable wgpu_cooperative_matrix;

// Prompt attention on tensor cores (causal, GQA, flash-style online softmax, no n x n
// buffer): S = Q K^T and O += P V as cooperative-matrix products (16x16x16, f16 inputs, f32
// sums). Needs SHADER_F16, SUBGROUP and EXPERIMENTAL_COOPERATIVE_MATRIX, 32-lane subgroups and
// head_dim a multiple of 16 (<= 128). Preceded in the module by step.wgsl and kv_load.wgsl.
// Inexact by design, like matmul_coop: q (pre-scaled), k, p and v are rounded to f16.
//
// Rows are (token, head-in-group) pairs, row = t * group + h % group, as in attention_prefill:
// a block of BR = 64 rows shares every K/V tile across its group's heads. One workgroup of 4
// subgroups takes one row block of one kv head; subgroup g owns rows 16g .. 16g + 15, whose q
// is staged once in workgroup memory (f16, pre-scaled) and whose output stays in HD/16
// accumulator tiles in registers.
//
// Per key tile of BC keys (32; 64 where it fits, for small head dims, and asked for):
//   stage      K and V [BC, HD] -> f16 in workgroup memory (every lane's loads issued before
//              its stores; keys past the block's last visible key are zero: never-written
//              slots may hold NaN, and 0 * NaN would reach the sums);
//   S = Q K^T  per subgroup, BC/16 tiles of 16 x 16, parked (f32) in `ss`;
//   softmax    2 lanes per row, BC/2 keys each: masked (causal) row max; the reference max
//              m moves only when some row's tile max exceeds it by more than TAU (log2
//              units), decided for the whole workgroup (a vote in `ss`), so P = exp2(s - m) <= 2^TAU
//              (f16-safe) and O is rescaled rarely; p written as f16 to `ps`, row sums l kept
//              per lane;
//   rescale    (only on a vote; always on the first tile, where O is still zero: naga cannot
//              prove a loop counter uniform) O tiles pass through `ss` in rounds, each lane
//              scaling its row by exp2(m_old - m_new);
//   O += P V   per subgroup.
// Scores are in log2 units: q is pre-multiplied by scale * log2(e), so p = exp2(s - m).
// At the end O / l (f32) is written for the block's real rows.
//
// Workgroup memory holds arrays only. With the vote in a separate `var<workgroup> vote: u32`
// the H100 (driver 580.159.04) computed every Q K^T as if the operands' last 4 dims were
// zero (the cooperative loads' view of the arrays shifted by 8 bytes; ordinary loads read
// them correctly): found with staged-value and score dumps against the CPU, 2026-11-24.

struct Params {
    n_tokens: u32,      // T
    n_heads: u32,
    n_kv_heads: u32,
    ctx: u32,           // cache slots
    n_row_blocks: u32,  // ceil(T * group / BR)
    scale: f32,         // 1 / sqrt(head_dim)
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> step: Step;
@group(0) @binding(2) var<storage, read> q: array<vec4<f32>>;         // [T, n_heads, HD/4]
// Caches [ctx, n_kv_heads, HD]: f32 (4 dims = 2 vec2) or, with KV_F16, f16 (4 dims = 1 vec2).
@group(0) @binding(3) var<storage, read> k_cache: array<vec2<u32>>;
@group(0) @binding(4) var<storage, read> v_cache: array<vec2<u32>>;
@group(0) @binding(5) var<storage, read_write> out: array<vec4<f32>>; // [T, n_heads, HD/4] (O16: unused)
// O16: the output in f16, [T, n_heads, HD/4] quads of four (the input of a tensor-core Wo,
// which then needs no to_f16 pass); else `out` again, unused.
@group(0) @binding(6) var<storage, read_write> out16: array<vec2<u32>>;

override HD: u32 = 64u;       // head_dim: a multiple of 16, <= 128
override BC: u32 = 64u;       // keys per tile: 32 or 64
override KV_F16: bool = false;
// Keep the subgroup's q as HD/16 A tiles in registers for the whole key loop (loaded once)
// rather than re-loading them from `qs` for every score tile.
override QREG: bool = true;
override O16: bool = false;   // write out16 (rounded, saturating at +-65504), not out

const NSG: u32 = 4u;          // subgroups per workgroup
const BR: u32 = 64u;          // rows per block (16 per subgroup)
const WG: u32 = 128u;         // NSG subgroups of 32 lanes (host-checked)
const LPR: u32 = 2u;          // lanes per row in the softmax (32 / 16)
const TAU: f32 = 8.0;         // how far a row max may pass the reference max unrescaled (log2)
const NEG_BIG: f32 = -3.0e38;
const LOG2E: f32 = 1.4426950408889634;

override HD4: u32 = HD / 4u;
override HD16: u32 = HD / 16u;       // A and output tiles per subgroup (<= 8)
override NT: u32 = BC / 16u;         // score tiles per subgroup per key tile
override KPR: u32 = BC / LPR;        // keys per lane in the softmax
// Strides in f16 (K, V, Q rows; P rows) and f32 (S rows): the spare values stagger rows over
// the banks and keep rows 16-byte aligned. Cooperative loads and stores count offsets and
// strides in elements of the array: vec4 for the f16 arrays (as in matmul_coop.wgsl), f32
// for `ss`, a scalar array as matmul_coop's parking area is.
override LDK: u32 = HD + 8u;
override LDQ: u32 = HD + 8u;   // Q rows: HD + 8, or HD where the pad would pass 48 KiB (host)
override LDP: u32 = BC + 8u;
override LDS: u32 = BC + 4u;
// Named lengths (naga's pipeline-constant pass wants named override array lengths).
override KVS_LEN: u32 = 2u * BC * LDK / 4u;   // K tile then V tile
override QS_LEN: u32 = BR * LDQ / 4u;
override VOTE: u32 = NSG * 16u * LDS;   // the vote slot, after the scores
override SS_LEN: u32 = VOTE + 4u;
override PS_LEN: u32 = NSG * 16u * LDP / 4u;
override KPL: u32 = (BC * HD4 + WG - 1u) / WG;  // K (and V) quads each lane stages (<= 8)

var<workgroup> kvs: array<vec4<f16>, KVS_LEN>;
// The block's q (f16, pre-scaled), staged once. Its A tiles are loaded once and kept in
// registers (QREG) or loaded where they are used, as matmul_coop loads its tiles.
var<workgroup> qs: array<vec4<f16>, QS_LEN>;
var<workgroup> ss: array<f32, SS_LEN>;
var<workgroup> ps: array<vec4<f16>, PS_LEN>;
// The rescale vote lives in the last element of `ss` (VOTE): a separate scalar workgroup
// variable shifted the cooperative loads' view of the arrays on the H100 (see the top).

fn to_h(x: vec4<f32>) -> vec4<f16> {
    return vec4<f16>(clamp(x, vec4<f32>(-65504.0), vec4<f32>(65504.0)));
}

// Quad i of the [BC, HD] tile of keys k0 .. from K (or V), zero past `kend` or the tile.
fn tile_quad(i: u32, k0: u32, kend: u32, kvh: u32, from_v: bool) -> vec4<f32> {
    let key = k0 + i / HD4;
    var x = vec4<f32>(0.0);
    if (i < BC * HD4 && key < kend) {
        let qi = (key * p.n_kv_heads + kvh) * HD4 + i % HD4;
        if (from_v) { x = load_v(qi); } else { x = load_k(qi); }
    }
    return x;
}

fn put_quad(i: u32, x: vec4<f32>, from_v: bool) {
    if (i < BC * HD4) {
        let at = (select(0u, BC, from_v) + i / HD4) * LDK + 4u * (i % HD4);
        kvs[at / 4u] = to_h(x);
    }
}

// Stages K and V of keys k0 .. k0 + BC - 1: all of a lane's loads, then its stores.
fn stage_kv(lid: u32, k0: u32, kend: u32, kvh: u32) {
    let k0q = tile_quad(lid, k0, kend, kvh, false);
    let v0q = tile_quad(lid, k0, kend, kvh, true);
    var k1q = vec4<f32>(0.0); var v1q = vec4<f32>(0.0);
    var k2q = vec4<f32>(0.0); var v2q = vec4<f32>(0.0);
    var k3q = vec4<f32>(0.0); var v3q = vec4<f32>(0.0);
    var k4q = vec4<f32>(0.0); var v4q = vec4<f32>(0.0);
    var k5q = vec4<f32>(0.0); var v5q = vec4<f32>(0.0);
    var k6q = vec4<f32>(0.0); var v6q = vec4<f32>(0.0);
    var k7q = vec4<f32>(0.0); var v7q = vec4<f32>(0.0);
    if (KPL > 1u) { k1q = tile_quad(lid + WG, k0, kend, kvh, false); v1q = tile_quad(lid + WG, k0, kend, kvh, true); }
    if (KPL > 2u) { k2q = tile_quad(lid + 2u * WG, k0, kend, kvh, false); v2q = tile_quad(lid + 2u * WG, k0, kend, kvh, true); }
    if (KPL > 3u) { k3q = tile_quad(lid + 3u * WG, k0, kend, kvh, false); v3q = tile_quad(lid + 3u * WG, k0, kend, kvh, true); }
    if (KPL > 4u) { k4q = tile_quad(lid + 4u * WG, k0, kend, kvh, false); v4q = tile_quad(lid + 4u * WG, k0, kend, kvh, true); }
    if (KPL > 5u) { k5q = tile_quad(lid + 5u * WG, k0, kend, kvh, false); v5q = tile_quad(lid + 5u * WG, k0, kend, kvh, true); }
    if (KPL > 6u) { k6q = tile_quad(lid + 6u * WG, k0, kend, kvh, false); v6q = tile_quad(lid + 6u * WG, k0, kend, kvh, true); }
    if (KPL > 7u) { k7q = tile_quad(lid + 7u * WG, k0, kend, kvh, false); v7q = tile_quad(lid + 7u * WG, k0, kend, kvh, true); }
    put_quad(lid, k0q, false);
    put_quad(lid, v0q, true);
    if (KPL > 1u) { put_quad(lid + WG, k1q, false); put_quad(lid + WG, v1q, true); }
    if (KPL > 2u) { put_quad(lid + 2u * WG, k2q, false); put_quad(lid + 2u * WG, v2q, true); }
    if (KPL > 3u) { put_quad(lid + 3u * WG, k3q, false); put_quad(lid + 3u * WG, v3q, true); }
    if (KPL > 4u) { put_quad(lid + 4u * WG, k4q, false); put_quad(lid + 4u * WG, v4q, true); }
    if (KPL > 5u) { put_quad(lid + 5u * WG, k5q, false); put_quad(lid + 5u * WG, v5q, true); }
    if (KPL > 6u) { put_quad(lid + 6u * WG, k6q, false); put_quad(lid + 6u * WG, v6q, true); }
    if (KPL > 7u) { put_quad(lid + 7u * WG, k7q, false); put_quad(lid + 7u * WG, v7q, true); }
}

// Parks round r of the output tiles (tiles j with j / NT == r) in this subgroup's rows of
// `ss` (columns 16 (j % NT) ..). Called by the whole workgroup with a constant r.
fn park_round(r: u32, obase_ss: u32, o0: coop_mat16x16<f32, C>, o1: coop_mat16x16<f32, C>,
              o2: coop_mat16x16<f32, C>, o3: coop_mat16x16<f32, C>, o4: coop_mat16x16<f32, C>,
              o5: coop_mat16x16<f32, C>, o6: coop_mat16x16<f32, C>, o7: coop_mat16x16<f32, C>) {
    if (0u / NT == r) { let at = obase_ss + 16u * (0u % NT); coopStoreT(o0, &ss[at], LDS); }
    if ((HD16 > 1u) & (1u / NT == r)) { let at = obase_ss + 16u * (1u % NT); coopStoreT(o1, &ss[at], LDS); }
    if ((HD16 > 2u) & (2u / NT == r)) { let at = obase_ss + 16u * (2u % NT); coopStoreT(o2, &ss[at], LDS); }
    if ((HD16 > 3u) & (3u / NT == r)) { let at = obase_ss + 16u * (3u % NT); coopStoreT(o3, &ss[at], LDS); }
    if ((HD16 > 4u) & (4u / NT == r)) { let at = obase_ss + 16u * (4u % NT); coopStoreT(o4, &ss[at], LDS); }
    if ((HD16 > 5u) & (5u / NT == r)) { let at = obase_ss + 16u * (5u % NT); coopStoreT(o5, &ss[at], LDS); }
    if ((HD16 > 6u) & (6u / NT == r)) { let at = obase_ss + 16u * (6u % NT); coopStoreT(o6, &ss[at], LDS); }
    if ((HD16 > 7u) & (7u / NT == r)) { let at = obase_ss + 16u * (7u % NT); coopStoreT(o7, &ss[at], LDS); }
}

// Four consecutive scores (or output values) of `ss` from `at` (a multiple of 4).
fn ss4(at: u32) -> vec4<f32> {
    return vec4<f32>(ss[at], ss[at + 1u], ss[at + 2u], ss[at + 3u]);
}

fn scale_ss4(at: u32, f: f32) {
    ss[at] = ss[at] * f;
    ss[at + 1u] = ss[at + 1u] * f;
    ss[at + 2u] = ss[at + 2u] * f;
    ss[at + 3u] = ss[at + 3u] * f;
}

// Output quad i, as f32 or (O16) f16.
fn put_out(i: u32, v: vec4<f32>) {
    if (O16) {
        out16[i] = f16_quad(v);
    } else {
        out[i] = v;
    }
}

// The accumulators are separate variables, every use spelled out under conditions on the
// override constants (folded at pipeline creation), so the driver keeps them in registers
// (see matmul_coop.wgsl). Every barrier is reached by the whole workgroup: the tile count is
// the workgroup's, and the rescale decision comes from workgroupUniformLoad.
@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32, @builtin(subgroup_id) sg: u32,
        @builtin(subgroup_invocation_id) lane: u32) {
    var zc: coop_mat16x16<f32, C>;   // never written: the zero tile
    // q and K^T (or V) tiles, one variable each: all loads of a step, then the products (as
    // matmul_coop does; one variable reloaded between products gave wrong sums on the H100).
    var qa0: coop_mat16x16<f16, A>; var kb0: coop_mat16x16<f16, B>;
    var qa1: coop_mat16x16<f16, A>; var kb1: coop_mat16x16<f16, B>;
    var qa2: coop_mat16x16<f16, A>; var kb2: coop_mat16x16<f16, B>;
    var qa3: coop_mat16x16<f16, A>; var kb3: coop_mat16x16<f16, B>;
    var qa4: coop_mat16x16<f16, A>; var kb4: coop_mat16x16<f16, B>;
    var qa5: coop_mat16x16<f16, A>; var kb5: coop_mat16x16<f16, B>;
    var qa6: coop_mat16x16<f16, A>; var kb6: coop_mat16x16<f16, B>;
    var qa7: coop_mat16x16<f16, A>; var kb7: coop_mat16x16<f16, B>;
    var o0: coop_mat16x16<f32, C>; var o1: coop_mat16x16<f32, C>;
    var o2: coop_mat16x16<f32, C>; var o3: coop_mat16x16<f32, C>;
    var o4: coop_mat16x16<f32, C>; var o5: coop_mat16x16<f32, C>;
    var o6: coop_mat16x16<f32, C>; var o7: coop_mat16x16<f32, C>;

    let idx = wid.x + wid.y * nwg.x;
    if (idx >= p.n_row_blocks * p.n_kv_heads) { return; }  // whole workgroups only
    // The heaviest blocks (the last rows see the most keys) start first.
    let rb = p.n_row_blocks - 1u - idx / p.n_kv_heads;
    let kvh = idx % p.n_kv_heads;
    let group = p.n_heads / p.n_kv_heads;
    let n_rows = p.n_tokens * group;
    let pos = step.pos;
    let last_row = min(rb * BR + BR, n_rows) - 1u;
    let kend = min(pos + last_row / group + 1u, p.ctx);   // keys the block sees: 0 .. kend - 1
    let n_tiles = (kend + BC - 1u) / BC;

    // This lane's softmax row and key share.
    let rr = lane / LPR;
    let part = lane % LPR;
    let row = rb * BR + 16u * sg + rr;
    let vis = select(0u, min(pos + row / group + 1u, p.ctx), row < n_rows);

    // Q block -> f16 (pre-scaled into log2 units) -> A tiles.
    let qscale = p.scale * LOG2E;
    for (var i = lid; i < BR * HD4; i = i + WG) {
        let r = rb * BR + i / HD4;
        var x = vec4<f32>(0.0);
        if (r < n_rows) {
            let h = kvh * group + r % group;
            x = q[((r / group) * p.n_heads + h) * HD4 + i % HD4] * qscale;
        }
        qs[((i / HD4) * LDQ + 4u * (i % HD4)) / 4u] = to_h(x);
    }
    workgroupBarrier();
    let qrow = 16u * sg * LDQ / 4u;   // this subgroup's q rows in qs
    if (QREG) {
        { qa0 = coopLoadT<coop_mat16x16<f16, A>>(&qs[qrow + 0u], LDQ / 4u); }
        if (HD16 > 1u) { qa1 = coopLoadT<coop_mat16x16<f16, A>>(&qs[qrow + 4u], LDQ / 4u); }
        if (HD16 > 2u) { qa2 = coopLoadT<coop_mat16x16<f16, A>>(&qs[qrow + 8u], LDQ / 4u); }
        if (HD16 > 3u) { qa3 = coopLoadT<coop_mat16x16<f16, A>>(&qs[qrow + 12u], LDQ / 4u); }
        if (HD16 > 4u) { qa4 = coopLoadT<coop_mat16x16<f16, A>>(&qs[qrow + 16u], LDQ / 4u); }
        if (HD16 > 5u) { qa5 = coopLoadT<coop_mat16x16<f16, A>>(&qs[qrow + 20u], LDQ / 4u); }
        if (HD16 > 6u) { qa6 = coopLoadT<coop_mat16x16<f16, A>>(&qs[qrow + 24u], LDQ / 4u); }
        if (HD16 > 7u) { qa7 = coopLoadT<coop_mat16x16<f16, A>>(&qs[qrow + 28u], LDQ / 4u); }
    }
    if (lid == 0u) { ss[VOTE] = 0.0; }
    workgroupBarrier();

    var m_ref = NEG_BIG;   // this row's reference max (log2 units)
    var l = 0.0;           // this lane's share of the row's sum of p
    let srow = (sg * 16u + rr) * LDS + part * KPR;             // this lane's scores in ss
    let prow = (sg * 16u + rr) * LDP / 4u + part * KPR / 4u;   // and its p in ps
    let obase_ss = sg * 16u * LDS;                              // this subgroup's rows of ss
    for (var kt = 0u; kt < n_tiles; kt = kt + 1u) {
        let k0 = kt * BC;
        stage_kv(lid, k0, kend, kvh);
        workgroupBarrier();
        for (var c = 0u; c < NT; c = c + 1u) {
            // B = K^T: the tile's K rows (keys 16c ..) are B's columns.
            let kb = 16u * c * LDK / 4u;
            var s = zc;
            {
                if (!QREG) { qa0 = coopLoadT<coop_mat16x16<f16, A>>(&qs[qrow + 0u], LDQ / 4u); }
                kb0 = coopLoad<coop_mat16x16<f16, B>>(&kvs[kb + 0u], LDK / 4u);
            }
            if (HD16 > 1u) {
                if (!QREG) { qa1 = coopLoadT<coop_mat16x16<f16, A>>(&qs[qrow + 4u], LDQ / 4u); }
                kb1 = coopLoad<coop_mat16x16<f16, B>>(&kvs[kb + 4u], LDK / 4u);
            }
            if (HD16 > 2u) {
                if (!QREG) { qa2 = coopLoadT<coop_mat16x16<f16, A>>(&qs[qrow + 8u], LDQ / 4u); }
                kb2 = coopLoad<coop_mat16x16<f16, B>>(&kvs[kb + 8u], LDK / 4u);
            }
            if (HD16 > 3u) {
                if (!QREG) { qa3 = coopLoadT<coop_mat16x16<f16, A>>(&qs[qrow + 12u], LDQ / 4u); }
                kb3 = coopLoad<coop_mat16x16<f16, B>>(&kvs[kb + 12u], LDK / 4u);
            }
            if (HD16 > 4u) {
                if (!QREG) { qa4 = coopLoadT<coop_mat16x16<f16, A>>(&qs[qrow + 16u], LDQ / 4u); }
                kb4 = coopLoad<coop_mat16x16<f16, B>>(&kvs[kb + 16u], LDK / 4u);
            }
            if (HD16 > 5u) {
                if (!QREG) { qa5 = coopLoadT<coop_mat16x16<f16, A>>(&qs[qrow + 20u], LDQ / 4u); }
                kb5 = coopLoad<coop_mat16x16<f16, B>>(&kvs[kb + 20u], LDK / 4u);
            }
            if (HD16 > 6u) {
                if (!QREG) { qa6 = coopLoadT<coop_mat16x16<f16, A>>(&qs[qrow + 24u], LDQ / 4u); }
                kb6 = coopLoad<coop_mat16x16<f16, B>>(&kvs[kb + 24u], LDK / 4u);
            }
            if (HD16 > 7u) {
                if (!QREG) { qa7 = coopLoadT<coop_mat16x16<f16, A>>(&qs[qrow + 28u], LDQ / 4u); }
                kb7 = coopLoad<coop_mat16x16<f16, B>>(&kvs[kb + 28u], LDK / 4u);
            }
            { s = coopMultiplyAdd(qa0, kb0, s); }
            if (HD16 > 1u) { s = coopMultiplyAdd(qa1, kb1, s); }
            if (HD16 > 2u) { s = coopMultiplyAdd(qa2, kb2, s); }
            if (HD16 > 3u) { s = coopMultiplyAdd(qa3, kb3, s); }
            if (HD16 > 4u) { s = coopMultiplyAdd(qa4, kb4, s); }
            if (HD16 > 5u) { s = coopMultiplyAdd(qa5, kb5, s); }
            if (HD16 > 6u) { s = coopMultiplyAdd(qa6, kb6, s); }
            if (HD16 > 7u) { s = coopMultiplyAdd(qa7, kb7, s); }
            let sv = s;  // coopStore's operands named: see matmul_coop.wgsl's out_full
            let at = obase_ss + 16u * c;
            coopStoreT(sv, &ss[at], LDS);
        }
        workgroupBarrier();
        // Masked max of this lane's keys, then of the row.
        let j0 = k0 + part * KPR;
        var mt = NEG_BIG;
        for (var i = 0u; i < KPR / 4u; i = i + 1u) {
            let s4 = ss4(srow + 4u * i);
            let j = j0 + 4u * i;
            let ok = vec4<u32>(j, j + 1u, j + 2u, j + 3u) < vec4<u32>(vis);
            let m4 = select(vec4<f32>(NEG_BIG), s4, ok);
            mt = max(mt, max(max(m4.x, m4.y), max(m4.z, m4.w)));
        }
        mt = max(mt, subgroupShuffleXor(mt, 1u));
        if (mt > m_ref + TAU) { ss[VOTE] = 1.0; }
        let rescale = workgroupUniformLoad(&ss[VOTE]) != 0.0;
        var alpha = 1.0;
        if (rescale) {
            let m_new = max(m_ref, mt);
            alpha = exp2(m_ref - m_new);
            m_ref = m_new;
            l = l * alpha;
        }
        for (var i = 0u; i < KPR / 4u; i = i + 1u) {
            let s4 = ss4(srow + 4u * i);
            let j = j0 + 4u * i;
            let ok = vec4<u32>(j, j + 1u, j + 2u, j + 3u) < vec4<u32>(vis);
            let p4 = select(vec4<f32>(0.0), exp2(s4 - vec4<f32>(m_ref)), ok);
            l = l + (p4.x + p4.y) + (p4.z + p4.w);
            ps[prow + i] = vec4<f16>(p4);
        }
        workgroupBarrier();
        if (lid == 0u) { ss[VOTE] = 0.0; }  // every lane has read it (the barrier above)
        if (rescale) {
            // O *= alpha row by row, NT tiles a round through this subgroup's ss rows. The rounds
            // are written out (r a constant, not a loop counter): naga wants cooperative
            // operations under conditions it can prove uniform. On the first tile O is still zero.
            if (HD16 > 0u * NT) {
                park_round(0u, obase_ss, o0, o1, o2, o3, o4, o5, o6, o7);
                workgroupBarrier();
                for (var i = 0u; i < KPR / 4u; i = i + 1u) {
                    scale_ss4(srow + 4u * i, alpha);
                }
                workgroupBarrier();
                if ((0u / NT == 0u)) { let at = obase_ss + 16u * (0u % NT); o0 = coopLoadT<coop_mat16x16<f32, C>>(&ss[at], LDS); }
                if ((HD16 > 1u) & (1u / NT == 0u)) { let at = obase_ss + 16u * (1u % NT); o1 = coopLoadT<coop_mat16x16<f32, C>>(&ss[at], LDS); }
                if ((HD16 > 2u) & (2u / NT == 0u)) { let at = obase_ss + 16u * (2u % NT); o2 = coopLoadT<coop_mat16x16<f32, C>>(&ss[at], LDS); }
                if ((HD16 > 3u) & (3u / NT == 0u)) { let at = obase_ss + 16u * (3u % NT); o3 = coopLoadT<coop_mat16x16<f32, C>>(&ss[at], LDS); }
                if ((HD16 > 4u) & (4u / NT == 0u)) { let at = obase_ss + 16u * (4u % NT); o4 = coopLoadT<coop_mat16x16<f32, C>>(&ss[at], LDS); }
                if ((HD16 > 5u) & (5u / NT == 0u)) { let at = obase_ss + 16u * (5u % NT); o5 = coopLoadT<coop_mat16x16<f32, C>>(&ss[at], LDS); }
                if ((HD16 > 6u) & (6u / NT == 0u)) { let at = obase_ss + 16u * (6u % NT); o6 = coopLoadT<coop_mat16x16<f32, C>>(&ss[at], LDS); }
                if ((HD16 > 7u) & (7u / NT == 0u)) { let at = obase_ss + 16u * (7u % NT); o7 = coopLoadT<coop_mat16x16<f32, C>>(&ss[at], LDS); }
                workgroupBarrier();
            }
            if (HD16 > 1u * NT) {
                park_round(1u, obase_ss, o0, o1, o2, o3, o4, o5, o6, o7);
                workgroupBarrier();
                for (var i = 0u; i < KPR / 4u; i = i + 1u) {
                    scale_ss4(srow + 4u * i, alpha);
                }
                workgroupBarrier();
                if ((0u / NT == 1u)) { let at = obase_ss + 16u * (0u % NT); o0 = coopLoadT<coop_mat16x16<f32, C>>(&ss[at], LDS); }
                if ((HD16 > 1u) & (1u / NT == 1u)) { let at = obase_ss + 16u * (1u % NT); o1 = coopLoadT<coop_mat16x16<f32, C>>(&ss[at], LDS); }
                if ((HD16 > 2u) & (2u / NT == 1u)) { let at = obase_ss + 16u * (2u % NT); o2 = coopLoadT<coop_mat16x16<f32, C>>(&ss[at], LDS); }
                if ((HD16 > 3u) & (3u / NT == 1u)) { let at = obase_ss + 16u * (3u % NT); o3 = coopLoadT<coop_mat16x16<f32, C>>(&ss[at], LDS); }
                if ((HD16 > 4u) & (4u / NT == 1u)) { let at = obase_ss + 16u * (4u % NT); o4 = coopLoadT<coop_mat16x16<f32, C>>(&ss[at], LDS); }
                if ((HD16 > 5u) & (5u / NT == 1u)) { let at = obase_ss + 16u * (5u % NT); o5 = coopLoadT<coop_mat16x16<f32, C>>(&ss[at], LDS); }
                if ((HD16 > 6u) & (6u / NT == 1u)) { let at = obase_ss + 16u * (6u % NT); o6 = coopLoadT<coop_mat16x16<f32, C>>(&ss[at], LDS); }
                if ((HD16 > 7u) & (7u / NT == 1u)) { let at = obase_ss + 16u * (7u % NT); o7 = coopLoadT<coop_mat16x16<f32, C>>(&ss[at], LDS); }
                workgroupBarrier();
            }
            if (HD16 > 2u * NT) {
                park_round(2u, obase_ss, o0, o1, o2, o3, o4, o5, o6, o7);
                workgroupBarrier();
                for (var i = 0u; i < KPR / 4u; i = i + 1u) {
                    scale_ss4(srow + 4u * i, alpha);
                }
                workgroupBarrier();
                if ((0u / NT == 2u)) { let at = obase_ss + 16u * (0u % NT); o0 = coopLoadT<coop_mat16x16<f32, C>>(&ss[at], LDS); }
                if ((HD16 > 1u) & (1u / NT == 2u)) { let at = obase_ss + 16u * (1u % NT); o1 = coopLoadT<coop_mat16x16<f32, C>>(&ss[at], LDS); }
                if ((HD16 > 2u) & (2u / NT == 2u)) { let at = obase_ss + 16u * (2u % NT); o2 = coopLoadT<coop_mat16x16<f32, C>>(&ss[at], LDS); }
                if ((HD16 > 3u) & (3u / NT == 2u)) { let at = obase_ss + 16u * (3u % NT); o3 = coopLoadT<coop_mat16x16<f32, C>>(&ss[at], LDS); }
                if ((HD16 > 4u) & (4u / NT == 2u)) { let at = obase_ss + 16u * (4u % NT); o4 = coopLoadT<coop_mat16x16<f32, C>>(&ss[at], LDS); }
                if ((HD16 > 5u) & (5u / NT == 2u)) { let at = obase_ss + 16u * (5u % NT); o5 = coopLoadT<coop_mat16x16<f32, C>>(&ss[at], LDS); }
                if ((HD16 > 6u) & (6u / NT == 2u)) { let at = obase_ss + 16u * (6u % NT); o6 = coopLoadT<coop_mat16x16<f32, C>>(&ss[at], LDS); }
                if ((HD16 > 7u) & (7u / NT == 2u)) { let at = obase_ss + 16u * (7u % NT); o7 = coopLoadT<coop_mat16x16<f32, C>>(&ss[at], LDS); }
                workgroupBarrier();
            }
            if (HD16 > 3u * NT) {
                park_round(3u, obase_ss, o0, o1, o2, o3, o4, o5, o6, o7);
                workgroupBarrier();
                for (var i = 0u; i < KPR / 4u; i = i + 1u) {
                    scale_ss4(srow + 4u * i, alpha);
                }
                workgroupBarrier();
                if ((0u / NT == 3u)) { let at = obase_ss + 16u * (0u % NT); o0 = coopLoadT<coop_mat16x16<f32, C>>(&ss[at], LDS); }
                if ((HD16 > 1u) & (1u / NT == 3u)) { let at = obase_ss + 16u * (1u % NT); o1 = coopLoadT<coop_mat16x16<f32, C>>(&ss[at], LDS); }
                if ((HD16 > 2u) & (2u / NT == 3u)) { let at = obase_ss + 16u * (2u % NT); o2 = coopLoadT<coop_mat16x16<f32, C>>(&ss[at], LDS); }
                if ((HD16 > 3u) & (3u / NT == 3u)) { let at = obase_ss + 16u * (3u % NT); o3 = coopLoadT<coop_mat16x16<f32, C>>(&ss[at], LDS); }
                if ((HD16 > 4u) & (4u / NT == 3u)) { let at = obase_ss + 16u * (4u % NT); o4 = coopLoadT<coop_mat16x16<f32, C>>(&ss[at], LDS); }
                if ((HD16 > 5u) & (5u / NT == 3u)) { let at = obase_ss + 16u * (5u % NT); o5 = coopLoadT<coop_mat16x16<f32, C>>(&ss[at], LDS); }
                if ((HD16 > 6u) & (6u / NT == 3u)) { let at = obase_ss + 16u * (6u % NT); o6 = coopLoadT<coop_mat16x16<f32, C>>(&ss[at], LDS); }
                if ((HD16 > 7u) & (7u / NT == 3u)) { let at = obase_ss + 16u * (7u % NT); o7 = coopLoadT<coop_mat16x16<f32, C>>(&ss[at], LDS); }
                workgroupBarrier();
            }
        }
        for (var c = 0u; c < NT; c = c + 1u) {
            let pa = (sg * 16u * LDP + 16u * c) / 4u;
            let a = coopLoadT<coop_mat16x16<f16, A>>(&ps[pa], LDP / 4u);
            // B = V: rows are keys 16c .., columns dims 16j ..
            let vb = (BC + 16u * c) * LDK / 4u;
            { kb0 = coopLoadT<coop_mat16x16<f16, B>>(&kvs[vb + 0u], LDK / 4u); }
            if (HD16 > 1u) { kb1 = coopLoadT<coop_mat16x16<f16, B>>(&kvs[vb + 4u], LDK / 4u); }
            if (HD16 > 2u) { kb2 = coopLoadT<coop_mat16x16<f16, B>>(&kvs[vb + 8u], LDK / 4u); }
            if (HD16 > 3u) { kb3 = coopLoadT<coop_mat16x16<f16, B>>(&kvs[vb + 12u], LDK / 4u); }
            if (HD16 > 4u) { kb4 = coopLoadT<coop_mat16x16<f16, B>>(&kvs[vb + 16u], LDK / 4u); }
            if (HD16 > 5u) { kb5 = coopLoadT<coop_mat16x16<f16, B>>(&kvs[vb + 20u], LDK / 4u); }
            if (HD16 > 6u) { kb6 = coopLoadT<coop_mat16x16<f16, B>>(&kvs[vb + 24u], LDK / 4u); }
            if (HD16 > 7u) { kb7 = coopLoadT<coop_mat16x16<f16, B>>(&kvs[vb + 28u], LDK / 4u); }
            { o0 = coopMultiplyAdd(a, kb0, o0); }
            if (HD16 > 1u) { o1 = coopMultiplyAdd(a, kb1, o1); }
            if (HD16 > 2u) { o2 = coopMultiplyAdd(a, kb2, o2); }
            if (HD16 > 3u) { o3 = coopMultiplyAdd(a, kb3, o3); }
            if (HD16 > 4u) { o4 = coopMultiplyAdd(a, kb4, o4); }
            if (HD16 > 5u) { o5 = coopMultiplyAdd(a, kb5, o5); }
            if (HD16 > 6u) { o6 = coopMultiplyAdd(a, kb6, o6); }
            if (HD16 > 7u) { o7 = coopMultiplyAdd(a, kb7, o7); }
        }
        workgroupBarrier();
    }

    // out = O / l for the real rows, NT tiles a round through ss.
    l = l + subgroupShuffleXor(l, 1u);
    let inv_l = select(0.0, 1.0 / l, l > 0.0);
    let h = kvh * group + row % group;
    let obase = ((row / group) * p.n_heads + h) * HD4;
    if (HD16 > 0u * NT) {
        park_round(0u, obase_ss, o0, o1, o2, o3, o4, o5, o6, o7);
        workgroupBarrier();
        for (var i = 0u; i < KPR / 4u; i = i + 1u) {
            let d4 = (0u * BC + part * KPR) / 4u + i;   // output quad of this row
            if ((row < n_rows) & (d4 < HD4)) {
                put_out(obase + d4, ss4(srow + 4u * i) * inv_l);
            }
        }
        workgroupBarrier();
    }
    if (HD16 > 1u * NT) {
        park_round(1u, obase_ss, o0, o1, o2, o3, o4, o5, o6, o7);
        workgroupBarrier();
        for (var i = 0u; i < KPR / 4u; i = i + 1u) {
            let d4 = (1u * BC + part * KPR) / 4u + i;   // output quad of this row
            if ((row < n_rows) & (d4 < HD4)) {
                put_out(obase + d4, ss4(srow + 4u * i) * inv_l);
            }
        }
        workgroupBarrier();
    }
    if (HD16 > 2u * NT) {
        park_round(2u, obase_ss, o0, o1, o2, o3, o4, o5, o6, o7);
        workgroupBarrier();
        for (var i = 0u; i < KPR / 4u; i = i + 1u) {
            let d4 = (2u * BC + part * KPR) / 4u + i;   // output quad of this row
            if ((row < n_rows) & (d4 < HD4)) {
                put_out(obase + d4, ss4(srow + 4u * i) * inv_l);
            }
        }
        workgroupBarrier();
    }
    if (HD16 > 3u * NT) {
        park_round(3u, obase_ss, o0, o1, o2, o3, o4, o5, o6, o7);
        workgroupBarrier();
        for (var i = 0u; i < KPR / 4u; i = i + 1u) {
            let d4 = (3u * BC + part * KPR) / 4u + i;   // output quad of this row
            if ((row < n_rows) & (d4 < HD4)) {
                put_out(obase + d4, ss4(srow + 4u * i) * inv_l);
            }
        }
        workgroupBarrier();
    }
}
