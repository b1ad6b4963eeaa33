//! Probe: can the last workgroup of a group read, in the same dispatch, what the group's
//! other workgroups wrote, and what does that hand-off cost against a dispatch of its own?
//!
//!     cargo run --release -p wgllama-engine --example probe_ticket [-- DISPATCHES]
//!
//! Each workgroup first reads its group's records (priming its SM's L1 with the previous
//! dispatch's values), then writes its own 64-word record, passes storageBarrier() and takes a
//! ticket (atomicAdd); the group's last workgroup passes another storageBarrier(), reads the
//! group's records and counts words that differ from what this dispatch wrote. Dispatches
//! alternate two seeds, so a stale word always differs. Records are read with plain loads or
//! with atomicLoad. Variants: the ticket in the kernel; write only (no ticket); write, then the
//! check as a second dispatch (what the ticket replaces); and the ticket without the acquire
//! barrier, with one word a lane checked, with nothing checked, without the release fence.
//! Times are GPU time per iteration from pass timestamps (best of 5 chains). A third set reads
//! with plain loads from `rec` declared `@coherent` (SPIR-V's Coherent decoration, where the
//! device has MEMORY_DECORATION_COHERENT).
//!
//! On the H100 (benches/results/2026-11-24-h100-s10/probe-ticket.txt) plain loads read stale
//! words (the L1 is not made coherent by storageBarrier's device-scope fence) and atomicLoad
//! read none; the ticket cost ~1.4 us plus ~0.2 us per atomicLoad a lane (they are serialised),
//! where the second dispatch cost ~4.2 us. Plain loads from a `@coherent` binding
//! (benches/results/2026-11-24-h100-s17/probe-ticket-coherent.txt) read no stale word either,
//! at atomicLoad's cost (512 workgroups: ticket + 8 loads a lane 7.21 us, atomicLoad 7.22), but
//! as plain loads they can be 16 bytes wide.

use std::time::Instant;

use wgllama_engine::testing::pass_timer::PassTimer;
use wgllama_engine::testing::probe::{storage, wgsl_module};
use wgllama_engine::{Gpu, GpuOptions, Result};

const SRC: &str = r#"
COHERENT@group(0) @binding(0) var<storage, read_write> rec: array<WORD>;      // [groups * G * 64]
@group(0) @binding(1) var<storage, read_write> tickets: array<atomic<u32>>; // [groups]
@group(0) @binding(2) var<storage, read_write> errs: array<atomic<u32>>;    // [2]: errors, checks
@group(0) @binding(3) var<storage, read> seed: array<u32>;                  // [1]

override G: u32 = 8u;
override TICKET: bool = true;
override REL: bool = true;     // storageBarrier() before the ticket (else workgroupBarrier())
override ACQ: bool = true;     // storageBarrier() after it in the last workgroup
override NCHK: u32 = 8u;       // words per lane the last workgroup checks (of G)
var<workgroup> sm_t: u32;

fn hash(s: u32, w: u32, i: u32) -> u32 {
    var x = s ^ (w * 0x9e3779b9u) ^ (i * 0x85ebca6bu);
    x = (x ^ (x >> 16u)) * 0x7feb352du;
    return x ^ (x >> 15u);
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let w = wid.x;
    let b = w / G;
    var dummy = 0u;
    for (var i = lid; i < G * 64u; i += 64u) { dummy += READ(b * G * 64u + i); }
    STORE(w * 64u + lid, hash(seed[0], w, lid));
    if (dummy == 0x12345678u) { atomicAdd(&errs[1], 0u); }
    if (!TICKET) { return; }
    if (REL) { storageBarrier(); } else { workgroupBarrier(); }
    if (lid == 0u) { sm_t = atomicAdd(&tickets[b], 1u); }
    let t = workgroupUniformLoad(&sm_t);
    if (t != G - 1u) { return; }
    if (ACQ) { storageBarrier(); }
    var bad = 0u;
    for (var i = lid; i < NCHK * 64u; i += 64u) {
        if (READ(b * G * 64u + i) != hash(seed[0], b * G + i / 64u, i % 64u)) { bad += 1u; }
    }
    if (bad > 0u) { atomicAdd(&errs[0], bad); }
    if (lid == 0u) { atomicAdd(&errs[1], 1u); atomicStore(&tickets[b], 0u); }
}

// The same check as a dispatch of its own (one workgroup per group), after `main` without the
// ticket: what the ticket replaces.
@compute @workgroup_size(64)
fn check(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let b = wid.x;
    var bad = 0u;
    for (var i = lid; i < G * 64u; i += 64u) {
        if (READ(b * G * 64u + i) != hash(seed[0], b * G + i / 64u, i % 64u)) { bad += 1u; }
    }
    if (bad > 0u) { atomicAdd(&errs[0], bad); }
    if (lid == 0u) { atomicAdd(&errs[1], 1u); }
}
"#;

/// Loads of `rec`: 0 plain, 1 atomicLoad, 2 plain from a `@coherent` binding.
fn source(loads: usize) -> String {
    let src = SRC.replace("COHERENT", if loads == 2 { "@coherent " } else { "" });
    if loads == 1 {
        src.replace("WORD", "atomic<u32>")
            .replace("READ(", "atomicLoad(&rec[")
            .replace("STORE(w * 64u + lid, ", "atomicStore(&rec[w * 64u + lid], ")
            .replace("b * G * 64u + i)", "b * G * 64u + i])")
    } else {
        src.replace("WORD", "u32")
            .replace("READ(", "(rec[")
            .replace("STORE(w * 64u + lid, ", "rec[w * 64u + lid] = (")
            .replace("b * G * 64u + i)", "b * G * 64u + i])")
    }
}

fn main() -> Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let gpu = Gpu::new(&GpuOptions::default())?;
    println!("adapter: {}", gpu.describe());
    let g = 8u32;
    let storage = |label: &str, size: u64| storage(&gpu, label, size);
    let errs = storage("errs", 8);
    let timer = PassTimer::new(&gpu);
    let seeds = [storage("seed0", 4), storage("seed1", 4)];
    gpu.queue
        .write_buffer(&seeds[0], 0, &0x1234u32.to_le_bytes());
    gpu.queue
        .write_buffer(&seeds[1], 0, &0xabcdu32.to_le_bytes());
    for groups in [64u32, 512] {
        let rec = storage("rec", (groups * g * 64 * 4) as u64);
        let tickets = storage("tickets", (groups * 4) as u64);
        for loads in [0, 1, 2] {
            if loads == 2 && !gpu.caps.coherent {
                println!("no @coherent storage buffers on this device");
                continue;
            }
            let module = wgsl_module(&gpu, "probe", &source(loads));
            // 0: ticket in the kernel; 1: no ticket (write only); 2: no ticket + check dispatch.
            for variant in 0..7 {
                if loads == 0 && variant > 2 {
                    continue;
                }
                // 3: no acquire barrier; 4: one word per lane checked; 5: none checked;
                // 6: workgroupBarrier before the ticket (no release fence).
                let (rel, acq, nchk) = match variant {
                    3 => (true, false, 8.0),
                    4 => (true, true, 1.0),
                    5 => (true, true, 0.0),
                    6 => (false, true, 8.0),
                    _ => (true, true, 8.0),
                };
                let make = |entry: &str, ticket: bool| {
                    gpu.device
                        .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                            label: Some("probe"),
                            layout: None,
                            module: &module,
                            entry_point: Some(entry),
                            compilation_options: wgpu::PipelineCompilationOptions {
                                constants: &[
                                    ("G", g as f64),
                                    ("TICKET", ticket as u32 as f64),
                                    ("REL", rel as u32 as f64),
                                    ("ACQ", acq as u32 as f64),
                                    ("NCHK", nchk),
                                ],
                                ..Default::default()
                            },
                            cache: None,
                        })
                };
                let main_p = make("main", variant == 0 || variant > 2);
                let check_p = make("check", false);
                let bind = |p: &wgpu::ComputePipeline, s: &wgpu::Buffer, with_tickets: bool| {
                    let mut entries = vec![(0, &rec), (2, &errs), (3, s)];
                    if with_tickets {
                        entries.push((1, &tickets));
                    }
                    gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
                        label: None,
                        layout: &p.get_bind_group_layout(0),
                        entries: &entries
                            .iter()
                            .map(|(binding, b)| wgpu::BindGroupEntry {
                                binding: *binding,
                                resource: b.as_entire_binding(),
                            })
                            .collect::<Vec<_>>(),
                    })
                };
                let main_bgs: Vec<_> = seeds.iter().map(|s| bind(&main_p, s, true)).collect();
                let check_bgs: Vec<_> = seeds.iter().map(|s| bind(&check_p, s, false)).collect();
                let mut enc = gpu.device.create_command_encoder(&Default::default());
                enc.clear_buffer(&errs, 0, None);
                enc.clear_buffer(&tickets, 0, None);
                gpu.queue.submit([enc.finish()]);
                let mut best = f64::MAX;
                let mut best_gpu = f64::MAX;
                for _round in 0..5 {
                    let start = Instant::now();
                    let gpu_s = timer.run(&gpu, true, &|pass| {
                        for i in 0..n {
                            pass.set_pipeline(&main_p);
                            pass.set_bind_group(0, &main_bgs[i % 2], &[]);
                            pass.dispatch_workgroups(groups * g, 1, 1);
                            if variant == 2 {
                                pass.set_pipeline(&check_p);
                                pass.set_bind_group(0, &check_bgs[i % 2], &[]);
                                pass.dispatch_workgroups(groups, 1, 1);
                            }
                        }
                    })?;
                    best = best.min(start.elapsed().as_secs_f64());
                    best_gpu = best_gpu.min(gpu_s);
                }
                let e: Vec<u32> = bytemuck::pod_collect_to_vec(&gpu.read_bytes(&errs, 8)?);
                println!(
                    "{:>4} workgroups, {:<11} {:<26}: {:>10} stale words in {:>9} group checks; {:.2} us an iteration (GPU; wall {:.2}; best of 5)",
                    groups * g,
                    ["plain loads", "atomicLoad", "@coherent"][loads],
                    [
                        "ticket in the kernel",
                        "write only",
                        "write + check dispatch",
                        "ticket, no acquire barrier",
                        "ticket, 1 word a lane",
                        "ticket, nothing checked",
                        "ticket, no release fence"
                    ][variant],
                    e[0],
                    e[1],
                    best_gpu * 1e6 / n as f64,
                    best * 1e6 / n as f64
                );
            }
        }
    }
    Ok(())
}
