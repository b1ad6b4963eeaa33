//! Probe: what does staging f16 tiles into workgroup memory cost inside a tensor-core GEMM
//! step, by how the values are loaded and typed?
//!
//!     cargo run --release -p wgllama-engine --example probe_stage
//!
//! `matmul_coop` reads f16 weights and f16 x as u32 words and writes f16 workgroup memory
//! (cooperative loads need f16), so every value passes unpack2x16float (f16 -> f32) and a
//! conversion back to f16 (naga 30 cannot bitcast u32 to vec2<f16>). This kernel is the
//! LARGE tile's loop (128 x 128, 8 subgroups of 4 x 2 tiles, 64 of k a step, one buffer, the
//! next step's words loaded before the multiplications) on an f16 GEMM of 512 tokens x N rows
//! x K = 4096, with the staging loads made as:
//!   V 0: vec4<u32> loads + unpack2x16float + f16 conversion (the kernel's way);
//!   V 1: the same buffers bound again as array<vec4<f16>> (two 8-byte loads a unit);
//!   V 2: bound as array<mat2x4<f16>> (one 16-byte load a unit);
//!   V 3: vec4<u32> loads, stored as f16 of the words' low bits (one conversion a value
//!        instead of two: a lower bound on what conversions cost, results meaningless);
//!   V 5: vec4<u32> loads, each f16 widened to f32 by integer operations and a multiply by
//!        2^112, then one conversion to f16 (unpack2x16float's conversions gone);
//!   V 6: vec4<u32> loads, each value one of two f16 constants picked by one of its bits (no
//!        conversion at all; results meaningless): what the loads and stores cost alone;
//!   V 4: each subgroup copies 16 x 16 blocks by a cooperative load from the buffers bound as
//!        array<f16> and a cooperative store to workgroup memory (no per-value conversion).
//! each with the multiplications (MMA 1) and without (MMA 0: staging alone), and V 0 with two
//! steps of loads in flight (DEPTH 2, the loop unrolled by 2). GPU time of one dispatch from
//! pass timestamps, best of 5 after a warm-up.
//!
//! On the H100 (benches/results/2026-11-24-h100-s11/probe-stage*.txt), N = 4096: the kernel's
//! way 86-87 us with the multiplications (197-200 TFLOP/s), 65-67 us staging alone; the f16
//! bindings 123-125 / 80 us (slower, though they convert nothing); one conversion 126 / 107;
//! DEPTH 2 97 / 66. Staging alone moves 32 KiB a workgroup a step, 4.1 TB/s from L2 over the
//! GPU, and two steps in flight do not shorten it: the staging is bound by L2 bandwidth, not
//! by load latency or by the conversions. The seventeenth session's variants
//! (benches/results/2026-11-24-h100-s17/probe-stage-*.txt) agree: cooperative-load staging
//! (V 4) 139 / 103 us, integer widening (V 5) 118 / 100, no conversion at all (V 6) 109 / 98,
//! against the kernel's way 85-87 / 67-68 in the same runs: every other way of making the f16
//! values costs more than unpack2x16float and its conversion.

use wgllama_engine::testing::pass_timer::PassTimer;
use wgllama_engine::testing::probe::{storage, wgsl_module};
use wgllama_engine::{Gpu, GpuOptions, Result};

const SRC: &str = r#"
enable f16;
enable wgpu_cooperative_matrix;

@group(0) @binding(0) var<storage, read> wu: array<vec4<u32>>;      // [n, K] f16 pairs
@group(0) @binding(1) var<storage, read> xu: array<vec4<u32>>;      // [512, K] f16 pairs
@group(0) @binding(2) var<storage, read> wh: array<vec4<f16>>;      // the same, as f16
@group(0) @binding(3) var<storage, read> xh: array<vec4<f16>>;
@group(0) @binding(4) var<storage, read> wm: array<mat2x4<f16>>;    // the same, 8 f16 a load
@group(0) @binding(5) var<storage, read> xm: array<mat2x4<f16>>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
@group(0) @binding(7) var<storage, read> wf: array<f16>;             // the same, f16 elements
@group(0) @binding(8) var<storage, read> xf: array<f16>;

override V: u32 = 0u;
override MMA: bool = true;
override K: u32 = 4096u;
override COLS: u32 = 32u;   // 128-row tiles of W
override DEPTH: u32 = 1u;   // steps of loads in flight (1 or 2; 2 unrolls the loop by 2)
const BK: u32 = 64u;
const LDS: u32 = 72u;
const WG: u32 = 256u;
const TM: u32 = 4u;
const TN: u32 = 2u;
const SG_N: u32 = 4u;

var<workgroup> xs: array<vec4<f16>, 2304>;   // [128][LDS] f16
var<workgroup> ws: array<vec4<f16>, 2304>;

struct Unit { u: vec4<u32>, a: vec4<f16>, b: vec4<f16> }
struct Raw { w0: Unit, w1: Unit, w2: Unit, w3: Unit, x0: Unit, x1: Unit, x2: Unit, x3: Unit }

// Unit j of this lane at step k0: 8 values of row `row0 + u / 8` (of W or x).
fn load(isw: bool, row0: u32, k0: u32, u: u32) -> Unit {
    let i = (row0 + u / 8u) * (K / 8u) + k0 / 8u + u % 8u;   // 16-byte unit index
    var o: Unit;
    if (V == 1u) {
        if (isw) { o.a = wh[2u * i]; o.b = wh[2u * i + 1u]; } else { o.a = xh[2u * i]; o.b = xh[2u * i + 1u]; }
    } else if (V == 2u) {
        var m: mat2x4<f16>;
        if (isw) { m = wm[i]; } else { m = xm[i]; }
        o.a = m[0];
        o.b = m[1];
    } else {
        if (isw) { o.u = wu[i]; } else { o.u = xu[i]; }
    }
    return o;
}

fn halves(v: u32) -> vec2<f16> { return vec2<f16>(unpack2x16float(v)); }

// V 5: the two f16 of a word widened to f32 by integer operations and one multiply (the
// exponent moved into f32's place, then scaled by 2^112: exact for normal and subnormal
// values, not for inf / NaN), so that only the conversion back to f16 remains.
fn widen(v: u32) -> vec2<f16> {
    let lo = ((v & 0x7fffu) << 13u) | ((v & 0x8000u) << 16u);
    let hi = ((v & 0x7fff0000u) >> 3u) | (v & 0x80000000u);
    return vec2<f16>(bitcast<vec2<f32>>(vec2<u32>(lo, hi)) * 5.192296858534828e33);
}

fn conv(o: Unit) -> Unit {
    var r = o;
    if (V == 0u) {
        r.a = vec4<f16>(halves(o.u.x), halves(o.u.y));
        r.b = vec4<f16>(halves(o.u.z), halves(o.u.w));
    } else if (V == 6u) {
        // No conversion: each value picked between two constants by one of its bits.
        let one = vec4<f16>(1.0h);
        let two = vec4<f16>(2.0h);
        let bits = vec4<u32>(1u, 65536u, 1u, 65536u);
        r.a = select(one, two, (vec4<u32>(o.u.x, o.u.x, o.u.y, o.u.y) & bits) != vec4<u32>(0u));
        r.b = select(one, two, (vec4<u32>(o.u.z, o.u.z, o.u.w, o.u.w) & bits) != vec4<u32>(0u));
    } else if (V == 5u) {
        r.a = vec4<f16>(widen(o.u.x), widen(o.u.y));
        r.b = vec4<f16>(widen(o.u.z), widen(o.u.w));
    } else if (V == 3u) {
        r.a = vec4<f16>(o.u & vec4<u32>(1023u));
        r.b = vec4<f16>(o.u >> vec4<u32>(22u));
    }
    return r;
}

fn put(isw: bool, u: u32, o: Unit) {
    let at = ((u / 8u) * LDS + 8u * (u % 8u)) / 4u;
    if (isw) { ws[at] = o.a; ws[at + 1u] = o.b; } else { xs[at] = o.a; xs[at + 1u] = o.b; }
}

fn fetch(t0: u32, n0: u32, k0: u32, lid: u32) -> Raw {
    let k = min(k0, K - BK);
    return Raw(load(true, n0, k, lid), load(true, n0, k, lid + WG), load(true, n0, k, lid + 2u * WG),
               load(true, n0, k, lid + 3u * WG), load(false, t0, k, lid), load(false, t0, k, lid + WG),
               load(false, t0, k, lid + 2u * WG), load(false, t0, k, lid + 3u * WG));
}

fn store(r: Raw, lid: u32) {
    put(true, lid, conv(r.w0)); put(true, lid + WG, conv(r.w1));
    put(true, lid + 2u * WG, conv(r.w2)); put(true, lid + 3u * WG, conv(r.w3));
    put(false, lid, conv(r.x0)); put(false, lid + WG, conv(r.x1));
    put(false, lid + 2u * WG, conv(r.x2)); put(false, lid + 3u * WG, conv(r.x3));
}

// V 4: 16 x 16 block b (of a step's 32 of W, or of x: 8 row blocks x 4 k blocks) loaded by a
// cooperative load straight from the f16 bindings, and stored by a cooperative store: no
// per-value conversion, one 16-byte load a lane a block. (Which of W and x is a literal in
// each call: cooperative operations need uniform control flow.)
fn cload_w(b: u32, n0: u32, k0: u32) -> coop_mat16x16<f16, A> {
    let k = min(k0, K - BK) + 16u * (b % 4u);
    return coopLoadT<coop_mat16x16<f16, A>>(&wf[(n0 + 16u * (b / 4u)) * K + k], K);
}

fn cload_x(b: u32, t0: u32, k0: u32) -> coop_mat16x16<f16, A> {
    let k = min(k0, K - BK) + 16u * (b % 4u);
    return coopLoadT<coop_mat16x16<f16, A>>(&xf[(t0 + 16u * (b / 4u)) * K + k], K);
}

fn cstore_w(m: coop_mat16x16<f16, A>, b: u32) {
    let at = (b / 4u) * 16u * LDS / 4u + 4u * (b % 4u);
    let v = m;
    let stride = LDS / 4u;
    coopStoreT(v, &ws[at], stride);
}

fn cstore_x(m: coop_mat16x16<f16, A>, b: u32) {
    let at = (b / 4u) * 16u * LDS / 4u + 4u * (b % 4u);
    let v = m;
    let stride = LDS / 4u;
    coopStoreT(v, &xs[at], stride);
}

fn cmain(wid: u32, lid: u32, sg: u32) {
    let n0 = (wid % COLS) * 128u;
    let t0 = (wid / COLS) * 128u;
    var c00: coop_mat16x16<f32, C>; var c01: coop_mat16x16<f32, C>;
    var c10: coop_mat16x16<f32, C>; var c11: coop_mat16x16<f32, C>;
    var c20: coop_mat16x16<f32, C>; var c21: coop_mat16x16<f32, C>;
    var c30: coop_mat16x16<f32, C>; var c31: coop_mat16x16<f32, C>;
    var m0 = cload_w(sg, n0, 0u); var m1 = cload_w(sg + 8u, n0, 0u);
    var m2 = cload_w(sg + 16u, n0, 0u); var m3 = cload_w(sg + 24u, n0, 0u);
    var m4 = cload_x(sg, t0, 0u); var m5 = cload_x(sg + 8u, t0, 0u);
    var m6 = cload_x(sg + 16u, t0, 0u); var m7 = cload_x(sg + 24u, t0, 0u);
    cstore_w(m0, sg); cstore_w(m1, sg + 8u); cstore_w(m2, sg + 16u); cstore_w(m3, sg + 24u);
    cstore_x(m4, sg); cstore_x(m5, sg + 8u); cstore_x(m6, sg + 16u); cstore_x(m7, sg + 24u);
    m0 = cload_w(sg, n0, BK); m1 = cload_w(sg + 8u, n0, BK);
    m2 = cload_w(sg + 16u, n0, BK); m3 = cload_w(sg + 24u, n0, BK);
    m4 = cload_x(sg, t0, BK); m5 = cload_x(sg + 8u, t0, BK);
    m6 = cload_x(sg + 16u, t0, BK); m7 = cload_x(sg + 24u, t0, BK);
    workgroupBarrier();
    let xb = 16u * (sg / SG_N) * TM * LDS;
    let wb = 16u * (sg % SG_N) * TN * LDS;
    for (var s = 0u; s < K / BK; s += 1u) {
        for (var kk = 0u; kk < BK && MMA; kk += 16u) {
            let a0 = coopLoadT<coop_mat16x16<f16, A>>(&xs[(xb + kk) / 4u], LDS / 4u);
            let a1 = coopLoadT<coop_mat16x16<f16, A>>(&xs[(xb + kk + 16u * LDS) / 4u], LDS / 4u);
            let a2 = coopLoadT<coop_mat16x16<f16, A>>(&xs[(xb + kk + 32u * LDS) / 4u], LDS / 4u);
            let a3 = coopLoadT<coop_mat16x16<f16, A>>(&xs[(xb + kk + 48u * LDS) / 4u], LDS / 4u);
            let b0 = coopLoad<coop_mat16x16<f16, B>>(&ws[(wb + kk) / 4u], LDS / 4u);
            let b1 = coopLoad<coop_mat16x16<f16, B>>(&ws[(wb + kk + 16u * LDS) / 4u], LDS / 4u);
            c00 = coopMultiplyAdd(a0, b0, c00); c01 = coopMultiplyAdd(a0, b1, c01);
            c10 = coopMultiplyAdd(a1, b0, c10); c11 = coopMultiplyAdd(a1, b1, c11);
            c20 = coopMultiplyAdd(a2, b0, c20); c21 = coopMultiplyAdd(a2, b1, c21);
            c30 = coopMultiplyAdd(a3, b0, c30); c31 = coopMultiplyAdd(a3, b1, c31);
        }
        workgroupBarrier();
        cstore_w(m0, sg); cstore_w(m1, sg + 8u); cstore_w(m2, sg + 16u); cstore_w(m3, sg + 24u);
        cstore_x(m4, sg); cstore_x(m5, sg + 8u); cstore_x(m6, sg + 16u); cstore_x(m7, sg + 24u);
        workgroupBarrier();
        let k2 = (s + 2u) * BK;
        m0 = cload_w(sg, n0, k2); m1 = cload_w(sg + 8u, n0, k2);
        m2 = cload_w(sg + 16u, n0, k2); m3 = cload_w(sg + 24u, n0, k2);
        m4 = cload_x(sg, t0, k2); m5 = cload_x(sg + 8u, t0, k2);
        m6 = cload_x(sg + 16u, t0, k2); m7 = cload_x(sg + 24u, t0, k2);
    }
    let sum = c00 + c01 + c10 + c11 + c20 + c21 + c30 + c31;
    if (MMA) {
        coopStoreT(sum, &out[(wid * 8u + sg) * 256u], 16u);
    } else if (lid == 0u) {
        out[wid] = f32(xs[lid].x) + f32(ws[lid + 7u].y);
    }
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32,
        @builtin(subgroup_id) sg: u32) {
    if (V == 4u) {
        cmain(wid.x, lid, sg);
        return;
    }
    let n0 = (wid.x % COLS) * 128u;
    let t0 = (wid.x / COLS) * 128u;
    var c00: coop_mat16x16<f32, C>; var c01: coop_mat16x16<f32, C>;
    var c10: coop_mat16x16<f32, C>; var c11: coop_mat16x16<f32, C>;
    var c20: coop_mat16x16<f32, C>; var c21: coop_mat16x16<f32, C>;
    var c30: coop_mat16x16<f32, C>; var c31: coop_mat16x16<f32, C>;
    store(fetch(t0, n0, 0u, lid), lid);
    var ra = fetch(t0, n0, BK, lid);
    workgroupBarrier();
    let xb = 16u * (sg / SG_N) * TM * LDS;
    let wb = 16u * (sg % SG_N) * TN * LDS;
    var rb: Raw;
    if (DEPTH == 2u) { rb = fetch(t0, n0, 2u * BK, lid); }
    for (var s = 0u; s < K / BK; s += DEPTH) {
        // Step s from the buffer, then step s + 1 stored from ra, and ra reloaded with step
        // s + 1 + DEPTH; with DEPTH 2 the same again from rb (the loop unrolled by 2, so that
        // no register set is copied into another).
        for (var kk = 0u; kk < BK && MMA; kk += 16u) {
            let a0 = coopLoadT<coop_mat16x16<f16, A>>(&xs[(xb + kk) / 4u], LDS / 4u);
            let a1 = coopLoadT<coop_mat16x16<f16, A>>(&xs[(xb + kk + 16u * LDS) / 4u], LDS / 4u);
            let a2 = coopLoadT<coop_mat16x16<f16, A>>(&xs[(xb + kk + 32u * LDS) / 4u], LDS / 4u);
            let a3 = coopLoadT<coop_mat16x16<f16, A>>(&xs[(xb + kk + 48u * LDS) / 4u], LDS / 4u);
            let b0 = coopLoad<coop_mat16x16<f16, B>>(&ws[(wb + kk) / 4u], LDS / 4u);
            let b1 = coopLoad<coop_mat16x16<f16, B>>(&ws[(wb + kk + 16u * LDS) / 4u], LDS / 4u);
            c00 = coopMultiplyAdd(a0, b0, c00); c01 = coopMultiplyAdd(a0, b1, c01);
            c10 = coopMultiplyAdd(a1, b0, c10); c11 = coopMultiplyAdd(a1, b1, c11);
            c20 = coopMultiplyAdd(a2, b0, c20); c21 = coopMultiplyAdd(a2, b1, c21);
            c30 = coopMultiplyAdd(a3, b0, c30); c31 = coopMultiplyAdd(a3, b1, c31);
        }
        workgroupBarrier();
        store(ra, lid);
        workgroupBarrier();
        ra = fetch(t0, n0, (s + 1u + DEPTH) * BK, lid);
        if (DEPTH == 2u) {
            for (var kk = 0u; kk < BK && MMA; kk += 16u) {
                let a0 = coopLoadT<coop_mat16x16<f16, A>>(&xs[(xb + kk) / 4u], LDS / 4u);
                let a1 = coopLoadT<coop_mat16x16<f16, A>>(&xs[(xb + kk + 16u * LDS) / 4u], LDS / 4u);
                let a2 = coopLoadT<coop_mat16x16<f16, A>>(&xs[(xb + kk + 32u * LDS) / 4u], LDS / 4u);
                let a3 = coopLoadT<coop_mat16x16<f16, A>>(&xs[(xb + kk + 48u * LDS) / 4u], LDS / 4u);
                let b0 = coopLoad<coop_mat16x16<f16, B>>(&ws[(wb + kk) / 4u], LDS / 4u);
                let b1 = coopLoad<coop_mat16x16<f16, B>>(&ws[(wb + kk + 16u * LDS) / 4u], LDS / 4u);
                c00 = coopMultiplyAdd(a0, b0, c00); c01 = coopMultiplyAdd(a0, b1, c01);
                c10 = coopMultiplyAdd(a1, b0, c10); c11 = coopMultiplyAdd(a1, b1, c11);
                c20 = coopMultiplyAdd(a2, b0, c20); c21 = coopMultiplyAdd(a2, b1, c21);
                c30 = coopMultiplyAdd(a3, b0, c30); c31 = coopMultiplyAdd(a3, b1, c31);
            }
            workgroupBarrier();
            store(rb, lid);
            workgroupBarrier();
            rb = fetch(t0, n0, (s + 4u) * BK, lid);
        }
    }
    let sum = c00 + c01 + c10 + c11 + c20 + c21 + c30 + c31;
    if (MMA) {
        coopStoreT(sum, &out[(wid.x * 8u + sg) * 256u], 16u);
    } else if (lid == 0u) {
        out[wid.x] = f32(xs[lid].x) + f32(ws[lid + 7u].y);
    }
}
"#;

fn main() -> Result<()> {
    let gpu = Gpu::new(&GpuOptions::default())?;
    println!("adapter: {}", gpu.describe());
    if !gpu.caps.coop_16x16x16_f16_f32 {
        println!("no 16x16x16 f16/f32 cooperative matrices: nothing to probe");
        return Ok(());
    }
    let module = wgsl_module(&gpu, "probe_stage", SRC);
    let timer = PassTimer::new(&gpu);
    let k = 4096u64;
    let filled = |label: &str, bytes: u64| {
        // Small f16 values (0x2000 | low bits): finite, so the products stay finite.
        let words: Vec<u32> = (0..bytes / 4)
            .map(|i| 0x2000_2000u32 | ((i as u32).wrapping_mul(2654435761) & 0x03ff_03ff))
            .collect();
        let b = storage(&gpu, label, bytes);
        gpu.queue.write_buffer(&b, 0, bytemuck::cast_slice(&words));
        b
    };
    let x = filled("x", 512 * k * 2);
    let w = filled("w", 11008 * k * 2);
    let out = storage(&gpu, "out", 400 * 8 * 256 * 4);
    // (V, DEPTH): every way of loading one step ahead, then the kernel's way two steps ahead.
    let variants = [
        (0u32, 1u32),
        (1, 1),
        (2, 1),
        (3, 1),
        (5, 1),
        (6, 1),
        (0, 2),
        (4, 1),
    ];
    for n in [4096u32, 11008] {
        let cols = n.div_ceil(128);
        let wgs = cols * 4;
        for mma in [true, false] {
            for (v, depth) in variants {
                let pipe = gpu
                    .device
                    .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                        label: Some("probe_stage"),
                        layout: None,
                        module: &module,
                        entry_point: Some("main"),
                        compilation_options: wgpu::PipelineCompilationOptions {
                            constants: &[
                                ("V", v as f64),
                                ("MMA", mma as u32 as f64),
                                ("COLS", cols as f64),
                                ("DEPTH", depth as f64),
                            ],
                            zero_initialize_workgroup_memory: false,
                        },
                        cache: None,
                    });
                let layout = pipe.get_bind_group_layout(0);
                let bufs = [&w, &x, &w, &x, &w, &x, &out, &w, &x];
                let entries: Vec<_> = bufs
                    .iter()
                    .enumerate()
                    .map(|(i, b)| wgpu::BindGroupEntry {
                        binding: i as u32,
                        resource: b.as_entire_binding(),
                    })
                    .collect();
                let bg = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: None,
                    layout: &layout,
                    entries: &entries,
                });
                let best = timer.best(&gpu, 150, 5, &|pass| {
                    pass.set_pipeline(&pipe);
                    pass.set_bind_group(0, &bg, &[]);
                    pass.dispatch_workgroups(wgs, 1, 1);
                })?;
                let flop = 2.0 * 512.0 * (cols * 128) as f64 * k as f64;
                println!(
                    "N {n:5} MMA {} DEPTH {depth} V {v} ({:<26}): {:7.1} us {:6.1} TFLOP/s",
                    mma as u32,
                    [
                        "u32 + unpack + convert",
                        "f16 binding, 2 x 8 B",
                        "mat2x4<f16> binding, 16 B",
                        "u32, one conversion",
                        "coopLoad f16 + coopStore",
                        "integer widen + convert",
                        "u32, no conversion (select)"
                    ][v as usize],
                    best * 1e6,
                    flop / best * 1e-12
                );
            }
        }
    }
    Ok(())
}
