// Embedding lookup: out[t, :] = row tokens[t] of the table w [vocab, d], any weight type.
// A token id >= vocab gives a row of zeros (never an out-of-bounds read); the tokenizer
// never produces one, so zeros only show up where a caller passed a bad id.
// One thread per 16-value chunk of the output. quant.wgsl (w16) and int8_block.wgsl come
// before this file.
//
// `main_norm` (decode, t = 1) also writes the first layer's RMSNorm input as matvec.wgsl's
// folded mat-vecs read it ("RMSNorm folded" there): norm_w * h, not yet divided by rms(h),
// and each 32-value block's sum of h^2; with XQ the product as int8 blocks (quantize_x8.wgsl's
// layout and rounding) with their scales and 16-value sums. The first q/k/v mat-vec then
// normalises itself, as every later layer's does, and the RMSNorm dispatch between the
// embedding and it is gone.

struct Params {
    t: u32,      // tokens
    vocab: u32,  // table rows
    d: u32,      // row length (model dim)
    nb: u32,     // blocks in the whole table
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w: array<vec4<u32>>;     // [vocab, d], GPU layout of DT
@group(0) @binding(2) var<storage, read> tokens: array<u32>;      // [t]
@group(0) @binding(3) var<storage, read_write> out: array<f32>;   // [t, d]

const EMB_WG: u32 = 64u;

@compute @workgroup_size(EMB_WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let chunks = (p.d + 15u) / 16u;
    let i = (wid.x + wid.y * nwg.x) * EMB_WG + lid;
    if (i >= p.t * chunks) { return; }
    let t = i / chunks;
    let c = i % chunks;
    let id = tokens[t];
    var v: Chunk; // zeros
    if (id < p.vocab) {
        v = w16(id, c, p.d, p.nb);
    }
    for (var e = 0u; e < 16u; e = e + 1u) {
        let kk = 16u * c + e;
        if (kk < p.d) {
            out[t * p.d + kk] = v[e / 4u][e % 4u];
        }
    }
}

// main_norm's extra bindings: the first layer's attention-norm weight and the fold output
// (u32 words: XQ [11 d / 32] int8 blocks then [d / 32] sums of h^2; else [d] f32 bits then
// [d / 32] sums; the words past those, tickets and staging of matvec_sgr_norm, untouched).
@group(0) @binding(4) var<storage, read> nw: array<f32>;        // [d]
@group(0) @binding(5) var<storage, read_write> xn: array<u32>;

override XQ: bool = true;

// Each chunk's partner (the other half of its 32-value block, the neighbouring lane).
var<workgroup> half_max: array<f32, EMB_WG>;
var<workgroup> half_ss: array<f32, EMB_WG>;

@compute @workgroup_size(EMB_WG)
fn main_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    // d is a multiple of 128 (host-checked, for the folded mat-vecs), so the row is whole
    // 32-value blocks, and a block's two chunks are lanes 2j, 2j + 1 of one workgroup.
    let n = p.d;
    let chunks = n / 16u;
    let c = (wid.x + wid.y * nwg.x) * EMB_WG + lid;
    // Lanes past the row clamp to its last chunk and store nothing: every lane reaches the
    // barrier.
    let cc = min(c, chunks - 1u);
    let id = tokens[0];
    var h: Chunk; // zeros
    if (id < p.vocab) {
        h = w16(id, cc, n, p.nb);
    }
    var v: Chunk;
    var m = 0.0;
    var s = 0.0;
    var ss = 0.0;
    for (var q = 0u; q < 4u; q = q + 1u) {
        let i = 16u * cc + 4u * q;
        v[q] = h[q] * vec4<f32>(nw[i], nw[i + 1u], nw[i + 2u], nw[i + 3u]);
        m = max(m, abs_max4(v[q]));
        s = s + dot(v[q], vec4<f32>(1.0));
        ss = ss + dot(h[q], h[q]);
    }
    half_max[lid] = m;
    half_ss[lid] = ss;
    workgroupBarrier();
    if (c >= chunks) {
        return;
    }
    let b = c / 2u;
    let first = c % 2u == 0u;
    let block_ss = ss + half_ss[lid ^ 1u];
    let d = int8_scale(max(m, half_max[lid ^ 1u]));
    for (var q = 0u; q < 4u; q = q + 1u) {
        for (var e = 0u; e < 4u; e = e + 1u) {
            out[16u * c + 4u * q + e] = h[q][e];
        }
        if (XQ) {
            xn[4u * c + q] = int8_pack(v[q], d);
        } else {
            for (var e = 0u; e < 4u; e = e + 1u) {
                xn[16u * c + 4u * q + e] = bitcast<u32>(v[q][e]);
            }
        }
    }
    if (XQ) {
        // quantize_x8.wgsl: [n / 4) values, [n / 32) scales, [n / 16) 16-value sums.
        xn[n / 4u + n / 32u + 2u * b + select(1u, 0u, first)] = bitcast<u32>(s);
        if (first) {
            xn[n / 4u + b] = bitcast<u32>(d);
            xn[11u * n / 32u + b] = bitcast<u32>(block_ss);
        }
    } else if (first) {
        xn[n + b] = bitcast<u32>(block_ss);
    }
}
