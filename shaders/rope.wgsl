// Rotary position embedding, in place, on x: [T, n_heads, head_dim]. Token t sits at
// position step.pos + t; pair i (0 <= i < head_dim/2) turns by angle (step.pos + t) * inv_freq[i]:
//   x0' = x0 cos - x1 sin,  x1' = x0 sin + x1 cos
// INTERLEAVED pairs are (2i, 2i+1) (GGUF: llama.cpp's converter permuted the Q/K rows);
// otherwise rotate-half pairs (i, i + head_dim/2) (HF checkpoints). One invocation per pair.

struct Params {
    n_pairs: u32,    // T * n_heads * head_dim / 2
    half_dim: u32,   // head_dim / 2
    n_heads: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> step: Step;
@group(0) @binding(2) var<storage, read> inv_freq: array<f32>;  // [head_dim / 2]
@group(0) @binding(3) var<storage, read_write> x: array<f32>;   // [T, n_heads, head_dim]

override WG: u32 = 64;
override INTERLEAVED: bool = false;

// sincos(a) comes from sincos.wgsl (before this file in the module).

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let pair = (wid.x + wid.y * nwg.x) * WG + lid;
    if (pair >= p.n_pairs) { return; }
    let i = pair % p.half_dim;      // frequency index
    let row = pair / p.half_dim;    // t * n_heads + head
    let t = row / p.n_heads;
    let base = row * 2u * p.half_dim;
    var i0 = base + i;
    var i1 = base + i + p.half_dim;
    if (INTERLEAVED) {
        i0 = base + 2u * i;
        i1 = i0 + 1u;
    }
    // The angle is the rounded f32 product, as transformers computes it (inv_freq @ positions
    // in f32). max() keeps a compiler from fusing this product into the first subtraction in
    // sincos: an fma would skip the rounding and turn by a different angle at large positions.
    let a = max(f32(step.pos + t) * inv_freq[i], 0.0);
    let sc = sincos(a);
    let x0 = x[i0];
    let x1 = x[i1];
    x[i0] = x0 * sc.y - x1 * sc.x;
    x[i1] = x0 * sc.x + x1 * sc.y;
}
