// Decode attention (T = 1 or a few tokens): flash-decoding in one dispatch whose work tracks
// the current position. Preceded in the module by step.wgsl and by one of
// attention_decode_sg.wgsl (subgroup shuffles) / attention_decode_wg.wgsl (workgroup memory),
// which define the entry point `main` and `reduce_scores`.
//
// Query t (at position step.pos + t) of head h attends to cache slots 0 ..= step.pos + t of kv
// head h / group. Rows are (token, head-in-group) pairs, row = t * group + h % group; a
// workgroup takes R = 4 * RG rows of one kv head (a row block, so a GQA group shares every K/V
// load; rows past the real ones are zero padding) and one split of the key range. The grid
// holds S_MAX splits per row block, fixed at record time; each run reads step.pos and cuts the
// live keys 0 .. n_keys into `live` chunks of
//   chunk = max(CH_MIN, ceil(n_keys / S_MAX) rounded up to KB)
// keys, so workgroups past the live range return at once: a short context costs a few
// workgroups, a long one S_MAX per row block. With one live split (n_keys <= CH_MIN) the merge
// pass only returns: the split writes the output and with QX quantises it. (One split for
// every context up to 64-256 keys, sparing the merge, measured 0.5-2.5% slower a token on the
// H100: the split's serial key loop cost more than the merge saved.)
//
// Inside a workgroup, L consecutive lanes share a key, each lane NV (1 or 2) quads of 4 dims
// (quad lane + L * v); the KG = WG / L key groups take keys kb + b * KG + kg (b < B) of each
// batch of KB = KG * B keys, all B keys' K and V loads issued before any arithmetic. A lane
// keeps q (pre-scaled) and its share of the output accumulators in registers: no array is ever
// indexed by a loop variable (drivers may put such arrays in local memory), so rows go four at
// a time into vec4 / mat4x4 (column r = row r's quad). The score dots are summed over the L
// lanes by `reduce_scores`, and each key group runs its own online softmax (running max m, sum
// l, accumulator o per row). At the end the key groups combine through workgroup memory. With
// one live split the workgroup writes the normalised output; otherwise it writes (o, m, l) to
// `part`, and `merge_block` combines the live splits: in a second dispatch (entry `merge`), or
// with FOLD in the last live split of the row block to finish (an atomic ticket).
// Each split's partial records fill whole 128-byte lines of their own.

struct Params {
    n_tokens: u32,      // T
    n_heads: u32,
    n_kv_heads: u32,
    ctx: u32,           // cache slots
    n_row_blocks: u32,  // ceil(T * group / R)
    scale: f32,         // 1 / sqrt(head_dim)
    ml_base: u32,       // index of the (m, l) records in `part` (after all accumulators)
    xq_k: u32,          // QX: values in the quantised row (n_heads * HD; T = 1)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> step: Step;
@group(0) @binding(2) var<storage, read> q: array<vec4<f32>>;         // [T, n_heads, HD/4]
// Caches [ctx, n_kv_heads, HD]: f32 (4 dims = 2 vec2) or, with KV_F16, f16 (4 dims = 1 vec2).
// read_write: with ROPE the split holding the new key writes its slot (rope_kv's job).
@group(0) @binding(3) var<storage, read_write> k_cache: array<vec2<u32>>;
@group(0) @binding(4) var<storage, read_write> v_cache: array<vec2<u32>>;
@group(0) @binding(5) var<storage, read_write> out: array<vec4<f32>>; // [T, n_heads, HD/4]
// Partials `part` (binding 6) and tickets (binding 11): attention_decode_part.wgsl, or
// attention_decode_part_coherent.wgsl for FOLD.
// QX (the merge, or the split when it is the only one): `out` again in quantize_x8.wgsl's int8 layout, [11 xq_k / 32] words.
@group(0) @binding(7) var<storage, read_write> xq: array<u32>;
// ROPE only (else q again, unused): inv_freq [HD / 2], and this step's k and v [n_kv_heads, HD]
// before rotation.
@group(0) @binding(8) var<storage, read> inv_freq: array<f32>;
@group(0) @binding(9) var<storage, read> k_new: array<vec4<f32>>;
@group(0) @binding(10) var<storage, read> v_new: array<vec4<f32>>;

override WG: u32 = 128u;     // invocations
override HD: u32 = 64u;      // head_dim, a multiple of 4, <= 256
override L: u32 = 16u;       // lanes per key: a power of two, L * NV >= HD / 4
override NV: u32 = 1u;       // quads per lane and row: 1 or 2
override RG: u32 = 2u;       // groups of 4 rows per workgroup: 1 or 2
override B: u32 = 4u;        // keys per key group per batch: 1, 2 or 4
override S_MAX: u32 = 32u;   // splits per row block (grid), a multiple of 8
override CH_MIN: u32 = 32u;  // fewest keys per split, a multiple of KB
override KV_F16: bool = false;
// The merge pass (or a lone live split) also writes the output as int8 blocks of 32
// (quantize_x8.wgsl's layout and rounding) for an int8 Wo mat-vec, which then needs no quantise
// dispatch of its own (~3 us in the H100's decode chain). T = 1, HD % 32 == 0 (blocks stay
// inside a head), R * HD4 <= 512.
override QX: bool = false;
// RoPE fused in (T = 1 only; rope_kv then does not run): 0 off (q and the cache are ready),
// 1 rotate-half pairs (f, f + HD/2; HD % 8 == 0), 2 interleaved pairs (2f, 2f + 1). q is
// rotated as it is loaded, and the split that holds the new key (slot step.pos) of its kv
// head rotates k as rope_kv.wgsl does, uses it and v from registers and writes both to the
// caches for later steps. (Row blocks of one kv head write the same values to the same slot;
// a first version wrote the slot, then read it back after a storageBarrier: 2.8 us more a
// layer on the H100, as much as rope_kv's dispatch.)
override ROPE: u32 = 0u;
// The merge folded into this dispatch (only with attention_decode_part_coherent.wgsl): each
// live split writes its partials, releases them (storageBarrier) and takes its row block's
// ticket; the last to arrive acquires (storageBarrier), resets the ticket and merges as the
// `merge` entry would, so the merge dispatch is not recorded. (A first ticket merge, in the
// first session, read stale partials on the H100 now and then: its partials binding was not
// @coherent.)
override FOLD: bool = false;
// Host-checked: KG * R * HD4 <= 1024, KG * R <= 256, S_MAX * R <= 1024, WG <= 1024 / 8 (the
// workgroup path's reduce_scores keeps B * RG <= 8 quads per invocation in sm4), R < WG.

override HD4: u32 = HD / 4u;  // quads per row
override KG: u32 = WG / L;    // key groups
override KB: u32 = KG * B;    // keys per batch
override R: u32 = 4u * RG;    // rows per workgroup
// Quads per split of accumulators and of (m, l) records, padded to whole 128-byte lines: a
// line shared by two splits could sit stale in the merging workgroup's L1 (seen on the H100
// with R = 4, whose 64-byte (m, l) records shared lines: wrong merged outputs).
override RS: u32 = (R * HD4 + 7u) / 8u * 8u;
override MLS: u32 = (R + 7u) / 8u * 8u;

const NEG_BIG: f32 = -3.0e38;  // "no score yet": finite, so exp(NEG_BIG - NEG_BIG) = 1, not NaN

// End-of-chunk key-group partials [KG, R, HD4]; reduce_scores' scratch (workgroup path);
// the merge's per-quad partial sums.
var<workgroup> sm4: array<vec4<f32>, 1024>;
var<workgroup> smw: array<f32, 1024>;   // QX: per-quad max |v| and sums (quantize_rows)
var<workgroup> sm_m: array<f32, 256>;   // [KG, R] running max per key group; merge: reductions
var<workgroup> sm_l: array<f32, 256>;   // [KG, R] running sum per key group
var<workgroup> sm_ticket: u32;          // FOLD: this split's ticket

// This invocation's registers. q and o: column r of qa / oa is row r's (rows 0-3) quad 0 of
// this lane; qb / ob quad 1 (NV = 2); qc, qd / oc, od likewise for rows 4-7 (RG = 2).
var<private> qa: mat4x4<f32>;
var<private> qb: mat4x4<f32>;
var<private> qc: mat4x4<f32>;
var<private> qd: mat4x4<f32>;
var<private> oa: mat4x4<f32>;
var<private> ob: mat4x4<f32>;
var<private> oc: mat4x4<f32>;
var<private> od: mat4x4<f32>;
var<private> m_lo: vec4<f32>;    // running max, rows 0-3
var<private> m_hi: vec4<f32>;    // rows 4-7
var<private> l_lo: vec4<f32>;    // running sum
var<private> l_hi: vec4<f32>;
// ROPE: the new key's rotated k and its v, this lane's quads u0 / u1 (rounded to f16 with
// KV_F16, as the cache holds them).
var<private> new_k0: vec4<f32>;
var<private> new_k1: vec4<f32>;
var<private> new_v0: vec4<f32>;
var<private> new_v1: vec4<f32>;
var<private> vis_lo: vec4<u32>;  // keys a row sees: 0 .. vis - 1 (0: padding row)
var<private> vis_hi: vec4<u32>;
// Partial scores of the batch, sc<b><g>: key b, row group g (vec4 over its 4 rows).
var<private> sc00: vec4<f32>;
var<private> sc01: vec4<f32>;
var<private> sc10: vec4<f32>;
var<private> sc11: vec4<f32>;
var<private> sc20: vec4<f32>;
var<private> sc21: vec4<f32>;
var<private> sc30: vec4<f32>;
var<private> sc31: vec4<f32>;

// load_k / load_v: kv_load.wgsl.

// Dims of quad `u` of key j (kv head base `kv_q` = kvh * HD4) from K or V; zero past the
// chunk or the row (never-written slots may hold NaN).
fn kq(j: u32, u: u32, k_end: u32, kv_q: u32, from_v: bool) -> vec4<f32> {
    var x = vec4<f32>(0.0);
    if (ROPE != 0u && j == step.pos && j < k_end && u < HD4) {
        // The new key, rotated in registers (its cache slot is written in this dispatch).
        let first = u < L;
        if (from_v) { x = select(new_v1, new_v0, first); } else { x = select(new_k1, new_k0, first); }
    } else if (j < k_end && u < HD4) {
        let qi = j * (p.n_kv_heads * HD4) + kv_q + u;
        if (from_v) { x = load_v(qi); } else { x = load_k(qi); }
    }
    return x;
}

// Scaled q quad u of block row r (zero for padding rows and quads past the row); with ROPE
// rotated first by the angles `a` of quad u.
fn q_quad(row0: u32, r: u32, rows_here: u32, kvh: u32, group: u32, u: u32, a: Angles) -> vec4<f32> {
    if (r >= rows_here || u >= HD4) { return vec4<f32>(0.0); }
    let gr = row0 + r;
    let qrow = (gr / group) * p.n_heads + kvh * group + gr % group;
    var x = q[qrow * HD4 + u];
    if (ROPE != 0u) {
        x = rotate_quad(x, q[qrow * HD4 + partner_quad(u)], u, a);
    }
    return x * p.scale;
}

// ---- fused RoPE (ROPE != 0) ----
// sin and cos of the angles of quad u's four dims at position step.pos (T = 1).
struct Angles {
    s: vec4<f32>,
    c: vec4<f32>,
}

// The pair index (frequency) of dim e.
fn freq_of(e: u32) -> u32 {
    if (ROPE == 2u) {
        return e / 2u;
    }
    return e % (HD / 2u);
}

fn angles(u: u32) -> Angles {
    var a: Angles;
    if (ROPE == 0u || u >= HD4) {
        return a;
    }
    // As rope_kv.wgsl: sincos of the rounded f32 product.
    let pos = f32(step.pos);
    let e = 4u * u;
    let s0 = sincos(max(pos * inv_freq[freq_of(e)], 0.0));
    let s1 = sincos(max(pos * inv_freq[freq_of(e + 1u)], 0.0));
    let s2 = sincos(max(pos * inv_freq[freq_of(e + 2u)], 0.0));
    let s3 = sincos(max(pos * inv_freq[freq_of(e + 3u)], 0.0));
    a.s = vec4<f32>(s0.x, s1.x, s2.x, s3.x);
    a.c = vec4<f32>(s0.y, s1.y, s2.y, s3.y);
    return a;
}

// The quad holding the rotate-half partners of quad u's dims (quad u itself when interleaved).
fn partner_quad(u: u32) -> u32 {
    if (ROPE == 2u) {
        return u;
    }
    return select(u + HD4 / 2u, u - HD4 / 2u, u >= HD4 / 2u);
}

// Quad u of a row rotated, `y` the partner quad: rope_kv.wgsl's products, term for term
// (x0 c - x1 s and x0 s + x1 c, x0 the pair's first element).
fn rotate_quad(x: vec4<f32>, y: vec4<f32>, u: u32, a: Angles) -> vec4<f32> {
    if (ROPE == 2u) {
        return vec4<f32>(x.x * a.c.x - x.y * a.s.x, x.x * a.s.y + x.y * a.c.y,
                         x.z * a.c.z - x.w * a.s.z, x.z * a.s.w + x.w * a.c.w);
    }
    if (u < HD4 / 2u) {
        return x * a.c - y * a.s;
    }
    return y * a.s + x * a.c;
}

// Quad u of the new key's rotated k (or of its v) of kv head kvh, as the cache will hold it.
fn new_quad(kvh: u32, u: u32, a: Angles, from_v: bool) -> vec4<f32> {
    if (u >= HD4) {
        return vec4<f32>(0.0);
    }
    let src = kvh * HD4;
    var x = v_new[src + u];
    if (!from_v) {
        x = rotate_quad(k_new[src + u], k_new[src + partner_quad(u)], u, a);
    }
    if (KV_F16) {
        x = vec4<f32>(unpack2x16float(pack2x16float(x.xy)), unpack2x16float(pack2x16float(x.zw)));
    }
    return x;
}

// Quad u of the new key's slot (kv head kvh, step.pos) in the caches: k and v as new_quad
// made them (f32: two words per dim pair; f16: one packed pair per word, as rope_kv; re-packing
// an f16-rounded value gives its bits back).
fn write_new_quad(kvh: u32, u: u32, k: vec4<f32>, v: vec4<f32>) {
    if (u >= HD4) {
        return;
    }
    let qi = (step.pos * p.n_kv_heads + kvh) * HD4 + u;
    if (KV_F16) {
        k_cache[qi] = vec2<u32>(pack2x16float(k.xy), pack2x16float(k.zw));
        v_cache[qi] = vec2<u32>(pack2x16float(v.xy), pack2x16float(v.zw));
    } else {
        let kb = bitcast<vec4<u32>>(k);
        let vb = bitcast<vec4<u32>>(v);
        k_cache[2u * qi] = kb.xy;
        k_cache[2u * qi + 1u] = kb.zw;
        v_cache[2u * qi] = vb.xy;
        v_cache[2u * qi + 1u] = vb.zw;
    }
}

fn vis_of(row0: u32, r: u32, rows_here: u32, group: u32) -> u32 {
    return select(0u, min(step.pos + (row0 + r) / group + 1u, p.ctx), r < rows_here);
}

// Partial (this lane's quads) scores of key quads k0, k1 against rows 0-3 / 4-7.
fn score_lo(k0: vec4<f32>, k1: vec4<f32>) -> vec4<f32> {
    var s = k0 * qa;
    if (NV > 1u) { s = s + k1 * qb; }
    return s;
}

fn score_hi(k0: vec4<f32>, k1: vec4<f32>) -> vec4<f32> {
    var s = k0 * qc;
    if (NV > 1u) { s = s + k1 * qd; }
    return s;
}

// o = o * diag(c) + v p^T: column r gets o[r] * c[r] + v * p[r].
fn rescale_add(o: mat4x4<f32>, c: vec4<f32>, v: vec4<f32>, pr: vec4<f32>) -> mat4x4<f32> {
    return mat4x4<f32>(o[0] * c.x + v * pr.x, o[1] * c.y + v * pr.y,
                       o[2] * c.z + v * pr.z, o[3] * c.w + v * pr.w);
}

// Online-softmax update with key j (full scores s_lo, s_hi; value quads w0, w1).
fn update(j: u32, k_end: u32, s_lo: vec4<f32>, s_hi: vec4<f32>, w0: vec4<f32>, w1: vec4<f32>) {
    let in_chunk = vec4<bool>(j < k_end);
    let ok_lo = (vec4<u32>(j) < vis_lo) & in_chunk;
    let mn_lo = max(m_lo, select(vec4<f32>(NEG_BIG), s_lo, ok_lo));
    let c_lo = exp(m_lo - mn_lo);
    let p_lo = select(vec4<f32>(0.0), exp(s_lo - mn_lo), ok_lo);
    l_lo = l_lo * c_lo + p_lo;
    m_lo = mn_lo;
    oa = rescale_add(oa, c_lo, w0, p_lo);
    if (NV > 1u) { ob = rescale_add(ob, c_lo, w1, p_lo); }
    if (RG > 1u) {
        let ok_hi = (vec4<u32>(j) < vis_hi) & in_chunk;
        let mn_hi = max(m_hi, select(vec4<f32>(NEG_BIG), s_hi, ok_hi));
        let c_hi = exp(m_hi - mn_hi);
        let p_hi = select(vec4<f32>(0.0), exp(s_hi - mn_hi), ok_hi);
        l_hi = l_hi * c_hi + p_hi;
        m_hi = mn_hi;
        oc = rescale_add(oc, c_hi, w0, p_hi);
        if (NV > 1u) { od = rescale_add(od, c_hi, w1, p_hi); }
    }
}

// Key-group partials into workgroup memory: o quad (row r, quad u) at (kg * R + r) * HD4 + u.
fn put_o(kg: u32, r: u32, u: u32, x: vec4<f32>) {
    if (u < HD4) { sm4[(kg * R + r) * HD4 + u] = x; }
}

// Reduces the (max, sum) pairs (m, l) of the invocations of each row (vlid % R) over the
// WG / R invocations of the row, as online softmax combines them; row r's pair lands in
// sm_m[r], sm_l[r]. Uniform control flow.
fn tree_rows_ml(vlid: u32, m: f32, l: f32) {
    sm_m[vlid] = m;
    sm_l[vlid] = l;
    workgroupBarrier();
    for (var stride = WG / 2u; stride >= R; stride = stride / 2u) {
        if (vlid < stride) {
            let ma = sm_m[vlid];
            let mb = sm_m[vlid + stride];
            let mn = max(ma, mb);
            sm_l[vlid] = sm_l[vlid] * exp(ma - mn) + sm_l[vlid + stride] * exp(mb - mn);
            sm_m[vlid] = mn;
        }
        workgroupBarrier();
    }
}

// The merge weight of split s for block row rr: exp(m_s - the row's max).
fn split_w(ml0: u32, s: u32, rr: u32, mrow: f32) -> f32 {
    return exp(part[ml0 + s * MLS + rr].x - mrow);
}

fn out_row(row0: u32, r: u32, kvh: u32, group: u32) -> u32 {
    let gr = row0 + r;
    return (gr / group) * p.n_heads + kvh * group + gr % group;
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
    let chunk = chunk_of(n_keys);
    let live = (n_keys + chunk - 1u) / chunk;
    if (split >= live) { return; }
    let k_begin = split * chunk;
    let k_end = min(k_begin + chunk, n_keys);

    let lane = vlid % L;
    let kg = vlid / L;
    let u0 = lane;
    let u1 = lane + L;
    let a0 = angles(u0);
    var a1: Angles;
    if (NV > 1u) { a1 = angles(u1); }
    if (ROPE != 0u && split == live - 1u && step.pos < p.ctx && n_keys == step.pos + 1u) {
        // This split holds the new key: it takes it from registers (kq) and writes its slot
        // for later steps, which no workgroup of this dispatch reads.
        new_k0 = new_quad(kvh, u0, a0, false);
        new_v0 = new_quad(kvh, u0, a0, true);
        if (NV > 1u) {
            new_k1 = new_quad(kvh, u1, a1, false);
            new_v1 = new_quad(kvh, u1, a1, true);
        }
        // Key group 0's lanes hold every quad (L * NV >= HD4): they write the slot.
        if (kg == 0u) {
            write_new_quad(kvh, u0, new_k0, new_v0);
            if (NV > 1u) { write_new_quad(kvh, u1, new_k1, new_v1); }
        }
    }
    qa = mat4x4<f32>(q_quad(row0, 0u, rows_here, kvh, group, u0, a0),
                     q_quad(row0, 1u, rows_here, kvh, group, u0, a0),
                     q_quad(row0, 2u, rows_here, kvh, group, u0, a0),
                     q_quad(row0, 3u, rows_here, kvh, group, u0, a0));
    vis_lo = vec4<u32>(vis_of(row0, 0u, rows_here, group), vis_of(row0, 1u, rows_here, group),
                       vis_of(row0, 2u, rows_here, group), vis_of(row0, 3u, rows_here, group));
    m_lo = vec4<f32>(NEG_BIG);
    l_lo = vec4<f32>(0.0);
    oa = mat4x4<f32>();
    if (NV > 1u) {
        qb = mat4x4<f32>(q_quad(row0, 0u, rows_here, kvh, group, u1, a1),
                         q_quad(row0, 1u, rows_here, kvh, group, u1, a1),
                         q_quad(row0, 2u, rows_here, kvh, group, u1, a1),
                         q_quad(row0, 3u, rows_here, kvh, group, u1, a1));
        ob = mat4x4<f32>();
    }
    if (RG > 1u) {
        qc = mat4x4<f32>(q_quad(row0, 4u, rows_here, kvh, group, u0, a0),
                         q_quad(row0, 5u, rows_here, kvh, group, u0, a0),
                         q_quad(row0, 6u, rows_here, kvh, group, u0, a0),
                         q_quad(row0, 7u, rows_here, kvh, group, u0, a0));
        vis_hi = vec4<u32>(vis_of(row0, 4u, rows_here, group), vis_of(row0, 5u, rows_here, group),
                           vis_of(row0, 6u, rows_here, group), vis_of(row0, 7u, rows_here, group));
        m_hi = vec4<f32>(NEG_BIG);
        l_hi = vec4<f32>(0.0);
        oc = mat4x4<f32>();
        if (NV > 1u) {
            qd = mat4x4<f32>(q_quad(row0, 4u, rows_here, kvh, group, u1, a1),
                             q_quad(row0, 5u, rows_here, kvh, group, u1, a1),
                             q_quad(row0, 6u, rows_here, kvh, group, u1, a1),
                             q_quad(row0, 7u, rows_here, kvh, group, u1, a1));
            od = mat4x4<f32>();
        }
    }

    let kv_q = kvh * HD4;
    let z = vec4<f32>(0.0);
    for (var kb = k_begin; kb < k_end; kb = kb + KB) {
        // Every load of the batch first (quads past NV and keys past B stay zero and unused).
        let j0 = kb + kg;
        let j1 = j0 + KG;
        let j2 = j1 + KG;
        let j3 = j2 + KG;
        let k00 = kq(j0, u0, k_end, kv_q, false);
        let w00 = kq(j0, u0, k_end, kv_q, true);
        var k01 = z; var w01 = z;
        var k10 = z; var w10 = z; var k11 = z; var w11 = z;
        var k20 = z; var w20 = z; var k21 = z; var w21 = z;
        var k30 = z; var w30 = z; var k31 = z; var w31 = z;
        if (NV > 1u) { k01 = kq(j0, u1, k_end, kv_q, false); w01 = kq(j0, u1, k_end, kv_q, true); }
        if (B > 1u) {
            k10 = kq(j1, u0, k_end, kv_q, false);
            w10 = kq(j1, u0, k_end, kv_q, true);
            if (NV > 1u) { k11 = kq(j1, u1, k_end, kv_q, false); w11 = kq(j1, u1, k_end, kv_q, true); }
        }
        if (B > 2u) {
            k20 = kq(j2, u0, k_end, kv_q, false);
            w20 = kq(j2, u0, k_end, kv_q, true);
            k30 = kq(j3, u0, k_end, kv_q, false);
            w30 = kq(j3, u0, k_end, kv_q, true);
            if (NV > 1u) {
                k21 = kq(j2, u1, k_end, kv_q, false);
                w21 = kq(j2, u1, k_end, kv_q, true);
                k31 = kq(j3, u1, k_end, kv_q, false);
                w31 = kq(j3, u1, k_end, kv_q, true);
            }
        }
        sc00 = score_lo(k00, k01);
        if (RG > 1u) { sc01 = score_hi(k00, k01); }
        if (B > 1u) {
            sc10 = score_lo(k10, k11);
            if (RG > 1u) { sc11 = score_hi(k10, k11); }
        }
        if (B > 2u) {
            sc20 = score_lo(k20, k21);
            sc30 = score_lo(k30, k31);
            if (RG > 1u) {
                sc21 = score_hi(k20, k21);
                sc31 = score_hi(k30, k31);
            }
        }
        reduce_scores(vlid);
        update(j0, k_end, sc00, sc01, w00, w01);
        if (B > 1u) { update(j1, k_end, sc10, sc11, w10, w11); }
        if (B > 2u) {
            update(j2, k_end, sc20, sc21, w20, w21);
            update(j3, k_end, sc30, sc31, w30, w31);
        }
    }

    // Combine the key groups: sm4 [KG, R, HD4], sm_m / sm_l [KG, R].
    workgroupBarrier();  // reduce_scores' scratch (workgroup path) shares sm4
    if (lane == 0u) {
        let b0 = kg * R;
        sm_m[b0] = m_lo.x;
        sm_m[b0 + 1u] = m_lo.y;
        sm_m[b0 + 2u] = m_lo.z;
        sm_m[b0 + 3u] = m_lo.w;
        sm_l[b0] = l_lo.x;
        sm_l[b0 + 1u] = l_lo.y;
        sm_l[b0 + 2u] = l_lo.z;
        sm_l[b0 + 3u] = l_lo.w;
        if (RG > 1u) {
            sm_m[b0 + 4u] = m_hi.x;
            sm_m[b0 + 5u] = m_hi.y;
            sm_m[b0 + 6u] = m_hi.z;
            sm_m[b0 + 7u] = m_hi.w;
            sm_l[b0 + 4u] = l_hi.x;
            sm_l[b0 + 5u] = l_hi.y;
            sm_l[b0 + 6u] = l_hi.z;
            sm_l[b0 + 7u] = l_hi.w;
        }
    }
    put_o(kg, 0u, u0, oa[0]);
    put_o(kg, 1u, u0, oa[1]);
    put_o(kg, 2u, u0, oa[2]);
    put_o(kg, 3u, u0, oa[3]);
    if (NV > 1u) {
        put_o(kg, 0u, u1, ob[0]);
        put_o(kg, 1u, u1, ob[1]);
        put_o(kg, 2u, u1, ob[2]);
        put_o(kg, 3u, u1, ob[3]);
    }
    if (RG > 1u) {
        put_o(kg, 4u, u0, oc[0]);
        put_o(kg, 5u, u0, oc[1]);
        put_o(kg, 6u, u0, oc[2]);
        put_o(kg, 7u, u0, oc[3]);
        if (NV > 1u) {
            put_o(kg, 4u, u1, od[0]);
            put_o(kg, 5u, u1, od[1]);
            put_o(kg, 6u, u1, od[2]);
            put_o(kg, 7u, u1, od[3]);
        }
    }
    workgroupBarrier();
    let part_base = g * S_MAX + split;  // this split's record index
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
            acc = acc + w * sm4[(k * R + r) * HD4 + u];
        }
        if (r < rows_here) {
            if (live == 1u) {
                out[out_row(row0, r, kvh, group) * HD4 + u] = acc / lsum;
            } else {
                part[part_base * RS + r * HD4 + u] = acc;
                if (u == 0u) { part[p.ml_base + part_base * MLS + r] = vec4<f32>(mx, lsum, 0.0, 0.0); }
            }
        }
    }
    if (FOLD && live > 1u) {
        storageBarrier();
        if (vlid == 0u) { sm_ticket = atomicAdd(&tickets[g], 1u); }
        if (workgroupUniformLoad(&sm_ticket) + 1u == live) {
            storageBarrier();
            if (vlid == 0u) { atomicStore(&tickets[g], 0u); }
            merge_block(vlid, g);
        }
    }
    if (QX && live == 1u) {
        // The only split quantises its output: each invocation reads back the quads it wrote
        // to `out` (same loop), once every invocation has stopped reading the key groups'
        // records in sm4 (QX_STAGE overlaps them).
        workgroupBarrier();
        for (var e = vlid; e < R * HD4; e = e + WG) {
            let rr = e / HD4;
            if (rr < rows_here) {
                sm4[QX_STAGE + e] = out[out_row(row0, rr, kvh, group) * HD4 + e % HD4];
            }
        }
        quantize_rows(vlid, row0, rows_here, kvh, group);
    }
}

// Keys per split for a context of n_keys (the header's formula).
fn chunk_of(n_keys: u32) -> u32 {
    return max(CH_MIN, ((n_keys + S_MAX - 1u) / S_MAX + KB - 1u) / KB * KB);
}

// The merge of a row block (entry `merge`, a second dispatch, one workgroup per row block; or
// with FOLD the block's last live split): with several live splits, combines their (o, m, l)
// partials into the output; with one, the split already wrote it and the workgroup leaves.
// FOLD needs the partials binding @coherent: the first session's ticket merge, without it,
// read other workgroups' partials stale on the H100 now and then.
fn merge_block(vlid: u32, g: u32) {
    let blocks = p.n_kv_heads * p.n_row_blocks;
    if (g >= blocks) { return; }
    let kvh = g / p.n_row_blocks;
    let row0 = (g % p.n_row_blocks) * R;
    let group = p.n_heads / p.n_kv_heads;
    let rows_here = min(R, p.n_tokens * group - row0);
    let t_last = (row0 + rows_here - 1u) / group;
    let n_keys = min(step.pos + t_last + 1u, p.ctx);
    let chunk = chunk_of(n_keys);
    let live = (n_keys + chunk - 1u) / chunk;
    if (live == 1u) {
        // The split wrote the output (and with QX its int8 form).
        return;
    }

    // Outputs: U = R * HD4 quads; with U < WG, SGN = WG / U invocations share a quad, each
    // taking every SGN-th split, and add up through sm4.
    let n_units = R * HD4;
    let sgn = max(1u, WG / n_units);
    let acc0 = g * S_MAX * RS;
    let ml0 = p.ml_base + g * S_MAX * MLS;
    // With one invocation per quad, its first quad's first four splits (accumulator and m) are
    // loaded before the row reduction, so their latency overlaps its barriers.
    let pre_rr = min(vlid, n_units - 1u) / HD4;
    let pre_base = acc0 + pre_rr * HD4 + min(vlid, n_units - 1u) % HD4;
    let n_pre = min(live, 4u);
    var p0 = vec4<f32>(0.0);
    var p1 = vec4<f32>(0.0);
    var p2 = vec4<f32>(0.0);
    var p3 = vec4<f32>(0.0);
    var m0 = NEG_BIG;
    var m1 = NEG_BIG;
    var m2 = NEG_BIG;
    var m3 = NEG_BIG;
    if (sgn == 1u) {
        p0 = part[pre_base];
        m0 = part[ml0 + pre_rr].x;
        p1 = part[pre_base + RS];
        m1 = part[ml0 + MLS + pre_rr].x;
        if (n_pre > 2u) {
            p2 = part[pre_base + 2u * RS];
            m2 = part[ml0 + 2u * MLS + pre_rr].x;
        }
        if (n_pre > 3u) {
            p3 = part[pre_base + 3u * RS];
            m3 = part[ml0 + 3u * MLS + pre_rr].x;
        }
    }

    // Row maximum and sum over the live splits in one pass: invocation (s0, r) = (vlid / R,
    // vlid % R) combines splits s0, s0 + WG / R, ... online, tree_rows_ml finishes across
    // invocations (one tree of barriers; a split's weight is exp(m_s - max), recomputed where
    // it is used).
    let r = vlid % R;
    let s0 = vlid / R;
    var pm = NEG_BIG;
    var pl = 0.0;
    for (var s = s0; s < live; s = s + WG / R) {
        let ml = part[ml0 + s * MLS + r];
        let mn = max(pm, ml.x);
        pl = pl * exp(pm - mn) + ml.y * exp(ml.x - mn);
        pm = mn;
    }
    tree_rows_ml(vlid, pm, pl);
    if (sgn == 1u) {
        for (var e = vlid; e < n_units; e = e + WG) {
            let rr = e / HD4;
            let u = e % HD4;
            let mrow = sm_m[rr];
            // Four independent sums, so four loads are in flight.
            var a0 = vec4<f32>(0.0);
            var a1 = vec4<f32>(0.0);
            var a2 = vec4<f32>(0.0);
            var a3 = vec4<f32>(0.0);
            let stride = RS;
            let base = acc0 + rr * HD4 + u;
            var s = 0u;
            if (e == vlid) {
                // The prefetched splits (those past `live` weigh 0).
                a0 = exp(m0 - mrow) * p0;
                a1 = exp(m1 - mrow) * p1;
                a2 = select(vec4<f32>(0.0), exp(m2 - mrow) * p2, n_pre > 2u);
                a3 = select(vec4<f32>(0.0), exp(m3 - mrow) * p3, n_pre > 3u);
                s = n_pre;
            }
            for (; s + 4u <= live; s = s + 4u) {
                a0 = a0 + split_w(ml0, s, rr, mrow) * part[base + s * stride];
                a1 = a1 + split_w(ml0, s + 1u, rr, mrow) * part[base + (s + 1u) * stride];
                a2 = a2 + split_w(ml0, s + 2u, rr, mrow) * part[base + (s + 2u) * stride];
                a3 = a3 + split_w(ml0, s + 3u, rr, mrow) * part[base + (s + 3u) * stride];
            }
            for (; s < live; s = s + 1u) {
                a0 = a0 + split_w(ml0, s, rr, mrow) * part[base + s * stride];
            }
            if (rr < rows_here) {
                emit(row0, rr, kvh, group, u, ((a0 + a1) + (a2 + a3)) / sm_l[rr]);
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
                acc = acc + split_w(ml0, s, rr, sm_m[rr]) * part[acc0 + s * RS + rr * HD4 + u];
            }
            sm4[sg * n_units + e] = acc;
        }
        workgroupBarrier();
        if (vlid < n_units && rr < rows_here) {
            var tot = vec4<f32>(0.0);
            for (var k = 0u; k < sgn; k = k + 1u) { tot = tot + sm4[k * n_units + e]; }
            emit(row0, rr, kvh, group, u, tot / sm_l[rr]);
        }
    }
    if (QX) {
        quantize_rows(vlid, row0, rows_here, kvh, group);
    }
}

// Where QX stages the merged outputs in sm4 ([R, HD4] quads): past the sgn > 1 path's partial
// sums (at most WG <= 128 quads).
const QX_STAGE: u32 = 512u;

// Output quad u of block row r: to `out`, and with QX staged for quantize_rows.
fn emit(row0: u32, r: u32, kvh: u32, group: u32, u: u32, v: vec4<f32>) {
    out[out_row(row0, r, kvh, group) * HD4 + u] = v;
    if (QX) {
        sm4[QX_STAGE + r * HD4 + u] = v;
    }
}

// The block's staged output rows as int8 blocks of 32 values into xq (int8_block.wgsl's
// rounding, quantize_x8.wgsl's layout), and the exact sum per 16 values.
// Quad e of the block is quad out_row * HD4 + e % HD4 of the row [xq_k]. Every invocation
// calls (the barriers); smw holds per-quad max and sum.
fn quantize_rows(vlid: u32, row0: u32, rows_here: u32, kvh: u32, group: u32) {
    let n_units = R * HD4;
    workgroupBarrier();
    for (var e = vlid; e < n_units; e = e + WG) {
        let v = sm4[QX_STAGE + e];
        smw[e] = abs_max4(v);
        smw[512u + e] = (v.x + v.y) + (v.z + v.w);
    }
    workgroupBarrier();
    let k = p.xq_k;
    for (var e = vlid; e < n_units; e = e + WG) {
        let rr = e / HD4;
        if (rr < rows_here) {
            let first = e & ~7u;
            var m = 0.0;
            for (var i = 0u; i < 8u; i = i + 1u) {
                m = max(m, smw[first + i]);
            }
            let d = int8_scale(m);
            let gq = out_row(row0, rr, kvh, group) * HD4 + e % HD4;
            xq[gq] = int8_pack(sm4[QX_STAGE + e], d);
            if ((e & 7u) == 0u) {
                xq[k / 4u + gq / 8u] = bitcast<u32>(d);
            }
            if ((e & 3u) == 0u) {
                let s16 = (smw[512u + e] + smw[512u + e + 1u]) + (smw[512u + e + 2u] + smw[512u + e + 3u]);
                xq[k / 4u + k / 32u + gq / 4u] = bitcast<u32>(s16);
            }
        }
    }
}
