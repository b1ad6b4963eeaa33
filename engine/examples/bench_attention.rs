//! Times attention on the TinyLlama-1.1B (32 heads, 4 kv heads, head_dim 64) and Llama-2-7B
//! (32/32, 128) shapes, old kernel (attention.wgsl + merge) against the new ones
//! (attention_decode / attention_prefill, and attention_coop on tensor cores where the adapter
//! has cooperative matrices), and rope(q) + rope(k) + kv_write against rope_kv.
//!
//!     cargo run --release -p wgllama-engine --example bench_attention [-- MODE]
//!
//! MODE: "" (default: the comparison table), "sweep" (every decode and prefill configuration
//! that fits, per shape), "all" (both), "quick" (the table at a 256-slot context and
//! 32-token prompts, briefly: a plumbing check for lavapipe). Every figure is the GPU time per call of a chain of
//! REPS back-to-back calls in one compute pass (each call depends on the previous one through
//! its read-write buffers, as in the graph), from pass timestamps, best of 3 chains. All
//! dispatches are built first; a warm-up of >= 300 ms of continuous work precedes the timing,
//! and a 20 ms burst precedes each figure, so the GPU runs at its working clock.

use std::time::Instant;

use wgllama_engine::kv_cache::KvDtype;
use wgllama_engine::ops::attention::{attention, attention_with_splits, auto_splits};
use wgllama_engine::ops::attention_coop as coop;
use wgllama_engine::ops::attention_decode::{attention_decode_with, DecodeConfig};
use wgllama_engine::ops::attention_prefill::{attention_prefill_with, PrefillConfig};
use wgllama_engine::ops::kvcache::kv_write;
use wgllama_engine::ops::rope::{rope, RopeStyle};
use wgllama_engine::ops::rope_kv::rope_kv;
use wgllama_engine::step::{Step, StepBuffer};
use wgllama_engine::testing::pass_timer::PassTimer;
use wgllama_engine::testing::Rng;
use wgllama_engine::{Dispatch, Gpu, GpuOptions, Result, Tensor};

/// Cache slots (the graph's context); `quick` mode (a plumbing check on slow adapters) uses
/// QUICK_CTX and prompts of QUICK_T.
const CTX: usize = 4096;
const QUICK_CTX: usize = 256;
const QUICK_T: usize = 32;

struct Shape {
    name: &'static str,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

const SHAPES: [Shape; 2] = [
    Shape {
        name: "tinyllama",
        heads: 32,
        kv_heads: 4,
        head_dim: 64,
    },
    Shape {
        name: "llama2-7b",
        heads: 32,
        kv_heads: 32,
        head_dim: 128,
    },
];

/// One thing to time: a label, the dispatches of one call, the step position and tokens, and
/// the flops of one call (0: report us only).
struct Job {
    label: String,
    ds: Vec<Dispatch>,
    pos: usize,
    t: usize,
    flops: f64,
}

struct Timer(PassTimer);

impl Timer {
    fn new(gpu: &Gpu) -> Timer {
        Timer(PassTimer::new(gpu))
    }

    /// Seconds for `reps` calls of `ds` in one pass.
    fn chain(&self, gpu: &Gpu, ds: &[Dispatch], reps: usize) -> Result<f64> {
        self.0.run(gpu, true, &|pass| {
            for _ in 0..reps {
                for d in ds {
                    d.record(pass);
                }
            }
        })
    }

    /// Runs chains of `ds` until `ms` milliseconds have passed.
    fn burst(&self, gpu: &Gpu, ds: &[Dispatch], ms: u64) -> Result<()> {
        let start = Instant::now();
        while start.elapsed().as_millis() < ms as u128 {
            self.chain(gpu, ds, if ms < 5 { 1 } else { 50 })?;
        }
        Ok(())
    }
}

fn cache(gpu: &Gpu, rng: &mut Rng, s: &Shape, dtype: KvDtype, ctx: usize) -> Result<Tensor> {
    let n = ctx * s.kv_heads * s.head_dim;
    let x = rng.normal_vec(n, 1.0);
    let bytes: Vec<u8> = match dtype {
        KvDtype::F32 => bytemuck::cast_slice(&x).to_vec(),
        KvDtype::F16 => x
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_bits().to_le_bytes())
            .collect(),
    };
    Ok(Tensor {
        buffer: gpu.upload_bytes("cache", &bytes)?,
        elem: dtype.elem(),
        shape: vec![ctx, s.kv_heads, s.head_dim],
    })
}

fn decode_sweep(gpu: &Gpu, s: &Shape, ctx: usize) -> Vec<DecodeConfig> {
    let auto = DecodeConfig::pick(gpu, s.heads / s.kv_heads, s.head_dim, s.kv_heads, ctx);
    let mut out = vec![auto];
    for (lanes, quads) in [(auto.lanes, auto.quads), (auto.lanes / 2, 2)] {
        for batch in [2, 4] {
            for max_splits in [16, 32, 64] {
                for min_chunk in [32, 64, 128] {
                    let cfg = DecodeConfig {
                        lanes,
                        quads,
                        batch,
                        max_splits,
                        min_chunk,
                        ..auto
                    };
                    if !out.contains(&cfg) && cfg.validate(gpu, s.head_dim).is_ok() {
                        out.push(cfg);
                    }
                }
            }
        }
    }
    out
}

fn prefill_sweep(s: &Shape) -> Vec<PrefillConfig> {
    let mut out = Vec::new();
    for rows in [32, 64] {
        for kc in [8, 16, 32] {
            for vc in [8, 16, 32] {
                let cfg = PrefillConfig { rows, kc, vc };
                if cfg.validate(s.head_dim).is_ok() {
                    out.push(cfg);
                }
            }
        }
    }
    out
}

fn main() -> Result<()> {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let (table, sweep) = match mode.as_str() {
        "sweep" => (false, true),
        "all" => (true, true),
        _ => (true, false),
    };
    let quick = mode == "quick";
    let ctx = if quick { QUICK_CTX } else { CTX };
    let (warm_ms, burst_ms, chain_s) = if quick { (1, 1, 1e-4) } else { (300, 20, 5e-3) };
    let gpu = Gpu::new(&GpuOptions::default())?;
    println!("adapter: {}", gpu.describe());
    println!(
        "subgroups {} size {:?}",
        gpu.caps.subgroups, gpu.caps.subgroup_size
    );
    let step = StepBuffer::new(&gpu)?;
    let mut rng = Rng::new(7);
    let mut jobs: Vec<Job> = Vec::new();
    let build_start = Instant::now();
    let tiny = gpu.zeros_f32("tiny", &[1, 1, 2])?;
    let tiny_f = gpu.upload_f32("tiny.f", &[1.0], &[1])?;
    jobs.push(Job {
        label: "floor: rope on 2 floats (one dispatch)".into(),
        ds: vec![rope(
            &gpu,
            &tiny,
            &tiny_f,
            &step.buffer,
            RopeStyle::RotateHalf,
        )?],
        pos: 5,
        t: 1,
        flops: 0.0,
    });
    for s in &SHAPES {
        let inv_freq =
            gpu.upload_f32("inv_freq", &vec![0.01; s.head_dim / 2], &[s.head_dim / 2])?;
        for dtype in [KvDtype::F32, KvDtype::F16] {
            let kc = cache(&gpu, &mut rng, s, dtype, ctx)?;
            let vc = cache(&gpu, &mut rng, s, dtype, ctx)?;
            let tag = format!("{} {:?}", s.name, dtype);
            // ---- decode ----
            let q1 = gpu.upload_f32(
                "q",
                &rng.normal_vec(s.heads * s.head_dim, 1.0),
                &[1, s.heads, s.head_dim],
            )?;
            let o1 = gpu.zeros_f32("out", &[1, s.heads, s.head_dim])?;
            let k1 = gpu.upload_f32(
                "k",
                &rng.normal_vec(s.kv_heads * s.head_dim, 1.0),
                &[1, s.kv_heads, s.head_dim],
            )?;
            let v1 = gpu.zeros_f32("v", &[1, s.kv_heads, s.head_dim])?;
            let old_splits = auto_splits(1, s.heads, s.kv_heads, s.head_dim, ctx);
            let auto = DecodeConfig::pick(&gpu, s.heads / s.kv_heads, s.head_dim, s.kv_heads, ctx);
            for pos in [128, 512, 2048, 4095] {
                let pos = pos.min(ctx - 1);
                if table {
                    jobs.push(Job {
                        label: format!("decode {tag} pos={pos} old (splits={old_splits} + merge)"),
                        ds: attention_with_splits(
                            &gpu,
                            &q1,
                            &kc,
                            &vc,
                            &step.buffer,
                            &o1,
                            old_splits,
                        )?,
                        pos,
                        t: 1,
                        flops: 0.0,
                    });
                    jobs.push(Job {
                        label: format!("decode {tag} pos={pos} new {auto:?}"),
                        ds: attention(&gpu, &q1, &kc, &vc, &step.buffer, &o1)?,
                        pos,
                        t: 1,
                        flops: 0.0,
                    });
                }
                if sweep && (pos == 512 || pos == 2048) {
                    for cfg in decode_sweep(&gpu, s, ctx) {
                        jobs.push(Job {
                            label: format!("dsweep {tag} pos={pos} {cfg:?}"),
                            ds: attention_decode_with(&gpu, &q1, &kc, &vc, &step.buffer, &o1, cfg)?,
                            pos,
                            t: 1,
                            flops: 0.0,
                        });
                    }
                }
            }
            if table {
                for pos in [512, 2048] {
                    let mut old = vec![
                        rope(&gpu, &q1, &inv_freq, &step.buffer, RopeStyle::RotateHalf)?,
                        rope(&gpu, &k1, &inv_freq, &step.buffer, RopeStyle::RotateHalf)?,
                        kv_write(&gpu, &k1, &v1, &kc, &vc, &step.buffer)?,
                    ];
                    old.extend(attention_with_splits(
                        &gpu,
                        &q1,
                        &kc,
                        &vc,
                        &step.buffer,
                        &o1,
                        old_splits,
                    )?);
                    jobs.push(Job {
                        label: format!(
                            "block {tag} pos={pos} old: rope, rope, kv_write, attention, merge"
                        ),
                        ds: old,
                        pos,
                        t: 1,
                        flops: 0.0,
                    });
                    let mut new = vec![rope_kv(
                        &gpu,
                        &q1,
                        &k1,
                        &v1,
                        &inv_freq,
                        &step.buffer,
                        RopeStyle::RotateHalf,
                        &kc,
                        &vc,
                    )?];
                    new.extend(attention(&gpu, &q1, &kc, &vc, &step.buffer, &o1)?);
                    jobs.push(Job {
                        label: format!("block {tag} pos={pos} new: rope_kv, attention_decode"),
                        ds: new,
                        pos,
                        t: 1,
                        flops: 0.0,
                    });
                }
                jobs.push(Job {
                    label: format!("rope+rope+kv_write {tag} T=1"),
                    ds: vec![
                        rope(&gpu, &q1, &inv_freq, &step.buffer, RopeStyle::RotateHalf)?,
                        rope(&gpu, &k1, &inv_freq, &step.buffer, RopeStyle::RotateHalf)?,
                        kv_write(&gpu, &k1, &v1, &kc, &vc, &step.buffer)?,
                    ],
                    pos: 700,
                    t: 1,
                    flops: 0.0,
                });
                jobs.push(Job {
                    label: format!("rope_kv {tag} T=1"),
                    ds: vec![rope_kv(
                        &gpu,
                        &q1,
                        &k1,
                        &v1,
                        &inv_freq,
                        &step.buffer,
                        RopeStyle::RotateHalf,
                        &kc,
                        &vc,
                    )?],
                    pos: 700,
                    t: 1,
                    flops: 0.0,
                });
            }
            // ---- prefill, T = 512 ----
            let t = if quick { QUICK_T } else { 512 };
            let qp = gpu.upload_f32(
                "q",
                &rng.normal_vec(t * s.heads * s.head_dim, 1.0),
                &[t, s.heads, s.head_dim],
            )?;
            let op = gpu.zeros_f32("out", &[t, s.heads, s.head_dim])?;
            let kp = gpu.upload_f32(
                "k",
                &rng.normal_vec(t * s.kv_heads * s.head_dim, 1.0),
                &[t, s.kv_heads, s.head_dim],
            )?;
            let vp = gpu.zeros_f32("v", &[t, s.kv_heads, s.head_dim])?;
            // Causal flops: QK^T and PV over the visible keys of every query.
            let flops = |pos: usize| {
                4.0 * (t as f64)
                    * (pos as f64 + (t as f64 + 1.0) / 2.0)
                    * s.head_dim as f64
                    * s.heads as f64
            };
            for pos in [0, ctx - t] {
                if table {
                    jobs.push(Job {
                        label: format!("prefill {tag} T={t} pos={pos} old"),
                        ds: attention_with_splits(&gpu, &qp, &kc, &vc, &step.buffer, &op, 1)?,
                        pos,
                        t,
                        flops: flops(pos),
                    });
                    let cfg = PrefillConfig::pick(t * s.heads / s.kv_heads, s.kv_heads, s.head_dim);
                    jobs.push(Job {
                        label: format!("prefill {tag} T={t} pos={pos} new {cfg:?}"),
                        ds: attention(&gpu, &qp, &kc, &vc, &step.buffer, &op)?,
                        pos,
                        t,
                        flops: flops(pos),
                    });
                    let limit = gpu.limits.max_compute_workgroup_storage_size as usize;
                    for (keys, q_regs) in [(32, true), (32, false), (64, true)] {
                        if !coop::supports(&gpu, s.head_dim)
                            || coop::q_stride(s.head_dim, keys, limit).is_none()
                        {
                            continue;
                        }
                        jobs.push(Job {
                            label: format!(
                                "prefill {tag} T={t} pos={pos} coop keys={keys} q_regs={q_regs}"
                            ),
                            ds: vec![coop::attention_coop_with(
                                &gpu,
                                &qp,
                                &kc,
                                &vc,
                                &step.buffer,
                                &op,
                                keys,
                                q_regs,
                            )?],
                            pos,
                            t,
                            flops: flops(pos),
                        });
                    }
                }
                if sweep && pos == 0 {
                    for cfg in prefill_sweep(s) {
                        jobs.push(Job {
                            label: format!("psweep {tag} T={t} pos={pos} {cfg:?}"),
                            ds: vec![attention_prefill_with(
                                &gpu,
                                &qp,
                                &kc,
                                &vc,
                                &step.buffer,
                                &op,
                                cfg,
                            )?],
                            pos,
                            t,
                            flops: flops(pos),
                        });
                    }
                }
            }
            if table {
                jobs.push(Job {
                    label: format!("rope+rope+kv_write {tag} T={t}"),
                    ds: vec![
                        rope(&gpu, &qp, &inv_freq, &step.buffer, RopeStyle::RotateHalf)?,
                        rope(&gpu, &kp, &inv_freq, &step.buffer, RopeStyle::RotateHalf)?,
                        kv_write(&gpu, &kp, &vp, &kc, &vc, &step.buffer)?,
                    ],
                    pos: 0,
                    t,
                    flops: 0.0,
                });
                jobs.push(Job {
                    label: format!("rope_kv {tag} T={t}"),
                    ds: vec![rope_kv(
                        &gpu,
                        &qp,
                        &kp,
                        &vp,
                        &inv_freq,
                        &step.buffer,
                        RopeStyle::RotateHalf,
                        &kc,
                        &vc,
                    )?],
                    pos: 0,
                    t,
                    flops: 0.0,
                });
            }
        }
    }
    println!(
        "{} jobs built in {:.1} s",
        jobs.len(),
        build_start.elapsed().as_secs_f64()
    );

    let timer = Timer::new(&gpu);
    // Warm-up: the heaviest job (prefill) until 300 ms of continuous work have passed.
    let heavy = jobs
        .iter()
        .max_by(|a, b| a.flops.total_cmp(&b.flops))
        .unwrap();
    write_step(&gpu, &step, heavy.pos, heavy.t);
    timer.burst(&gpu, &heavy.ds, warm_ms)?;
    for job in &jobs {
        write_step(&gpu, &step, job.pos, job.t);
        timer.burst(&gpu, &job.ds, burst_ms)?;
        let one = timer.chain(&gpu, &job.ds, 1)?;
        // About 5 ms per chain.
        let reps = ((chain_s / one.max(1e-6)) as usize).clamp(if quick { 1 } else { 10 }, 2000);
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            best = best.min(timer.chain(&gpu, &job.ds, reps)? / reps as f64);
        }
        let extra = if job.flops > 0.0 {
            format!("  {:7.2} TFLOP/s", job.flops / best * 1e-12)
        } else {
            String::new()
        };
        println!("{:9.2} us  {}{extra}", best * 1e6, job.label);
    }
    Ok(())
}

fn write_step(gpu: &Gpu, step: &StepBuffer, pos: usize, t: usize) {
    step.write(
        gpu,
        &Step {
            pos: pos as u32,
            n_tokens: t as u32,
            ..Default::default()
        },
    );
}
