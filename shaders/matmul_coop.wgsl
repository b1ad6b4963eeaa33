enable f16;
enable wgpu_cooperative_matrix;

// Linear layers on tensor cores: y[T, N] = x[T, K] W[N, K]^T (+ y with ACC), with
// cooperative matrices (16x16x16, f16 inputs, f32 accumulation). Needs the device features
// SHADER_F16, SUBGROUP and EXPERIMENTAL_COOPERATIVE_MATRIX, a fixed subgroup size SG, and
// k % 16 == 0. Inexact by design: x and W are rounded to f16 before the products (relative
// error ~1e-3 of sum |x||w|); the sums are f32.
//
// A workgroup computes a BT x BN tile of y (tokens x weight rows), stepping through k BK at a
// time. Each step stages x (f32 or f16 -> f16) and W (decoded with quant.wgsl's helpers, the
// same f32 operations as `w16`, -> f16; Q4_K and Q6_K in f16) in workgroup memory,
// double-buffered with one barrier per step (or, STAGES = 1, single-buffered with two). With
// DEPTH 1 (the default) each lane loads the raw words of its share of step s + 1 right after
// the barrier that ends step s - 1, carries them across the loop's back edge, and decodes and
// stores them after the multiplications of step s, so the loads' latency overlaps a whole
// step of multiplications: the compiler cannot sink the loads past the back edge (with
// DEPTH 0, loads issued at the top of the same step, the H100 ran about as if staging and
// multiplications took turns; DEPTH 1 measured 1.2-1.5x faster). The
// workgroup's SG_T x SG_N subgroups each own TM x TN accumulator tiles of 16 x 16 (f32) and,
// per 16 of k, load TM A tiles (x, row-major) and TN B tiles (W^T: W's rows are B's columns,
// so column-major). x may be f16 already (XH): then a lane's 16-byte load is 8 values, stored
// unchanged (half the bytes of f32 x; 5-15% faster on the H100 with quantised weights).
//
// Workgroup memory holds vec4<f16> (8-byte stores); cooperative loads from it count their
// offset and stride in vec4s (SPV_KHR_cooperative_matrix: in elements of the pointed-to type),
// checked on the H100 to give bit-identical results to an f16 array.
//
// Output: tiles wholly inside y are stored straight from the accumulators; a workgroup whose
// tile crosses T or N passes each 16 x 16 tile through workgroup memory (PARK subgroups at a
// time) and stores only the elements inside.
//
// With NW > 1 one dispatch does up to three GEMMs sharing x (q, k, v or gate, up: weights of
// one type and K): the grid's tile columns are weight 0's, then weight 1's, then weight 2's,
// each workgroup's in one weight, and it writes that weight's own output.
//
// With GLU (NW = 2: w the gate, w1 the up weight) a workgroup's BN rows are BN / 2 gate rows
// and the same BN / 2 up rows, and it writes silu(gate) * up rounded to f16 for those BN / 2
// features to y16 (SwiGLU's activation, the down projection's f16 input) instead of two f32
// outputs: the f32 gate and up tensors and the silu_mul dispatch that read them are gone.
// Each lane's first staged weight chunk is a gate row, its second an up row (W_PER = 2 and
// WN = 2 WG, checked by the host), and subgroups of the first SG_N / 2 columns own gate
// tiles, the others the matching up tiles; the output passes through `cs` as at the edges.

struct Params {
    n: u32,    // rows of weight 0 = output features of y
    k: u32,    // row length = input features, a multiple of 16 (every weight)
    t: u32,    // tokens
    nb: u32,   // blocks in the whole of weight 0 (n * k / block size), for the repacked layouts
    n1: u32,   // NW > 1: rows of weights 1 and 2 (outputs y1, y2)
    n2: u32,
    nb1: u32,  // their blocks
    nb2: u32,
    c1: u32,   // first tile column of weight 1, and of weight 2 (ceil(n / BN), + ceil(n1 / BN));
    c2: u32,   // dequant_f16: first 16-value chunk of weight 1, and of weight 2
    cols: u32, // tile columns of the whole dispatch (dequant_f16: chunks)
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w: array<vec4<u32>>;   // [n, k] weight, GPU layout of DT
@group(0) @binding(2) var<storage, read> x: array<vec4<u32>>;   // [t, k]: f32, or f16 pairs with XH
@group(0) @binding(3) var<storage, read_write> y: array<f32>;   // [t, n]
// NW > 1 (q/k/v or gate/up in one dispatch): weights 1 and 2, [n1, k] and [n2, k] of the same
// type, and their outputs [t, n1], [t, n2]; bound to w and y again where unused.
@group(0) @binding(4) var<storage, read> w1: array<vec4<u32>>;
@group(0) @binding(5) var<storage, read> w2: array<vec4<u32>>;
@group(0) @binding(6) var<storage, read_write> y1: array<f32>;
@group(0) @binding(7) var<storage, read_write> y2: array<f32>;
// GLU: [t, n] f16 (two per word), silu(x w^T) * (x w1^T); bound to y again where unused.
@group(0) @binding(8) var<storage, read_write> y16: array<u32>;

// dequant_f16: weights 0, 1, 2 decoded to f16 [n, k], [n1, k], [n2, k] (two per word, 16
// bytes a vec4: the F16 weight layout); bound to one buffer again where unused.
@group(0) @binding(9) var<storage, read_write> d0: array<vec4<u32>>;
@group(0) @binding(10) var<storage, read_write> d1: array<vec4<u32>>;
@group(0) @binding(11) var<storage, read_write> d2: array<vec4<u32>>;

// Weights (and outputs) in this dispatch, 1..=3. Each workgroup's tile columns lie in one
// weight (its *region*; each weight's columns start a new tile), so the region is uniform per
// workgroup: one dispatch runs several GEMMs sharing x, filling the GPU where each alone
// would leave SMs idle (TinyLlama's k and v: 32 workgroups) or end in a part-filled wave.
override NW: u32 = 1u;

override ACC: bool = false;
override GLU: bool = false;
// x holds f16 values (two per word, as `Elem::F16`) rather than f32: staging x is then a
// straight copy of 8 values per 16-byte load, half the bytes of f32.
override XH: bool = false;
// How the staging loads are pipelined. 1: each step's raw words are loaded right after the
// previous step's barrier and carried across the loop's back edge, then decoded and stored
// after this step's multiplications. 0 (the first version, kept for comparison): loaded and
// decoded at the top of the previous step, which leaves the compiler free to sink the loads
// to their use after the multiplications; measured on the H100 (2026-11-23, T = 512), depth 1
// ran 1.2-1.5x faster on the large shapes. (A depth of 2, two sets of raw words in flight,
// measured no better than 0 with two buffers of bk 32, and 13-16% below depth 1 with one
// buffer of bk 64: benches/results/2026-11-24-h100-s9/depth2/.)
override DEPTH: u32 = 1u;
override SG: u32 = 32u;     // lanes per subgroup (the device's fixed subgroup size)
override SG_T: u32 = 2u;    // subgroups along tokens
override SG_N: u32 = 2u;    // subgroups along weight rows
override TM: u32 = 2u;      // 16-token tiles per subgroup, 1..=MAX_TM
override TN: u32 = 4u;      // 16-row tiles per subgroup, 1..=MAX_TN
override BK: u32 = 32u;     // k per step, a multiple of 16

const MAX_TM: u32 = 4u;
const MAX_TN: u32 = 4u;

override SUBGROUPS: u32 = SG_T * SG_N;
override WG: u32 = SG * SUBGROUPS;
override BT: u32 = 16u * TM * SG_T;   // tokens per workgroup tile
override BN: u32 = 16u * TN * SG_N;   // weight rows per workgroup tile
// Staging buffers in workgroup memory. 2: double-buffered, one barrier per step (step s + 1
// is stored to the idle buffer while others may still read step s). 1: one buffer and two
// barriers per step (all reads of step s end before step s + 1 is stored), which halves the
// workgroup memory a tile needs, so a tile can take BK = 64 (twice the k, and twice the
// multiplications, per step and per round trip of the staging loads) within 48 KiB.
override STAGES: u32 = 2u;
// Row stride of the staged tiles in f16: 8 spare values stagger rows over the banks and keep
// each row 16-byte aligned.
override LDS: u32 = BK + 8u;

// Workgroup array lengths, in elements (named: naga 30's pipeline-constant pass panics on an
// array length that is an unnamed override expression).
override XS_LEN: u32 = STAGES * BT * LDS / 4u;
override WS_LEN: u32 = STAGES * BN * LDS / 4u;
// Output tiles parked at once in cs by an edge workgroup (at most 4: 4 KiB; GLU 8).
// GLU parks 8 (8 KiB: every tile of LARGE's 8 subgroups in one round, half the rounds and
// barriers of its epilogue; 44 KiB in all with LARGE's staging).
override PARK_MAX: u32 = select(4u, 8u, GLU);
override PARK: u32 = select(SUBGROUPS, PARK_MAX, SUBGROUPS > PARK_MAX);
override CS_LEN: u32 = PARK * 256u;

var<workgroup> xs: array<vec4<f16>, XS_LEN>;    // STAGES x [BT][LDS] tokens, f16
var<workgroup> ws: array<vec4<f16>, WS_LEN>;    // STAGES x [BN][LDS] weight rows, f16
var<workgroup> cs: array<f32, CS_LEN>;   // PARK output tiles of 16 x 16

// This workgroup's region's rows and blocks (set once at the entry). The region itself (which
// weight) is a parameter `rg` of the functions below.
var<private> rn: u32;
var<private> rnb: u32;

// With NW > 1: the entry calls `gemm` with the region as a literal, one call per region, so
// that the driver, inlining, compiles one loop per weight with no branch in its loads. On the
// H100 (TinyLlama, T = 512) that made the fused F16 GEMMs 10% faster (138 -> 125 us a call)
// and the fused Q4_K ones 6% slower (146 -> 155): the host sets it for float weights.
override SPLIT: bool = false;

// Word group i of this region's weight (the branch is uniform per workgroup; with NW = 1 it
// folds away).
fn wv(rg: u32, i: u32) -> vec4<u32> {
    if (NW > 1u && rg == 1u) { return w1[i]; }
    if (NW > 2u && rg == 2u) { return w2[i]; }
    return w[i];
}
// Word i of this region's weight, loaded alone: indexing the vec4 that `wv` returns loads
// all 16 bytes and picks a component at run time, which made the Q6_K GEMMs 20-25% slower
// on the H100 (their scale words come this way).
fn wword(rg: u32, i: u32) -> u32 {
    if (NW > 1u && rg == 1u) { return w1[i >> 2u][i & 3u]; }
    if (NW > 2u && rg == 2u) { return w2[i >> 2u][i & 3u]; }
    return w[i >> 2u][i & 3u];
}

// Element `at` of this region's output (row stride rn), set or (ACC, NW = 1) added to.
fn y_put(rg: u32, at: u32, v: f32) {
    if (NW > 1u && rg == 1u) {
        y1[at] = v;
    } else if (NW > 2u && rg == 2u) {
        y2[at] = v;
    } else if (ACC) {
        y[at] = y[at] + v;
    } else {
        y[at] = v;
    }
}

// A lane's share of a step: W_PER weight chunks (16 values of a row) and X_PER x units (one
// 16-byte load: 4 values of f32 x, 8 of f16 x).
override XV: u32 = select(4u, 8u, XH);        // x values per unit
override WN: u32 = BN * (BK / 16u);           // weight chunks per step
override XN: u32 = BT * (BK / XV);            // x units per step
override W_PER: u32 = (WN + WG - 1u) / WG;    // <= 2
override X_PER: u32 = (XN + WG - 1u) / WG;    // <= 8

alias H16 = array<vec4<f16>, 4>;

// The words of one weight chunk as loaded: per type, a and b (and c, d) hold quant or float
// words, c.x and c.y scale or high-bit words. Unused fields cost no registers.
struct WRaw {
    a: vec4<u32>,
    b: vec4<u32>,
    c: vec4<u32>,
    d: vec4<u32>,
}

// A lane's share of one step as loaded.
struct Raw {
    w0: WRaw, w1: WRaw,
    x0: vec4<u32>, x1: vec4<u32>, x2: vec4<u32>, x3: vec4<u32>,
    x4: vec4<u32>, x5: vec4<u32>, x6: vec4<u32>, x7: vec4<u32>,
}

// One x unit in f16: lo (f32 x: its 4 values; f16 x: the first 4) and hi (f16 x: the last 4).
struct XH8 {
    lo: vec4<f16>,
    hi: vec4<f16>,
}

// A lane's share of one step, decoded to f16, ready to store.
struct Staged {
    w0: H16, w1: H16,
    x0: XH8, x1: XH8, x2: XH8, x3: XH8, x4: XH8, x5: XH8, x6: XH8, x7: XH8,
}

// The two f16 halves of a word (naga 30 types bitcast<vec2<f16>>(u32) as a scalar, so through
// unpack2x16float: exact both ways).
fn halves(v: u32) -> vec2<f16> {
    return vec2<f16>(unpack2x16float(v));
}

fn f16x4(a: u32, b: u32) -> vec4<f16> {
    return vec4<f16>(halves(a), halves(b));
}

fn h16(v: Chunk) -> H16 {
    return H16(vec4<f16>(v[0]), vec4<f16>(v[1]), vec4<f16>(v[2]), vec4<f16>(v[3]));
}

// Row and chunk of weight chunk i of the step at k0. Without branches: rows past n re-read
// row n - 1 (outputs never stored) and chunks past the row its last chunk (finite values
// that meet x's zeros there).
fn w_row(i: u32, n0: u32) -> u32 {
    if (GLU) {
        // Chunks [0, WG) are gate rows n0.., chunks [WG, 2 WG) the same up rows.
        return min(n0 + (i / (BK / 16u)) % (BN / 2u), rn - 1u);
    }
    return min(n0 + i / (BK / 16u), rn - 1u);
}
fn w_col(i: u32, k0: u32) -> u32 {
    return min(k0 / 16u + i % (BK / 16u), p.k / 16u - 1u);
}

// The loads of chunk c (16 values) of row r: the addressing of quant.wgsl's `w16`.
fn w_raw(rg: u32, r: u32, c: u32) -> WRaw {
    var o: WRaw;
    switch (DT) {
        case DT_F16, DT_BF16: {
            let g = (r * p.k + 16u * c) >> 3u;
            o.a = wv(rg, g);
            o.b = wv(rg, g + 1u);
        }
        case DT_Q8_0, DT_Q4_0, DT_Q5_0: {
            let b = r * (p.k / 32u) + c / 2u;
            if (DT == DT_Q8_0) {
                o.a = wv(rg, 2u * b + c % 2u);
                o.c.x = wword(rg, 8u * rnb + (b >> 1u));
            } else if (DT == DT_Q4_0) {
                o.a = wv(rg, b);
                o.c.x = wword(rg, 4u * rnb + (b >> 1u));
            } else {
                o.a = wv(rg, b);
                o.c.x = wword(rg, 5u * rnb + (b >> 1u));
                o.c.y = wword(rg, 4u * rnb + b);
            }
        }
        case DT_Q4_K, DT_Q5_K, DT_Q6_K: {
            let b = r * (p.k / 256u) + c / 16u;
            let j = c % 16u;
            if (DT == DT_Q4_K) {
                let base = 9u * b;
                o.a = wv(rg, base);
                o.b = wv(rg, base + 1u + 2u * (j / 4u) + j % 2u);
            } else if (DT == DT_Q5_K) {
                let base = 11u * b;
                o.a = wv(rg, base);
                o.b = wv(rg, base + 3u + 2u * (j / 4u) + j % 2u);
                o.c = wv(rg, base + 1u + j % 2u);
            } else {
                let base = 13u * b;
                let h = j / 8u;
                let rr = (j % 8u) / 2u;
                let l16 = j % 2u;
                o.a = wv(rg, base + 4u * h + 2u * (rr % 2u) + l16);
                o.b = wv(rg, base + 8u + 2u * h + l16);
                o.c.x = wword(rg, 4u * (base + 12u) + (8u * h + l16 + 2u * rr) / 4u);
                o.c.y = wword(rg, 52u * rnb + (b >> 1u));
            }
        }
        default: {  // F32
            let g = (r * p.k + 16u * c) >> 2u;
            o.a = wv(rg, g);
            o.b = wv(rg, g + 1u);
            o.c = wv(rg, g + 2u);
            o.d = wv(rg, g + 3u);
        }
    }
    return o;
}

// Q4_K and Q6_K chunks are decoded in f16: each 4- or 6-bit q becomes the f16 1024 + q by its
// bits (no integer-to-float conversion) and 1024 (Q6_K: 1024 + 32) is subtracted exactly. The
// block's factors stay exact (d and dmin are f16, the sub-block scales small integers), so
// every rounding is the value's own: Q4_K d * (sc * q) (sc * q exact) then - dmin * m in one
// fma; Q6_K ((q - 32) * d) * sc. On the H100 (T = 512, the models' GEMMs a layer) this ran
// 10% (Llama-2-7B Q4_K: 1591 -> 1426 us) and 9% (Q6_K: 1573 -> 1430) faster than `w16`'s f32
// operations with their conversions to and from f16 (benches/results/2026-11-24-h100-s9/
// depth2/ -> dq-exact-factors/). It is less exact: d * (sc * q) is rounded before dmin * m
// is taken off, so its rounding scales with the larger term; the golden Q4_K_M models' prompt
// logits on this path moved by up to 7.2e-2 (mean 9.2e-3) against 6.0e-2 (5.4e-3) with the
// f32 operations (bound 1e-1). Rounding d * sc and dmin * m to f16 first, one shared error per
// sub-block, was worse: 8.1e-2 (1.15e-2) (dq/).

// The four bytes of `b` (each < 1024) as the f16 values 1024 + byte, in byte order.
fn bytes_h4(b: u32) -> vec4<f16> {
    let even = halves((b & 0x00FF00FFu) | 0x64006400u);          // bytes 0, 2
    let odd = halves(((b >> 8u) & 0x00FF00FFu) | 0x64006400u);   // bytes 1, 3
    return vec4<f16>(even.x, odd.x, even.y, odd.y);
}

// Q4_K chunk j of a block (kq45_chunk's layout): d * (sc * q) - dmin * m.
fn q4k_h16(hdr: vec4<u32>, q: vec4<u32>, j: u32) -> H16 {
    let dm = vec2<f16>(unpack2x16float(hdr.x));
    let sm = vec2<f16>(kq_scale_min(hdr.yzw, 2u * (j / 4u) + (j / 2u) % 2u));
    let d = vec4<f16>(dm.x);
    let dmin = vec4<f16>(-dm.y);
    let sc = vec4<f16>(sm.x);
    let m = vec4<f16>(sm.y);
    let o = vec4<f16>(1024.0h);
    let sh = 4u * ((j / 2u) % 2u);
    return H16(fma(dmin, m, d * ((bytes_h4((q.x >> sh) & 0x0F0F0F0Fu) - o) * sc)),
               fma(dmin, m, d * ((bytes_h4((q.y >> sh) & 0x0F0F0F0Fu) - o) * sc)),
               fma(dmin, m, d * ((bytes_h4((q.z >> sh) & 0x0F0F0F0Fu) - o) * sc)),
               fma(dmin, m, d * ((bytes_h4((q.w >> sh) & 0x0F0F0F0Fu) - o) * sc)));
}

// Four 6-bit Q6_K values, one per byte: low nibbles `lo_sh` of ql's bytes, top bits `hi_sh`
// of qh's.
fn q6k_bytes(ql: u32, qh: u32, lo_sh: u32, hi_sh: u32) -> u32 {
    return ((ql >> lo_sh) & 0x0F0F0F0Fu) | (((qh >> hi_sh) & 0x03030303u) << 4u);
}

// Q6_K chunk c of row r (q6_k_chunk's layout): ((q - 32) * d) * sc.
fn q6k_h16(o: WRaw, r: u32, c: u32) -> H16 {
    let b = r * (p.k / 256u) + c / 16u;
    let j = c % 16u;
    let h = j / 8u;
    let rr = (j % 8u) / 2u;
    let si = 8u * h + j % 2u + 2u * rr;
    let sc = vec4<f16>(f16(extractBits(bitcast<i32>(o.c.x), (si % 4u) * 8u, 8u)));
    let d = vec4<f16>(f16(unpack2x16float(o.c.y)[b & 1u]));
    let off = vec4<f16>(1056.0h);   // 1024 + 32
    let lo_sh = 4u * (rr / 2u);
    let hi_sh = 2u * rr;
    return H16((bytes_h4(q6k_bytes(o.a.x, o.b.x, lo_sh, hi_sh)) - off) * d * sc,
               (bytes_h4(q6k_bytes(o.a.y, o.b.y, lo_sh, hi_sh)) - off) * d * sc,
               (bytes_h4(q6k_bytes(o.a.z, o.b.z, lo_sh, hi_sh)) - off) * d * sc,
               (bytes_h4(q6k_bytes(o.a.w, o.b.w, lo_sh, hi_sh)) - off) * d * sc);
}

// Decodes chunk c of row r from its loads with quant.wgsl's helpers and the same f32
// operations as `w16` (so the values are those of every other kernel), then rounds to f16;
// Q4_K and Q6_K in f16 (q4k_h16, q6k_h16).
fn w_decode(o: WRaw, r: u32, c: u32) -> H16 {
    switch (DT) {
        case DT_F16: {
            return H16(f16x4(o.a.x, o.a.y), f16x4(o.a.z, o.a.w), f16x4(o.b.x, o.b.y), f16x4(o.b.z, o.b.w));
        }
        case DT_BF16: {
            return h16(Chunk(vec4<f32>(bf16x2(o.a.x), bf16x2(o.a.y)), vec4<f32>(bf16x2(o.a.z), bf16x2(o.a.w)),
                             vec4<f32>(bf16x2(o.b.x), bf16x2(o.b.y)), vec4<f32>(bf16x2(o.b.z), bf16x2(o.b.w))));
        }
        case DT_Q8_0, DT_Q4_0, DT_Q5_0: {
            let b = r * (p.k / 32u) + c / 2u;
            let j = c % 2u;
            let d = unpack2x16float(o.c.x)[b & 1u];
            let q = o.a;
            if (DT == DT_Q8_0) {
                return h16(Chunk(i8x4(q.x) * d, i8x4(q.y) * d, i8x4(q.z) * d, i8x4(q.w) * d));
            }
            let sh = 4u * j;
            if (DT == DT_Q4_0) {
                return h16(Chunk((vec4<f32>(nib4(q.x, sh)) - 8.0) * d, (vec4<f32>(nib4(q.y, sh)) - 8.0) * d,
                                 (vec4<f32>(nib4(q.z, sh)) - 8.0) * d, (vec4<f32>(nib4(q.w, sh)) - 8.0) * d));
            }
            let qh = o.c.y >> (16u * j);
            return h16(Chunk(q5_0_4(q.x, qh, sh, d), q5_0_4(q.y, qh >> 4u, sh, d),
                             q5_0_4(q.z, qh >> 8u, sh, d), q5_0_4(q.w, qh >> 12u, sh, d)));
        }
        case DT_Q4_K: {
            return q4k_h16(o.a, o.b, c % 16u);
        }
        case DT_Q5_K: {
            return h16(kq45_chunk(o.a, o.b, o.c, true, c % 16u));
        }
        case DT_Q6_K: {
            return q6k_h16(o, r, c);
        }
        default: {  // F32
            return h16(Chunk(bitcast<vec4<f32>>(o.a), bitcast<vec4<f32>>(o.b), bitcast<vec4<f32>>(o.c),
                             bitcast<vec4<f32>>(o.d)));
        }
    }
}

// Token row and first k of x unit i of the step at k0; tokens past t re-read token t - 1
// (outputs never stored).
fn x_row(i: u32, t0: u32) -> u32 {
    return min(t0 + i / (BK / XV), p.t - 1u);
}
fn x_col(i: u32, k0: u32) -> u32 {
    return k0 + XV * (i % (BK / XV));
}

// x unit i of the step at k0 as loaded (units past the row re-read its last unit).
fn x_raw(i: u32, k0: u32, t0: u32) -> vec4<u32> {
    let at = x_row(i, t0) * p.k + min(x_col(i, k0), p.k - XV);
    return x[at / XV];
}

// x unit i in f16, zeros past the row. (naga 30 mistypes bitcast<vec4<f16>>(vec2<u32>),
// so f16 x goes through unpack2x16float, exact both ways.)
fn x_decode(v: vec4<u32>, i: u32, k0: u32) -> XH8 {
    let inside = x_col(i, k0) < p.k;
    if (XH) {
        return XH8(select(vec4<f16>(0.0h), f16x4(v.x, v.y), inside),
                   select(vec4<f16>(0.0h), f16x4(v.z, v.w), inside));
    }
    // Saturate at f16's largest finite value: an activation beyond it would become inf and
    // turn the whole output row to inf / NaN; saturated, it is only inexact (it is anyway).
    let xf = clamp(bitcast<vec4<f32>>(v), vec4<f32>(-65504.0), vec4<f32>(65504.0));
    return XH8(select(vec4<f16>(0.0h), vec4<f16>(xf), inside), vec4<f16>(0.0h));
}

fn fetch(rg: u32, k0: u32, t0: u32, n0: u32, lid: u32) -> Raw {
    var s: Raw;
    s.w0 = w_raw(rg, w_row(lid, n0), w_col(lid, k0));
    if (GLU) {
        s.w1 = w_raw(1u, w_row(lid + WG, n0), w_col(lid + WG, k0));
    } else if (W_PER > 1u) { s.w1 = w_raw(rg, w_row(lid + WG, n0), w_col(lid + WG, k0)); }
    s.x0 = x_raw(lid, k0, t0);
    if (X_PER > 1u) { s.x1 = x_raw(lid + WG, k0, t0); }
    if (X_PER > 2u) { s.x2 = x_raw(lid + 2u * WG, k0, t0); }
    if (X_PER > 3u) { s.x3 = x_raw(lid + 3u * WG, k0, t0); }
    if (X_PER > 4u) { s.x4 = x_raw(lid + 4u * WG, k0, t0); }
    if (X_PER > 5u) { s.x5 = x_raw(lid + 5u * WG, k0, t0); }
    if (X_PER > 6u) { s.x6 = x_raw(lid + 6u * WG, k0, t0); }
    if (X_PER > 7u) { s.x7 = x_raw(lid + 7u * WG, k0, t0); }
    return s;
}

fn decode(r: Raw, k0: u32, n0: u32, lid: u32) -> Staged {
    var s: Staged;
    s.w0 = w_decode(r.w0, w_row(lid, n0), w_col(lid, k0));
    if (W_PER > 1u) { s.w1 = w_decode(r.w1, w_row(lid + WG, n0), w_col(lid + WG, k0)); }
    s.x0 = x_decode(r.x0, lid, k0);
    if (X_PER > 1u) { s.x1 = x_decode(r.x1, lid + WG, k0); }
    if (X_PER > 2u) { s.x2 = x_decode(r.x2, lid + 2u * WG, k0); }
    if (X_PER > 3u) { s.x3 = x_decode(r.x3, lid + 3u * WG, k0); }
    if (X_PER > 4u) { s.x4 = x_decode(r.x4, lid + 4u * WG, k0); }
    if (X_PER > 5u) { s.x5 = x_decode(r.x5, lid + 5u * WG, k0); }
    if (X_PER > 6u) { s.x6 = x_decode(r.x6, lid + 6u * WG, k0); }
    if (X_PER > 7u) { s.x7 = x_decode(r.x7, lid + 7u * WG, k0); }
    return s;
}

fn put_w(buf: u32, i: u32, v: H16) {
    if (i < WN) {
        let at = (buf * BN * LDS + (i / (BK / 16u)) * LDS + 16u * (i % (BK / 16u))) / 4u;
        ws[at] = v[0];
        ws[at + 1u] = v[1];
        ws[at + 2u] = v[2];
        ws[at + 3u] = v[3];
    }
}

fn put_x(buf: u32, i: u32, v: XH8) {
    if (i < XN) {
        let at = (buf * BT * LDS + (i / (BK / XV)) * LDS + XV * (i % (BK / XV))) / 4u;
        xs[at] = v.lo;
        if (XH) { xs[at + 1u] = v.hi; }
    }
}

fn put(buf: u32, s: Staged, lid: u32) {
    put_w(buf, lid, s.w0);
    if (W_PER > 1u) { put_w(buf, lid + WG, s.w1); }
    put_x(buf, lid, s.x0);
    if (X_PER > 1u) { put_x(buf, lid + WG, s.x1); }
    if (X_PER > 2u) { put_x(buf, lid + 2u * WG, s.x2); }
    if (X_PER > 3u) { put_x(buf, lid + 3u * WG, s.x3); }
    if (X_PER > 4u) { put_x(buf, lid + 4u * WG, s.x4); }
    if (X_PER > 5u) { put_x(buf, lid + 5u * WG, s.x5); }
    if (X_PER > 6u) { put_x(buf, lid + 6u * WG, s.x6); }
    if (X_PER > 7u) { put_x(buf, lid + 7u * WG, s.x7); }
}

// One output tile of a subgroup, wholly inside y, at token t and row n.
fn out_full(rg: u32, c: coop_mat16x16<f32, C>, t: u32, n: u32) {
    let at = t * rn + n;
    let stride = rn;
    var v = c;
    if (ACC) {
        v = v + coopLoadT<coop_mat16x16<f32, C>>(&y[at], stride);
    }
    // coopStore's operands are all named values: naga 30 emits a coopStore statement before
    // the expressions of its arguments, so unnamed argument expressions fail in its SPIR-V
    // backend ("Expression is not cached").
    let vv = v;
    if (NW > 1u && rg == 1u) {
        coopStoreT(vv, &y1[at], stride);
    } else if (NW > 2u && rg == 2u) {
        coopStoreT(vv, &y2[at], stride);
    } else {
        coopStoreT(vv, &y[at], stride);
    }
}

// Tile (i, j) of every subgroup of a workgroup whose tile crosses t or n, PARK subgroups at
// a time: each parks its tile in cs, then the whole workgroup stores the parked elements that
// lie inside y. Called by all subgroups alike (it has barriers).
fn out_edge(rg: u32, c: coop_mat16x16<f32, C>, i: u32, j: u32, t0: u32, n0: u32, sg: u32, lid: u32) {
    for (var r = 0u; r < SUBGROUPS; r = r + PARK) {
        park(c, r, sg);
        for (var e = lid; e < PARK * 256u; e = e + WG) {
            let at = parked_at(e, r, i, j, t0, n0);
            if ((r + e / 256u < SUBGROUPS) & (at.x < p.t) & (at.y < rn)) {
                y_put(rg, at.x * rn + at.y, cs[e]);
            }
        }
        workgroupBarrier();
    }
}

// GLU: tile (i, j) of every subgroup, PARK subgroups at a time (PARK a multiple of SG_N, so a
// gate tile and its up tile are parked together); the lanes then write silu(gate) * up for
// the parked gate tiles' elements inside y16, two features a lane. All subgroups call it.
fn out_glu(c: coop_mat16x16<f32, C>, i: u32, j: u32, t0: u32, n0: u32, sg: u32, lid: u32) {
    let half = SG_N / 2u;
    for (var r = 0u; r < SUBGROUPS; r = r + PARK) {
        park(c, r, sg);
        for (var e2 = lid; e2 < PARK * 128u; e2 = e2 + WG) {
            let e = 2u * e2;
            let slot = e / 256u;
            let at = parked_at(e, r, i, j, t0, n0);
            if ((r + slot < SUBGROUPS) & ((r + slot) % SG_N < half) & (at.x < p.t) & (at.y < rn)) {
                let up = (slot + half) * 256u + e % 256u;
                let gate = vec2<f32>(cs[e], cs[e + 1u]);
                let v = vec2<f32>(silu(gate.x), silu(gate.y)) * vec2<f32>(cs[up], cs[up + 1u]);
                y16[(at.x * rn + at.y) / 2u] = f16_pair(v);
            }
        }
        workgroupBarrier();
    }
}

// Round r of parking an output tile: subgroups r .. r + PARK - 1 store theirs to cs (16 x 16
// each, in subgroup order), then the workgroup's barrier. Called by all subgroups alike.
fn park(c: coop_mat16x16<f32, C>, r: u32, sg: u32) {
    if ((sg >= r) & (sg < r + PARK)) {
        let at = (sg - r) * 256u;
        coopStoreT(c, &cs[at], 16u);
    }
    workgroupBarrier();
}

// Token and weight row of parked element e in round r of tile (i, j).
fn parked_at(e: u32, r: u32, i: u32, j: u32, t0: u32, n0: u32) -> vec2<u32> {
    let g = r + e / 256u;
    return vec2<u32>(t0 + 16u * ((g / SG_N) * TM + i) + (e % 256u) / 16u,
                     n0 + 16u * ((g % SG_N) * TN + j) + e % 16u);
}

@compute @workgroup_size(WG)
fn matmul_coop(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32, @builtin(subgroup_id) sg: u32) {
    let tiles_t = (p.t + BT - 1u) / BT;
    let tile = wid.x + wid.y * nwg.x;
    if (tile >= tiles_t * p.cols) { return; }
    // Token tiles vary fastest, so neighbouring workgroups share a weight tile in cache.
    let t0 = (tile % tiles_t) * BT;
    let col = tile / tiles_t;
    // The region (which weight) and the tile's first row in its weight.
    let region = region_of(col);
    let rg = region.x;
    let n0 = (col - region.y) * select(BN, BN / 2u, GLU);
    if (GLU) {
        // One region: weight 0 a literal, so that its loads carry no branch.
        gemm(0u, t0, n0, lid, sg);
    } else if (SPLIT && NW > 1u) {
        // One `gemm` per region, the region a literal in each call.
        if (rg == 2u) {
            gemm(2u, t0, n0, lid, sg);
        } else if (rg == 1u) {
            gemm(1u, t0, n0, lid, sg);
        } else {
            gemm(0u, t0, n0, lid, sg);
        }
    } else {
        gemm(rg, t0, n0, lid, sg);
    }
}

// The region (which weight, 0..NW) of grid position `at` (a tile column; in dequant_f16 a
// chunk) and its first position (p.c1 and p.c2 start regions 1 and 2); sets rn and rnb to its
// rows and blocks.
fn region_of(at: u32) -> vec2<u32> {
    if (NW > 2u && at >= p.c2) {
        rn = p.n2;
        rnb = p.nb2;
        return vec2<u32>(2u, p.c2);
    }
    if (NW > 1u && at >= p.c1) {
        rn = p.n1;
        rnb = p.nb1;
        return vec2<u32>(1u, p.c1);
    }
    rn = p.n;
    rnb = p.nb;
    return vec2<u32>(0u, 0u);
}

// The workgroup's tile, tokens t0.., rows n0.. of region rg's weight.
// The TM x TN accumulators, A and B tiles are separate variables, not arrays, and every use
// is spelled out under conditions on the override constants (folded when the pipeline is
// built), so the driver keeps them in registers: as arrays indexed in loops (naga cannot mark
// loops for unrolling) the kernel was several times slower on the H100.
fn gemm(rg: u32, t0: u32, n0: u32, lid: u32, sg: u32) {
    // This subgroup's tiles: tokens 16 (st TM + i), rows 16 (sn TN + j) of the workgroup tile.
    let st = sg / SG_N;
    let sn = sg % SG_N;

    // Accumulators c{i}{j} (zeros), A tiles a{i}, B tiles b{j}.
    var c00: coop_mat16x16<f32, C>; var c01: coop_mat16x16<f32, C>;
    var c02: coop_mat16x16<f32, C>; var c03: coop_mat16x16<f32, C>;
    var c10: coop_mat16x16<f32, C>; var c11: coop_mat16x16<f32, C>;
    var c12: coop_mat16x16<f32, C>; var c13: coop_mat16x16<f32, C>;
    var c20: coop_mat16x16<f32, C>; var c21: coop_mat16x16<f32, C>;
    var c22: coop_mat16x16<f32, C>; var c23: coop_mat16x16<f32, C>;
    var c30: coop_mat16x16<f32, C>; var c31: coop_mat16x16<f32, C>;
    var c32: coop_mat16x16<f32, C>; var c33: coop_mat16x16<f32, C>;
    var a0: coop_mat16x16<f16, A>; var a1: coop_mat16x16<f16, A>;
    var a2: coop_mat16x16<f16, A>; var a3: coop_mat16x16<f16, A>;
    var b0: coop_mat16x16<f16, B>; var b1: coop_mat16x16<f16, B>;
    var b2: coop_mat16x16<f16, B>; var b3: coop_mat16x16<f16, B>;

    let steps = (p.k + BK - 1u) / BK;
    put(0u, decode(fetch(rg, 0u, t0, n0, lid), 0u, n0, lid), lid);
    // DEPTH 1: the raw words of the next step, carried across the back edge.
    var ra: Raw;
    if (DEPTH == 1u) { ra = fetch(rg, BK, t0, n0, lid); }
    workgroupBarrier();
    for (var s = 0u; s < steps; s = s + 1u) {
        let buf = select(0u, s % 2u, STAGES == 2u);
        let next = select(0u, 1u - buf, STAGES == 2u);
        // Step s + 1 is stored to the idle buffer after this step's multiplications (past
        // the last step: harmless re-reads of the last values, stored to the idle buffer).
        let k1 = (s + 1u) * BK;
        var stg: Staged;
        if (DEPTH == 0u) { stg = decode(fetch(rg, k1, t0, n0, lid), k1, n0, lid); }
        let xb = buf * BT * LDS + 16u * st * TM * LDS;
        let wb = buf * BN * LDS + 16u * sn * TN * LDS;
        for (var kk = 0u; kk < BK; kk = kk + 16u) {
            let xa = xb + kk;
            let xw = wb + kk;
            a0 = coopLoadT<coop_mat16x16<f16, A>>(&xs[(xa) / 4u], LDS / 4u);
            if (TM > 1u) { a1 = coopLoadT<coop_mat16x16<f16, A>>(&xs[(xa + 16u * LDS) / 4u], LDS / 4u); }
            if (TM > 2u) { a2 = coopLoadT<coop_mat16x16<f16, A>>(&xs[(xa + 32u * LDS) / 4u], LDS / 4u); }
            if (TM > 3u) { a3 = coopLoadT<coop_mat16x16<f16, A>>(&xs[(xa + 48u * LDS) / 4u], LDS / 4u); }
            b0 = coopLoad<coop_mat16x16<f16, B>>(&ws[(xw) / 4u], LDS / 4u);
            if (TN > 1u) { b1 = coopLoad<coop_mat16x16<f16, B>>(&ws[(xw + 16u * LDS) / 4u], LDS / 4u); }
            if (TN > 2u) { b2 = coopLoad<coop_mat16x16<f16, B>>(&ws[(xw + 32u * LDS) / 4u], LDS / 4u); }
            if (TN > 3u) { b3 = coopLoad<coop_mat16x16<f16, B>>(&ws[(xw + 48u * LDS) / 4u], LDS / 4u); }
            c00 = coopMultiplyAdd(a0, b0, c00);
            if (TN > 1u) { c01 = coopMultiplyAdd(a0, b1, c01); }
            if (TN > 2u) { c02 = coopMultiplyAdd(a0, b2, c02); }
            if (TN > 3u) { c03 = coopMultiplyAdd(a0, b3, c03); }
            if (TM > 1u) { c10 = coopMultiplyAdd(a1, b0, c10); }
            if ((TM > 1u) & (TN > 1u)) { c11 = coopMultiplyAdd(a1, b1, c11); }
            if ((TM > 1u) & (TN > 2u)) { c12 = coopMultiplyAdd(a1, b2, c12); }
            if ((TM > 1u) & (TN > 3u)) { c13 = coopMultiplyAdd(a1, b3, c13); }
            if (TM > 2u) { c20 = coopMultiplyAdd(a2, b0, c20); }
            if ((TM > 2u) & (TN > 1u)) { c21 = coopMultiplyAdd(a2, b1, c21); }
            if ((TM > 2u) & (TN > 2u)) { c22 = coopMultiplyAdd(a2, b2, c22); }
            if ((TM > 2u) & (TN > 3u)) { c23 = coopMultiplyAdd(a2, b3, c23); }
            if (TM > 3u) { c30 = coopMultiplyAdd(a3, b0, c30); }
            if ((TM > 3u) & (TN > 1u)) { c31 = coopMultiplyAdd(a3, b1, c31); }
            if ((TM > 3u) & (TN > 2u)) { c32 = coopMultiplyAdd(a3, b2, c32); }
            if ((TM > 3u) & (TN > 3u)) { c33 = coopMultiplyAdd(a3, b3, c33); }
        }
        // Decoded before the barrier below, so that each subgroup's decoding overlaps the
        // tail of its own multiplications.
        if (DEPTH == 1u) { stg = decode(ra, k1, n0, lid); }
        // One buffer: every subgroup's reads of this step end before it is overwritten.
        if (STAGES == 1u) { workgroupBarrier(); }
        put(next, stg, lid);
        workgroupBarrier();
        // DEPTH 1: the loads of step s + 2, issued here so that the compiler cannot sink them
        // below the next step's multiplications.
        if (DEPTH == 1u) { ra = fetch(rg, k1 + BK, t0, n0, lid); }
    }

    if (GLU) {
        { out_glu(c00, 0u, 0u, t0, n0, sg, lid); }
        if (TN > 1u) { out_glu(c01, 0u, 1u, t0, n0, sg, lid); }
        if (TN > 2u) { out_glu(c02, 0u, 2u, t0, n0, sg, lid); }
        if (TN > 3u) { out_glu(c03, 0u, 3u, t0, n0, sg, lid); }
        if (TM > 1u) { out_glu(c10, 1u, 0u, t0, n0, sg, lid); }
        if ((TM > 1u) & (TN > 1u)) { out_glu(c11, 1u, 1u, t0, n0, sg, lid); }
        if ((TM > 1u) & (TN > 2u)) { out_glu(c12, 1u, 2u, t0, n0, sg, lid); }
        if ((TM > 1u) & (TN > 3u)) { out_glu(c13, 1u, 3u, t0, n0, sg, lid); }
        if (TM > 2u) { out_glu(c20, 2u, 0u, t0, n0, sg, lid); }
        if ((TM > 2u) & (TN > 1u)) { out_glu(c21, 2u, 1u, t0, n0, sg, lid); }
        if ((TM > 2u) & (TN > 2u)) { out_glu(c22, 2u, 2u, t0, n0, sg, lid); }
        if ((TM > 2u) & (TN > 3u)) { out_glu(c23, 2u, 3u, t0, n0, sg, lid); }
        if (TM > 3u) { out_glu(c30, 3u, 0u, t0, n0, sg, lid); }
        if ((TM > 3u) & (TN > 1u)) { out_glu(c31, 3u, 1u, t0, n0, sg, lid); }
        if ((TM > 3u) & (TN > 2u)) { out_glu(c32, 3u, 2u, t0, n0, sg, lid); }
        if ((TM > 3u) & (TN > 3u)) { out_glu(c33, 3u, 3u, t0, n0, sg, lid); }
    } else if ((t0 + BT <= p.t) & (n0 + BN <= rn)) {
        let ts = t0 + 16u * st * TM;   // this subgroup's first token and row
        let ns = n0 + 16u * sn * TN;
        { out_full(rg, c00, ts + 0u, ns + 0u); }
        if (TN > 1u) { out_full(rg, c01, ts + 0u, ns + 16u); }
        if (TN > 2u) { out_full(rg, c02, ts + 0u, ns + 32u); }
        if (TN > 3u) { out_full(rg, c03, ts + 0u, ns + 48u); }
        if (TM > 1u) { out_full(rg, c10, ts + 16u, ns + 0u); }
        if ((TM > 1u) & (TN > 1u)) { out_full(rg, c11, ts + 16u, ns + 16u); }
        if ((TM > 1u) & (TN > 2u)) { out_full(rg, c12, ts + 16u, ns + 32u); }
        if ((TM > 1u) & (TN > 3u)) { out_full(rg, c13, ts + 16u, ns + 48u); }
        if (TM > 2u) { out_full(rg, c20, ts + 32u, ns + 0u); }
        if ((TM > 2u) & (TN > 1u)) { out_full(rg, c21, ts + 32u, ns + 16u); }
        if ((TM > 2u) & (TN > 2u)) { out_full(rg, c22, ts + 32u, ns + 32u); }
        if ((TM > 2u) & (TN > 3u)) { out_full(rg, c23, ts + 32u, ns + 48u); }
        if (TM > 3u) { out_full(rg, c30, ts + 48u, ns + 0u); }
        if ((TM > 3u) & (TN > 1u)) { out_full(rg, c31, ts + 48u, ns + 16u); }
        if ((TM > 3u) & (TN > 2u)) { out_full(rg, c32, ts + 48u, ns + 32u); }
        if ((TM > 3u) & (TN > 3u)) { out_full(rg, c33, ts + 48u, ns + 48u); }
    } else {
        { out_edge(rg, c00, 0u, 0u, t0, n0, sg, lid); }
        if (TN > 1u) { out_edge(rg, c01, 0u, 1u, t0, n0, sg, lid); }
        if (TN > 2u) { out_edge(rg, c02, 0u, 2u, t0, n0, sg, lid); }
        if (TN > 3u) { out_edge(rg, c03, 0u, 3u, t0, n0, sg, lid); }
        if (TM > 1u) { out_edge(rg, c10, 1u, 0u, t0, n0, sg, lid); }
        if ((TM > 1u) & (TN > 1u)) { out_edge(rg, c11, 1u, 1u, t0, n0, sg, lid); }
        if ((TM > 1u) & (TN > 2u)) { out_edge(rg, c12, 1u, 2u, t0, n0, sg, lid); }
        if ((TM > 1u) & (TN > 3u)) { out_edge(rg, c13, 1u, 3u, t0, n0, sg, lid); }
        if (TM > 2u) { out_edge(rg, c20, 2u, 0u, t0, n0, sg, lid); }
        if ((TM > 2u) & (TN > 1u)) { out_edge(rg, c21, 2u, 1u, t0, n0, sg, lid); }
        if ((TM > 2u) & (TN > 2u)) { out_edge(rg, c22, 2u, 2u, t0, n0, sg, lid); }
        if ((TM > 2u) & (TN > 3u)) { out_edge(rg, c23, 2u, 3u, t0, n0, sg, lid); }
        if (TM > 3u) { out_edge(rg, c30, 3u, 0u, t0, n0, sg, lid); }
        if ((TM > 3u) & (TN > 1u)) { out_edge(rg, c31, 3u, 1u, t0, n0, sg, lid); }
        if ((TM > 3u) & (TN > 2u)) { out_edge(rg, c32, 3u, 2u, t0, n0, sg, lid); }
        if ((TM > 3u) & (TN > 3u)) { out_edge(rg, c33, 3u, 3u, t0, n0, sg, lid); }
    }
}

// Lanes per workgroup of `dequant_f16`.
override DQ_WG: u32 = 256u;
// Copy word `at` of region rg's f16 copy.
fn d_put(rg: u32, at: u32, v: vec4<u32>) {
    if (NW > 2u && rg == 2u) {
        d2[at] = v;
    } else if (NW > 1u && rg == 1u) {
        d1[at] = v;
    } else {
        d0[at] = v;
    }
}

// Decodes NW weights of type DT to f16 rows, one 16-value chunk a lane, with the GEMM's own
// loads and decoding (`w_raw`, `w_decode`): an F16 GEMM over the copies multiplies exactly the
// f16 values the GEMM over the quantised weights stages. Prompt passes of many tokens decode
// once into a scratch buffer this way and then run the F16 GEMMs, which stage a plain copy
// (faster on the H100 than decoding in every workgroup that reads a weight tile). The grid's
// chunks are weight 0's ([0, c1)), weight 1's ([c1, c2)), then weight 2's ([c2, cols)).
@compute @workgroup_size(DQ_WG)
fn dequant_f16(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32,
               @builtin(subgroup_invocation_id) sl: u32, @builtin(subgroup_size) ss: u32) {
    let i_all = (wid.x + wid.y * nwg.x) * DQ_WG + lid;
    // Lanes past the end decode the last chunk again (the swizzle needs every lane) and store
    // nothing.
    let inside = i_all < p.cols;
    let i = min(i_all, p.cols - 1u);
    let region = region_of(i);
    let rg = region.x;
    // Chunk g of its weight: row g / (k / 16), 16 values from 16 (g % (k / 16)).
    let g = i - region.y;
    let per_row = p.k / 16u;
    let r = g / per_row;
    let c = g % per_row;
    let h = w_decode(w_raw(rg, r, c), r, c);
    // f16_quad's clamp changes only infinite values (whose staged products would be inf or
    // NaN anyway); every finite f16 value is kept exactly.
    let lo = vec4<u32>(f16_quad(vec4<f32>(h[0])), f16_quad(vec4<f32>(h[1])));
    let hi = vec4<u32>(f16_quad(vec4<f32>(h[2])), f16_quad(vec4<f32>(h[3])));
    // Stores of consecutive 16-byte words: the subgroup's chunks are consecutive, its first
    // ss / 2 chunks are the words of its first store, the rest those of its second. Lane sl
    // stores half sl % 2 of chunk sl / 2, then of chunk ss / 2 + sl / 2, fetched from the
    // lanes that decoded them. (Each lane storing its own chunk's 32 bytes, two stores at a
    // 32-byte stride, ran at 1.6 TB/s on the H100 against 2.3-2.5 this way.) Every chunk's
    // halves are stored once, at the address its own lane computed, whatever the order of
    // lanes in subgroups: that order only decides whether the stores are consecutive. Needs
    // whole subgroups of an even size (DQ_WG = 256).
    let odd = (sl & 1u) == 1u;
    let packed = (g << 3u) | (rg << 1u) | u32(inside);   // g < 2^29: checked by the host
    for (var s = 0u; s < 2u; s = s + 1u) {
        let src = s * (ss / 2u) + sl / 2u;
        let a = subgroupShuffle(lo, src);
        let b = subgroupShuffle(hi, src);
        let m = subgroupShuffle(packed, src);
        if ((m & 1u) == 1u) {
            d_put((m >> 1u) & 3u, 2u * (m >> 3u) + u32(odd), select(a, b, odd));
        }
    }
}
