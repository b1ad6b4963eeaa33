// Appends this step's k and v rows (after RoPE) to one layer's caches: token t goes to slot
// step.pos + t. Caches hold f32 words, or with KV_F16 two f16 halves per u32 word (element 2i
// in the low half), so both layouts bind as array<u32>. One invocation per cache word of k and
// the same word of v. Slots past ctx are never written: a step that overruns the cache drops
// those rows rather than write past the buffer (the host checks pos + T <= ctx).

struct Params {
    n_words: u32,    // T * row_words
    row_words: u32,  // n_kv_heads * head_dim (f32) or n_kv_heads * head_dim / 2 (f16)
    ctx: u32,        // cache slots
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> step: Step;
@group(0) @binding(2) var<storage, read> k: array<f32>;                // [T, n_kv_heads, head_dim]
@group(0) @binding(3) var<storage, read> v: array<f32>;                // [T, n_kv_heads, head_dim]
@group(0) @binding(4) var<storage, read_write> k_cache: array<u32>;    // [ctx, n_kv_heads, head_dim]
@group(0) @binding(5) var<storage, read_write> v_cache: array<u32>;    // [ctx, n_kv_heads, head_dim]

override WG: u32 = 64;
override KV_F16: bool = false;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let w = (wid.x + wid.y * nwg.x) * WG + lid;
    if (w >= p.n_words) { return; }
    let t = w / p.row_words;
    let slot = step.pos + t;
    if (slot >= p.ctx) { return; }
    let dst = slot * p.row_words + w % p.row_words;
    if (KV_F16) {
        k_cache[dst] = pack2x16float(vec2<f32>(k[2u * w], k[2u * w + 1u]));
        v_cache[dst] = pack2x16float(vec2<f32>(v[2u * w], v[2u * w + 1u]));
    } else {
        k_cache[dst] = bitcast<u32>(k[w]);
        v_cache[dst] = bitcast<u32>(v[w]);
    }
}
