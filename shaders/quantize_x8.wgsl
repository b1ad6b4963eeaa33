// Activations to int8 for the int8 mat-vec path (matvec.wgsl with XQ), one row [k] (k a
// multiple of 32) in blocks of 32 values, each q = round(v / d) with d = max|v| / 127 per block.
// Three entry points produce the values v to quantise, so the int8 path costs no extra
// dispatch where an f32 one already ran:
//   quantize_x8   v = x
//   rmsnorm_x8    v = rmsnorm(x) * w  (decode's RMSNorm; one workgroup: the whole row)
//   silu_mul_x8   v = silu(x) * up    (SwiGLU, x = gate)
// Output layout (u32 words, `xq` [11 k / 32]):
//   words [0, k/4)               the int8 values, four per word, value i in byte i % 4 of word i / 4
//   words [k/4, k/4 + k/32)      d of each 32-value block (f32 bits)
//   words [k/4 + k/32, 11k/32)   the exact f32 sum of v over each 16 values (the K-quant min term)
// reduce.wgsl (wg_sum for rmsnorm_x8) and int8_block.wgsl (the rounding) come before this file.

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

override WG: u32 = 64u;  // lanes per workgroup: a multiple of 8, a power of two <= 1024

// A lane quantises one vec4 of the row (a *unit*); the 8 lanes of a 32-value block meet in
// workgroup memory for the block's max |v| and the 16-value sums. (One lane per block was
// ~4 us slower a call on the H100: a long serial chain per lane and only K / 32 lanes.)
var<workgroup> unit_max: array<f32, 1024>;
var<workgroup> unit_sum: array<f32, 1024>;

// Quantises unit u (values 4u .. 4u + 3, `v`) in a pass where every lane of the workgroup
// calls with units u0 + lid, u0 a multiple of WG (so a block's 8 units are 8 neighbouring
// lanes). `live`: whether u < k / 4 (past the row's end a lane only joins the barriers).
fn put_unit(u: u32, lid: u32, v: vec4<f32>, live: bool) {
    unit_max[lid] = abs_max4(v);
    unit_sum[lid] = (v.x + v.y) + (v.z + v.w);
    workgroupBarrier();
    if (live) {
        let first = lid & ~7u;
        var m = 0.0;
        for (var i = 0u; i < 8u; i = i + 1u) {
            m = max(m, unit_max[first + i]);
        }
        let d = int8_scale(m);
        xq[u] = int8_pack(v, d);
        let b = u / 8u;
        if ((lid & 7u) == 0u) {
            xq[p.k / 4u + b] = bitcast<u32>(d);
        }
        if ((lid & 3u) == 0u) {
            // This lane starts a 16-value run: units u .. u + 3.
            let s = (unit_sum[lid] + unit_sum[lid + 1u]) + (unit_sum[lid + 2u] + unit_sum[lid + 3u]);
            xq[p.k / 4u + p.k / 32u + u / 4u] = bitcast<u32>(s);
        }
    }
    workgroupBarrier();
}

fn unit_base(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG;
}

@compute @workgroup_size(WG)
fn quantize_x8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let u = unit_base(wid, nwg) + lid;
    let live = u < p.k / 4u;
    // Whole workgroups return together (the grid has no wholly idle ones but the last
    // part-filled one, whose idle lanes still reach the barriers).
    put_unit(u, lid, select(vec4<f32>(0.0), x[min(u, p.k / 4u - 1u)], live), live);
}

@compute @workgroup_size(WG)
fn silu_mul_x8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let u = unit_base(wid, nwg) + lid;
    let live = u < p.k / 4u;
    let i = min(u, p.k / 4u - 1u);
    // silu(g) * u = g * u / (1 + exp(-g)); for g << 0 exp overflows to inf and this is -0.
    let g = x[i];
    let v = g * w[i] / (1.0 + exp(-g));
    put_unit(u, lid, select(vec4<f32>(0.0), v, live), live);
}

// One workgroup for the row: every lane sums the squares of its units, wg_sum gives the mean,
// then the lanes scale and quantise the units pass by pass (re-read: they are in cache).
@compute @workgroup_size(WG)
fn rmsnorm_x8(@builtin(local_invocation_index) lid: u32) {
    let units = p.k / 4u;
    var ss = 0.0;
    for (var u = lid; u < units; u = u + WG) {
        let t = x[u];
        ss = ss + dot(t, t);
    }
    let scale = inverseSqrt(wg_sum(ss, lid, WG) / f32(p.k) + p.eps);
    // Uniform trip count: every lane takes every pass (the barriers in put_unit).
    for (var u0 = 0u; u0 < units; u0 = u0 + WG) {
        let u = u0 + lid;
        let live = u < units;
        let i = min(u, units - 1u);
        put_unit(u, lid, select(vec4<f32>(0.0), x[i] * scale * w[i], live), live);
    }
}
