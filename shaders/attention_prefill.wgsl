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
//              (16 registers); Q and K pass through workgroup memory KC dims at a time,
//              transposed, so each step is two 16-byte loads and 16 FMAs; the next chunk's
//              global loads are issued before the current chunk's arithmetic.
//   softmax    masked (causal) row maxima across the 16 invocations of a row through
//              workgroup memory; p = exp(s - m) written transposed to `ps`; the running sum
//              l stays a per-invocation partial (its rows' rescale factors are common), added
//              up once at the end.
//   O += P V   [BR, HD]: the same invocation owns the same 4 rows and output quads
//              tx, tx + 16, ...; V passes through workgroup memory VC keys at a time.

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

fn ps_index(c: u32, rq: u32) -> u32 {
    return c * BR4 + (rq ^ ((c >> 2u) & 7u));
}

// Row partials [BR, TX] as floats in buf.
fn red_store(r: u32, tx: u32, x: f32) {
    buf[r * (TX / 4u) + tx / 4u][tx % 4u] = x;
}

fn block(kvh: u32, rb: u32, ty: u32, tx: u32, lid: u32) {
    let group = p.n_heads / p.n_kv_heads;
    let row0 = rb * BR;
    let rows_here = min(BR, p.n_tokens * group - row0);
    let t_last = (row0 + rows_here - 1u) / group;
    let k_hi = min(step.pos + t_last + 1u, p.ctx);  // keys any row of the block sees
    let slot_quads = p.n_kv_heads * HD4;
    let ks = KC * BR4;  // K^T's offset in buf

    var vis: array<u32, 4>;  // keys row 4ty + i sees: 0 .. vis - 1 (0: padding row)
    var m: array<f32, 4>;
    var l: array<f32, 4>;
    var o: array<vec4<f32>, 16>;  // [4 rows, NVO]
    for (var i = 0u; i < 4u; i = i + 1u) {
        let r = 4u * ty + i;
        vis[i] = select(0u, min(step.pos + (row0 + r) / group + 1u, p.ctx), r < rows_here);
        m[i] = NEG_BIG;
        l[i] = 0.0;
        for (var n = 0u; n < NVO; n = n + 1u) { o[i * 4u + n] = vec4<f32>(0.0); }
    }

    for (var kb = 0u; kb < k_hi; kb = kb + BC) {
        // ---- S = Q K^T over HD, KC dims at a time ----
        var s: array<f32, 16>;
        for (var e = 0u; e < 16u; e = e + 1u) { s[e] = 0.0; }
        var pq: array<vec4<f32>, 4>;
        var pk: array<vec4<f32>, 4>;
        for (var d0 = 0u; d0 < HD4; d0 = d0 + KQ) {
            if (d0 == 0u) {
                // First chunk: load now (later chunks were prefetched below).
                for (var n = 0u; n < NQL; n = n + 1u) {
                    let e = lid + n * WG;
                    let r = e % BR;
                    let dq = e / BR;
                    var x = vec4<f32>(0.0);
                    if (e < BR * KQ && r < rows_here && dq < HD4) {
                        let gr = row0 + r;
                        let qrow = (gr / group) * p.n_heads + kvh * group + gr % group;
                        x = q[qrow * HD4 + dq] * p.scale;
                    }
                    pq[n] = x;
                }
                for (var n = 0u; n < NKL; n = n + 1u) {
                    let e = lid + n * WG;
                    let jj = e % BC;
                    let dq = e / BC;
                    var x = vec4<f32>(0.0);
                    if (e < BC * KQ && kb + jj < k_hi && dq < HD4) {
                        x = load_k((kb + jj) * slot_quads + kvh * HD4 + dq);
                    }
                    pk[n] = x;
                }
            }
            for (var n = 0u; n < NQL; n = n + 1u) {
                let e = lid + n * WG;
                if (e < BR * KQ) {
                    let r = e % BR;
                    let dq = e / BR;
                    let x = pq[n];
                    buf[(4u * dq) * BR4 + r / 4u][r % 4u] = x.x;
                    buf[(4u * dq + 1u) * BR4 + r / 4u][r % 4u] = x.y;
                    buf[(4u * dq + 2u) * BR4 + r / 4u][r % 4u] = x.z;
                    buf[(4u * dq + 3u) * BR4 + r / 4u][r % 4u] = x.w;
                }
            }
            for (var n = 0u; n < NKL; n = n + 1u) {
                let e = lid + n * WG;
                if (e < BC * KQ) {
                    let jj = e % BC;
                    let dq = e / BC;
                    let x = pk[n];
                    buf[ks + (4u * dq) * 16u + jj / 4u][jj % 4u] = x.x;
                    buf[ks + (4u * dq + 1u) * 16u + jj / 4u][jj % 4u] = x.y;
                    buf[ks + (4u * dq + 2u) * 16u + jj / 4u][jj % 4u] = x.z;
                    buf[ks + (4u * dq + 3u) * 16u + jj / 4u][jj % 4u] = x.w;
                }
            }
            workgroupBarrier();
            // Prefetch the next chunk into registers while this one is multiplied.
            let d1 = d0 + KQ;
            if (d1 < HD4) {
                for (var n = 0u; n < NQL; n = n + 1u) {
                    let e = lid + n * WG;
                    let r = e % BR;
                    let dq = d1 + e / BR;
                    var x = vec4<f32>(0.0);
                    if (e < BR * KQ && r < rows_here && dq < HD4) {
                        let gr = row0 + r;
                        let qrow = (gr / group) * p.n_heads + kvh * group + gr % group;
                        x = q[qrow * HD4 + dq] * p.scale;
                    }
                    pq[n] = x;
                }
                for (var n = 0u; n < NKL; n = n + 1u) {
                    let e = lid + n * WG;
                    let jj = e % BC;
                    let dq = d1 + e / BC;
                    var x = vec4<f32>(0.0);
                    if (e < BC * KQ && kb + jj < k_hi && dq < HD4) {
                        x = load_k((kb + jj) * slot_quads + kvh * HD4 + dq);
                    }
                    pk[n] = x;
                }
            }
            for (var k = 0u; k < KC; k = k + 1u) {
                let a = buf[k * BR4 + ty];
                let b = buf[ks + k * 16u + tx];
                s[0] = s[0] + a.x * b.x;
                s[1] = s[1] + a.x * b.y;
                s[2] = s[2] + a.x * b.z;
                s[3] = s[3] + a.x * b.w;
                s[4] = s[4] + a.y * b.x;
                s[5] = s[5] + a.y * b.y;
                s[6] = s[6] + a.y * b.z;
                s[7] = s[7] + a.y * b.w;
                s[8] = s[8] + a.z * b.x;
                s[9] = s[9] + a.z * b.y;
                s[10] = s[10] + a.z * b.z;
                s[11] = s[11] + a.z * b.w;
                s[12] = s[12] + a.w * b.x;
                s[13] = s[13] + a.w * b.y;
                s[14] = s[14] + a.w * b.z;
                s[15] = s[15] + a.w * b.w;
            }
            workgroupBarrier();
        }

        // ---- online softmax ----
        for (var i = 0u; i < 4u; i = i + 1u) {
            var mt = NEG_BIG;
            for (var jc = 0u; jc < 4u; jc = jc + 1u) {
                if (kb + 4u * tx + jc < vis[i]) { mt = max(mt, s[i * 4u + jc]); }
            }
            red_store(4u * ty + i, tx, mt);
        }
        workgroupBarrier();
        var pr: array<f32, 16>;
        for (var i = 0u; i < 4u; i = i + 1u) {
            let rbase = (4u * ty + i) * (TX / 4u);
            var mt = m[i];
            for (var k = 0u; k < TX / 4u; k = k + 1u) {
                let x = buf[rbase + k];
                mt = max(mt, max(max(x.x, x.y), max(x.z, x.w)));
            }
            let c = exp(m[i] - mt);
            var ls = 0.0;
            for (var jc = 0u; jc < 4u; jc = jc + 1u) {
                var pv = 0.0;
                if (kb + 4u * tx + jc < vis[i]) { pv = exp(s[i * 4u + jc] - mt); }
                pr[i * 4u + jc] = pv;
                ls = ls + pv;
            }
            l[i] = l[i] * c + ls;
            m[i] = mt;
            for (var n = 0u; n < NVO; n = n + 1u) { o[i * 4u + n] = o[i * 4u + n] * c; }
        }
        for (var jc = 0u; jc < 4u; jc = jc + 1u) {
            ps[ps_index(4u * tx + jc, ty)] = vec4<f32>(pr[jc], pr[4u + jc], pr[8u + jc], pr[12u + jc]);
        }

        // ---- O += P V, VC keys at a time ----
        var pv: array<vec4<f32>, 4>;
        for (var j0 = 0u; j0 < BC; j0 = j0 + VC) {
            if (kb + j0 >= k_hi) { break; }
            if (j0 == 0u) {
                for (var n = 0u; n < NVL; n = n + 1u) {
                    let e = lid + n * WG;
                    let jj = e / HD4;
                    var x = vec4<f32>(0.0);
                    if (e < VC * HD4 && kb + jj < k_hi) {
                        x = load_v((kb + jj) * slot_quads + kvh * HD4 + e % HD4);
                    }
                    pv[n] = x;
                }
            }
            workgroupBarrier();  // the row partials / previous chunk are read; ps is written
            for (var n = 0u; n < NVL; n = n + 1u) {
                let e = lid + n * WG;
                if (e < VC * HD4) { buf[e] = pv[n]; }
            }
            workgroupBarrier();
            let j1 = j0 + VC;
            if (j1 < BC && kb + j1 < k_hi) {
                for (var n = 0u; n < NVL; n = n + 1u) {
                    let e = lid + n * WG;
                    let jj = j1 + e / HD4;
                    var x = vec4<f32>(0.0);
                    if (e < VC * HD4 && kb + jj < k_hi) {
                        x = load_v((kb + jj) * slot_quads + kvh * HD4 + e % HD4);
                    }
                    pv[n] = x;
                }
            }
            for (var jj = 0u; jj < VC; jj = jj + 1u) {
                let a = ps[ps_index(j0 + jj, ty)];
                for (var n = 0u; n < NVO; n = n + 1u) {
                    let u = tx + TX * n;
                    if (u < HD4) {
                        let b = buf[jj * HD4 + u];
                        o[n] = o[n] + a.x * b;
                        o[4u + n] = o[4u + n] + a.y * b;
                        o[8u + n] = o[8u + n] + a.z * b;
                        o[12u + n] = o[12u + n] + a.w * b;
                    }
                }
            }
        }
        workgroupBarrier();  // buf and ps are free for the next tile
    }

    // Row sums across the 16 invocations of each row, then the normalised output.
    for (var i = 0u; i < 4u; i = i + 1u) { red_store(4u * ty + i, tx, l[i]); }
    workgroupBarrier();
    for (var i = 0u; i < 4u; i = i + 1u) {
        let r = 4u * ty + i;
        let rbase = r * (TX / 4u);
        var lt = 0.0;
        for (var k = 0u; k < TX / 4u; k = k + 1u) {
            let x = buf[rbase + k];
            lt = lt + ((x.x + x.y) + (x.z + x.w));
        }
        if (r < rows_here) {
            let gr = row0 + r;
            let row = (gr / group) * p.n_heads + kvh * group + gr % group;
            for (var n = 0u; n < NVO; n = n + 1u) {
                let u = tx + TX * n;
                if (u < HD4) { out[row * HD4 + u] = o[i * 4u + n] / lt; }
            }
        }
    }
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
