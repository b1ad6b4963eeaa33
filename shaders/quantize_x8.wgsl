// Activations to int8 for the int8 mat-vec path (matvec.wgsl with XQ), one row [k] (k a
// multiple of 32) in blocks of 32 values, each q = round(v / d) with d = max|v| / 127 per block.
// Three entry points produce the values v to quantise, so the int8 path costs no extra
// dispatch where an f32 one already ran:
//   quantize_x8   v = x                                   (one lane per block)
//   rmsnorm_x8    v = rmsnorm(x) * w  (decode's RMSNorm)  (one workgroup: the whole row)
//   silu_mul_x8   v = silu(x) * up    (SwiGLU, x = gate)  (one lane per block)
// Output layout (u32 words, `xq` [11 k / 32]):
//   words [0, k/4)               the int8 values, four per word, value i in byte i % 4 of word i / 4
//   words [k/4, k/4 + k/32)      d of each 32-value block (f32 bits)
//   words [k/4 + k/32, 11k/32)   the exact f32 sum of v over each 16 values (the K-quant min term)
// reduce.wgsl comes before this file (wg_sum for rmsnorm_x8).

struct Params {
    k: u32,
    eps: f32,     // rmsnorm_x8
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;   // [k]
@group(0) @binding(2) var<storage, read_write> xq: array<u32>;  // [11 k / 32], layout above
// rmsnorm_x8: the norm weight [k]; silu_mul_x8: up [k]; unused by quantize_x8.
@group(0) @binding(3) var<storage, read> w: array<vec4<f32>>;

override WG: u32 = 64u;  // lanes per workgroup, a power of two <= 1024

// Quantises block b's 32 values v and writes its int8 words, d and the two 16-value sums.
fn put_block(b: u32, v: array<vec4<f32>, 8>) {
    var amax = vec4<f32>(0.0);
    for (var i = 0u; i < 8u; i = i + 1u) {
        amax = max(amax, abs(v[i]));
    }
    let m = max(max(amax.x, amax.y), max(amax.z, amax.w));
    let d = m / 127.0;
    let inv = select(0.0, 1.0 / d, d > 0.0);
    for (var i = 0u; i < 8u; i = i + 1u) {
        let q = clamp(vec4<i32>(round(v[i] * inv)), vec4<i32>(-127), vec4<i32>(127));
        xq[8u * b + i] = pack4xI8(q);
    }
    let blocks = p.k / 32u;
    xq[p.k / 4u + b] = bitcast<u32>(d);
    let s0 = (v[0] + v[1]) + (v[2] + v[3]);
    let s1 = (v[4] + v[5]) + (v[6] + v[7]);
    let base = p.k / 4u + blocks + 2u * b;
    xq[base] = bitcast<u32>((s0.x + s0.y) + (s0.z + s0.w));
    xq[base + 1u] = bitcast<u32>((s1.x + s1.y) + (s1.z + s1.w));
}

fn block_of(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

@compute @workgroup_size(WG)
fn quantize_x8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let b = block_of(wid, nwg, lid);
    if (b >= p.k / 32u) {
        return;
    }
    var v: array<vec4<f32>, 8>;
    for (var i = 0u; i < 8u; i = i + 1u) {
        v[i] = x[8u * b + i];
    }
    put_block(b, v);
}

@compute @workgroup_size(WG)
fn silu_mul_x8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let b = block_of(wid, nwg, lid);
    if (b >= p.k / 32u) {
        return;
    }
    var v: array<vec4<f32>, 8>;
    for (var i = 0u; i < 8u; i = i + 1u) {
        // silu(g) * u = g * u / (1 + exp(-g)); for g << 0 exp overflows to inf and this is -0.
        let g = x[8u * b + i];
        v[i] = g * w[8u * b + i] / (1.0 + exp(-g));
    }
    put_block(b, v);
}

// One workgroup for the row: every lane sums the squares of its blocks, wg_sum gives the
// mean, then each lane scales and quantises its blocks (re-read: they are in cache).
@compute @workgroup_size(WG)
fn rmsnorm_x8(@builtin(local_invocation_index) lid: u32) {
    let blocks = p.k / 32u;
    var ss = 0.0;
    for (var b = lid; b < blocks; b = b + WG) {
        for (var i = 0u; i < 8u; i = i + 1u) {
            let t = x[8u * b + i];
            ss = ss + dot(t, t);
        }
    }
    let scale = inverseSqrt(wg_sum(ss, lid, WG) / f32(p.k) + p.eps);
    for (var b = lid; b < blocks; b = b + WG) {
        var v: array<vec4<f32>, 8>;
        for (var i = 0u; i < 8u; i = i + 1u) {
            v[i] = x[8u * b + i] * scale * w[8u * b + i];
        }
        put_block(b, v);
    }
}
