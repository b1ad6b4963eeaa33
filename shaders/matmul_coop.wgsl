enable f16;
enable wgpu_cooperative_matrix;

// Linear layers on tensor cores: y[T, N] = x[T, K] W[N, K]^T (+ y with ACC), with
// cooperative matrices (16x16x16, f16 inputs, f32 accumulation). Needs the device features
// SHADER_F16, SUBGROUP and EXPERIMENTAL_COOPERATIVE_MATRIX, a fixed subgroup size SG, and
// k % 16 == 0. Inexact by design: x and W are rounded to f16 before the products (relative
// error ~1e-3 of sum |x||w|); the sums are f32.
//
// A workgroup computes a BT x BN tile of y (tokens x weight rows), stepping through k BK at a
// time. Each step stages x (f32 -> f16) and W (decoded by quant.wgsl's `w16`, -> f16) in
// workgroup memory, double-buffered with one barrier per step: each lane loads its share of
// step s + 1 into registers, the subgroups multiply step s, then the lanes store step s + 1
// (so the loads' latency overlaps the multiplications; holding the raw words instead and
// decoding them after the multiplications measured the same on the H100, within 5%). The
// workgroup's SG_T x SG_N subgroups each own TM x TN accumulator tiles of 16 x 16 (f32) and,
// per 16 of k, load TM A tiles (x, row-major) and TN B tiles (W^T: W's rows are B's columns,
// so column-major).
//
// Workgroup memory holds vec4<f16> (8-byte stores); cooperative loads from it count their
// offset and stride in vec4s (SPV_KHR_cooperative_matrix: in elements of the pointed-to type),
// checked on the H100 to give bit-identical results to an f16 array.
//
// Output: tiles wholly inside y are stored straight from the accumulators; a workgroup whose
// tile crosses T or N passes each 16 x 16 tile through workgroup memory and stores only the
// elements inside.

struct Params {
    n: u32,   // weight rows = output features
    k: u32,   // row length = input features, a multiple of 16
    t: u32,   // tokens
    nb: u32,  // blocks in the whole weight (n * k / block size), for the repacked layouts
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w: array<vec4<u32>>;   // [n, k] weight, GPU layout of DT
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;   // [t, k]
@group(0) @binding(3) var<storage, read_write> y: array<f32>;   // [t, n]

override ACC: bool = false;
override SG: u32 = 32u;     // lanes per subgroup (the device's fixed subgroup size)
override SG_T: u32 = 2u;    // subgroups along tokens
override SG_N: u32 = 2u;    // subgroups along weight rows
override TM: u32 = 2u;      // 16-token tiles per subgroup, 1..=MAX_TM
override TN: u32 = 4u;      // 16-row tiles per subgroup, 1..=MAX_TN
override BK: u32 = 32u;     // k per step, a multiple of 16

const MAX_TM: u32 = 4u;
const MAX_TN: u32 = 4u;

override SUBGROUPS: u32 = SG_T * SG_N;
override WG: u32 = SG * SUBGROUPS;
override BT: u32 = 16u * TM * SG_T;   // tokens per workgroup tile
override BN: u32 = 16u * TN * SG_N;   // weight rows per workgroup tile
// Row stride of the staged tiles in f16: 8 spare values stagger rows over the banks and keep
// each row 16-byte aligned.
override LDS: u32 = BK + 8u;

// Workgroup array lengths, in elements (named: naga 30's pipeline-constant pass panics on an
// array length that is an unnamed override expression).
override XS_LEN: u32 = 2u * BT * LDS / 4u;
override WS_LEN: u32 = 2u * BN * LDS / 4u;
override CS_LEN: u32 = SUBGROUPS * 256u;

var<workgroup> xs: array<vec4<f16>, XS_LEN>;    // 2 x [BT][LDS] tokens, f16
var<workgroup> ws: array<vec4<f16>, WS_LEN>;    // 2 x [BN][LDS] weight rows, f16
var<workgroup> cs: array<f32, CS_LEN>;   // a 16 x 16 output tile per subgroup

// A lane's share of a step: W_PER weight chunks (16 values of a row) and X_PER vec4 of x.
override WN: u32 = BN * (BK / 16u);           // weight chunks per step
override XN: u32 = BT * (BK / 4u);            // x vec4 per step
override W_PER: u32 = (WN + WG - 1u) / WG;    // <= 2
override X_PER: u32 = (XN + WG - 1u) / WG;    // <= 8

alias H16 = array<vec4<f16>, 4>;

// One step's values held in registers between the loads (before the multiplications of the
// previous step) and the stores to workgroup memory (after them).
struct Staged {
    w0: H16, w1: H16,
    x0: vec4<f16>, x1: vec4<f16>, x2: vec4<f16>, x3: vec4<f16>,
    x4: vec4<f16>, x5: vec4<f16>, x6: vec4<f16>, x7: vec4<f16>,
}

fn f16x4(a: u32, b: u32) -> vec4<f16> {
    return vec4<f16>(vec2<f16>(unpack2x16float(a)), vec2<f16>(unpack2x16float(b)));
}

// Weight chunk i of the step at k0, in f16. Without branches: rows past n re-read row n - 1
// (outputs never stored) and chunks past the row its last chunk (finite values that meet x's
// zeros there).
fn w_chunk(i: u32, k0: u32, n0: u32) -> H16 {
    let r = min(n0 + i / (BK / 16u), p.n - 1u);
    let c = min(k0 / 16u + i % (BK / 16u), p.k / 16u - 1u);
    if (DT == DT_F16) {
        let g = (r * p.k + 16u * c) >> 3u;
        let a = w[g];
        let b = w[g + 1u];
        return H16(f16x4(a.x, a.y), f16x4(a.z, a.w), f16x4(b.x, b.y), f16x4(b.z, b.w));
    }
    let v = w16(r, c, p.k, p.nb);
    return H16(vec4<f16>(v[0]), vec4<f16>(v[1]), vec4<f16>(v[2]), vec4<f16>(v[3]));
}

// x vec4 i of the step at k0, in f16: zeros past the row; tokens past t re-read token t - 1
// (outputs never stored).
fn x_vec(i: u32, k0: u32, t0: u32) -> vec4<f16> {
    let r = min(t0 + i / (BK / 4u), p.t - 1u);
    let kk = k0 + 4u * (i % (BK / 4u));
    let v = x[(r * p.k + min(kk, p.k - 4u)) >> 2u];
    return select(vec4<f16>(0.0h), vec4<f16>(v), kk < p.k);
}

fn fetch(k0: u32, t0: u32, n0: u32, lid: u32) -> Staged {
    var s: Staged;
    s.w0 = w_chunk(lid, k0, n0);
    if (W_PER > 1u) { s.w1 = w_chunk(lid + WG, k0, n0); }
    s.x0 = x_vec(lid, k0, t0);
    if (X_PER > 1u) { s.x1 = x_vec(lid + WG, k0, t0); }
    if (X_PER > 2u) { s.x2 = x_vec(lid + 2u * WG, k0, t0); }
    if (X_PER > 3u) { s.x3 = x_vec(lid + 3u * WG, k0, t0); }
    if (X_PER > 4u) { s.x4 = x_vec(lid + 4u * WG, k0, t0); }
    if (X_PER > 5u) { s.x5 = x_vec(lid + 5u * WG, k0, t0); }
    if (X_PER > 6u) { s.x6 = x_vec(lid + 6u * WG, k0, t0); }
    if (X_PER > 7u) { s.x7 = x_vec(lid + 7u * WG, k0, t0); }
    return s;
}

fn put_w(buf: u32, i: u32, v: H16) {
    if (i < WN) {
        let at = (buf * BN * LDS + (i / (BK / 16u)) * LDS + 16u * (i % (BK / 16u))) / 4u;
        ws[at] = v[0];
        ws[at + 1u] = v[1];
        ws[at + 2u] = v[2];
        ws[at + 3u] = v[3];
    }
}

fn put_x(buf: u32, i: u32, v: vec4<f16>) {
    if (i < XN) {
        xs[(buf * BT * LDS + (i / (BK / 4u)) * LDS + 4u * (i % (BK / 4u))) / 4u] = v;
    }
}

fn put(buf: u32, s: Staged, lid: u32) {
    put_w(buf, lid, s.w0);
    if (W_PER > 1u) { put_w(buf, lid + WG, s.w1); }
    put_x(buf, lid, s.x0);
    if (X_PER > 1u) { put_x(buf, lid + WG, s.x1); }
    if (X_PER > 2u) { put_x(buf, lid + 2u * WG, s.x2); }
    if (X_PER > 3u) { put_x(buf, lid + 3u * WG, s.x3); }
    if (X_PER > 4u) { put_x(buf, lid + 4u * WG, s.x4); }
    if (X_PER > 5u) { put_x(buf, lid + 5u * WG, s.x5); }
    if (X_PER > 6u) { put_x(buf, lid + 6u * WG, s.x6); }
    if (X_PER > 7u) { put_x(buf, lid + 7u * WG, s.x7); }
}

// One output tile of a subgroup, wholly inside y, at token t and row n.
fn out_full(c: coop_mat16x16<f32, C>, t: u32, n: u32) {
    let at = t * p.n + n;
    let stride = p.n;
    var v = c;
    if (ACC) {
        v = v + coopLoadT<coop_mat16x16<f32, C>>(&y[at], stride);
    }
    // coopStore's operands are all named values: naga 30 emits a coopStore statement before
    // the expressions of its arguments, so unnamed argument expressions fail in its SPIR-V
    // backend ("Expression is not cached").
    let vv = v;
    coopStoreT(vv, &y[at], stride);
}

// Tile (i, j) of every subgroup of a workgroup whose tile crosses t or n: each subgroup parks
// its tile in cs, then the whole workgroup stores the parked elements that lie inside y.
// Called by all subgroups alike (it has barriers).
fn out_edge(c: coop_mat16x16<f32, C>, i: u32, j: u32, t0: u32, n0: u32, sg: u32, lid: u32) {
    let park = sg * 256u;
    coopStoreT(c, &cs[park], 16u);
    workgroupBarrier();
    for (var e = lid; e < SUBGROUPS * 256u; e = e + WG) {
        let g = e / 256u;
        let t = t0 + 16u * ((g / SG_N) * TM + i) + (e % 256u) / 16u;
        let n = n0 + 16u * ((g % SG_N) * TN + j) + e % 16u;
        if (t < p.t && n < p.n) {
            let at = t * p.n + n;
            if (ACC) {
                y[at] = y[at] + cs[e];
            } else {
                y[at] = cs[e];
            }
        }
    }
    workgroupBarrier();
}

// The TM x TN accumulators, A and B tiles are separate variables, not arrays, and every use
// is spelled out under conditions on the override constants (folded when the pipeline is
// built), so the driver keeps them in registers: as arrays indexed in loops (naga cannot mark
// loops for unrolling) the kernel was several times slower on the H100.
@compute @workgroup_size(WG)
fn matmul_coop(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32, @builtin(subgroup_id) sg: u32) {
    let tiles_t = (p.t + BT - 1u) / BT;
    let tile = wid.x + wid.y * nwg.x;
    if (tile >= tiles_t * ((p.n + BN - 1u) / BN)) { return; }
    // Token tiles vary fastest, so neighbouring workgroups share a weight tile in cache.
    let t0 = (tile % tiles_t) * BT;
    let n0 = (tile / tiles_t) * BN;
    // This subgroup's tiles: tokens 16 (st TM + i), rows 16 (sn TN + j) of the workgroup tile.
    let st = sg / SG_N;
    let sn = sg % SG_N;

    // Accumulators c{i}{j} (zeros), A tiles a{i}, B tiles b{j}.
    var c00: coop_mat16x16<f32, C>; var c01: coop_mat16x16<f32, C>;
    var c02: coop_mat16x16<f32, C>; var c03: coop_mat16x16<f32, C>;
    var c10: coop_mat16x16<f32, C>; var c11: coop_mat16x16<f32, C>;
    var c12: coop_mat16x16<f32, C>; var c13: coop_mat16x16<f32, C>;
    var c20: coop_mat16x16<f32, C>; var c21: coop_mat16x16<f32, C>;
    var c22: coop_mat16x16<f32, C>; var c23: coop_mat16x16<f32, C>;
    var c30: coop_mat16x16<f32, C>; var c31: coop_mat16x16<f32, C>;
    var c32: coop_mat16x16<f32, C>; var c33: coop_mat16x16<f32, C>;
    var a0: coop_mat16x16<f16, A>; var a1: coop_mat16x16<f16, A>;
    var a2: coop_mat16x16<f16, A>; var a3: coop_mat16x16<f16, A>;
    var b0: coop_mat16x16<f16, B>; var b1: coop_mat16x16<f16, B>;
    var b2: coop_mat16x16<f16, B>; var b3: coop_mat16x16<f16, B>;

    let steps = (p.k + BK - 1u) / BK;
    var stg = fetch(0u, t0, n0, lid);
    put(0u, stg, lid);
    workgroupBarrier();
    for (var s = 0u; s < steps; s = s + 1u) {
        let buf = s % 2u;
        // The next step's loads are issued before this step's multiplications and stored
        // after them (past the last step: harmless re-reads, stored to the idle buffer).
        stg = fetch((s + 1u) * BK, t0, n0, lid);
        let xb = buf * BT * LDS + 16u * st * TM * LDS;
        let wb = buf * BN * LDS + 16u * sn * TN * LDS;
        for (var kk = 0u; kk < BK; kk = kk + 16u) {
            let xa = xb + kk;
            let xw = wb + kk;
            a0 = coopLoadT<coop_mat16x16<f16, A>>(&xs[(xa) / 4u], LDS / 4u);
            if (TM > 1u) { a1 = coopLoadT<coop_mat16x16<f16, A>>(&xs[(xa + 16u * LDS) / 4u], LDS / 4u); }
            if (TM > 2u) { a2 = coopLoadT<coop_mat16x16<f16, A>>(&xs[(xa + 32u * LDS) / 4u], LDS / 4u); }
            if (TM > 3u) { a3 = coopLoadT<coop_mat16x16<f16, A>>(&xs[(xa + 48u * LDS) / 4u], LDS / 4u); }
            b0 = coopLoad<coop_mat16x16<f16, B>>(&ws[(xw) / 4u], LDS / 4u);
            if (TN > 1u) { b1 = coopLoad<coop_mat16x16<f16, B>>(&ws[(xw + 16u * LDS) / 4u], LDS / 4u); }
            if (TN > 2u) { b2 = coopLoad<coop_mat16x16<f16, B>>(&ws[(xw + 32u * LDS) / 4u], LDS / 4u); }
            if (TN > 3u) { b3 = coopLoad<coop_mat16x16<f16, B>>(&ws[(xw + 48u * LDS) / 4u], LDS / 4u); }
            c00 = coopMultiplyAdd(a0, b0, c00);
            if (TN > 1u) { c01 = coopMultiplyAdd(a0, b1, c01); }
            if (TN > 2u) { c02 = coopMultiplyAdd(a0, b2, c02); }
            if (TN > 3u) { c03 = coopMultiplyAdd(a0, b3, c03); }
            if (TM > 1u) { c10 = coopMultiplyAdd(a1, b0, c10); }
            if ((TM > 1u) & (TN > 1u)) { c11 = coopMultiplyAdd(a1, b1, c11); }
            if ((TM > 1u) & (TN > 2u)) { c12 = coopMultiplyAdd(a1, b2, c12); }
            if ((TM > 1u) & (TN > 3u)) { c13 = coopMultiplyAdd(a1, b3, c13); }
            if (TM > 2u) { c20 = coopMultiplyAdd(a2, b0, c20); }
            if ((TM > 2u) & (TN > 1u)) { c21 = coopMultiplyAdd(a2, b1, c21); }
            if ((TM > 2u) & (TN > 2u)) { c22 = coopMultiplyAdd(a2, b2, c22); }
            if ((TM > 2u) & (TN > 3u)) { c23 = coopMultiplyAdd(a2, b3, c23); }
            if (TM > 3u) { c30 = coopMultiplyAdd(a3, b0, c30); }
            if ((TM > 3u) & (TN > 1u)) { c31 = coopMultiplyAdd(a3, b1, c31); }
            if ((TM > 3u) & (TN > 2u)) { c32 = coopMultiplyAdd(a3, b2, c32); }
            if ((TM > 3u) & (TN > 3u)) { c33 = coopMultiplyAdd(a3, b3, c33); }
        }
        put(1u - buf, stg, lid);
        workgroupBarrier();
    }

    if ((t0 + BT <= p.t) & (n0 + BN <= p.n)) {
        let ts = t0 + 16u * st * TM;   // this subgroup's first token and row
        let ns = n0 + 16u * sn * TN;
        { out_full(c00, ts + 0u, ns + 0u); }
        if (TN > 1u) { out_full(c01, ts + 0u, ns + 16u); }
        if (TN > 2u) { out_full(c02, ts + 0u, ns + 32u); }
        if (TN > 3u) { out_full(c03, ts + 0u, ns + 48u); }
        if (TM > 1u) { out_full(c10, ts + 16u, ns + 0u); }
        if ((TM > 1u) & (TN > 1u)) { out_full(c11, ts + 16u, ns + 16u); }
        if ((TM > 1u) & (TN > 2u)) { out_full(c12, ts + 16u, ns + 32u); }
        if ((TM > 1u) & (TN > 3u)) { out_full(c13, ts + 16u, ns + 48u); }
        if (TM > 2u) { out_full(c20, ts + 32u, ns + 0u); }
        if ((TM > 2u) & (TN > 1u)) { out_full(c21, ts + 32u, ns + 16u); }
        if ((TM > 2u) & (TN > 2u)) { out_full(c22, ts + 32u, ns + 32u); }
        if ((TM > 2u) & (TN > 3u)) { out_full(c23, ts + 32u, ns + 48u); }
        if (TM > 3u) { out_full(c30, ts + 48u, ns + 0u); }
        if ((TM > 3u) & (TN > 1u)) { out_full(c31, ts + 48u, ns + 16u); }
        if ((TM > 3u) & (TN > 2u)) { out_full(c32, ts + 48u, ns + 32u); }
        if ((TM > 3u) & (TN > 3u)) { out_full(c33, ts + 48u, ns + 48u); }
    } else {
        { out_edge(c00, 0u, 0u, t0, n0, sg, lid); }
        if (TN > 1u) { out_edge(c01, 0u, 1u, t0, n0, sg, lid); }
        if (TN > 2u) { out_edge(c02, 0u, 2u, t0, n0, sg, lid); }
        if (TN > 3u) { out_edge(c03, 0u, 3u, t0, n0, sg, lid); }
        if (TM > 1u) { out_edge(c10, 1u, 0u, t0, n0, sg, lid); }
        if ((TM > 1u) & (TN > 1u)) { out_edge(c11, 1u, 1u, t0, n0, sg, lid); }
        if ((TM > 1u) & (TN > 2u)) { out_edge(c12, 1u, 2u, t0, n0, sg, lid); }
        if ((TM > 1u) & (TN > 3u)) { out_edge(c13, 1u, 3u, t0, n0, sg, lid); }
        if (TM > 2u) { out_edge(c20, 2u, 0u, t0, n0, sg, lid); }
        if ((TM > 2u) & (TN > 1u)) { out_edge(c21, 2u, 1u, t0, n0, sg, lid); }
        if ((TM > 2u) & (TN > 2u)) { out_edge(c22, 2u, 2u, t0, n0, sg, lid); }
        if ((TM > 2u) & (TN > 3u)) { out_edge(c23, 2u, 3u, t0, n0, sg, lid); }
        if (TM > 3u) { out_edge(c30, 3u, 0u, t0, n0, sg, lid); }
        if ((TM > 3u) & (TN > 1u)) { out_edge(c31, 3u, 1u, t0, n0, sg, lid); }
        if ((TM > 3u) & (TN > 2u)) { out_edge(c32, 3u, 2u, t0, n0, sg, lid); }
        if ((TM > 3u) & (TN > 3u)) { out_edge(c33, 3u, 3u, t0, n0, sg, lid); }
    }
}
