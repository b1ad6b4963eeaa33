// Embedding lookup: out[t, :] = row tokens[t] of the table w [vocab, d], any weight type.
// A token id >= vocab gives a row of zeros (never an out-of-bounds read); the tokenizer
// never produces one, so zeros only show up where a caller passed a bad id.
// One thread per 16-value chunk of the output.

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
