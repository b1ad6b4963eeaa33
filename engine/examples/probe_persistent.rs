//! Probe: a chain of dependent F16 mat-vecs (x_{p+1} = W_p x_p, n = k = 2048) as one dispatch
//! per mat-vec (wgpu's barrier between them, as decode runs now) against one *persistent*
//! dispatch whose workgroups all stay resident and meet at a grid barrier (an atomic counter)
//! between mat-vecs, with and without loading the next mat-vec's weights into registers
//! *before* waiting at the barrier (weights do not depend on x, so their loads can overlap the
//! wait). Does a persistent decode kernel pay, and can its hand-offs be read with plain loads?
//!
//!     cargo run --release -p wgllama-engine --example probe_persistent [-- PHASES]
//!
//! Each subgroup of 32 lanes owns one row a mat-vec; a lane holds 8 16-byte weight units of it
//! in named registers. Every mat-vec writes an x slot of its own (vec4 stores of four rows met
//! in workgroup memory, or atomicStore through a second binding), read with plain loads by the
//! next one: a slot is never read before it is written. Variants: DEP makes the x loads'
//! address depend on the counter value the barrier saw (so they cannot move above the spin).
//! The weights cycle through copies of >= 64 MB so they stream from HBM; every run has fresh x
//! slots. Persistent grids are 128 workgroups of 512 lanes (one an SM on the H100's 132). The
//! barrier's spin is capped (no hang where the workgroups are not all resident: a capped spin
//! counts as an error, though on lavapipe, whose workgroups are not resident together, the
//! spin ended uncounted after 65535 turns). Times: GPU time of the chain's pass (median of 6)
//! per mat-vec, after ~300 ms of warm-up.
//!
//! On the H100 (benches/results/2026-11-24-h100-s13/probe-persistent.txt): the persistent
//! chain took 6.5 us a mat-vec against 7.2-7.3 us dispatched (-0.7 us a hand-off; loading the
//! next weights before the barrier gained nothing), but its results are wrong: from the second
//! mat-vec on, outputs differ by up to 32% of their largest value in every variant, although
//! every workgroup left every barrier with the counter at its exact target. So plain loads
//! after a WGSL grid barrier read stale x on this driver even at never-read addresses, and
//! the hand-offs would need atomicLoad (serialised, ~0.2 us a load a lane:
//! examples/probe_ticket.rs), which costs more than the 0.7 us a hand-off saves. With the x
//! slots declared `@coherent` (the seventeenth session, benches/results/2026-11-24-h100-s17/
//! probe-persistent-coherent.txt) every x slot is right, but a mat-vec takes 17.7-18.3 us (by
//! our reading, every subgroup reads all of x past the L1: 2048 x 8 KB from L2 a mat-vec);
//! with x read once a workgroup into workgroup memory (STAGE_X) the chain is right and takes
//! 6.19-6.34 us a mat-vec against 6.85-7.42 dispatched (probe-persistent-coherent-staged.txt):
//! the first correct in-dispatch grid barrier, ~0.6 us cheaper than a dispatch boundary.
//!
//! The twenty-first session (benches/results/2026-11-25-h100-s21/probe-persistent-*.txt) found
//! why loading the next weights before the barrier gained nothing: the release fence waits for
//! those loads. SPLIT arrives first (fence, count), then loads, then spins; FORCE makes the
//! spin's address depend on the loaded units (else the compiler moves the loads past the
//! spin); without ACQUIRE no device-scope fence follows the spin (x is `@coherent`). SPLIT +
//! FORCE without ACQUIRE: 4.96 us a mat-vec against 6.88 dispatched, every x slot right.
//! DEPTH2 (weights two mat-vecs ahead) gained nothing: the hand-off, not the weights, is left.

use wgllama_engine::testing::pass_timer::PassTimer;
use wgllama_engine::testing::probe::{f32s, random_f16_bytes, storage, wgsl_module};
use wgllama_engine::testing::Rng;
use wgllama_engine::{Gpu, GpuOptions, Result};

const SRC: &str = r#"
struct Params {
    n: u32,        // rows = k
    phases: u32,   // mat-vecs this dispatch runs
    phase0: u32,   // the first one's index in the chain
    copies: u32,   // weight copies cycled through
    cap: u32,      // most spins at a grid barrier
    groups: u32,   // workgroups
    mask: u32,     // 0: FORCE's fake dependency
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w: array<vec4<u32>>;         // [copies][n][n / 8] f16
@group(0) @binding(2) var<storage, read_write> xs: array<vec4<f32>>;  // [chain + 1][n / 4]
@group(0) @binding(3) var<storage, read_write> bar: array<atomic<u32>>; // [2]: arrivals, errors
@group(0) @binding(4) var<storage, read_write> xa: array<atomic<u32>>;  // xs again, as words

override WG: u32 = 128u;         // lanes a workgroup (subgroups of 32)
override PREFETCH: bool = false; // load the next mat-vec's units before the grid barrier
override DEP: bool = false;      // x loads address-dependent on the barrier's atomic count
override ATOMIC_OUT: bool = false; // outputs by atomicStore (through xa) instead of vec4 stores
override STAGE_X: bool = false;  // x read once a workgroup into workgroup memory, then from there
override SPLIT: bool = false;    // arrive (fence + count), then PREFETCH's loads, then spin
override FORCE: bool = false;    // SPLIT: the spin's address depends on the prefetched units
override DEPTH2: bool = false;   // SPLIT: weights loaded two mat-vecs ahead (FORCE folds the
                                 // units loaded a mat-vec ago, FOLD_FUT the ones just issued)
override FOLD_FUT: bool = false;
override ACQUIRE: bool = true;   // SPLIT: a device-scope fence after the spin (else a control barrier)

var<workgroup> xw: array<vec4<f32>, 512>;  // STAGE_X: x slot (n / 4 <= 512 vec4)

var<workgroup> out4: array<f32, 32>;  // a workgroup's row totals (WG / 32 <= 32)

// A lane's 8 units (16-byte loads) of its row: named values, not an array, so they stay in
// registers (a dynamically indexed array went to local memory: 340 GB/s).
struct Units {
    a: vec4<u32>, b: vec4<u32>, c: vec4<u32>, d: vec4<u32>,
    e: vec4<u32>, f: vec4<u32>, g: vec4<u32>, h: vec4<u32>,
}

fn load_units(copy: u32, row: u32, lane: u32) -> Units {
    let base = (copy * p.n + row) * (p.n / 8u) + lane;
    return Units(w[base], w[base + 32u], w[base + 64u], w[base + 96u],
                 w[base + 128u], w[base + 160u], w[base + 192u], w[base + 224u]);
}

// x's vec4 i of the slot at src: from workgroup memory with STAGE_X.
fn xv(src: u32, i: u32) -> vec4<f32> {
    if (STAGE_X) {
        return xw[i];
    }
    return xs[src + i];
}

fn unit_dot(src: u32, u: u32, q: vec4<u32>) -> vec4<f32> {
    return xv(src, 2u * u) * vec4<f32>(unpack2x16float(q.x), unpack2x16float(q.y))
         + xv(src, 2u * u + 1u) * vec4<f32>(unpack2x16float(q.z), unpack2x16float(q.w));
}

// Every workgroup's arrival counted, then a spin (capped: counted as an error) until all
// `arrivals` are in. storageBarrier's device-scope fence releases this workgroup's x stores
// before its arrival and acquires the others' after.
// Returns 0, computed from the last count seen: the next x loads take their address from
// it, so they cannot be moved above the spin (DEP).
fn grid_sync(arrivals: u32, lid: u32) -> u32 {
    storageBarrier();
    if (lid == 0u) {
        atomicAdd(&bar[0], 1u);
        var i = 0u;
        var seen = 0u;
        loop {
            seen = atomicLoad(&bar[0]);
            if (seen >= arrivals) { break; }
            i++;
            if (i >= p.cap) { atomicAdd(&bar[1], 1u); break; }
        }
        seen_count = seen;
    }
    storageBarrier();
    return workgroupUniformLoad(&seen_count) >> 31u;
}
var<workgroup> seen_count: u32;

// SPLIT's halves of grid_sync: the release fence and the arrival first, so that loads issued
// between them and the spin (the next weights) are not waited for by the fence.
fn arrive(lid: u32) {
    storageBarrier();
    if (lid == 0u) {
        atomicAdd(&bar[0], 1u);
    }
}

// `fake` is 0 at run time (masked by p.mask = 0) but the compiler cannot know: with FORCE the
// spin's first load waits for the units it was computed from.
fn wait_all(arrivals: u32, lid: u32, fake: u32) -> u32 {
    if (lid == 0u) {
        var i = 0u;
        var seen = 0u;
        loop {
            seen = atomicLoad(&bar[fake & p.mask]);
            if (seen >= arrivals) { break; }
            i++;
            if (i >= p.cap) { atomicAdd(&bar[1], 1u); break; }
        }
        seen_count = seen;
    }
    if (ACQUIRE) {
        storageBarrier();
    }
    return workgroupUniformLoad(&seen_count) >> 31u;
}

fn fold_units(t: Units) -> u32 {
    let v = (t.a ^ t.b) ^ (t.c ^ t.d) ^ (t.e ^ t.f) ^ (t.g ^ t.h);
    return (v.x ^ v.y) ^ (v.z ^ v.w);
}

// One row a subgroup and mat-vec: rows = groups * WG / 32 = n. Mat-vec `phase` reads x slot
// `phase` and writes slot phase + 1: each slot is written once and read after, so no L1 line
// of it can be stale (plain loads, as the decode mat-vecs read x).
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32,
        @builtin(subgroup_id) sg: u32, @builtin(subgroup_invocation_id) lane: u32) {
    let row = wid.x * (WG / 32u) + sg;
    var t = load_units(p.phase0 % p.copies, row, lane);
    var t2 = t;
    if (DEPTH2) {
        t2 = load_units((p.phase0 + 1u) % p.copies, row, lane);
    }
    var dep = 0u;
    for (var ph = 0u; ph < p.phases; ph++) {
        let phase = p.phase0 + ph;
        let src = phase * (p.n / 4u) + dep;
        if (!PREFETCH && ph > 0u) {
            t = load_units(phase % p.copies, row, lane);
        }
        if (STAGE_X) {
            for (var i = lid; i < p.n / 4u; i += WG) {
                xw[i] = xs[src + i];
            }
            workgroupBarrier();
        }
        let acc = (unit_dot(src, lane, t.a) + unit_dot(src, lane + 32u, t.b))
                + (unit_dot(src, lane + 64u, t.c) + unit_dot(src, lane + 96u, t.d))
                + (unit_dot(src, lane + 128u, t.e) + unit_dot(src, lane + 160u, t.f))
                + (unit_dot(src, lane + 192u, t.g) + unit_dot(src, lane + 224u, t.h));
        let total = subgroupAdd((acc.x + acc.y) + (acc.z + acc.w));
        // Four rows' totals meet in workgroup memory and leave as one vec4 store: a store of
        // one component can be a read-modify-write of the vec4, whose read caches the line in
        // L1 before the other rows are written.
        if (ATOMIC_OUT) {
            if (lane == 0u) {
                atomicStore(&xa[4u * (src + p.n / 4u) + row], bitcast<u32>(total));
            }
        } else {
            if (lane == 0u) {
                out4[sg] = total;
            }
        }
        workgroupBarrier();
        if (!ATOMIC_OUT && lid < WG / 128u) {
            let r = wid.x * (WG / 32u) + 4u * lid;
            xs[src + p.n / 4u + r / 4u] = vec4<f32>(out4[4u * lid], out4[4u * lid + 1u],
                                                    out4[4u * lid + 2u], out4[4u * lid + 3u]);
        }
        if (SPLIT && DEPTH2 && ph + 1u < p.phases) {
            arrive(lid);
            let fut = load_units((phase + 2u) % p.copies, row, lane);
            var fake = 0u;
            if (FORCE) {
                fake = fold_units(t2);
            }
            if (FOLD_FUT) {
                fake = fold_units(fut);
            }
            _ = wait_all((ph + 1u) * p.groups, lid, fake);
            t = t2;
            t2 = fut;
        } else if (SPLIT && ph + 1u < p.phases) {
            arrive(lid);
            if (PREFETCH) {
                t = load_units((phase + 1u) % p.copies, row, lane);
            }
            var fake = 0u;
            if (FORCE) {
                fake = fold_units(t);
            }
            let zero = wait_all((ph + 1u) * p.groups, lid, fake);
            if (DEP) {
                dep = zero;
            }
        } else if (ph + 1u < p.phases) {
            if (PREFETCH) {
                t = load_units((phase + 1u) % p.copies, row, lane);
            }
            let zero = grid_sync((ph + 1u) * p.groups, lid);
            if (DEP) {
                dep = zero;
            }
        }
    }
}
"#;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    phases: u32,
    phase0: u32,
    copies: u32,
    cap: u32,
    groups: u32,
    mask: u32,
    _pad: u32,
}

/// How the chain's mat-vecs meet, and the workgroup size.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    /// A dispatch per mat-vec (wgpu's barrier between them), `lanes` a workgroup.
    Dispatches { lanes: u32 },
    /// One dispatch of `lanes`-lane workgroups meeting at grid barriers; `dep`: x loads
    /// address-dependent on the barrier's count.
    Persistent {
        lanes: u32,
        prefetch: bool,
        dep: bool,
        atomic_out: bool,
        /// x slots declared `@coherent` (SPIR-V's Coherent decoration).
        coherent: bool,
        /// x read once a workgroup into workgroup memory.
        stage_x: bool,
        /// Arrive, prefetch, then spin (`split`); the spin waits for the units (`force`);
        /// a device-scope fence after the spin (`acquire`).
        split: bool,
        force: bool,
        acquire: bool,
        depth2: bool,
        fold_fut: bool,
    },
}

impl Mode {
    fn lanes(self) -> u32 {
        match self {
            Mode::Dispatches { lanes } | Mode::Persistent { lanes, .. } => lanes,
        }
    }
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1).map(|s| s.parse::<u32>().ok());
    let phases = args.next().flatten().unwrap_or(64);
    // n = k = 2048: 8 units a lane (the kernel's named registers), 2048 rows = subgroups.
    let n = 2048u32;
    let gpu = Gpu::new(&GpuOptions::default())?;
    println!("adapter: {}", gpu.describe());
    if !gpu.caps.subgroups || gpu.caps.subgroup_size != (32, 32) {
        println!("needs subgroups of exactly 32 lanes; skipped");
        return Ok(());
    }
    let module = wgsl_module(&gpu, "probe_persistent", SRC);
    let coherent_src = SRC.replace(
        "@group(0) @binding(2) var<storage, read_write> xs",
        "@coherent @group(0) @binding(2) var<storage, read_write> xs",
    );
    let coherent_module = gpu
        .caps
        .coherent
        .then(|| wgsl_module(&gpu, "probe_persistent_coherent", &coherent_src));
    let storage = |label: &str, size: u64| storage(&gpu, label, size);
    let timer = PassTimer::new(&gpu);
    let mut rng = Rng::new(7);
    let matrix = (n as u64) * (n as u64) * 2;
    let copies = (64 << 20) / matrix + 1;
    // f16 values of magnitude [2^-6, 2^-5) at n = 2048 (half at 4096), any sign: x keeps
    // roughly its size along the chain.
    let exp: u16 = if n <= 2048 { 9 } else { 8 };
    let wb = random_f16_bytes(&mut rng, (matrix * copies) as usize, exp);
    let w = storage("w", wb.len() as u64);
    gpu.queue.write_buffer(&w, 0, &wb);
    // x slots: the chain's input, then each mat-vec's output.
    let x0: Vec<u8> = (0..n)
        .flat_map(|i| (((i % 7) as f32 - 3.0) * 0.25).to_le_bytes())
        .chain(std::iter::repeat_n(0, 4 * (n * phases) as usize))
        .collect();
    // A fresh set of x slots for every run (the warm-up's, then 6 timed): no address is read
    // by two runs, so no L1 line from an earlier run can serve a read.
    const RUNS: usize = 7;
    let xs: Vec<wgpu::Buffer> = (0..RUNS).map(|_| storage("xs", x0.len() as u64)).collect();
    let bar = storage("bar", 8);
    let mut results: Vec<(Mode, Vec<u8>)> = Vec::new();
    let persistent = |prefetch, dep, atomic_out| Mode::Persistent {
        lanes: 512,
        prefetch,
        dep,
        atomic_out,
        coherent: false,
        stage_x: false,
        split: false,
        force: false,
        acquire: true,
        depth2: false,
        fold_fut: false,
    };
    let coherent = |prefetch, dep, stage_x| Mode::Persistent {
        lanes: 512,
        prefetch,
        dep,
        atomic_out: false,
        coherent: true,
        stage_x,
        split: false,
        force: false,
        acquire: true,
        depth2: false,
        fold_fut: false,
    };
    let split = |prefetch, force, acquire| Mode::Persistent {
        lanes: 512,
        prefetch,
        dep: false,
        atomic_out: false,
        coherent: true,
        stage_x: true,
        split: true,
        force,
        acquire,
        depth2: false,
        fold_fut: false,
    };
    let deep = |force, fold_fut, acquire| Mode::Persistent {
        lanes: 512,
        prefetch: true,
        dep: false,
        atomic_out: false,
        coherent: true,
        stage_x: true,
        split: true,
        force,
        acquire,
        depth2: true,
        fold_fut,
    };
    let modes = [
        Mode::Dispatches { lanes: 128 },
        Mode::Dispatches { lanes: 512 },
        persistent(false, false, false),
        persistent(true, false, false),
        persistent(false, true, false),
        persistent(false, false, true),
        persistent(false, true, true),
        persistent(true, true, true),
        coherent(false, false, false),
        coherent(true, false, false),
        coherent(false, true, false),
        coherent(false, false, true),
        coherent(true, false, true),
        split(false, false, true),
        split(true, false, true),
        split(true, true, true),
        split(true, false, false),
        split(true, true, false),
        deep(false, false, false),
        deep(true, false, false),
        deep(false, true, false),
        deep(true, false, true),
    ];

    for mode in modes {
        let module = match (mode, &coherent_module) {
            (Mode::Persistent { coherent: true, .. }, None) => {
                println!("{mode:?}: no @coherent storage buffers on this device; skipped");
                continue;
            }
            (Mode::Persistent { coherent: true, .. }, Some(m)) => m,
            _ => &module,
        };
        let lanes = mode.lanes();
        let groups = n / (lanes / 32);
        let pipeline = gpu
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some("probe_persistent"),
                layout: None,
                module,
                entry_point: Some("main"),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &[
                        ("WG", lanes as f64),
                        (
                            "PREFETCH",
                            matches!(mode, Mode::Persistent { prefetch: true, .. }) as u32 as f64,
                        ),
                        (
                            "DEP",
                            matches!(mode, Mode::Persistent { dep: true, .. }) as u32 as f64,
                        ),
                        (
                            "ATOMIC_OUT",
                            matches!(
                                mode,
                                Mode::Persistent {
                                    atomic_out: true,
                                    ..
                                }
                            ) as u32 as f64,
                        ),
                        (
                            "SPLIT",
                            matches!(mode, Mode::Persistent { split: true, .. }) as u32 as f64,
                        ),
                        (
                            "FORCE",
                            matches!(mode, Mode::Persistent { force: true, .. }) as u32 as f64,
                        ),
                        (
                            "DEPTH2",
                            matches!(mode, Mode::Persistent { depth2: true, .. }) as u32 as f64,
                        ),
                        (
                            "FOLD_FUT",
                            matches!(mode, Mode::Persistent { fold_fut: true, .. }) as u32 as f64,
                        ),
                        (
                            "ACQUIRE",
                            !matches!(mode, Mode::Persistent { acquire: false, .. }) as u32 as f64,
                        ),
                        (
                            "STAGE_X",
                            matches!(mode, Mode::Persistent { stage_x: true, .. }) as u32 as f64,
                        ),
                    ],
                    ..Default::default()
                },
                cache: None,
            });
        // One bind group per dispatch: per mat-vec, or one for the whole chain.
        let dispatches = if matches!(mode, Mode::Dispatches { .. }) {
            phases
        } else {
            1
        };
        let uniforms: Vec<wgpu::Buffer> = (0..dispatches)
            .map(|d| {
                let params = Params {
                    n,
                    phases: phases / dispatches,
                    phase0: d,
                    copies: copies as u32,
                    cap: 1 << 20,
                    groups,
                    mask: 0,
                    _pad: 0,
                };
                let u = gpu.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("params"),
                    size: 32,
                    usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                gpu.queue.write_buffer(&u, 0, bytemuck::bytes_of(&params));
                u
            })
            .collect();
        // [run][dispatch]
        let bgs: Vec<Vec<wgpu::BindGroup>> = xs
            .iter()
            .map(|x| {
                uniforms
                    .iter()
                    .map(|u| {
                        gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
                            label: None,
                            layout: &pipeline.get_bind_group_layout(0),
                            entries: &[(0, u), (1, &w), (2, x), (3, &bar), (4, x)].map(
                                |(binding, b)| wgpu::BindGroupEntry {
                                    binding,
                                    resource: b.as_entire_binding(),
                                },
                            ),
                        })
                    })
                    .collect()
            })
            .collect();
        let pipeline = &pipeline;
        let record = |run: usize| {
            let bgs = &bgs[run];
            move |pass: &mut wgpu::ComputePass<'_>| {
                pass.set_pipeline(pipeline);
                for bg in bgs {
                    pass.set_bind_group(0, bg, &[]);
                    pass.dispatch_workgroups(groups, 1, 1);
                }
            }
        };
        // The H100 idles at a low clock between bursts: ~300 ms of this chain first.
        let start = std::time::Instant::now();
        while start.elapsed().as_secs_f64() < 0.3 {
            timer.run(&gpu, false, &record(0))?;
        }
        let mut times = Vec::new();
        for (run, x) in xs.iter().enumerate().skip(1) {
            gpu.queue.write_buffer(x, 0, &x0);
            gpu.queue.write_buffer(&bar, 0, &[0; 8]);
            times.push(timer.run(&gpu, true, &record(run))?);
        }
        times.sort_by(f64::total_cmp);
        let per = times[times.len() / 2] / phases as f64;
        let out = gpu.read_bytes(&xs[RUNS - 1], x0.len() as u64)?;
        let bar_words = gpu.read_bytes(&bar, 8)?;
        let errors = u32::from_le_bytes(bar_words[4..8].try_into().unwrap());
        println!(
            "n = k = {n} ({:.1} MB a mat-vec, {copies} copies, {phases} in a chain) {:42} \
             {groups:4} workgroups {:7.2} us a mat-vec {:6.0} GB/s  capped spins {errors}",
            matrix as f64 / 1e6,
            format!("{mode:?}"),
            per * 1e6,
            matrix as f64 / per / 1e9,
        );
        results.push((mode, out));
    }
    // Slots (n floats each) against the first chain's: how many differ, the first that does,
    // and the largest difference relative to the slot's largest value (rounding-level where
    // the driver compiled a loop's first turn apart from the others; not where x is stale).
    let want = f32s(&results[0].1);
    for (mode, out) in &results[1..] {
        let got = f32s(out);
        let mut differ = 0;
        let mut first = None;
        let mut worst = 0.0f32;
        for (i, (g, w)) in got
            .chunks(n as usize)
            .zip(want.chunks(n as usize))
            .enumerate()
        {
            let d = g.iter().zip(w).filter(|(a, b)| a != b).count();
            if d > 0 {
                differ += 1;
                first.get_or_insert((i, d));
            }
            let scale = w
                .iter()
                .fold(0.0f32, |m, v| m.max(v.abs()))
                .max(f32::MIN_POSITIVE);
            let err = g
                .iter()
                .zip(w)
                .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
            worst = worst.max(err / scale);
        }
        match first {
            None => println!("  {mode:?}: every x slot equals the first chain's"),
            Some((i, d)) => println!(
                "  {mode:?}: {differ} of {} x slots differ from the first chain's; the first is \
                 slot {i} ({d} of {n} floats); largest difference {worst:.2e} of a slot's \
                 largest value",
                want.len() / n as usize,
            ),
        }
    }
    Ok(())
}
