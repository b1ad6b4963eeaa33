//! `wgllama bench`: llama-bench style throughput (pp = prompt processing, tg = token
//! generation) or the four prompt scenarios, as a table and optionally CSV.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use wgllama_engine::bench::{
    random_tokens, time_decode, time_prefill, warm_up_steady, Summary, WARM_UP_MAX,
};
use wgllama_engine::kv_cache::KvDtype;
use wgllama_engine::llama::prefetch::Budgets;
use wgllama_engine::llama::{Sampling, Session, SessionOptions};
use wgllama_engine::GpuOptions;

use crate::load::{load, Loaded};

#[derive(Args)]
pub struct BenchArgs {
    /// Model: a .gguf file or a Hugging Face folder.
    #[arg(short, long)]
    model: PathBuf,
    /// Prompt lengths to time (comma-separated; 0 skips): prefill from position 0.
    #[arg(long, value_delimiter = ',', default_value = "512")]
    pp: Vec<usize>,
    /// Generation lengths to time (comma-separated; 0 skips): decode steps after a
    /// one-token prompt. With --scenarios: tokens generated per scenario.
    #[arg(long, value_delimiter = ',', default_value = "128")]
    tg: Vec<usize>,
    /// Timed repetitions of each test (after a warm-up).
    #[arg(short = 'r', long, default_value_t = 5)]
    repetitions: usize,
    /// Also write the results as CSV.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Store the KV cache in f16 instead of f32.
    #[arg(long)]
    kv_f16: bool,
    /// Arithmetic path: `fast` (prompt mat-muls on tensor cores with f16 inputs where the
    /// adapter has cooperative matrices) or `exact` (f32 throughout, as the golden checks).
    #[arg(long, default_value = "fast")]
    precision: wgllama_engine::Precision,
    /// Run the four prompt scenarios (short, medium, code, long) instead of pp/tg.
    #[arg(long)]
    scenarios: bool,
    /// Prompt tokens per prefill pass.
    #[arg(long, default_value_t = 512)]
    chunk: usize,
    /// Fast-path prompt chunks of at least this many tokens decode quantised weights once
    /// into f16 copies and multiply those (faster prompts for a scratch of the largest weights
    /// in f16); a value above --chunk turns it off.
    #[arg(long, default_value_t = wgllama_engine::llama::DEQUANT_MIN_TOKENS)]
    dequant_min_tokens: usize,
    /// Prompt-pass dispatches per queue submission (the first submission starts the GPU
    /// while the rest are recorded).
    #[arg(long, default_value_t = wgllama_engine::llama::SUBMIT_EVERY)]
    submit_every: usize,
    /// Minimum warm-up before each test, in ms: a datacenter GPU needs ~200 ms of
    /// continuous work to reach its full clock (~0.5 s after a long idle). The warm-up goes
    /// on past it until its latest runs (250 ms of them, at least three) agree within 3%, at
    /// most 5 s; 0: one untimed run.
    #[arg(long, default_value_t = 300)]
    warmup_ms: u64,
    /// Also print every repetition's t/s, in order, under the table (a single slow
    /// repetition shows as itself, not only as a wide ±).
    #[arg(long)]
    each: bool,
}

/// The longest a warm-up of at least `min` may take: `WARM_UP_MAX`, or none past one run
/// with `--warmup-ms 0`.
fn warm_up_max(min: Duration) -> Duration {
    if min.is_zero() {
        min
    } else {
        min.max(WARM_UP_MAX)
    }
}

/// The scenario prompts, built into the binary so it runs from any directory.
const SCENARIOS: [(&str, &str); 4] = [
    ("short", include_str!("../../benches/scenarios/short.txt")),
    ("medium", include_str!("../../benches/scenarios/medium.txt")),
    ("code", include_str!("../../benches/scenarios/code.txt")),
    ("long", include_str!("../../benches/scenarios/long.txt")),
];

pub const SCENARIO_CSV_HEADER: &str =
    "backend,scenario,tokens,run,ms,ttft,tpt,throughput,generated";

pub fn run(gpu_opts: &GpuOptions, a: BenchArgs) -> Result<(), String> {
    if a.repetitions == 0 {
        return Err("-r must be at least 1".into());
    }
    if a.chunk == 0 || a.submit_every == 0 {
        return Err("--chunk and --submit-every must be at least 1".into());
    }
    let loaded = load(gpu_opts, &a.model, false)?;
    let kv_dtype = if a.kv_f16 { KvDtype::F16 } else { KvDtype::F32 };
    let precision = format!(
        "{}, {} KV cache",
        a.precision,
        if a.kv_f16 { "f16" } else { "f32" }
    );
    eprintln!("precision: {}", a.precision.describe(&loaded.gpu));
    eprintln!("measuring: {precision}; greedy sampling on the GPU");
    let prefetch = Budgets::for_model(&loaded.gpu, loaded.weights.float_layers())
        .map_err(|e| e.to_string())?;
    eprintln!("decode L2 prefetch: {prefetch}");
    let csv = if a.scenarios {
        scenarios(&loaded, &a, kv_dtype)?
    } else {
        throughput(&loaded, &a, kv_dtype, &precision)?
    };
    if let Some(path) = &a.csv {
        std::fs::write(path, csv).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

fn session<'a>(
    l: &'a Loaded,
    a: &BenchArgs,
    ctx: usize,
    kv_dtype: KvDtype,
) -> Result<Session<'a>, String> {
    let opts = SessionOptions {
        ctx,
        kv_dtype,
        prefill_chunk: a.chunk,
        submit_every: a.submit_every,
        precision: a.precision,
        dequant_min_tokens: a.dequant_min_tokens,
        ..Default::default()
    };
    Session::new(&l.gpu, &l.weights, opts, Sampling::greedy()).map_err(|e| e.to_string())
}

/// Model name, size in GiB and parameters in billions, as llama-bench prints them.
fn model_facts(l: &Loaded) -> (String, f64, f64) {
    let path = l.model.path();
    let name = path
        .file_name()
        .unwrap_or(path.as_os_str())
        .to_string_lossy()
        .into_owned();
    let gib = l.model.total_tensor_bytes() as f64 / (1u64 << 30) as f64;
    let params: usize = l.model.tensors().iter().map(|t| t.n_elements()).sum();
    (name, gib, params as f64 / 1e9)
}

/// One pp or tg test: its name, tokens per repetition and the repetitions' seconds.
fn time_test(
    s: &mut Session<'_>,
    test: &str,
    n: usize,
    vocab: usize,
    a: &BenchArgs,
) -> Result<Vec<f64>, String> {
    let tokens = random_tokens(n, vocab, 0x5eed + n as u64);
    let mut once = || -> wgllama_engine::Result<Duration> {
        if test == "pp" {
            time_prefill(s, &tokens)
        } else {
            time_decode(s, tokens[0], n)
        }
    };
    let min = Duration::from_millis(a.warmup_ms);
    warm_up_steady(min, warm_up_max(min), &mut once).map_err(|e| e.to_string())?;
    // Back to back: the GPU must not idle (and clock down) between repetitions.
    let mut secs = Vec::with_capacity(a.repetitions);
    for _ in 0..a.repetitions {
        secs.push(once().map_err(|e| e.to_string())?.as_secs_f64());
    }
    Ok(secs)
}

fn throughput(
    l: &Loaded,
    a: &BenchArgs,
    kv_dtype: KvDtype,
    precision: &str,
) -> Result<String, String> {
    let c = &l.weights.config;
    let tests: Vec<(&str, usize)> =
        a.pp.iter()
            .filter(|&&n| n > 0)
            .map(|&n| ("pp", n))
            .chain(a.tg.iter().filter(|&&n| n > 0).map(|&n| ("tg", n)))
            .collect();
    if tests.is_empty() {
        return Err("nothing to run: give --pp or --tg values above 0".into());
    }
    let needed = tests
        .iter()
        .map(|&(k, n)| if k == "pp" { n } else { n + 1 })
        .max()
        .unwrap_or(1);
    if needed > c.context_length {
        return Err(format!(
            "the tests need {needed} cache slots; the model's context is {} (use smaller --pp/--tg)",
            c.context_length
        ));
    }
    let mut s = session(l, a, needed, kv_dtype)?;
    if let Some(d) = s.dequant_scratch() {
        eprintln!("{}", d.describe());
    }
    let (name, gib, params) = model_facts(l);
    let adapter = &l.gpu.info.name;
    // Rows print as each test finishes: a long run shows progress.
    println!("| model | size | params | adapter | precision | test | t/s | median t/s |");
    println!("| ----- | ---: | -----: | ------- | --------- | ---- | --: | ---------: |");
    let mut csv = String::from(
        "model,size_gib,params_b,adapter,precision,test,reps,tps_mean,tps_sd,tps_median\n",
    );
    let mut each = String::new();
    for (kind, n) in tests {
        let test = format!("{kind}{n}");
        let secs = time_test(&mut s, kind, n, c.vocab_size, a)?;
        let tps: Vec<f64> = secs.iter().map(|t| n as f64 / t).collect();
        let reps: Vec<String> = tps.iter().map(|t| format!("{t:.2}")).collect();
        let _ = writeln!(
            each,
            "{test} repetitions (t/s, in order): {}",
            reps.join(" ")
        );
        let sum = Summary::of(&tps).expect("at least one repetition");
        let row = format!(
            "| {name} | {} | {} | {adapter} | {precision} | {test} | {:.2} ± {:.2} | {:.2} |",
            human_size(gib),
            human_params(params),
            sum.mean,
            sum.sd,
            sum.median
        );
        println!("{row}");
        let _ = writeln!(
            csv,
            "{},{gib:.4},{params:.4},{},{},{test},{},{:.3},{:.3},{:.3}",
            csv_field(&name),
            csv_field(adapter),
            csv_field(precision),
            a.repetitions,
            sum.mean,
            sum.sd,
            sum.median
        );
    }
    if a.each {
        println!("\n{each}");
    }
    Ok(csv)
}

/// "3.80 GiB", or MiB for tiny models.
fn human_size(gib: f64) -> String {
    if gib >= 1.0 {
        format!("{gib:.2} GiB")
    } else {
        format!("{:.2} MiB", gib * 1024.0)
    }
}

/// "6.74 B", or M for tiny models.
fn human_params(billions: f64) -> String {
    if billions >= 1.0 {
        format!("{billions:.2} B")
    } else {
        format!("{:.2} M", billions * 1e3)
    }
}

/// Quotes a CSV field that holds a comma or a quote.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Prompt ids of a scenario text, with BOS as `run` adds it.
fn scenario_tokens(l: &Loaded, text: &str) -> Result<Vec<u32>, String> {
    let tokenizer =
        wgllama_loaders::tokenizer::build_tokenizer(&l.model).map_err(|e| e.to_string())?;
    let enc = tokenizer
        .encode(text, true)
        .map_err(|e| format!("tokenizing: {e}"))?;
    let mut ids = enc.get_ids().to_vec();
    if let Some(bos) = l.weights.config.bos_token_id {
        if ids.first() != Some(&bos) {
            ids.insert(0, bos);
        }
    }
    Ok(ids)
}

fn scenarios(l: &Loaded, a: &BenchArgs, kv_dtype: KvDtype) -> Result<String, String> {
    let c = &l.weights.config;
    let generate = match a.tg.as_slice() {
        [n] => *n,
        _ => return Err("--scenarios takes one --tg value (tokens generated per scenario)".into()),
    };
    let ctx_limit = c.context_length.min(8192);
    if generate + 1 > ctx_limit {
        return Err(format!(
            "--tg {generate} leaves no room for a prompt in the model's context of {ctx_limit}"
        ));
    }
    let mut prompts = Vec::new();
    for (name, text) in SCENARIOS {
        let mut ids = scenario_tokens(l, text)?;
        // Clamp, keeping the start, so that prompt + generation fit the context.
        let room = ctx_limit - generate;
        if ids.len() > room {
            eprintln!(
                "note: {name}: prompt cut from {} to {room} tokens to fit the context of {ctx_limit} with {generate} generated",
                ids.len()
            );
            ids.truncate(room);
        }
        prompts.push((name, ids));
    }
    let ctx = prompts
        .iter()
        .map(|(_, ids)| ids.len() + generate)
        .max()
        .unwrap_or(1);
    let mut s = session(l, a, ctx, kv_dtype)?;
    if let Some(d) = s.dequant_scratch() {
        eprintln!("{}", d.describe());
    }
    let backend = format!("wgllama-wgpu-{:?}", l.gpu.info.backend).to_lowercase();
    let mut csv = format!("{SCENARIO_CSV_HEADER}\n");
    println!("| scenario | prompt tokens | generated | ttft ms | ms/token | tokens/s | total ms |");
    println!("| -------- | ------------: | --------: | ------: | -------: | -------: | -------: |");
    for (name, ids) in &prompts {
        // EOS is ignored (no stop tokens): every run generates the same number of tokens.
        let mut once = || -> Result<(Duration, wgllama_engine::llama::GenerateStats), String> {
            s.reset();
            let start = Instant::now();
            let stats = s
                .generate(ids, generate, &[], |_| true)
                .map_err(|e| e.to_string())?;
            Ok((start.elapsed(), stats))
        };
        let min = Duration::from_millis(a.warmup_ms);
        warm_up_steady(min, warm_up_max(min), || {
            once()
                .map(|(wall, _)| wall)
                .map_err(|e| wgllama_engine::EngineError::Gpu {
                    context: "warm-up".into(),
                    message: e,
                })
        })
        .map_err(|e| e.to_string())?;
        let mut rows = Vec::new();
        for run in 0..a.repetitions {
            let (wall, st) = once()?;
            let ms = wall.as_secs_f64() * 1e3;
            let ttft = st.time_to_first_token.as_secs_f64() * 1e3;
            // Per token after the first: the first comes out of the prefill.
            let tpt = if st.generated > 1 {
                (ms - ttft) / (st.generated - 1) as f64
            } else {
                0.0
            };
            let throughput = st.generated as f64 / wall.as_secs_f64();
            let _ = writeln!(
                csv,
                "{backend},{name},{},{run},{ms:.3},{ttft:.3},{tpt:.3},{throughput:.3},{}",
                st.prompt_tokens, st.generated
            );
            rows.push((ms, ttft, tpt, throughput, st.generated));
        }
        let median = |f: fn(&(f64, f64, f64, f64, usize)) -> f64| {
            let v: Vec<f64> = rows.iter().map(f).collect();
            Summary::of(&v).map_or(0.0, |s| s.median)
        };
        println!(
            "| {name} | {} | {} | {:.2} | {:.3} | {:.2} | {:.2} |",
            ids.len(),
            rows[0].4,
            median(|r| r.1),
            median(|r| r.2),
            median(|r| r.3),
            median(|r| r.0)
        );
    }
    eprintln!(
        "(medians of {} runs; throughput = generated tokens / total wall time)",
        a.repetitions
    );
    Ok(csv)
}
