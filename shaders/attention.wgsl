// Causal attention with grouped K/V heads (GQA/MQA) over a layer's cache, flash style: scores
// live one key tile at a time in workgroup memory and the softmax runs online (a running max
// and sum per query row), so no [T, L] score matrix exists for any context length.
//
// Query t (at position step.pos + t) of head h attends to cache slots 0 ..= step.pos + t of kv
// head h / group, where group = n_heads / n_kv_heads; scores are scaled by p.scale.
//
// A workgroup takes R query rows of one kv head (row = t * group + head-in-group, so the
// group's heads share every K/V tile it loads) and one of n_splits slices of the key range.
// Prompts use one split and write the normalised output. Decode (few rows, long keys) uses
// several splits (flash-decoding): each writes its unnormalised accumulator and (max, sum),
// and attention_merge.wgsl combines them.
//
// Per key tile of BK keys, five phases separated by barriers:
//   load K tile -> scores and row max -> probabilities and row sum -> row update, load V tile
//   -> accumulate P V into the outputs this invocation owns.

struct Params {
    n_tokens: u32,      // T
    n_heads: u32,
    n_kv_heads: u32,
    ctx: u32,           // cache slots
    n_row_blocks: u32,  // ceil(T * group / R)
    n_splits: u32,      // slices of the key range (1: write out directly)
    scale: f32,         // 1 / sqrt(head_dim)
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> step: Step;
@group(0) @binding(2) var<storage, read> q: array<f32>;        // [T, n_heads, HD]
@group(0) @binding(3) var<storage, read> k_cache: array<u32>;  // [ctx, n_kv_heads, HD] f32 bits, or f16 pairs with KV_F16
@group(0) @binding(4) var<storage, read> v_cache: array<u32>;  // [ctx, n_kv_heads, HD] likewise
// n_splits = 1: the output [T, n_heads, HD].
// n_splits > 1: partials, acc [n_splits, T, n_heads, HD] followed by (max, sum) [n_splits, T, n_heads, 2].
@group(0) @binding(5) var<storage, read_write> dst: array<f32>;

override WG: u32 = 128;       // invocations; the reduction arrays below hold WG entries
override HD: u32 = 128;       // head_dim: even, <= 256
override R: u32 = 16;         // query rows per workgroup: a power of two <= 16 with R * HD <= 2048
override BK: u32 = 32;        // keys per tile: BK * (HD + 1) <= 4160, BK <= 8 * WG / R
override KV_F16: bool = false;

const NEG_BIG: f32 = -3.0e38;  // "no score yet": finite, so exp(NEG_BIG - NEG_BIG) = 1, not NaN

var<workgroup> q_tile: array<f32, 2048>;   // [R, HD]
var<workgroup> kv_tile: array<f32, 4160>;  // [BK, HD + 1]: padded rows, so invocations dotting
                                           // different keys at the same d hit different banks
var<workgroup> p_tile: array<f32, 1024>;   // [R, BK] this tile's probabilities
var<workgroup> red_max: array<f32, 128>;   // [WG] partial row maxima
var<workgroup> red_sum: array<f32, 128>;   // [WG] partial row sums
var<workgroup> row_m: array<f32, 16>;      // [R] running max
var<workgroup> row_l: array<f32, 16>;      // [R] running sum of exp(score - running max)
var<workgroup> row_c: array<f32, 16>;      // [R] this tile's rescale exp(old max - new max)

fn cache_word(from_v: bool, i: u32) -> u32 {
    if (from_v) { return v_cache[i]; }
    return k_cache[i];
}

// Loads keys kb .. kb + nk of kv head kvh (K or V) into kv_tile as f32; rows nk .. BK get
// zeros, so never-written slots (NaN garbage) are never read into arithmetic.
fn load_tile(from_v: bool, kb: u32, nk: u32, kvh: u32, lid: u32) {
    let slot_len = p.n_kv_heads * HD;  // elements per cache slot
    if (KV_F16) {
        let half = HD / 2u;
        for (var w = lid; w < BK * half; w = w + WG) {
            let j = w / half;
            let dw = w % half;
            var pair = vec2<f32>(0.0, 0.0);
            if (j < nk) {
                pair = unpack2x16float(cache_word(from_v, ((kb + j) * slot_len + kvh * HD) / 2u + dw));
            }
            kv_tile[j * (HD + 1u) + 2u * dw] = pair.x;
            kv_tile[j * (HD + 1u) + 2u * dw + 1u] = pair.y;
        }
    } else {
        for (var e = lid; e < BK * HD; e = e + WG) {
            let j = e / HD;
            let d = e % HD;
            var x = 0.0;
            if (j < nk) {
                x = bitcast<f32>(cache_word(from_v, (kb + j) * slot_len + kvh * HD + d));
            }
            kv_tile[j * (HD + 1u) + d] = x;
        }
    }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let wg_index = wid.x + wid.y * nwg.x;
    if (wg_index >= p.n_kv_heads * p.n_row_blocks * p.n_splits) { return; }
    let split = wg_index % p.n_splits;
    let rb = (wg_index / p.n_splits) % p.n_row_blocks;
    let kvh = wg_index / (p.n_splits * p.n_row_blocks);
    let group = p.n_heads / p.n_kv_heads;
    let row0 = rb * R;
    let rows_here = min(R, p.n_tokens * group - row0);

    // Keys this workgroup visits: its split's slice of all keys of the batch (a whole number
    // of tiles), cut at the last row's own position (causality).
    let n_keys = min(step.pos + p.n_tokens, p.ctx);
    let per_split = ((n_keys + p.n_splits - 1u) / p.n_splits + BK - 1u) / BK * BK;
    let k_begin = split * per_split;
    let last_t = (row0 + rows_here - 1u) / group;
    let k_end = min(min(k_begin + per_split, n_keys), step.pos + last_t + 1u);

    for (var e = lid; e < R * HD; e = e + WG) {
        let r = e / HD;
        var x = 0.0;
        if (r < rows_here) {
            let gr = row0 + r;
            let h = kvh * group + gr % group;
            x = q[((gr / group) * p.n_heads + h) * HD + e % HD];
        }
        q_tile[e] = x;
    }
    if (lid < R) {
        row_m[lid] = NEG_BIG;
        row_l[lid] = 0.0;
    }

    // Scores: TPR invocations per row, each taking keys lane, lane + TPR, ...
    let TPR = WG / R;
    let my_r = lid / TPR;
    let lane = lid % TPR;
    let my_pos = step.pos + (row0 + my_r) / group;  // last key this row may see
    let NS = (BK + TPR - 1u) / TPR;                  // <= 8
    // Outputs: this invocation owns elements lid + i * WG of the [R, HD] block.
    let NO = (R * HD + WG - 1u) / WG;                // <= 16
    var acc: array<f32, 16>;
    for (var i = 0u; i < 16u; i = i + 1u) { acc[i] = 0.0; }
    workgroupBarrier();

    for (var kb = k_begin; kb < k_end; kb = kb + BK) {
        let nk = min(BK, k_end - kb);
        load_tile(false, kb, nk, kvh, lid);
        workgroupBarrier();

        var s: array<f32, 8>;
        var m_local = NEG_BIG;
        for (var i = 0u; i < NS; i = i + 1u) {
            let j = lane + i * TPR;
            s[i] = NEG_BIG;
            if (j < nk && kb + j <= my_pos) {
                var dot = 0.0;
                for (var d = 0u; d < HD; d = d + 1u) {
                    dot = dot + q_tile[my_r * HD + d] * kv_tile[j * (HD + 1u) + d];
                }
                s[i] = dot * p.scale;
                m_local = max(m_local, s[i]);
            }
        }
        red_max[lid] = m_local;
        workgroupBarrier();

        var m_tile = NEG_BIG;
        for (var i = 0u; i < TPR; i = i + 1u) { m_tile = max(m_tile, red_max[my_r * TPR + i]); }
        let m_old = row_m[my_r];
        let m_new = max(m_old, m_tile);
        var l_local = 0.0;
        for (var i = 0u; i < NS; i = i + 1u) {
            let j = lane + i * TPR;
            if (j < BK) {
                var pr = 0.0;
                if (j < nk && kb + j <= my_pos) { pr = exp(s[i] - m_new); }
                p_tile[my_r * BK + j] = pr;
                l_local = l_local + pr;
            }
        }
        red_sum[lid] = l_local;
        workgroupBarrier();

        if (lane == 0u) {
            var l_tile = 0.0;
            for (var i = 0u; i < TPR; i = i + 1u) { l_tile = l_tile + red_sum[my_r * TPR + i]; }
            let c = exp(m_old - m_new);
            row_c[my_r] = c;
            row_l[my_r] = row_l[my_r] * c + l_tile;
            row_m[my_r] = m_new;
        }
        load_tile(true, kb, nk, kvh, lid);  // K is no longer read after the previous barrier
        workgroupBarrier();

        for (var i = 0u; i < NO; i = i + 1u) {
            let e = lid + i * WG;
            if (e < R * HD) {
                let r = e / HD;
                let d = e % HD;
                var a = acc[i] * row_c[r];
                for (var j = 0u; j < nk; j = j + 1u) {
                    a = a + p_tile[r * BK + j] * kv_tile[j * (HD + 1u) + d];
                }
                acc[i] = a;
            }
        }
        workgroupBarrier();
    }

    let n_rows = p.n_tokens * p.n_heads;  // rows of the output, all heads
    let split_mode = p.n_splits > 1u;
    for (var i = 0u; i < NO; i = i + 1u) {
        let e = lid + i * WG;
        let r = e / HD;
        if (r < rows_here) {
            let gr = row0 + r;
            let row = (gr / group) * p.n_heads + kvh * group + gr % group;
            if (split_mode) {
                dst[(split * n_rows + row) * HD + e % HD] = acc[i];
            } else {
                dst[row * HD + e % HD] = acc[i] / row_l[r];
            }
        }
    }
    if (split_mode && lid < rows_here) {
        let gr = row0 + lid;
        let row = (gr / group) * p.n_heads + kvh * group + gr % group;
        let ml = p.n_splits * n_rows * HD + (split * n_rows + row) * 2u;
        dst[ml] = row_m[lid];
        dst[ml + 1u] = row_l[lid];
    }
}
