//! Probe: a chain of dependent F16 mat-vecs (x_{p+1} = W_p x_p, n = k = 2048 or 4096), one dispatch
//! per mat-vec, ordered either by wgpu's barrier between dispatches (as decode runs now) or
//! by the shaders themselves, with no barrier (*dataflow*): each dispatch binds its own alias
//! of the x slots and counters (`testing::probe::alias`, Vulkan only), so wgpu sees no hazard
//! and the driver may start a dispatch while the one before runs. A dataflow workgroup loads
//! its weights, waits until the previous mat-vec's workgroups have all counted themselves
//! done (one lane spins on a counter, capped), reads x past the L1 (`@coherent`), and counts
//! itself done after a device-scope fence. Does the boundary get cheaper when the next
//! dispatch's workgroups are already resident with their weights loaded?
//!
//!     cargo run --release -p wgllama-engine --example probe_dataflow [-- PHASES [N]]
//!
//! At n = 4096 a lane's row has two chunks of 8 units: the first is loaded before the wait,
//! the second after it.
//!
//! The session-21 persistent probe (examples/probe_persistent.rs, SPLIT / FORCE) found the
//! weights' loads only overlap the wait when they are issued after the release fence and the
//! spin depends on them (FORCE: the spin's address is computed from them, masked to zero by a
//! uniform the compiler cannot see). The same here: FORCE folds the units into the spin's
//! address.
//!
//! On the H100 (benches/results/2026-11-25-h100-s21/probe-dataflow-*.txt): square chains gain
//! (4096 x 4096: 14.75 -> 12.86 us a mat-vec at 512 lanes), TinyLlama-shaped layers do not
//! (best barrier chain 1008 us a pass, best dataflow 1030): staging x from L2 in every
//! workgroup costs what the boundary saved. Every x slot matched the barrier chain's.
//!
//! Deadlock: a spinning workgroup holds its SM slot. The probe relies on the GPU launching a
//! dispatch's workgroups before any later dispatch's (in order), so the mat-vec a spinner
//! waits for is always resident or ahead of it; the cap (counted as an error) ends a wait
//! that never ends instead of hanging.

use wgllama_engine::testing::pass_timer::PassTimer;
use wgllama_engine::testing::probe::{alias, f32s, random_f16_bytes, storage, wgsl_module};
use wgllama_engine::testing::Rng;
use wgllama_engine::{Gpu, GpuOptions, Result};

const SRC: &str = r#"
struct Params {
    rows: u32,     // this mat-vec's rows (a multiple of WG / 32)
    k: u32,        // its columns (a multiple of 2048... or of 256 past the first 2048)
    w_off: u32,    // its row 0 in w (vec4 units of 8 f16)
    x_off: u32,    // its x in xs (vec4)
    y_off: u32,    // its output in xs (vec4)
    phase: u32,    // its index in the chain (counter bar[phase])
    cap: u32,      // most spins of a wait
    wait_for: u32, // workgroups of the mat-vec before
    mask: u32,     // 0: FORCE's fake dependency
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w: array<vec4<u32>>;         // matrices, [rows][k / 8] f16 each
@group(0) @binding(2) var<storage, read_write> xs: array<vec4<f32>>;  // x slots
@group(0) @binding(3) var<storage, read_write> bar: array<atomic<u32>>; // [chain + 1]: done counts, errors

override WG: u32 = 128u;        // lanes a workgroup (subgroups of 32; >= 128: rows leave 4 at a time)
override WAIT: bool = false;    // dataflow: wait on the previous mat-vec's counter, count done
override FORCE: bool = false;   // the spin's address depends on the loaded units
override STAGE_X: bool = false; // x read once a workgroup into workgroup memory
override ACQUIRE: bool = false; // a device-scope fence after the wait (else a control barrier)
override XW: u32 = 512u;        // STAGE_X: vec4 of x staged (k / 4: a pipeline per k)

var<workgroup> xw: array<vec4<f32>, XW>;
var<workgroup> out4: array<f32, 32>;       // a workgroup's row totals (WG / 32 <= 32)
var<workgroup> seen: u32;

// A lane's first 8 units (16-byte loads) of its row, named so they stay in registers.
struct Units {
    a: vec4<u32>, b: vec4<u32>, c: vec4<u32>, d: vec4<u32>,
    e: vec4<u32>, f: vec4<u32>, g: vec4<u32>, h: vec4<u32>,
}

fn load_units(base: u32) -> Units {
    return Units(w[base], w[base + 32u], w[base + 64u], w[base + 96u],
                 w[base + 128u], w[base + 160u], w[base + 192u], w[base + 224u]);
}

fn fold_units(t: Units) -> u32 {
    let v = (t.a ^ t.b) ^ (t.c ^ t.d) ^ (t.e ^ t.f) ^ (t.g ^ t.h);
    return (v.x ^ v.y) ^ (v.z ^ v.w);
}

fn xv(i: u32) -> vec4<f32> {
    if (STAGE_X) {
        return xw[i];
    }
    return xs[p.x_off + i];
}

// Unit j of a row (columns 8j..8j+7) against x.
fn unit_dot(j: u32, q: vec4<u32>) -> vec4<f32> {
    return xv(2u * j) * vec4<f32>(unpack2x16float(q.x), unpack2x16float(q.y))
         + xv(2u * j + 1u) * vec4<f32>(unpack2x16float(q.z), unpack2x16float(q.w));
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32,
        @builtin(subgroup_id) sg: u32, @builtin(subgroup_invocation_id) lane: u32) {
    let row = wid.x * (WG / 32u) + sg;
    // A lane's units are lane, lane + 32, ...: the first 8 loaded before the wait.
    let base = p.w_off + row * (p.k / 8u) + lane;
    let t = load_units(base);
    if (WAIT && p.phase > 0u) {
        var fake = 0u;
        if (FORCE) {
            fake = fold_units(t);
        }
        if (lid == 0u) {
            var i = 0u;
            loop {
                if (atomicLoad(&bar[p.phase - 1u + (fake & p.mask)]) >= p.wait_for) { break; }
                i++;
                if (i >= p.cap) { atomicAdd(&bar[arrayLength(&bar) - 1u], 1u); break; }
            }
            seen = i;
        }
        if (ACQUIRE) {
            storageBarrier();
        }
        _ = workgroupUniformLoad(&seen);
    }
    if (STAGE_X) {
        for (var i = lid; i < p.k / 4u; i += WG) {
            xw[i] = xs[p.x_off + i];
        }
        workgroupBarrier();
    }
    var acc = (unit_dot(lane, t.a) + unit_dot(lane + 32u, t.b))
            + (unit_dot(lane + 64u, t.c) + unit_dot(lane + 96u, t.d))
            + (unit_dot(lane + 128u, t.e) + unit_dot(lane + 160u, t.f))
            + (unit_dot(lane + 192u, t.g) + unit_dot(lane + 224u, t.h));
    // The rest after the wait: 8 units at a time, then one at a time.
    var i = 8u;
    for (; i + 8u <= p.k / 256u; i += 8u) {
        let u = load_units(base + 32u * i);
        let j = lane + 32u * i;
        acc += (unit_dot(j, u.a) + unit_dot(j + 32u, u.b))
             + (unit_dot(j + 64u, u.c) + unit_dot(j + 96u, u.d))
             + (unit_dot(j + 128u, u.e) + unit_dot(j + 160u, u.f))
             + (unit_dot(j + 192u, u.g) + unit_dot(j + 224u, u.h));
    }
    for (; i < p.k / 256u; i++) {
        acc += unit_dot(lane + 32u * i, w[base + 32u * i]);
    }
    let total = subgroupAdd((acc.x + acc.y) + (acc.z + acc.w));
    // Four rows' totals leave as one vec4 store (a one-float store can read the line first).
    if (lane == 0u) {
        out4[sg] = total;
    }
    workgroupBarrier();
    if (lid < WG / 128u) {
        let r = wid.x * (WG / 32u) + 4u * lid;
        xs[p.y_off + r / 4u] = vec4<f32>(out4[4u * lid], out4[4u * lid + 1u],
                                         out4[4u * lid + 2u], out4[4u * lid + 3u]);
    }
    if (WAIT) {
        storageBarrier();
        if (lid == 0u) {
            atomicAdd(&bar[p.phase], 1u);
        }
    }
}
"#;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    k: u32,
    w_off: u32,
    x_off: u32,
    y_off: u32,
    phase: u32,
    cap: u32,
    wait_for: u32,
    mask: u32,
    _pad: [u32; 3],
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Mode {
    lanes: u32,
    /// No barriers: aliased bindings, counters.
    dataflow: bool,
    force: bool,
    stage_x: bool,
    acquire: bool,
}

/// One mat-vec of the chain: `rows` x `k` f16 at vec4 offset `w_off` of the weights.
#[derive(Clone, Copy)]
struct Phase {
    rows: u32,
    k: u32,
    w_off: u32,
}

/// The chain: `phases` square n x n mat-vecs cycling through weight copies, or `layers`
/// TinyLlama-1.1B layers without attention (q/k/v 2560 x 2048, Wo 2048 x 2048 reading the
/// first 2048 outputs, gate/up 11264 x 2048, down 2048 x 5632 reading the first 5632), over
/// three copies of a layer's weights. Returns the phases and the weights' size in vec4.
fn chain(tinyllama: bool, count: u32, n: u32) -> (Vec<Phase>, u32, String) {
    let shapes: Vec<(u32, u32)> = if tinyllama {
        vec![(2560, 2048), (2048, 2048), (11264, 2048), (2048, 5632)]
    } else {
        vec![(n, n)]
    };
    let bytes: u64 = shapes.iter().map(|&(r, k)| r as u64 * k as u64 * 2).sum();
    let copies = ((128u64 << 20) / bytes + 1).max(3) as u32;
    let mut offs = Vec::new();
    let mut off = 0u32;
    for _ in 0..copies {
        for &(r, k) in &shapes {
            offs.push(off);
            off += r * k / 8;
        }
    }
    let steps = count * shapes.len() as u32;
    let phases = (0..steps)
        .map(|i| {
            let s = (i as usize) % shapes.len();
            let copy = (i as usize / shapes.len()) % copies as usize;
            Phase {
                rows: shapes[s].0,
                k: shapes[s].1,
                w_off: offs[copy * shapes.len() + s],
            }
        })
        .collect();
    let what = if tinyllama {
        format!(
            "{count} TinyLlama layers without attention ({:.1} MB a layer)",
            bytes as f64 / 1e6
        )
    } else {
        format!(
            "n = k = {n} ({:.1} MB a mat-vec, {count} in a chain)",
            bytes as f64 / 1e6
        )
    };
    (phases, off, what)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let tinyllama = args.first().is_some_and(|a| a == "tinyllama");
    let num = |i: usize, default: u32| {
        args.get(i)
            .and_then(|s| s.parse::<u32>().ok())
            .unwrap_or(default)
    };
    let (count, n) = if tinyllama {
        (num(1, 22), 0)
    } else {
        (num(0, 64), num(1, 2048))
    };
    assert!(tinyllama || n == 2048 || n == 4096, "n is 2048 or 4096");
    let gpu = Gpu::new(&GpuOptions::default())?;
    println!("adapter: {}", gpu.describe());
    // The modules first: validated (and compiled) even where the probe cannot run.
    let plain = wgsl_module(&gpu, "probe_dataflow", SRC);
    let coherent = wgsl_module(
        &gpu,
        "probe_dataflow_coherent",
        &SRC.replace(
            "@group(0) @binding(2) var<storage, read_write> xs",
            "@coherent @group(0) @binding(2) var<storage, read_write> xs",
        ),
    );
    if !gpu.caps.subgroups || gpu.caps.subgroup_size != (32, 32) || !gpu.caps.coherent {
        println!("needs subgroups of exactly 32 lanes and @coherent buffers; skipped");
        return Ok(());
    }
    let (phases, w_vec4, what) = chain(tinyllama, count, n);
    let slot = phases.iter().map(|ph| ph.rows.max(ph.k)).max().unwrap() / 4;
    let chain_bytes: u64 = phases
        .iter()
        .map(|ph| ph.rows as u64 * ph.k as u64 * 2)
        .sum();
    let timer = PassTimer::new(&gpu);
    let mut rng = Rng::new(7);
    let wb = random_f16_bytes(&mut rng, w_vec4 as usize * 16, 9);
    let w = storage(&gpu, "w", wb.len() as u64);
    gpu.queue.write_buffer(&w, 0, &wb);
    // x slots of `slot` vec4 each: the chain's input (the first k of slot 0), then outputs.
    let first_k = phases[0].k;
    let x0: Vec<u8> = (0..4 * slot * (phases.len() as u32 + 1))
        .flat_map(|i| {
            let v = if i < first_k {
                ((i % 7) as f32 - 3.0) * 0.25
            } else {
                0.0
            };
            v.to_le_bytes()
        })
        .collect();
    const RUNS: usize = 7;
    let xs: Vec<wgpu::Buffer> = (0..RUNS)
        .map(|_| storage(&gpu, "xs", x0.len() as u64))
        .collect();
    let bar_bytes = 4 * (phases.len() as u64 + 1);
    let bars: Vec<wgpu::Buffer> = (0..RUNS).map(|_| storage(&gpu, "bar", bar_bytes)).collect();
    let m = |lanes, dataflow, force, stage_x, acquire| Mode {
        lanes,
        dataflow,
        force,
        stage_x,
        acquire,
    };
    let modes: Vec<Mode> = if tinyllama {
        vec![
            m(128, false, false, false, false),
            m(256, false, false, false, false),
            m(512, false, false, false, false),
            m(256, true, false, true, false),
            m(256, true, true, true, false),
            m(512, true, true, true, false),
            m(512, true, true, true, true),
        ]
    } else {
        vec![
            m(128, false, false, false, false),
            m(512, false, false, false, false),
            m(128, true, false, false, false),
            m(128, true, true, false, false),
            m(128, true, true, true, false),
            m(128, true, true, true, true),
            m(512, true, false, true, false),
            m(512, true, true, true, false),
            m(512, true, true, true, true),
            m(256, true, true, true, false),
        ]
    };
    let mut results: Vec<(Mode, Vec<u8>)> = Vec::new();
    for mode in modes {
        let module = if mode.dataflow { &coherent } else { &plain };
        let rows_a_group = mode.lanes / 32;
        let groups: Vec<u32> = phases.iter().map(|ph| ph.rows / rows_a_group).collect();
        assert!(phases.iter().all(|ph| ph.rows % rows_a_group == 0));
        let flag = |b: bool| b as u32 as f64;
        // A pipeline per k: STAGE_X's workgroup memory sized to its own x.
        let pipeline_for = |k: u32| {
            gpu.device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some("probe_dataflow"),
                    layout: None,
                    module,
                    entry_point: Some("main"),
                    compilation_options: wgpu::PipelineCompilationOptions {
                        constants: &[
                            ("WG", mode.lanes as f64),
                            ("WAIT", flag(mode.dataflow)),
                            ("FORCE", flag(mode.force)),
                            ("STAGE_X", flag(mode.stage_x)),
                            ("ACQUIRE", flag(mode.acquire)),
                            ("XW", (k / 4) as f64),
                        ],
                        ..Default::default()
                    },
                    cache: None,
                })
        };
        let mut ks: Vec<u32> = phases.iter().map(|ph| ph.k).collect();
        ks.sort();
        ks.dedup();
        let pipelines: Vec<(u32, wgpu::ComputePipeline)> =
            ks.iter().map(|&k| (k, pipeline_for(k))).collect();
        let pipeline_of = |k: u32| &pipelines.iter().find(|(pk, _)| *pk == k).unwrap().1;
        let uniforms: Vec<wgpu::Buffer> = phases
            .iter()
            .enumerate()
            .map(|(i, ph)| {
                let params = Params {
                    rows: ph.rows,
                    k: ph.k,
                    w_off: ph.w_off,
                    x_off: i as u32 * slot,
                    y_off: (i as u32 + 1) * slot,
                    phase: i as u32,
                    cap: 1 << 20,
                    wait_for: if i > 0 { groups[i - 1] } else { 0 },
                    mask: 0,
                    _pad: [0; 3],
                };
                let u = gpu.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("params"),
                    size: std::mem::size_of::<Params>() as u64,
                    usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                gpu.queue.write_buffer(&u, 0, bytemuck::bytes_of(&params));
                u
            })
            .collect();
        // Dataflow: every dispatch after the first its own aliases of x and the counters (no
        // barriers). The first binds the buffers themselves, so wgpu's barrier after the
        // queue's writes to them comes before it (and so before every later dispatch).
        let own = |b: &wgpu::Buffer, phase: usize| {
            if mode.dataflow && phase > 0 {
                unsafe { alias(&gpu, b) }.expect("Vulkan buffer")
            } else {
                b.clone()
            }
        };
        let bgs: Vec<Vec<wgpu::BindGroup>> = (0..RUNS)
            .map(|run| {
                uniforms
                    .iter()
                    .enumerate()
                    .map(|(phase, u)| {
                        let (x, bar) = (own(&xs[run], phase), own(&bars[run], phase));
                        let layout = pipeline_of(phases[phase].k).get_bind_group_layout(0);
                        gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
                            label: None,
                            layout: &layout,
                            entries: &[(0, u), (1, &w), (2, &x), (3, &bar)].map(|(binding, b)| {
                                wgpu::BindGroupEntry {
                                    binding,
                                    resource: b.as_entire_binding(),
                                }
                            }),
                        })
                    })
                    .collect()
            })
            .collect();
        let groups = &groups;
        let phases = &phases;
        let pipeline_of = &pipeline_of;
        let record = |run: usize| {
            let bgs = &bgs[run];
            move |pass: &mut wgpu::ComputePass<'_>| {
                for ((bg, &g), ph) in bgs.iter().zip(groups).zip(phases) {
                    pass.set_pipeline(pipeline_of(ph.k));
                    pass.set_bind_group(0, bg, &[]);
                    pass.dispatch_workgroups(g, 1, 1);
                }
            }
        };
        let zero = vec![0u8; bar_bytes as usize];
        let start = std::time::Instant::now();
        while start.elapsed().as_secs_f64() < 0.3 {
            gpu.queue.write_buffer(&bars[0], 0, &zero);
            timer.run(&gpu, false, &record(0))?;
        }
        let mut times = Vec::new();
        for run in 1..RUNS {
            gpu.queue.write_buffer(&xs[run], 0, &x0);
            gpu.queue.write_buffer(&bars[run], 0, &zero);
            times.push(timer.run(&gpu, true, &record(run))?);
        }
        times.sort_by(f64::total_cmp);
        let pass = times[times.len() / 2];
        let out = gpu.read_bytes(&xs[RUNS - 1], x0.len() as u64)?;
        let bar_words = gpu.read_bytes(&bars[RUNS - 1], bar_bytes)?;
        let errors = u32::from_le_bytes(bar_words[bar_words.len() - 4..].try_into().unwrap());
        println!(
            "{what} {:80} {:8.2} us a pass {:7.2} us a mat-vec {:6.0} GB/s  capped spins {errors}",
            format!("{mode:?}"),
            pass * 1e6,
            pass * 1e6 / phases.len() as f64,
            chain_bytes as f64 / pass / 1e9,
        );
        results.push((mode, out));
    }
    let want = f32s(&results[0].1);
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    for (mode, out) in &results[1..] {
        let got = f32s(out);
        let differ = got
            .chunks(4 * slot as usize)
            .zip(want.chunks(4 * slot as usize))
            .filter(|(g, w)| g != w)
            .count();
        let worst = got
            .iter()
            .zip(&want)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        println!(
            "  {mode:?}: {differ} of {} x slots differ from the first mode's (largest \
             difference {:.2e} of the largest value, {scale:.3e})",
            phases.len() + 1,
            worst / scale
        );
    }
    Ok(())
}
