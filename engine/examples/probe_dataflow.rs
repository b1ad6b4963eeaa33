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
//! Deadlock: a spinning workgroup holds its SM slot. The probe relies on the GPU launching a
//! dispatch's workgroups before any later dispatch's (in order), so the mat-vec a spinner
//! waits for is always resident or ahead of it; the cap (counted as an error) ends a wait
//! that never ends instead of hanging.

use wgllama_engine::testing::pass_timer::PassTimer;
use wgllama_engine::testing::probe::{alias, storage, wgsl_module};
use wgllama_engine::testing::Rng;
use wgllama_engine::{Gpu, GpuOptions, Result};

const SRC: &str = r#"
struct Params {
    n: u32,       // rows = k
    phase: u32,   // this mat-vec's index in the chain
    copies: u32,  // weight copies cycled through
    cap: u32,     // most spins of a wait
    wait_for: u32, // workgroups of the mat-vec before
    mask: u32,    // 0: FORCE's fake dependency
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w: array<vec4<u32>>;         // [copies][n][n / 8] f16
@group(0) @binding(2) var<storage, read_write> xs: array<vec4<f32>>;  // [chain + 1][n / 4]
@group(0) @binding(3) var<storage, read_write> bar: array<atomic<u32>>; // [chain + 1]: done counts, errors

override WG: u32 = 128u;        // lanes a workgroup (subgroups of 32; >= 128: rows leave 4 at a time)
override WAIT: bool = false;    // dataflow: wait on the previous mat-vec's counter, count done
override FORCE: bool = false;   // the spin's address depends on the loaded units
override STAGE_X: bool = false; // x read once a workgroup into workgroup memory
override ACQUIRE: bool = false; // a device-scope fence after the wait (else a control barrier)

var<workgroup> xw: array<vec4<f32>, 1024>; // STAGE_X: x slot (n / 4 <= 1024 vec4)
var<workgroup> out4: array<f32, 32>;       // a workgroup's row totals (WG / 32 <= 32)
var<workgroup> seen: u32;

// A lane's 8 units (16-byte loads) of its row, named so they stay in registers.
struct Units {
    a: vec4<u32>, b: vec4<u32>, c: vec4<u32>, d: vec4<u32>,
    e: vec4<u32>, f: vec4<u32>, g: vec4<u32>, h: vec4<u32>,
}

// Chunk c of a lane's row: 8 units (2048 columns) a chunk.
fn load_units(copy: u32, row: u32, lane: u32, c: u32) -> Units {
    let base = (copy * p.n + row) * (p.n / 8u) + 256u * c + lane;
    return Units(w[base], w[base + 32u], w[base + 64u], w[base + 96u],
                 w[base + 128u], w[base + 160u], w[base + 192u], w[base + 224u]);
}

fn fold_units(t: Units) -> u32 {
    let v = (t.a ^ t.b) ^ (t.c ^ t.d) ^ (t.e ^ t.f) ^ (t.g ^ t.h);
    return (v.x ^ v.y) ^ (v.z ^ v.w);
}

fn xv(src: u32, i: u32) -> vec4<f32> {
    if (STAGE_X) {
        return xw[i];
    }
    return xs[src + i];
}

fn chunk_dot(src: u32, lane: u32, t: Units) -> vec4<f32> {
    return (unit_dot(src, lane, t.a) + unit_dot(src, lane + 32u, t.b))
         + (unit_dot(src, lane + 64u, t.c) + unit_dot(src, lane + 96u, t.d))
         + (unit_dot(src, lane + 128u, t.e) + unit_dot(src, lane + 160u, t.f))
         + (unit_dot(src, lane + 192u, t.g) + unit_dot(src, lane + 224u, t.h));
}

fn unit_dot(src: u32, u: u32, q: vec4<u32>) -> vec4<f32> {
    return xv(src, 2u * u) * vec4<f32>(unpack2x16float(q.x), unpack2x16float(q.y))
         + xv(src, 2u * u + 1u) * vec4<f32>(unpack2x16float(q.z), unpack2x16float(q.w));
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32,
        @builtin(subgroup_id) sg: u32, @builtin(subgroup_invocation_id) lane: u32) {
    let row = wid.x * (WG / 32u) + sg;
    // The first chunk loaded before the wait, the others after it.
    let t = load_units(p.phase % p.copies, row, lane, 0u);
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
    let src = p.phase * (p.n / 4u);
    if (STAGE_X) {
        for (var i = lid; i < p.n / 4u; i += WG) {
            xw[i] = xs[src + i];
        }
        workgroupBarrier();
    }
    var acc = chunk_dot(src, lane, t);
    for (var c = 1u; c < p.n / 2048u; c++) {
        acc += chunk_dot(src, lane + 256u * c, load_units(p.phase % p.copies, row, lane, c));
    }
    let total = subgroupAdd((acc.x + acc.y) + (acc.z + acc.w));
    // Four rows' totals leave as one vec4 store (a one-float store can read the line first).
    if (lane == 0u) {
        out4[sg] = total;
    }
    workgroupBarrier();
    if (lid < WG / 128u) {
        let r = wid.x * (WG / 32u) + 4u * lid;
        xs[src + p.n / 4u + r / 4u] = vec4<f32>(out4[4u * lid], out4[4u * lid + 1u],
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
    n: u32,
    phase: u32,
    copies: u32,
    cap: u32,
    wait_for: u32,
    mask: u32,
    _pad: [u32; 2],
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

fn main() -> Result<()> {
    let arg = |i: usize, default: u32| {
        std::env::args()
            .nth(i)
            .and_then(|s| s.parse::<u32>().ok())
            .unwrap_or(default)
    };
    let phases = arg(1, 64);
    let n = arg(2, 2048);
    assert!(n == 2048 || n == 4096, "n is 2048 or 4096");
    let gpu = Gpu::new(&GpuOptions::default())?;
    println!("adapter: {}", gpu.describe());
    if !gpu.caps.subgroups || gpu.caps.subgroup_size != (32, 32) || !gpu.caps.coherent {
        println!("needs subgroups of exactly 32 lanes and @coherent buffers; skipped");
        return Ok(());
    }
    let plain = wgsl_module(&gpu, "probe_dataflow", SRC);
    let coherent = wgsl_module(
        &gpu,
        "probe_dataflow_coherent",
        &SRC.replace(
            "@group(0) @binding(2) var<storage, read_write> xs",
            "@coherent @group(0) @binding(2) var<storage, read_write> xs",
        ),
    );
    let timer = PassTimer::new(&gpu);
    let mut rng = Rng::new(7);
    let matrix = (n as u64) * (n as u64) * 2;
    let copies = ((128 << 20) / matrix + 1).max(3);
    let mut wb = Vec::with_capacity((matrix * copies) as usize);
    while (wb.len() as u64) < matrix * copies {
        let r = rng.next_u64();
        for i in 0..4 {
            let h = ((r >> (16 * i)) as u16 & 0x83ff) | (9 << 10);
            wb.extend_from_slice(&h.to_le_bytes());
        }
    }
    wb.truncate((matrix * copies) as usize);
    let w = storage(&gpu, "w", wb.len() as u64);
    gpu.queue.write_buffer(&w, 0, &wb);
    let x0: Vec<u8> = (0..n)
        .flat_map(|i| (((i % 7) as f32 - 3.0) * 0.25).to_le_bytes())
        .chain(std::iter::repeat_n(0, 4 * (n * phases) as usize))
        .collect();
    const RUNS: usize = 7;
    let xs: Vec<wgpu::Buffer> = (0..RUNS)
        .map(|_| storage(&gpu, "xs", x0.len() as u64))
        .collect();
    let bar_bytes = 4 * (phases as u64 + 1);
    let bars: Vec<wgpu::Buffer> = (0..RUNS).map(|_| storage(&gpu, "bar", bar_bytes)).collect();
    let m = |lanes, dataflow, force, stage_x, acquire| Mode {
        lanes,
        dataflow,
        force,
        stage_x,
        acquire,
    };
    let modes = [
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
    ];
    let mut results: Vec<(Mode, Vec<u8>)> = Vec::new();
    for mode in modes {
        let module = if mode.dataflow { &coherent } else { &plain };
        let groups = n / (mode.lanes / 32);
        let flag = |b: bool| b as u32 as f64;
        let pipeline = gpu
            .device
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
                    ],
                    ..Default::default()
                },
                cache: None,
            });
        let uniforms: Vec<wgpu::Buffer> = (0..phases)
            .map(|phase| {
                let params = Params {
                    n,
                    phase,
                    copies: copies as u32,
                    cap: 1 << 20,
                    wait_for: groups,
                    mask: 0,
                    _pad: [0; 2],
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
                        gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
                            label: None,
                            layout: &pipeline.get_bind_group_layout(0),
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
        let per = times[times.len() / 2] / phases as f64;
        let out = gpu.read_bytes(&xs[RUNS - 1], x0.len() as u64)?;
        let bar_words = gpu.read_bytes(&bars[RUNS - 1], bar_bytes)?;
        let errors = u32::from_le_bytes(bar_words[bar_words.len() - 4..].try_into().unwrap());
        println!(
            "n = k = {n} ({:.1} MB a mat-vec, {phases} in a chain) {:80} {groups:4} workgroups \
             {:7.2} us a mat-vec {:6.0} GB/s  capped spins {errors}",
            matrix as f64 / 1e6,
            format!("{mode:?}"),
            per * 1e6,
            matrix as f64 / per / 1e9,
        );
        results.push((mode, out));
    }
    let floats = |b: &[u8]| -> Vec<f32> {
        b.chunks(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    let want = floats(&results[0].1);
    for (mode, out) in &results[1..] {
        let got = floats(out);
        let differ = got
            .chunks(n as usize)
            .zip(want.chunks(n as usize))
            .filter(|(g, w)| g != w)
            .count();
        let worst = got
            .iter()
            .zip(&want)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        println!(
            "  {mode:?}: {differ} of {} x slots differ from the barrier chain's (largest \
             difference {:.2e} of the largest value)",
            want.len() / n as usize,
            worst / scale
        );
    }
    Ok(())
}
