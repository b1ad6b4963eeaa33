// Dequantises a whole weight to f32 [n, k] (checks, and prefill experiments).
// One thread per 16-value chunk; uses w16 from quant.wgsl, so it decodes exactly as the
// matmul kernels do.

struct Params {
    n: u32,   // rows
    k: u32,   // row length
    nb: u32,  // blocks in the whole weight
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w: array<vec4<u32>>;   // [n, k] weight, GPU layout of DT
@group(0) @binding(2) var<storage, read_write> out: array<f32>; // [n, k]

const DQ_WG: u32 = 64u;

@compute @workgroup_size(DQ_WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let chunks = (p.k + 15u) / 16u;
    let i = (wid.x + wid.y * nwg.x) * DQ_WG + lid;
    if (i >= p.n * chunks) { return; }
    let row = i / chunks;
    let c = i % chunks;
    let v = w16(row, c, p.k, p.nb);
    for (var e = 0u; e < 16u; e = e + 1u) {
        let kk = 16u * c + e;
        if (kk < p.k) {
            out[row * p.k + kk] = v[e / 4u][e % 4u];
        }
    }
}
