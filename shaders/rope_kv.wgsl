// RoPE and the KV-cache write of one layer in one dispatch: for the T tokens of a step (token t
// at position step.pos + t) rotates q [T, n_heads, head_dim] in place exactly as rope.wgsl does,
// rotates k [T, n_kv_heads, head_dim] and writes it, and v unchanged, to cache slot
// step.pos + t (f32 words, or with KV_F16 two f16 halves per u32 word, element 2i low), as
// rope.wgsl followed by kvcache.wgsl would. sincos() comes from sincos.wgsl (before this file).
//
// One invocation per item: items [T, n_heads + n_kv_heads, head_dim / 2]. For a q head, item i
// is rotating pair i (in place, so the pair stays in one invocation). For a kv head, item i is
// cache word i of the row, elements 2i and 2i + 1 of k (each rotated from its own pair, read
// from the unrotated input) and of v. Slots at or past ctx are never written.

struct Params {
    n_items: u32,     // T * (n_heads + n_kv_heads) * half_dim
    half_dim: u32,    // head_dim / 2
    n_heads: u32,
    n_kv_heads: u32,
    ctx: u32,         // cache slots
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> step: Step;
@group(0) @binding(2) var<storage, read> inv_freq: array<f32>;       // [head_dim / 2]
@group(0) @binding(3) var<storage, read_write> q: array<f32>;        // [T, n_heads, head_dim]
@group(0) @binding(4) var<storage, read> k: array<f32>;              // [T, n_kv_heads, head_dim]
@group(0) @binding(5) var<storage, read> v: array<f32>;              // [T, n_kv_heads, head_dim]
@group(0) @binding(6) var<storage, read_write> k_cache: array<u32>;  // [ctx, n_kv_heads, head_dim]
@group(0) @binding(7) var<storage, read_write> v_cache: array<u32>;  // [ctx, n_kv_heads, head_dim]

override WG: u32 = 64;
override INTERLEAVED: bool = false;
override KV_F16: bool = false;

// The angle of pair f at `position`: the rounded f32 product, as in rope.wgsl.
fn angle_sc(position: u32, f: u32) -> vec2<f32> {
    return sincos(max(f32(position) * inv_freq[f], 0.0));
}

// Element e of k row `base` after rotation (rotate-half pairs (f, f + half)).
fn k_rotated_half(base: u32, e: u32, position: u32) -> f32 {
    let h = p.half_dim;
    if (e < h) {
        let sc = angle_sc(position, e);
        return k[base + e] * sc.y - k[base + e + h] * sc.x;
    }
    let sc = angle_sc(position, e - h);
    return k[base + e - h] * sc.x + k[base + e] * sc.y;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let item = (wid.x + wid.y * nwg.x) * WG + lid;
    if (item >= p.n_items) { return; }
    let h = p.half_dim;
    let i = item % h;
    let rest = item / h;
    let heads = p.n_heads + p.n_kv_heads;
    let hs = rest % heads;
    let t = rest / heads;
    let position = step.pos + t;

    if (hs < p.n_heads) {
        let base = (t * p.n_heads + hs) * 2u * h;
        var i0 = base + i;
        var i1 = base + i + h;
        if (INTERLEAVED) {
            i0 = base + 2u * i;
            i1 = i0 + 1u;
        }
        let sc = angle_sc(position, i);
        let x0 = q[i0];
        let x1 = q[i1];
        q[i0] = x0 * sc.y - x1 * sc.x;
        q[i1] = x0 * sc.x + x1 * sc.y;
        return;
    }

    if (position >= p.ctx) { return; }
    let kh = hs - p.n_heads;
    let src = (t * p.n_kv_heads + kh) * 2u * h;
    let dst = (position * p.n_kv_heads + kh) * 2u * h;
    let e0 = 2u * i;
    var y0: f32;
    var y1: f32;
    if (INTERLEAVED) {
        let sc = angle_sc(position, i);
        let x0 = k[src + e0];
        let x1 = k[src + e0 + 1u];
        y0 = x0 * sc.y - x1 * sc.x;
        y1 = x0 * sc.x + x1 * sc.y;
    } else {
        y0 = k_rotated_half(src, e0, position);
        y1 = k_rotated_half(src, e0 + 1u, position);
    }
    let v0 = v[src + e0];
    let v1 = v[src + e0 + 1u];
    if (KV_F16) {
        k_cache[dst / 2u + i] = pack2x16float(vec2<f32>(y0, y1));
        v_cache[dst / 2u + i] = pack2x16float(vec2<f32>(v0, v1));
    } else {
        k_cache[dst + e0] = bitcast<u32>(y0);
        k_cache[dst + e0 + 1u] = bitcast<u32>(y1);
        v_cache[dst + e0] = bitcast<u32>(v0);
        v_cache[dst + e0 + 1u] = bitcast<u32>(v1);
    }
}
