// Activations to int8 for the int8 mat-vec path (matvec.wgsl with XQ): x [k] (k a multiple
// of 32) in blocks of 32 values, each q = round(x / d) with d = max|x| / 127 per block.
// Output layout (u32 words, `xq` [11 k / 32]):
//   words [0, k/4)               the int8 values, four per word, value i in byte i % 4 of word i / 4
//   words [k/4, k/4 + k/32)      d of each 32-value block (f32 bits)
//   words [k/4 + k/32, 11k/32)   the exact f32 sum of x over each 16 values (the K-quant min term)
// One thread per block.

struct Params {
    k: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;   // [k]
@group(0) @binding(2) var<storage, read_write> xq: array<u32>;  // [11 k / 32], layout above

const QX_WG: u32 = 64u;

@compute @workgroup_size(QX_WG)
fn quantize_x8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let blocks = p.k / 32u;
    let b = (wid.x + wid.y * nwg.x) * QX_WG + lid;
    if (b >= blocks) {
        return;
    }
    var v: array<vec4<f32>, 8>;
    var amax = vec4<f32>(0.0);
    for (var i = 0u; i < 8u; i = i + 1u) {
        v[i] = x[8u * b + i];
        amax = max(amax, abs(v[i]));
    }
    let m = max(max(amax.x, amax.y), max(amax.z, amax.w));
    let d = m / 127.0;
    let inv = select(0.0, 1.0 / d, d > 0.0);
    for (var i = 0u; i < 8u; i = i + 1u) {
        let q = clamp(vec4<i32>(round(v[i] * inv)), vec4<i32>(-127), vec4<i32>(127));
        xq[8u * b + i] = pack4xI8(q);
    }
    xq[p.k / 4u + b] = bitcast<u32>(d);
    let s0 = (v[0] + v[1]) + (v[2] + v[3]);
    let s1 = (v[4] + v[5]) + (v[6] + v[7]);
    let base = p.k / 4u + blocks + 2u * b;
    xq[base] = bitcast<u32>((s0.x + s0.y) + (s0.z + s0.w));
    xq[base + 1u] = bitcast<u32>((s1.x + s1.y) + (s1.z + s1.w));
}
