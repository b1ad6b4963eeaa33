enable f16;
enable wgpu_cooperative_matrix;

// Linear layers on tensor cores: y[T, N] = x[T, K] W[N, K]^T (+ y with ACC), with
// cooperative matrices (16x16x16, f16 inputs, f32 accumulation). Needs the device features
// SHADER_F16, SUBGROUP and EXPERIMENTAL_COOPERATIVE_MATRIX, a fixed subgroup size SG, and
// k % 16 == 0. Inexact by design: x and W are rounded to f16 before the products (relative
// error ~1e-3 of sum |x||w|); the sums are f32.
//
// A workgroup computes a BT x BN tile of y (tokens x weight rows), stepping through k BK at a
// time. Each step stages x (f32 -> f16) and W (decoded by quant.wgsl's `w16`, -> f16) into
// workgroup memory, double-buffered: step s + 1 is staged while step s is multiplied, with one
// barrier per step. The workgroup's SG_T x SG_N subgroups each own TM x TN accumulator tiles
// of 16 x 16 (f32) and, per 16 of k, load TM A tiles (x, row-major) and TN B tiles (W^T: W's
// rows are B's columns, so column-major) from workgroup memory.
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
// Stage the next step before (true) or after (false) multiplying the current one.
override STAGE_FIRST: bool = false;

const MAX_TM: u32 = 4u;
const MAX_TN: u32 = 4u;

override SUBGROUPS: u32 = SG_T * SG_N;
override WG: u32 = SG * SUBGROUPS;
override BT: u32 = 16u * TM * SG_T;   // tokens per workgroup tile
override BN: u32 = 16u * TN * SG_N;   // weight rows per workgroup tile
// Row stride of the staged tiles in f16: 8 spare values stagger rows over the banks and keep
// each row 16-byte aligned.
override LDS: u32 = BK + 8u;

// Workgroup array lengths (named: naga resolves an array length only from a plain override).
override XS_LEN: u32 = 2u * BT * LDS;
override WS_LEN: u32 = 2u * BN * LDS;
override CS_LEN: u32 = SUBGROUPS * 256u;

var<workgroup> xs: array<f16, XS_LEN>;   // 2 x [BT][LDS] tokens, f16
var<workgroup> ws: array<f16, WS_LEN>;   // 2 x [BN][LDS] weight rows, f16
var<workgroup> cs: array<f32, CS_LEN>;   // a 16 x 16 output tile per subgroup

// Stages step k0 into buffer `buf`: rows past t or n and k past the row are zeros.
fn stage(buf: u32, k0: u32, t0: u32, n0: u32, lid: u32) {
    let chunks = p.k / 16u;
    let wbase = buf * BN * LDS;
    for (var i = lid; i < BN * (BK / 16u); i = i + WG) {
        let r = i / (BK / 16u);
        let cc = i % (BK / 16u);
        let c = k0 / 16u + cc;
        let at = wbase + r * LDS + 16u * cc;
        if (n0 + r < p.n && c < chunks) {
            if (DT == DT_F16) {
                // Already f16: no decoding.
                let g = ((n0 + r) * p.k + 16u * c) >> 3u;
                put8(at, w[g]);
                put8(at + 8u, w[g + 1u]);
            } else {
                let v = w16(n0 + r, c, p.k, p.nb);
                for (var q = 0u; q < 4u; q = q + 1u) {
                    put4w(at + 4u * q, vec4<f16>(v[q]));
                }
            }
        } else {
            for (var q = 0u; q < 4u; q = q + 1u) {
                put4w(at + 4u * q, vec4<f16>(0.0h));
            }
        }
    }
    let xbase = buf * BT * LDS;
    for (var i = lid; i < BT * (BK / 4u); i = i + WG) {
        let r = i / (BK / 4u);
        let q = i % (BK / 4u);
        let kk = k0 + 4u * q;
        var v = vec4<f32>(0.0);
        if (t0 + r < p.t && kk < p.k) {
            v = x[((t0 + r) * p.k + kk) >> 2u];
        }
        put4x(xbase + r * LDS + 4u * q, vec4<f16>(v));
    }
}

fn put4w(at: u32, v: vec4<f16>) {
    ws[at] = v.x;
    ws[at + 1u] = v.y;
    ws[at + 2u] = v.z;
    ws[at + 3u] = v.w;
}

fn put4x(at: u32, v: vec4<f16>) {
    xs[at] = v.x;
    xs[at + 1u] = v.y;
    xs[at + 2u] = v.z;
    xs[at + 3u] = v.w;
}

// Eight f16 values packed in a vec4<u32>, into ws (exact: f16 -> f32 -> f16).
fn put8(at: u32, v: vec4<u32>) {
    let a = vec2<f16>(unpack2x16float(v.x));
    let b = vec2<f16>(unpack2x16float(v.y));
    let c = vec2<f16>(unpack2x16float(v.z));
    let d = vec2<f16>(unpack2x16float(v.w));
    ws[at] = a.x;
    ws[at + 1u] = a.y;
    ws[at + 2u] = b.x;
    ws[at + 3u] = b.y;
    ws[at + 4u] = c.x;
    ws[at + 5u] = c.y;
    ws[at + 6u] = d.x;
    ws[at + 7u] = d.y;
}

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

    var acc: array<coop_mat16x16<f32, C>, 16>;  // [MAX_TM][MAX_TN], zeros
    var a: array<coop_mat16x16<f16, A>, MAX_TM>;
    var b: array<coop_mat16x16<f16, B>, MAX_TN>;

    let steps = (p.k + BK - 1u) / BK;
    stage(0u, 0u, t0, n0, lid);
    workgroupBarrier();
    for (var s = 0u; s < steps; s = s + 1u) {
        let buf = s % 2u;
        if (STAGE_FIRST & (s + 1u < steps)) {
            stage(1u - buf, (s + 1u) * BK, t0, n0, lid);
        }
        let xb = buf * BT * LDS + 16u * st * TM * LDS;
        let wb = buf * BN * LDS + 16u * sn * TN * LDS;
        for (var kk = 0u; kk < BK; kk = kk + 16u) {
            for (var i = 0u; i < TM; i = i + 1u) {
                a[i] = coopLoadT<coop_mat16x16<f16, A>>(&xs[xb + 16u * i * LDS + kk], LDS);
            }
            for (var j = 0u; j < TN; j = j + 1u) {
                b[j] = coopLoad<coop_mat16x16<f16, B>>(&ws[wb + 16u * j * LDS + kk], LDS);
            }
            for (var i = 0u; i < TM; i = i + 1u) {
                for (var j = 0u; j < TN; j = j + 1u) {
                    acc[i * MAX_TN + j] = coopMultiplyAdd(a[i], b[j], acc[i * MAX_TN + j]);
                }
            }
        }
        if (!STAGE_FIRST & (s + 1u < steps)) {
            stage(1u - buf, (s + 1u) * BK, t0, n0, lid);
        }
        workgroupBarrier();
    }

    let ts = t0 + 16u * st * TM;   // this subgroup's first token and row
    let ns = n0 + 16u * sn * TN;
    // coopStore's operands are all named values: naga 30 emits a coopStore statement before
    // the expressions of its arguments, so unnamed argument expressions fail in its SPIR-V
    // backend ("Expression is not cached").
    let stride = p.n;
    let park = sg * 256u;
    if ((t0 + BT <= p.t) & (n0 + BN <= p.n)) {
        for (var i = 0u; i < TM; i = i + 1u) {
            for (var j = 0u; j < TN; j = j + 1u) {
                let at = (ts + 16u * i) * p.n + ns + 16u * j;
                var c = acc[i * MAX_TN + j];
                if (ACC) {
                    c = c + coopLoadT<coop_mat16x16<f32, C>>(&y[at], p.n);
                }
                let cv = c;
                coopStoreT(cv, &y[at], stride);
            }
        }
        return;
    }
    // The workgroup's tile crosses T or N: every subgroup parks its tile (i, j) in cs, then
    // the whole workgroup stores the parked elements that lie inside y.
    for (var i = 0u; i < TM; i = i + 1u) {
        for (var j = 0u; j < TN; j = j + 1u) {
            let cv = acc[i * MAX_TN + j];
            coopStoreT(cv, &cs[park], 16u);
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
    }
}
