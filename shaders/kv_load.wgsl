// KV-cache reads shared by the attention kernels (attention_decode, attention_prefill).
// The including file declares the caches and the cache type:
//     var<storage, read> k_cache: array<vec2<u32>>;   // [ctx, n_kv_heads, HD] (or read_write)
//     var<storage, read> v_cache: array<vec2<u32>>;
//     override KV_F16: bool;   // f16 cache (4 dims = 1 vec2) or f32 (4 dims = 2 vec2)

// Quad (4 dims) number `qi` of a cache (quads counted over [slot, kv head, HD/4]) as f32.
fn load_k(qi: u32) -> vec4<f32> {
    if (KV_F16) {
        let w = k_cache[qi];
        return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y));
    }
    return bitcast<vec4<f32>>(vec4<u32>(k_cache[2u * qi], k_cache[2u * qi + 1u]));
}

fn load_v(qi: u32) -> vec4<f32> {
    if (KV_F16) {
        let w = v_cache[qi];
        return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y));
    }
    return bitcast<vec4<f32>>(vec4<u32>(v_cache[2u * qi], v_cache[2u * qi + 1u]));
}
