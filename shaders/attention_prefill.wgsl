// Prompt attention (causal, GQA, online softmax, no score matrix), f32 SIMT with register
// tiles. Preceded in the module by step.wgsl.
//
// Query t (at position step.pos + t) of head h attends to cache slots 0 ..= step.pos + t of kv
// head h / group. Rows are (token, head-in-group) pairs, row = t * group + h % group, so a
// block of BR rows shares every K/V tile across its group's heads. A workgroup of
// (BR / 4) x 16 invocations takes two row blocks of one kv head, rb and n_row_blocks - 1 - rb
// (causal work grows with the block index, so every workgroup gets about the same work).
//
// Per key tile of BC = 64 keys:
//   S = Q K^T  [BR, 64]: invocation (ty, tx) owns rows 4ty .. 4ty+3 and columns 4tx .. 4tx+3
//              (4 vec4 registers); Q and K pass through workgroup memory KC dims at a time,
//              transposed, so each step is two 16-byte loads and 16 FMAs; the next chunk's
//              global loads are issued before the current chunk's arithmetic.
//   softmax    masked (causal) row maxima across the 16 invocations of a row through
//              workgroup memory; p = exp(s - m) written transposed to `ps`; the running sum
//              l stays a per-invocation partial (its rows' rescale factors are common), added
//              up once at the end.
//   O += P V   [BR, HD]: the same invocation owns the same 4 rows and output quads
//              tx, tx + 16, ...; V passes through workgroup memory VC keys at a time.
// No array in function or private memory is ever indexed by a loop variable (drivers may put
// such arrays in local memory): per-invocation state is named vec4 / mat4x4 registers, rows
// four at a time.

struct Params {
    n_tokens: u32,      // T
    n_heads: u32,
    n_kv_heads: u32,
    ctx: u32,           // cache slots
    n_row_blocks: u32,  // ceil(T * group / BR)
    n_pairs: u32,       // ceil(n_row_blocks / 2): workgroups per kv head
    scale: f32,         // 1 / sqrt(head_dim)
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> step: Step;
@group(0) @binding(2) var<storage, read> q: array<vec4<f32>>;         // [T, n_heads, HD/4]
// Caches [ctx, n_kv_heads, HD]: f32 (4 dims = 2 vec2) or, with KV_F16, f16 (4 dims = 1 vec2).
@group(0) @binding(3) var<storage, read> k_cache: array<vec2<u32>>;
@group(0) @binding(4) var<storage, read> v_cache: array<vec2<u32>>;
@group(0) @binding(5) var<storage, read_write> out: array<vec4<f32>>; // [T, n_heads, HD/4]

override BR: u32 = 64u;   // rows per block: 32 or 64
override HD: u32 = 128u;  // head_dim, a multiple of 4, <= 256
override KC: u32 = 16u;   // dims per score chunk: a multiple of 4, KC * (BR + 64) <= 4096
override VC: u32 = 16u;   // keys per value chunk: divides 64, VC * HD <= 4096
override KV_F16: bool = false;
// Host-checked: at most 2 Q, 2 K and 2 V quads per invocation per chunk.

const BC: u32 = 64u;      // keys per tile
const TX: u32 = 16u;      // invocations across a tile's columns (4 each)
const NEG_BIG: f32 = -3.0e38;

override TY: u32 = BR / 4u;
override WG: u32 = TY * TX;
override BR4: u32 = BR / 4u;
override HD4: u32 = HD / 4u;
override KQ: u32 = KC / 4u;                       // quads per row per score chunk
override NVO: u32 = (HD4 + TX - 1u) / TX;         // output quads per row and invocation (<= 4)
override NQL: u32 = (BR * KQ + WG - 1u) / WG;     // Q quads each invocation loads per chunk
override NKL: u32 = (BC * KQ + WG - 1u) / WG;     // K quads
override NVL: u32 = (VC * HD4 + WG - 1u) / WG;    // V quads per value chunk

// One region, reused: score chunk (Q^T [KC, BR] at 0, K^T [KC, BC] at KS), then the row
// partials [BR, TX] (floats), then value chunks V [VC, HD].
var<workgroup> buf: array<vec4<f32>, 1024>;
// P^T [BC, BR]: key c's four rows 4ty .. 4ty+3 at quad c * BR4 + (ty ^ (c / 4 % 8)); the xor
// spreads the 16 invocations of a row group over the banks when they write.
var<workgroup> ps: array<vec4<f32>, 1024>;

// Per-invocation registers.
var<private> s0: vec4<f32>;      // scores of key column 4tx + c (sc), over rows 4ty .. 4ty+3
var<private> s1: vec4<f32>;
var<private> s2: vec4<f32>;
var<private> s3: vec4<f32>;
var<private> m_r: vec4<f32>;     // running max of the 4 rows
var<private> l_r: vec4<f32>;     // this invocation's share of the running sums
var<private> vis_r: vec4<u32>;   // keys each row sees: 0 .. vis - 1 (0: padding row)
var<private> o0: mat4x4<f32>;    // output quad tx + 16n: column i = row 4ty + i
var<private> o1: mat4x4<f32>;
var<private> o2: mat4x4<f32>;
var<private> o3: mat4x4<f32>;
var<private> pq0: vec4<f32>;     // the next chunk's loads, issued early
var<private> pq1: vec4<f32>;
var<private> pk0: vec4<f32>;
var<private> pk1: vec4<f32>;
var<private> pv0: vec4<f32>;
var<private> pv1: vec4<f32>;

// load_k / load_v: kv_load.wgsl.

fn ps_index(c: u32, rq: u32) -> u32 {
    return c * BR4 + (rq ^ ((c >> 2u) & 7u));
}

// Row partials [BR, TX] as floats in buf.
fn red_store(r: u32, tx: u32, x: f32) {
    buf[r * (TX / 4u) + tx / 4u][tx % 4u] = x;
}

fn red_max(r: u32) -> f32 {
    var mt = NEG_BIG;
    for (var k = 0u; k < TX / 4u; k = k + 1u) {
        let x = buf[r * (TX / 4u) + k];
        mt = max(mt, max(max(x.x, x.y), max(x.z, x.w)));
    }
    return mt;
}

fn red_sum(r: u32) -> f32 {
    var t = 0.0;
    for (var k = 0u; k < TX / 4u; k = k + 1u) {
        let x = buf[r * (TX / 4u) + k];
        t = t + ((x.x + x.y) + (x.z + x.w));
    }
    return t;
}

// Block geometry, shared by the loaders.
struct Blk {
    kvh: u32,
    row0: u32,
    rows_here: u32,
    group: u32,
    k_hi: u32,
    slot_quads: u32,
}

// Q quad n of this invocation for the score chunk at quad d0 (scaled; zero past the rows).
fn q_load(bk: Blk, lid: u32, n: u32, d0: u32) -> vec4<f32> {
    let e = lid + n * WG;
    let r = e % BR;
    let dq = d0 + e / BR;
    var x = vec4<f32>(0.0);
    if (e < BR * KQ && r < bk.rows_here && dq < HD4) {
        let gr = bk.row0 + r;
        let qrow = (gr / bk.group) * p.n_heads + bk.kvh * bk.group + gr % bk.group;
        x = q[qrow * HD4 + dq] * p.scale;
    }
    return x;
}

// K quad n of this invocation for tile kb, score chunk at quad d0.
fn k_load(bk: Blk, lid: u32, n: u32, kb: u32, d0: u32) -> vec4<f32> {
    let e = lid + n * WG;
    let jj = e % BC;
    let dq = d0 + e / BC;
    var x = vec4<f32>(0.0);
    if (e < BC * KQ && kb + jj < bk.k_hi && dq < HD4) {
        x = load_k((kb + jj) * bk.slot_quads + bk.kvh * HD4 + dq);
    }
    return x;
}

// V quad n of this invocation for keys kb + j0 ...
fn v_load(bk: Blk, lid: u32, n: u32, kb: u32, j0: u32) -> vec4<f32> {
    let e = lid + n * WG;
    let j = kb + j0 + e / HD4;
    var x = vec4<f32>(0.0);
    if (e < VC * HD4 && j < bk.k_hi) {
        x = load_v(j * bk.slot_quads + bk.kvh * HD4 + e % HD4);
    }
    return x;
}

// Stores Q quad n (transposed: Q^T [KC, BR]).
fn q_store(lid: u32, n: u32, x: vec4<f32>) {
    let e = lid + n * WG;
    if (e < BR * KQ) {
        let r = e % BR;
        let d = 4u * (e / BR);
        buf[d * BR4 + r / 4u][r % 4u] = x.x;
        buf[(d + 1u) * BR4 + r / 4u][r % 4u] = x.y;
        buf[(d + 2u) * BR4 + r / 4u][r % 4u] = x.z;
        buf[(d + 3u) * BR4 + r / 4u][r % 4u] = x.w;
    }
}

// Stores K quad n (transposed: K^T [KC, BC] at ks).
fn k_store(lid: u32, n: u32, x: vec4<f32>) {
    let e = lid + n * WG;
    if (e < BC * KQ) {
        let jj = e % BC;
        let d = KC * BR4 + 4u * (e / BC) * 16u;
        buf[d + jj / 4u][jj % 4u] = x.x;
        buf[d + 16u + jj / 4u][jj % 4u] = x.y;
        buf[d + 32u + jj / 4u][jj % 4u] = x.z;
        buf[d + 48u + jj / 4u][jj % 4u] = x.w;
    }
}

fn v_store(lid: u32, n: u32, x: vec4<f32>) {
    let e = lid + n * WG;
    if (e < VC * HD4) { buf[e] = x; }
}

fn scale_cols(o: mat4x4<f32>, c: vec4<f32>) -> mat4x4<f32> {
    return mat4x4<f32>(o[0] * c.x, o[1] * c.y, o[2] * c.z, o[3] * c.w);
}

// o + b a^T: column i gets b * a[i].
fn outer_add(o: mat4x4<f32>, b: vec4<f32>, a: vec4<f32>) -> mat4x4<f32> {
    return mat4x4<f32>(o[0] + b * a.x, o[1] + b * a.y, o[2] + b * a.z, o[3] + b * a.w);
}

// Writes row r's output quads (columns i of o0..o3) divided by its sum.
fn write_row(bk: Blk, r: u32, tx: u32, x0: vec4<f32>, x1: vec4<f32>, x2: vec4<f32>,
             x3: vec4<f32>, lt: f32) {
    if (r >= bk.rows_here) { return; }
    let gr = bk.row0 + r;
    let row = (gr / bk.group) * p.n_heads + bk.kvh * bk.group + gr % bk.group;
    let base = row * HD4;
    if (tx < HD4) { out[base + tx] = x0 / lt; }
    if (NVO > 1u && tx + TX < HD4) { out[base + tx + TX] = x1 / lt; }
    if (NVO > 2u && tx + 2u * TX < HD4) { out[base + tx + 2u * TX] = x2 / lt; }
    if (NVO > 3u && tx + 3u * TX < HD4) { out[base + tx + 3u * TX] = x3 / lt; }
}

fn block(kvh: u32, rb: u32, ty: u32, tx: u32, lid: u32) {
    var bk: Blk;
    bk.kvh = kvh;
    bk.group = p.n_heads / p.n_kv_heads;
    bk.row0 = rb * BR;
    bk.rows_here = min(BR, p.n_tokens * bk.group - bk.row0);
    let t_last = (bk.row0 + bk.rows_here - 1u) / bk.group;
    bk.k_hi = min(step.pos + t_last + 1u, p.ctx);  // keys any row of the block sees
    bk.slot_quads = p.n_kv_heads * HD4;
    let ks = KC * BR4;  // K^T's offset in buf
    let r0 = 4u * ty;

    let rv = vec4<u32>(r0, r0 + 1u, r0 + 2u, r0 + 3u);
    let tv = (vec4<u32>(bk.row0) + rv) / vec4<u32>(bk.group);
    vis_r = select(vec4<u32>(0u), min(vec4<u32>(step.pos) + tv + vec4<u32>(1u), vec4<u32>(p.ctx)),
                   rv < vec4<u32>(bk.rows_here));
    m_r = vec4<f32>(NEG_BIG);
    l_r = vec4<f32>(0.0);
    o0 = mat4x4<f32>();
    o1 = mat4x4<f32>();
    o2 = mat4x4<f32>();
    o3 = mat4x4<f32>();
    // Clamped output quads this invocation reads from V (past HD4 only in unused columns).
    let u0 = min(tx, HD4 - 1u);
    let u1 = min(tx + TX, HD4 - 1u);
    let u2 = min(tx + 2u * TX, HD4 - 1u);
    let u3 = min(tx + 3u * TX, HD4 - 1u);

    for (var kb = 0u; kb < bk.k_hi; kb = kb + BC) {
        // ---- S = Q K^T over HD, KC dims at a time ----
        s0 = vec4<f32>(0.0);
        s1 = vec4<f32>(0.0);
        s2 = vec4<f32>(0.0);
        s3 = vec4<f32>(0.0);
        pq0 = q_load(bk, lid, 0u, 0u);
        pk0 = k_load(bk, lid, 0u, kb, 0u);
        if (NQL > 1u) { pq1 = q_load(bk, lid, 1u, 0u); }
        if (NKL > 1u) { pk1 = k_load(bk, lid, 1u, kb, 0u); }
        for (var d0 = 0u; d0 < HD4; d0 = d0 + KQ) {
            q_store(lid, 0u, pq0);
            k_store(lid, 0u, pk0);
            if (NQL > 1u) { q_store(lid, 1u, pq1); }
            if (NKL > 1u) { k_store(lid, 1u, pk1); }
            workgroupBarrier();
            // Prefetch the next chunk into registers while this one is multiplied.
            let d1 = d0 + KQ;
            if (d1 < HD4) {
                pq0 = q_load(bk, lid, 0u, d1);
                pk0 = k_load(bk, lid, 0u, kb, d1);
                if (NQL > 1u) { pq1 = q_load(bk, lid, 1u, d1); }
                if (NKL > 1u) { pk1 = k_load(bk, lid, 1u, kb, d1); }
            }
            for (var k = 0u; k < KC; k = k + 1u) {
                let a = buf[k * BR4 + ty];
                let b = buf[ks + k * 16u + tx];
                s0 = s0 + a * b.x;
                s1 = s1 + a * b.y;
                s2 = s2 + a * b.z;
                s3 = s3 + a * b.w;
            }
            workgroupBarrier();
        }

        // ---- online softmax ----
        let j = kb + 4u * tx;
        let ok0 = vec4<u32>(j) < vis_r;
        let ok1 = vec4<u32>(j + 1u) < vis_r;
        let ok2 = vec4<u32>(j + 2u) < vis_r;
        let ok3 = vec4<u32>(j + 3u) < vis_r;
        let nb = vec4<f32>(NEG_BIG);
        let mloc = max(max(select(nb, s0, ok0), select(nb, s1, ok1)),
                       max(select(nb, s2, ok2), select(nb, s3, ok3)));
        red_store(r0, tx, mloc.x);
        red_store(r0 + 1u, tx, mloc.y);
        red_store(r0 + 2u, tx, mloc.z);
        red_store(r0 + 3u, tx, mloc.w);
        workgroupBarrier();
        let mt = max(m_r, vec4<f32>(red_max(r0), red_max(r0 + 1u), red_max(r0 + 2u), red_max(r0 + 3u)));
        let c = exp(m_r - mt);
        let zero = vec4<f32>(0.0);
        let p0 = select(zero, exp(s0 - mt), ok0);
        let p1 = select(zero, exp(s1 - mt), ok1);
        let p2 = select(zero, exp(s2 - mt), ok2);
        let p3 = select(zero, exp(s3 - mt), ok3);
        l_r = l_r * c + ((p0 + p1) + (p2 + p3));
        m_r = mt;
        o0 = scale_cols(o0, c);
        if (NVO > 1u) { o1 = scale_cols(o1, c); }
        if (NVO > 2u) { o2 = scale_cols(o2, c); }
        if (NVO > 3u) { o3 = scale_cols(o3, c); }
        ps[ps_index(4u * tx, ty)] = p0;
        ps[ps_index(4u * tx + 1u, ty)] = p1;
        ps[ps_index(4u * tx + 2u, ty)] = p2;
        ps[ps_index(4u * tx + 3u, ty)] = p3;

        // ---- O += P V, VC keys at a time ----
        for (var j0 = 0u; j0 < BC; j0 = j0 + VC) {
            if (kb + j0 >= bk.k_hi) { break; }
            if (j0 == 0u) {
                pv0 = v_load(bk, lid, 0u, kb, 0u);
                if (NVL > 1u) { pv1 = v_load(bk, lid, 1u, kb, 0u); }
            }
            workgroupBarrier();  // the row partials / previous chunk are read; ps is written
            v_store(lid, 0u, pv0);
            if (NVL > 1u) { v_store(lid, 1u, pv1); }
            workgroupBarrier();
            let j1 = j0 + VC;
            if (j1 < BC && kb + j1 < bk.k_hi) {
                pv0 = v_load(bk, lid, 0u, kb, j1);
                if (NVL > 1u) { pv1 = v_load(bk, lid, 1u, kb, j1); }
            }
            for (var jj = 0u; jj < VC; jj = jj + 1u) {
                let a = ps[ps_index(j0 + jj, ty)];
                let vrow = jj * HD4;
                o0 = outer_add(o0, buf[vrow + u0], a);
                if (NVO > 1u) { o1 = outer_add(o1, buf[vrow + u1], a); }
                if (NVO > 2u) { o2 = outer_add(o2, buf[vrow + u2], a); }
                if (NVO > 3u) { o3 = outer_add(o3, buf[vrow + u3], a); }
            }
        }
        workgroupBarrier();  // buf and ps are free for the next tile
    }

    // Row sums across the 16 invocations of each row, then the normalised output.
    red_store(r0, tx, l_r.x);
    red_store(r0 + 1u, tx, l_r.y);
    red_store(r0 + 2u, tx, l_r.z);
    red_store(r0 + 3u, tx, l_r.w);
    workgroupBarrier();
    write_row(bk, r0, tx, o0[0], o1[0], o2[0], o3[0], red_sum(r0));
    write_row(bk, r0 + 1u, tx, o0[1], o1[1], o2[1], o3[1], red_sum(r0 + 1u));
    write_row(bk, r0 + 2u, tx, o0[2], o1[2], o2[2], o3[2], red_sum(r0 + 2u));
    write_row(bk, r0 + 3u, tx, o0[3], o1[3], o2[3], o3[3], red_sum(r0 + 3u));
    workgroupBarrier();  // buf is free for the next block
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let wg_index = wid.x + wid.y * nwg.x;
    if (wg_index >= p.n_kv_heads * p.n_pairs) { return; }
    let kvh = wg_index / p.n_pairs;
    let pair = wg_index % p.n_pairs;
    let ty = lid / TX;
    let tx = lid % TX;
    let heavy = p.n_row_blocks - 1u - pair;
    block(kvh, heavy, ty, tx, lid);
    if (heavy != pair) { block(kvh, pair, ty, tx, lid); }
}
