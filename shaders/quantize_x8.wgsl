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
// The module is int8_block.wgsl (the rounding), this file, then one of quantize_x8_sg.wgsl
// (subgroup shuffles) or quantize_x8_wg.wgsl (workgroup memory, after reduce.wgsl): each holds
// the entry points, `Lanes`, `lane_index`, `put_unit` and `row_sum`.

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

// A lane quantises one vec4 of the row (a *unit*); the 8 lanes of a 32-value block (lanes
// 8i .. 8i + 7 by `lane_index`) combine their max |v| and 16-value sums in `put_unit`. (One
// lane per block was ~4 us slower a call on the H100: a long serial chain per lane and only
// K / 32 lanes.) Every lane of the workgroup calls put_unit, with units u0 + lane_index, u0 a
// multiple of WG; `live`: whether u < k / 4 (past the row's end a lane only joins in).

// Writes unit u's int8 word, and from the first lane of its block / 16-value run the block's
// d / the run's sum. `m`: the block's max |v|; `s16`: the sum of v over the run starting at
// this unit (meaningful where u % 4 == 0).
fn write_unit(u: u32, v: vec4<f32>, m: f32, s16: f32) {
    let d = int8_scale(m);
    xq[u] = int8_pack(v, d);
    if ((u & 7u) == 0u) {
        xq[p.k / 4u + u / 8u] = bitcast<u32>(d);
    }
    if ((u & 3u) == 0u) {
        xq[p.k / 4u + p.k / 32u + u / 4u] = bitcast<u32>(s16);
    }
}

fn hsum4(v: vec4<f32>) -> f32 {
    return (v.x + v.y) + (v.z + v.w);
}

fn unit_base(wgi: u32) -> u32 {
    return wgi * WG;
}

fn quantize_main(l: Lanes, wgi: u32) {
    let u = unit_base(wgi) + lane_index(l);
    let live = u < p.k / 4u;
    // Whole workgroups return together (the grid has no wholly idle ones but the last
    // part-filled one, whose idle lanes still join in).
    put_unit(l, u, select(vec4<f32>(0.0), x[min(u, p.k / 4u - 1u)], live), live);
}

fn silu_mul_main(l: Lanes, wgi: u32) {
    let u = unit_base(wgi) + lane_index(l);
    let live = u < p.k / 4u;
    let i = min(u, p.k / 4u - 1u);
    // silu(g) * u = g * u / (1 + exp(-g)); for g << 0 exp overflows to inf and this is -0.
    let g = x[i];
    let v = g * w[i] / (1.0 + exp(-g));
    put_unit(l, u, select(vec4<f32>(0.0), v, live), live);
}

// One workgroup for the row: every lane sums the squares of its units, row_sum gives the mean,
// then the lanes scale and quantise the units pass by pass. A lane's first unit of x and w is
// loaded before the sum and kept (w is rarely in cache: loading it after the barrier put a
// second memory round trip on the one workgroup's path); later units are re-read.
fn rmsnorm_main(l: Lanes) {
    let units = p.k / 4u;
    let lane = lane_index(l);
    let first = min(lane, units - 1u);
    let x0 = x[first];
    let w0 = w[first];
    var ss = select(0.0, dot(x0, x0), lane < units);
    for (var u = lane + WG; u < units; u = u + WG) {
        let t = x[u];
        ss = ss + dot(t, t);
    }
    let scale = inverseSqrt(row_sum(l, ss) / f32(p.k) + p.eps);
    // Uniform trip count: every lane takes every pass (put_unit's barriers or shuffles).
    for (var u0 = 0u; u0 < units; u0 = u0 + WG) {
        let u = u0 + lane;
        let live = u < units;
        let i = min(u, units - 1u);
        var v = x0 * scale * w0;
        if (u0 > 0u) {
            v = x[i] * scale * w[i];
        }
        put_unit(l, u, select(vec4<f32>(0.0), v, live), live);
    }
}
