//! `wgllama profile`: per-shader GPU times for prefill and decode, the decode pass against
//! the memory-bandwidth floor, and optionally a Chrome/Perfetto trace and a CSV table.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::json;
use wgllama_engine::bench::{
    random_tokens, time_decode, time_prefill, warm_up_steady, WARM_UP_MAX,
};
use wgllama_engine::kv_cache::KvDtype;
use wgllama_engine::llama::{Sampling, Session, SessionOptions};
use wgllama_engine::profile::{KernelEvent, Profile, Profiler};
use wgllama_engine::GpuOptions;

use crate::load::load;

#[derive(Args)]
pub struct ProfileArgs {
    /// Model: a .gguf file or a Hugging Face folder.
    #[arg(short, long)]
    model: PathBuf,
    /// Prompt tokens to profile prefill with (random ids; capped by the context; 0 skips).
    #[arg(long, default_value_t = 512)]
    pp: usize,
    /// Decode steps to profile, after a one-token prompt (capped by the context; 0 skips).
    #[arg(long, default_value_t = 128)]
    tg: usize,
    /// Write a Chrome/Perfetto trace (JSON) of every timed dispatch.
    #[arg(long)]
    trace: Option<PathBuf>,
    /// Write the per-shader tables as CSV.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Memory bandwidth in GB/s for the decode floor (default: 3000 on an H100, else none).
    #[arg(long)]
    bandwidth: Option<f64>,
    /// Store the KV cache in f16 instead of f32.
    #[arg(long)]
    kv_f16: bool,
    /// Arithmetic path: `fast` (prompt mat-muls on tensor cores with f16 inputs where the
    /// adapter has cooperative matrices) or `exact` (f32 throughout, as the golden checks).
    #[arg(long, default_value = "fast")]
    precision: wgllama_engine::Precision,
    /// Prompt tokens per prefill pass.
    #[arg(long, default_value_t = 512)]
    chunk: usize,
    /// Fast-path prompt chunks of at least this many tokens decode quantised weights once
    /// into f16 copies and multiply those (faster prompts for a scratch of the largest weights
    /// in f16); a value above --chunk turns it off.
    #[arg(long, default_value_t = wgllama_engine::llama::DEQUANT_MIN_TOKENS)]
    dequant_min_tokens: usize,
    /// After the decode profile, time the plain pass again with each kernel left out in turn
    /// (decode only): what each kernel really costs a token, free of timestamp overhead.
    #[arg(long)]
    ablate: bool,
}

pub const CSV_HEADER: &str = "phase,kernel,calls,total_ms,mean_us,percent,gbps,gflops";

pub fn run(gpu_opts: &GpuOptions, a: ProfileArgs) -> Result<(), String> {
    if a.chunk == 0 {
        return Err("--chunk must be at least 1".into());
    }
    let loaded = load(gpu_opts, &a.model, false)?;
    let (gpu, c) = (&loaded.gpu, &loaded.weights.config);
    let pp = a.pp.min(c.context_length);
    let tg = a.tg.min(c.context_length.saturating_sub(1));
    if (pp, tg) != (a.pp, a.tg) {
        eprintln!(
            "note: capped to --pp {pp} --tg {tg} by the model's context of {}",
            c.context_length
        );
    }
    if pp == 0 && tg == 0 {
        return Err("nothing to profile: --pp and --tg are both 0".into());
    }
    let kv_dtype = if a.kv_f16 { KvDtype::F16 } else { KvDtype::F32 };
    let opts = SessionOptions {
        ctx: pp.max(tg + 1),
        kv_dtype,
        prefill_chunk: a.chunk,
        precision: a.precision,
        dequant_min_tokens: a.dequant_min_tokens,
        ..Default::default()
    };
    let mut s =
        Session::new(gpu, &loaded.weights, opts, Sampling::greedy()).map_err(|e| e.to_string())?;
    let err = |e: wgllama_engine::EngineError| e.to_string();
    let mode = Profiler::new(gpu).map_err(err)?.mode();
    println!(
        "profile: {}, {} KV cache; decode L2 prefetch: {}; {}",
        a.precision.describe(gpu),
        if a.kv_f16 { "f16" } else { "f32" },
        s.prefetch(),
        mode.describe()
    );
    if let Some(d) = s.dequant_scratch() {
        println!("{}", d.describe());
    }
    println!(
        "note: every timestamp adds overhead (~6 us per dispatch on an H100), inflating short \
         kernels; the plain pass time (one timestamp pair per pass) is the real cost"
    );
    let warm = Duration::from_millis(300);
    let tokens = random_tokens(pp.max(1), c.vocab_size, 0x5eed);
    let mut csv = format!("{CSV_HEADER}\n");
    let mut trace = Vec::new();

    if pp > 0 {
        warm_up_steady(warm, WARM_UP_MAX, || time_prefill(&mut s, &tokens)).map_err(err)?;
        let mut p = Profiler::new(gpu).map_err(err)?;
        s.reset();
        p.prefill(&mut s, &tokens).map_err(err)?;
        s.reset();
        p.prefill_plain(&mut s, &tokens).map_err(err)?;
        let r = p.report();
        println!(
            "\n== prefill: {pp} tokens from position 0, {} pass(es)",
            r.runs
        );
        print_table(&r);
        println!(
            "kernel sum {:.3} ms (instrumented) | plain pass {:.3} ms = {:.1} tokens/s of GPU time",
            r.kernel_total_ms,
            r.plain_total_ms,
            pp as f64 / (r.plain_total_ms / 1e3)
        );
        add_csv(&mut csv, "prefill", &r);
        add_trace(&mut trace, 1, "prefill", &p.events);
    }

    if tg > 0 {
        let first = tokens[0];
        warm_up_steady(warm, WARM_UP_MAX, || time_decode(&mut s, first, tg)).map_err(err)?;
        let mut p = Profiler::new(gpu).map_err(err)?;
        s.reset();
        s.prefill(&[first]).map_err(err)?;
        for _ in 0..tg {
            p.decode(&mut s).map_err(err)?;
        }
        s.reset();
        s.prefill(&[first]).map_err(err)?;
        let start = Instant::now();
        for _ in 0..tg {
            p.decode_plain(&mut s).map_err(err)?;
        }
        let wall = start.elapsed().as_secs_f64();
        let r = p.report();
        let calls = decode_calls(&s, tg);
        let most = s.decode_graph().dispatches().count();
        let mean = calls.iter().map(|c| c.1).sum::<f64>();
        println!(
            "\n== decode: {tg} tokens at positions 1..={tg}, {most} dispatches per token \
             ({mean:.1} recorded on average: some have no work at short contexts)"
        );
        print_table(&r);
        let per_token_us = r.plain_total_ms * 1e3 / tg as f64;
        println!(
            "per token: kernel sum {:.1} us (instrumented) | plain pass {per_token_us:.1} us \
             ({:.1} tokens/s of GPU time; {:.1} tokens/s wall with the profiler's readbacks)",
            r.kernel_total_ms * 1e3 / tg as f64,
            1e6 / per_token_us,
            tg as f64 / wall
        );
        print_floor(&r, per_token_us, bandwidth(&a, &gpu.info.name));
        add_csv(&mut csv, "decode", &r);
        add_trace(&mut trace, 2, "decode", &p.events);
        if a.ablate {
            ablate(&mut s, &mut p, first, tg, &calls).map_err(err)?;
        }
    }

    if let Some(path) = &a.csv {
        std::fs::write(path, csv).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if let Some(path) = &a.trace {
        let doc = json!({ "traceEvents": trace, "displayTimeUnit": "ns" });
        let text = serde_json::to_string(&doc).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// Dispatches recorded per token by kernel label, averaged over decode positions 1..=tg (a
/// dispatch with no work at a position is not recorded there: `Dispatch::idle_keys`).
fn decode_calls(s: &Session<'_>, tg: usize) -> Vec<(&'static str, f64)> {
    let mut labels: Vec<(&'static str, f64)> = Vec::new();
    for pos in 1..=tg {
        for d in s.decode_graph().dispatches_at(pos + 1) {
            match labels.iter_mut().find(|(l, _)| *l == d.label) {
                Some((_, n)) => *n += 1.0 / tg as f64,
                None => labels.push((d.label, 1.0 / tg as f64)),
            }
        }
    }
    labels
}

/// The decode pass timed with each kernel label left out in turn (`--ablate`): per token and
/// per call, the time the pass loses without it. The full pass is timed before and after so
/// clock drift shows. `labels`: `decode_calls`.
fn ablate(
    s: &mut Session<'_>,
    p: &mut Profiler<'_>,
    first: u32,
    tg: usize,
    labels: &[(&'static str, f64)],
) -> wgllama_engine::Result<()> {
    // A label no dispatch has: the whole pass.
    let mut per_token = |s: &mut Session<'_>, skip: &'static str| {
        s.reset();
        s.prefill(&[first])?;
        let mut ns = 0.0;
        for _ in 0..tg {
            ns += p.decode_plain_without(s, skip)?;
        }
        Ok::<f64, wgllama_engine::EngineError>(ns / 1e3 / tg as f64)
    };
    let full0 = per_token(s, "")?;
    let mut rows = Vec::new();
    for &(label, calls) in labels {
        rows.push((label, calls, per_token(s, label)?));
    }
    let full1 = per_token(s, "")?;
    let full = (full0 + full1) / 2.0;
    println!(
        "\n== decode ablation: the plain pass with each kernel left out ({tg} tokens each; \
         full pass {full0:.1} us before, {full1:.1} us after)"
    );
    println!(
        "{:<22} {:>6} {:>12} {:>11} {:>11} {:>6}",
        "kernel left out", "calls", "pass us", "saves us", "us / call", "%"
    );
    rows.sort_by(|a, b| a.2.total_cmp(&b.2));
    for (label, calls, us) in rows {
        let saved = full - us;
        println!(
            "{label:<22} {calls:>6.1} {us:>12.1} {saved:>11.1} {:>11.2} {:>6.1}",
            saved / calls,
            100.0 * saved / full
        );
    }
    Ok(())
}

/// GB/s for the floor: the flag, else the H100's ~3.0 TB/s when the adapter is one.
fn bandwidth(a: &ProfileArgs, adapter: &str) -> Option<f64> {
    a.bandwidth
        .or_else(|| adapter.contains("H100").then_some(3000.0))
}

/// Decode is memory-bound: a token cannot take less than the bytes it reads (weights, the KV
/// cache up to its position, activations; from the dispatches' Costs) over the bandwidth.
fn print_floor(r: &Profile, per_token_us: f64, bandwidth: Option<f64>) {
    let bytes = r.bytes as f64 / r.runs.max(1) as f64;
    let achieved = bytes / (per_token_us * 1e3);
    print!(
        "bytes per token {:.2} MB -> achieved {achieved:.1} GB/s over the plain pass",
        bytes / 1e6
    );
    match bandwidth {
        Some(bw) => {
            let floor_us = bytes / bw / 1e3;
            println!(
                "\nbandwidth floor {floor_us:.1} us/token at {bw:.0} GB/s ({:.0} tokens/s): \
                 the plain pass is {:.2}x the floor",
                1e6 / floor_us,
                per_token_us / floor_us
            );
        }
        None => println!(" (bandwidth unknown: give --bandwidth GBPS for the floor)"),
    }
}

fn print_table(r: &Profile) {
    println!(
        "{:<22} {:>7} {:>11} {:>10} {:>6} {:>9} {:>9}",
        "kernel", "calls", "total ms", "mean us", "%", "GB/s", "GFLOP/s"
    );
    for row in &r.rows {
        println!(
            "{:<22} {:>7} {:>11.3} {:>10.2} {:>6.1} {:>9.2} {:>9.2}",
            row.label, row.calls, row.total_ms, row.mean_us, row.percent, row.gbps, row.gflops
        );
    }
}

fn add_csv(csv: &mut String, phase: &str, r: &Profile) {
    for row in &r.rows {
        let _ = writeln!(
            csv,
            "{phase},{},{},{:.6},{:.3},{:.3},{:.3},{:.3}",
            row.label, row.calls, row.total_ms, row.mean_us, row.percent, row.gbps, row.gflops
        );
    }
}

/// Complete ("X") events in us, one per dispatch. Each phase is a process and each kernel
/// label a thread in it, so a trace viewer shows one row per kernel.
fn add_trace(out: &mut Vec<serde_json::Value>, pid: u32, phase: &str, events: &[KernelEvent]) {
    out.push(json!({
        "ph": "M", "name": "process_name", "pid": pid, "tid": 0,
        "args": { "name": phase },
    }));
    let mut rows: Vec<&str> = Vec::new();
    for e in events {
        let tid = match rows.iter().position(|&l| l == e.label) {
            Some(i) => i + 1,
            None => {
                rows.push(e.label);
                out.push(json!({
                    "ph": "M", "name": "thread_name", "pid": pid, "tid": rows.len(),
                    "args": { "name": e.label },
                }));
                rows.len()
            }
        };
        out.push(json!({
            "name": e.label,
            "cat": phase,
            "ph": "X",
            "pid": pid,
            "tid": tid,
            "ts": e.start_ns / 1e3,
            "dur": e.dur_ns / 1e3,
            "args": { "run": e.run, "bytes": e.cost.bytes, "flops": e.cost.flops },
        }));
    }
}
