// Decode attention (T = 1 or a few tokens): flash-decoding in one dispatch whose work tracks
// the current position. Preceded in the module by step.wgsl and by one of
// attention_decode_sg.wgsl (subgroup shuffles) / attention_decode_wg.wgsl (workgroup memory),
// which define the entry point `main` and `lane_sum`.
//
// Query t (at position step.pos + t) of head h attends to cache slots 0 ..= step.pos + t of kv
// head h / group. Rows are (token, head-in-group) pairs, row = t * group + h % group; a
// workgroup takes R rows of one kv head (a row block, so a GQA group shares every K/V load) and
// one split of the key range. The grid holds S_MAX splits per row block, fixed at record time;
// each run reads step.pos and cuts the live keys 0 .. n_keys into `live` chunks of
//   chunk = max(CH_MIN, ceil(n_keys / S_MAX) rounded up to KB)
// keys, so workgroups past the live range return at once and a short context costs a few
// workgroups, a long one S_MAX per row block.
//
// Inside a workgroup, L consecutive lanes share a key (each lane NV quads of 4 dims, lane + L*i);
// the WG / L key groups take keys kb + b * KG + kg (b < B) of each batch of KB = KG * B keys.
// A lane keeps q (pre-scaled) and its share of the output accumulators in registers, the score
// dots are summed over the L lanes by `lane_sum`, and each key group runs its own online
// softmax (running max m, sum l, accumulator o per row). At the end the key groups combine
// through workgroup memory. With one live split the workgroup writes the normalised output;
// otherwise it writes (o, m, l) to `part`, and the last split of the row block to finish
// (an atomic ticket per row block) merges all live splits and resets its ticket to 0 for the
// next run. So a decode step is one dispatch at every position.
//
// Visibility of the partials to the merging workgroup: every split stores them, then
// storageBarrier() (device-scope acquire-release, naga emits OpControlBarrier with Device
// memory scope), then one invocation takes the ticket; the merger passes another
// storageBarrier() before reading. Each row block's partials are only read by its merger,
// after the ticket, and live in their own whole 128-byte lines.

struct Params {
    n_tokens: u32,      // T
    n_heads: u32,
    n_kv_heads: u32,
    ctx: u32,           // cache slots
    n_row_blocks: u32,  // ceil(T * group / R)
    scale: f32,         // 1 / sqrt(head_dim)
    ml_base: u32,       // index of the (m, l) records in `part` (after all accumulators)
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> step: Step;
@group(0) @binding(2) var<storage, read> q: array<vec4<f32>>;         // [T, n_heads, HD/4]
// Caches [ctx, n_kv_heads, HD]: f32 (4 dims = 2 vec2) or, with KV_F16, f16 (4 dims = 1 vec2).
@group(0) @binding(3) var<storage, read> k_cache: array<vec2<u32>>;
@group(0) @binding(4) var<storage, read> v_cache: array<vec2<u32>>;
@group(0) @binding(5) var<storage, read_write> out: array<vec4<f32>>; // [T, n_heads, HD/4]
// Partials: accumulators [row blocks, S_MAX, R, HD/4] then (m, l, -, -) [row blocks, S_MAX, R].
@group(0) @binding(6) var<storage, read_write> part: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> tickets: array<atomic<u32>>;  // [row blocks]

override WG: u32 = 128u;     // invocations
override HD: u32 = 64u;      // head_dim, a multiple of 4, <= 256
override L: u32 = 16u;       // lanes per key: a power of two <= WG (<= subgroup size with subgroups)
override R: u32 = 8u;        // rows per workgroup, a power of two <= 16
override B: u32 = 4u;        // keys per key group per batch
override S_MAX: u32 = 32u;   // splits per row block (grid), a multiple of 8
override CH_MIN: u32 = 64u;  // fewest keys per split, a multiple of KB
override KV_F16: bool = false;
// Host-checked: R * NV <= 8, B * NV <= 8, B * R <= 32, (WG / L) * R <= 256, WG * B * R <= 4096,
// (WG / L) * R * HD <= 4096, S_MAX * R + 4 * WG <= 4096.

override HD4: u32 = HD / 4u;             // quads per row
override NV: u32 = (HD4 + L - 1u) / L;   // quads per lane
override KG: u32 = WG / L;               // key groups
override KB: u32 = KG * B;               // keys per batch

const NEG_BIG: f32 = -3.0e38;  // "no score yet": finite, so exp(NEG_BIG - NEG_BIG) = 1, not NaN

// Key-group partials at the end of a chunk [KG, R, HD] (and lane_sum's scratch on the
// workgroup path, [B * R, WG]); the merge's weights and partial sums.
var<workgroup> sm: array<f32, 4096>;
var<workgroup> sm_m: array<f32, 256>;   // [KG, R] running max per key group; merge: reduction
var<workgroup> sm_l: array<f32, 256>;   // [KG, R] running sum per key group
var<workgroup> sm_ticket: u32;

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

// Reduces sm_m[vlid] (max, or sum with !is_max) over the WG / R invocations of each row
// (vlid % R); the result for row r lands in sm_m[r]. Uniform control flow.
fn tree_rows(vlid: u32, is_max: bool) {
    workgroupBarrier();
    for (var stride = WG / 2u; stride >= R; stride = stride / 2u) {
        if (vlid < stride) {
            let a = sm_m[vlid];
            let b = sm_m[vlid + stride];
            sm_m[vlid] = select(a + b, max(a, b), is_max);
        }
        workgroupBarrier();
    }
}

fn decode(vlid: u32, wg_index: u32) {
    let blocks = p.n_kv_heads * p.n_row_blocks;
    if (wg_index >= blocks * S_MAX) { return; }
    let split = wg_index % S_MAX;
    let g = wg_index / S_MAX;  // row block: (kv head, block of R rows)
    let kvh = g / p.n_row_blocks;
    let row0 = (g % p.n_row_blocks) * R;
    let group = p.n_heads / p.n_kv_heads;
    let rows_here = min(R, p.n_tokens * group - row0);
    let t_last = (row0 + rows_here - 1u) / group;
    let n_keys = min(step.pos + t_last + 1u, p.ctx);
    let chunk = max(CH_MIN, ((n_keys + S_MAX - 1u) / S_MAX + KB - 1u) / KB * KB);
    let live = (n_keys + chunk - 1u) / chunk;
    if (split >= live) { return; }
    let k_begin = split * chunk;
    let k_end = min(k_begin + chunk, n_keys);

    let lane = vlid % L;
    let kg = vlid / L;
    var qr: array<vec4<f32>, 8>;   // [R, NV]
    var o: array<vec4<f32>, 8>;    // [R, NV]
    var vis: array<u32, 16>;       // [R] keys row r sees: 0 .. vis - 1 (0: padding row)
    var m: array<f32, 16>;
    var l: array<f32, 16>;
    for (var r = 0u; r < R; r = r + 1u) {
        let gr = row0 + r;
        let t = gr / group;
        let qrow = t * p.n_heads + kvh * group + gr % group;
        vis[r] = select(0u, min(step.pos + t + 1u, p.ctx), r < rows_here);
        m[r] = NEG_BIG;
        l[r] = 0.0;
        for (var i = 0u; i < NV; i = i + 1u) {
            let u = lane + L * i;
            var x = vec4<f32>(0.0);
            if (r < rows_here && u < HD4) { x = q[qrow * HD4 + u] * p.scale; }
            qr[r * NV + i] = x;
            o[r * NV + i] = vec4<f32>(0.0);
        }
    }

    let slot_quads = p.n_kv_heads * HD4;
    for (var kb = k_begin; kb < k_end; kb = kb + KB) {
        var kr: array<vec4<f32>, 8>;  // [B, NV]
        var vr: array<vec4<f32>, 8>;
        for (var b = 0u; b < B; b = b + 1u) {
            let j = kb + b * KG + kg;
            for (var i = 0u; i < NV; i = i + 1u) {
                let u = lane + L * i;
                var kx = vec4<f32>(0.0);
                var vx = vec4<f32>(0.0);
                if (j < k_end && u < HD4) {
                    let qi = j * slot_quads + kvh * HD4 + u;
                    kx = load_k(qi);
                    vx = load_v(qi);
                }
                kr[b * NV + i] = kx;
                vr[b * NV + i] = vx;
            }
        }
        var s: array<f32, 32>;  // [B, R]
        for (var b = 0u; b < B; b = b + 1u) {
            for (var r = 0u; r < R; r = r + 1u) {
                var acc = 0.0;
                for (var i = 0u; i < NV; i = i + 1u) {
                    acc = acc + dot(qr[r * NV + i], kr[b * NV + i]);
                }
                s[b * R + r] = acc;
            }
        }
        lane_sum(&s, vlid);
        for (var r = 0u; r < R; r = r + 1u) {
            var mb = m[r];
            for (var b = 0u; b < B; b = b + 1u) {
                let j = kb + b * KG + kg;
                if (j < k_end && j < vis[r]) { mb = max(mb, s[b * R + r]); }
            }
            let c = exp(m[r] - mb);
            var ls = 0.0;
            for (var i = 0u; i < NV; i = i + 1u) { o[r * NV + i] = o[r * NV + i] * c; }
            for (var b = 0u; b < B; b = b + 1u) {
                let j = kb + b * KG + kg;
                var pb = 0.0;
                if (j < k_end && j < vis[r]) { pb = exp(s[b * R + r] - mb); }
                ls = ls + pb;
                for (var i = 0u; i < NV; i = i + 1u) {
                    o[r * NV + i] = o[r * NV + i] + pb * vr[b * NV + i];
                }
            }
            l[r] = l[r] * c + ls;
            m[r] = mb;
        }
    }

    // Combine the key groups: sm [KG, R, HD], sm_m / sm_l [KG, R].
    workgroupBarrier();  // lane_sum's scratch (workgroup path) shares sm
    for (var r = 0u; r < R; r = r + 1u) {
        if (lane == 0u) {
            sm_m[kg * R + r] = m[r];
            sm_l[kg * R + r] = l[r];
        }
        for (var i = 0u; i < NV; i = i + 1u) {
            let u = lane + L * i;
            if (u < HD4) {
                let e = ((kg * R + r) * HD4 + u) * 4u;
                let x = o[r * NV + i];
                sm[e] = x.x;
                sm[e + 1u] = x.y;
                sm[e + 2u] = x.z;
                sm[e + 3u] = x.w;
            }
        }
    }
    workgroupBarrier();
    let part_base = (g * S_MAX + split) * R;  // this split's first (row) record
    for (var e = vlid; e < R * HD4; e = e + WG) {
        let r = e / HD4;
        let u = e % HD4;
        var mx = NEG_BIG;
        for (var k = 0u; k < KG; k = k + 1u) { mx = max(mx, sm_m[k * R + r]); }
        var acc = vec4<f32>(0.0);
        var lsum = 0.0;
        for (var k = 0u; k < KG; k = k + 1u) {
            let w = exp(sm_m[k * R + r] - mx);
            lsum = lsum + w * sm_l[k * R + r];
            let f = ((k * R + r) * HD4 + u) * 4u;
            acc = acc + w * vec4<f32>(sm[f], sm[f + 1u], sm[f + 2u], sm[f + 3u]);
        }
        if (r < rows_here) {
            if (live == 1u) {
                let gr = row0 + r;
                let row = (gr / group) * p.n_heads + kvh * group + gr % group;
                out[row * HD4 + u] = acc / lsum;
            } else {
                part[(part_base + r) * HD4 + u] = acc;
                if (u == 0u) { part[p.ml_base + part_base + r] = vec4<f32>(mx, lsum, 0.0, 0.0); }
            }
        }
    }
    if (live == 1u) { return; }

    // Several splits: the last one of this row block to finish merges them.
    storageBarrier();
    if (vlid == 0u) { sm_ticket = atomicAdd(&tickets[g], 1u); }
    let ticket = workgroupUniformLoad(&sm_ticket);
    if (ticket != live - 1u) { return; }
    storageBarrier();
    if (vlid == 0u) { atomicStore(&tickets[g], 0u); }

    // Row maxima and sums over the live splits: invocation (s0, r) = (vlid / R, vlid % R) takes
    // splits s0, s0 + WG / R, ...; tree_rows finishes across invocations.
    let r = vlid % R;
    let s0 = vlid / R;
    let ml0 = p.ml_base + g * S_MAX * R;
    var pm = NEG_BIG;
    for (var s = s0; s < live; s = s + WG / R) { pm = max(pm, part[ml0 + s * R + r].x); }
    sm_m[vlid] = pm;
    tree_rows(vlid, true);
    let mrow = sm_m[r];
    workgroupBarrier();
    var pl = 0.0;
    for (var s = s0; s < live; s = s + WG / R) {
        let ml = part[ml0 + s * R + r];
        let w = exp(ml.x - mrow);
        sm[s * R + r] = w;  // weight of split s for row r (S_MAX * R <= 4096)
        pl = pl + w * ml.y;
    }
    sm_m[vlid] = pl;
    tree_rows(vlid, false);  // its barriers also publish the weights in sm
    // Outputs: U = R * HD4 quads; with U < WG, SG = WG / U invocations share a quad, each
    // taking every SG-th split, and they add up through `sm` past the weights.
    let n_units = R * HD4;
    let sgn = max(1u, WG / n_units);
    let acc0 = g * S_MAX * R * HD4;
    if (sgn == 1u) {
        for (var e = vlid; e < n_units; e = e + WG) {
            let rr = e / HD4;
            let u = e % HD4;
            var acc = vec4<f32>(0.0);
            for (var s = 0u; s < live; s = s + 1u) {
                acc = acc + sm[s * R + rr] * part[acc0 + (s * R + rr) * HD4 + u];
            }
            if (rr < rows_here) {
                let gr = row0 + rr;
                let row = (gr / group) * p.n_heads + kvh * group + gr % group;
                out[row * HD4 + u] = acc / sm_m[rr];
            }
        }
    } else {
        let e = vlid % n_units;
        let sg = vlid / n_units;
        let rr = e / HD4;
        let u = e % HD4;
        var acc = vec4<f32>(0.0);
        if (sg < sgn) {
            for (var s = sg; s < live; s = s + sgn) {
                acc = acc + sm[s * R + rr] * part[acc0 + (s * R + rr) * HD4 + u];
            }
        }
        // Scratch after the weights: [sgn, n_units] quads = WG quads, at S_MAX * R.
        let base = S_MAX * R;
        workgroupBarrier();
        if (sg < sgn) {
            let f = base + (sg * n_units + e) * 4u;
            sm[f] = acc.x;
            sm[f + 1u] = acc.y;
            sm[f + 2u] = acc.z;
            sm[f + 3u] = acc.w;
        }
        workgroupBarrier();
        if (vlid < n_units && rr < rows_here) {
            var tot = vec4<f32>(0.0);
            for (var k = 0u; k < sgn; k = k + 1u) {
                let f = base + (k * n_units + e) * 4u;
                tot = tot + vec4<f32>(sm[f], sm[f + 1u], sm[f + 2u], sm[f + 3u]);
            }
            let gr = row0 + rr;
            let row = (gr / group) * p.n_heads + kvh * group + gr % group;
            out[row * HD4 + u] = tot / sm_m[rr];
        }
    }
}
