// Linear layers, y = x W^T, for every weight type quant.wgsl decodes, f32 activations and
// f32 accumulation. Two entry points:
//   matvec: decode (t == 1). R weight rows per workgroup; each lane walks the row's 16-value
//           chunks (stride WG), loads the x chunk once for all R rows, and the workgroup
//           reduces the R rows' partial sums together at the end.
//   matmul: prefill (any t). A workgroup computes a BT x BN tile of y, stepping through k
//           BK at a time: the weight tile is dequantised once into workgroup memory and
//           reused by all BT tokens; each thread computes 4 tokens x 4 rows.
// With ACC the result is added to y (fuses the residual add) instead of replacing it.

struct Params {
    n: u32,   // weight rows = output features
    k: u32,   // row length = input features
    t: u32,   // tokens
    nb: u32,  // blocks in the whole weight (n * k / block size), for the repacked layouts
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w: array<vec4<u32>>;   // [n, k] weight, GPU layout of DT
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;   // [t, k]
@group(0) @binding(3) var<storage, read_write> y: array<f32>;   // [t, n]

override WG: u32 = 256u;   // matvec lanes, a power of two <= MAX_WG
override R: u32 = 4u;      // matvec rows per workgroup, <= MAX_R
override ACC: bool = false;

const MAX_R: u32 = 8u;
const MAX_WG: u32 = 256u;

// matvec partial sums, [R][WG]: all rows reduce in one tree (log2(WG) barriers, not R times
// as many).
var<workgroup> mv_sums: array<f32, MAX_R * MAX_WG>;

fn store(i: u32, v: f32) {
    if (ACC) {
        y[i] = y[i] + v;
    } else {
        y[i] = v;
    }
}

fn dot16(a: Chunk, b: Chunk) -> f32 {
    return dot(a[0], b[0]) + dot(a[1], b[1]) + dot(a[2], b[2]) + dot(a[3], b[3]);
}

// x[t, 16c .. 16c + 15], zeros past the end of the row.
fn x16(t: u32, c: u32) -> Chunk {
    if (W_ALIGNED) {
        let i = (t * p.k + 16u * c) >> 2u;
        return Chunk(x[i], x[i + 1u], x[i + 2u], x[i + 3u]);
    }
    var out: Chunk; // zeros
    for (var e = 0u; e < 16u; e = e + 1u) {
        let kk = 16u * c + e;
        if (kk < p.k) {
            let g = t * p.k + kk;
            out[e / 4u][e % 4u] = x[g >> 2u][g & 3u];
        }
    }
    return out;
}

@compute @workgroup_size(WG)
fn matvec(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let row0 = (wid.x + wid.y * nwg.x) * R;
    // Whole workgroups leave together, so the barriers below stay uniform.
    if (row0 >= p.n) { return; }
    let chunks = (p.k + 15u) / 16u;
    var acc: array<f32, MAX_R>;
    for (var c = lid; c < chunks; c = c + WG) {
        let xv = x16(0u, c);
        for (var r = 0u; r < R; r = r + 1u) {
            // Rows past n (last workgroup only) re-read row n - 1; their sums are dropped.
            let row = min(row0 + r, p.n - 1u);
            acc[r] = acc[r] + dot16(w16(row, c, p.k, p.nb), xv);
        }
    }
    for (var r = 0u; r < R; r = r + 1u) {
        mv_sums[r * WG + lid] = acc[r];
    }
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (lid < s) {
            for (var r = 0u; r < R; r = r + 1u) {
                mv_sums[r * WG + lid] = mv_sums[r * WG + lid] + mv_sums[r * WG + lid + s];
            }
        }
        workgroupBarrier();
    }
    if (lid < R && row0 + lid < p.n) {
        store(row0 + lid, mv_sums[lid * WG]);
    }
}

const BT: u32 = 32u;             // tokens per tile
const BN: u32 = 64u;             // weight rows per tile
const BK: u32 = 32u;             // k per step: 2 chunks per weight row
const TILE_WG: u32 = 128u;       // (BT / 4) * (BN / 4) threads, 4 x 4 outputs each
const KV: u32 = BK / 4u + 1u;    // vec4 per tile row; the spare one staggers rows over banks

var<workgroup> w_tile: array<vec4<f32>, BN * KV>;  // [BN][BK] dequantised weights
var<workgroup> x_tile: array<vec4<f32>, BT * KV>;  // [BT][BK] activations

// x[t, kk .. kk + 3] (kk % 4 == 0), zeros past the row or the last token.
fn x4(t: u32, kk: u32) -> vec4<f32> {
    var out = vec4<f32>(0.0);
    if (t >= p.t) { return out; }
    if (W_ALIGNED) {
        if (kk < p.k) { out = x[(t * p.k + kk) >> 2u]; }
        return out;
    }
    for (var e = 0u; e < 4u; e = e + 1u) {
        if (kk + e < p.k) {
            let g = t * p.k + kk + e;
            out[e] = x[g >> 2u][g & 3u];
        }
    }
    return out;
}

@compute @workgroup_size(TILE_WG)
fn matmul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let tiles_t = (p.t + BT - 1u) / BT;
    let tile = wid.x + wid.y * nwg.x;
    if (tile >= tiles_t * ((p.n + BN - 1u) / BN)) { return; }
    // Token tiles vary fastest, so neighbouring workgroups share a weight tile in cache.
    let t0 = (tile % tiles_t) * BT;
    let n0 = (tile / tiles_t) * BN;
    let tn = lid % (BN / 4u);  // this thread's weight rows n0 + 4 tn + (0..3)
    let tt = lid / (BN / 4u);  // its tokens t0 + 4 tt + (0..3)
    let chunks = (p.k + 15u) / 16u;
    var acc: array<vec4<f32>, 4>;  // acc[i][j]: token 4 tt + i, row 4 tn + j
    for (var k0 = 0u; k0 < p.k; k0 = k0 + BK) {
        for (var i = lid; i < BN * BK / 16u; i = i + TILE_WG) {
            let r = i / (BK / 16u);
            let cc = i % (BK / 16u);
            let c = k0 / 16u + cc;
            var v: Chunk; // zeros past the last row or the end of the rows
            if (n0 + r < p.n && c < chunks) {
                v = w16(n0 + r, c, p.k, p.nb);
            }
            for (var q = 0u; q < 4u; q = q + 1u) {
                w_tile[r * KV + 4u * cc + q] = v[q];
            }
        }
        for (var i = lid; i < BT * BK / 4u; i = i + TILE_WG) {
            let r = i / (BK / 4u);
            let q = i % (BK / 4u);
            x_tile[r * KV + q] = x4(t0 + r, k0 + 4u * q);
        }
        workgroupBarrier();
        for (var q = 0u; q < BK / 4u; q = q + 1u) {
            var wv: array<vec4<f32>, 4>;
            for (var j = 0u; j < 4u; j = j + 1u) {
                wv[j] = w_tile[(4u * tn + j) * KV + q];
            }
            for (var i = 0u; i < 4u; i = i + 1u) {
                let xv = x_tile[(4u * tt + i) * KV + q];
                acc[i] = acc[i] + vec4<f32>(dot(xv, wv[0]), dot(xv, wv[1]), dot(xv, wv[2]), dot(xv, wv[3]));
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i = i + 1u) {
        let t = t0 + 4u * tt + i;
        for (var j = 0u; j < 4u; j = j + 1u) {
            let n = n0 + 4u * tn + j;
            if (t < p.t && n < p.n) {
                store(t * p.n + n, acc[i][j]);
            }
        }
    }
}
