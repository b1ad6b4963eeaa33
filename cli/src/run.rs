//! `wgllama run`: prompt in, streamed text out, one stats line at the end.

use std::io::{Read, Write};
use std::path::PathBuf;

use clap::Args;
use wgllama_engine::kv_cache::KvDtype;
use wgllama_engine::llama::{Sampling, Session, SessionOptions};
use wgllama_engine::GpuOptions;

use crate::load::load;
use crate::stream::TextStream;

#[derive(Args)]
pub struct RunArgs {
    /// Model: a .gguf file or a Hugging Face folder.
    #[arg(short, long)]
    model: PathBuf,
    /// The prompt.
    #[arg(short, long, conflicts_with = "file")]
    prompt: Option<String>,
    /// Read the prompt from a file (`-` for standard input).
    #[arg(short, long)]
    file: Option<PathBuf>,
    /// Tokens to generate.
    #[arg(short = 'n', long, default_value_t = 128)]
    n_predict: usize,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.8)]
    temp: f32,
    /// Keep only the k most probable tokens (0: all).
    #[arg(long, default_value_t = 40)]
    top_k: u32,
    /// Keep the smallest set of tokens whose probability reaches p.
    #[arg(long, default_value_t = 0.95)]
    top_p: f32,
    /// Random seed: the same seed gives the same text.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Context size (KV-cache slots); default: the model's, at most 4096.
    #[arg(short = 'c', long)]
    ctx: Option<usize>,
    /// Store the KV cache in f16 (half the memory; not the exact path).
    #[arg(long)]
    kv_f16: bool,
    /// Fast path: prompt chunks of at least this many tokens decode quantised weights once
    /// into f16 copies and multiply those (faster prompts for a scratch of the largest
    /// weights in f16, e.g. 204 MiB for Llama-2-7B); a value above 256 (the chunk) turns it off.
    #[arg(long, default_value_t = wgllama_engine::llama::DEQUANT_MIN_TOKENS)]
    dequant_min_tokens: usize,
    /// Arithmetic path: `fast` (prompt mat-muls on tensor cores with f16 inputs where the
    /// adapter has cooperative matrices) or `exact` (f32 throughout, as the golden checks).
    #[arg(long, default_value = "fast")]
    precision: wgllama_engine::Precision,
}

pub fn run(gpu_opts: &GpuOptions, a: RunArgs) -> Result<(), String> {
    let prompt = match (&a.prompt, &a.file) {
        (Some(p), _) => p.clone(),
        (None, Some(f)) if f.as_os_str() == "-" => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| format!("stdin: {e}"))?;
            s
        }
        (None, Some(f)) => {
            std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?
        }
        (None, None) => return Err("give a prompt with -p TEXT or -f FILE".into()),
    };
    if prompt.is_empty() {
        return Err("the prompt is empty: give text with -p or -f".into());
    }
    let loaded = load(gpu_opts, &a.model, false)?;
    let config = &loaded.weights.config;
    let tokenizer =
        wgllama_loaders::tokenizer::build_tokenizer(&loaded.model).map_err(|e| e.to_string())?;
    let encoding = tokenizer
        .encode(prompt.as_str(), true)
        .map_err(|e| format!("tokenizing the prompt: {e}"))?;
    let mut ids: Vec<u32> = encoding.get_ids().to_vec();
    if let Some(bos) = config.bos_token_id {
        if ids.first() != Some(&bos) {
            ids.insert(0, bos);
        }
    }
    let ctx = a.ctx.unwrap_or(config.context_length.min(4096)).max(1);
    if ids.len() > ctx {
        return Err(format!(
            "the prompt has {} tokens, more than the context of {ctx} (raise --ctx)",
            ids.len()
        ));
    }
    let n_predict = a.n_predict.min(ctx - ids.len());
    let kv_dtype = if a.kv_f16 { KvDtype::F16 } else { KvDtype::F32 };
    let opts = SessionOptions {
        ctx,
        kv_dtype,
        precision: a.precision,
        seed: a.seed,
        dequant_min_tokens: a.dequant_min_tokens,
        ..Default::default()
    };
    let sampling = Sampling {
        temperature: a.temp,
        top_k: a.top_k,
        top_p: a.top_p,
    };
    let mut session =
        Session::new(&loaded.gpu, &loaded.weights, opts, sampling).map_err(|e| e.to_string())?;

    let mut out = std::io::stdout().lock();
    let _ = write!(out, "{prompt}");
    let _ = out.flush();
    let mut stream = TextStream::new(&tokenizer);
    let mut failure = None;
    let stats = session
        .generate(&ids, n_predict, &config.eos_token_ids, |id| {
            match stream.push(id) {
                Ok(text) => {
                    let _ = write!(out, "{text}");
                    let _ = out.flush();
                    true
                }
                Err(e) => {
                    failure = Some(e);
                    false
                }
            }
        })
        .map_err(|e| e.to_string())?;
    let _ = writeln!(out);
    if let Some(e) = failure {
        return Err(format!("detokenizing: {e}"));
    }
    let secs = |d: std::time::Duration| d.as_secs_f64();
    let decode_tps = if stats.generated > 1 {
        (stats.generated - 1) as f64 / secs(stats.decode)
    } else {
        0.0
    };
    eprintln!(
        "load {:.2} s | prompt {} tokens, {:.1} t/s | first token {:.0} ms | generated {} tokens, {:.1} t/s",
        secs(loaded.load_time),
        stats.prompt_tokens,
        stats.prompt_tokens as f64 / secs(stats.prefill),
        secs(stats.time_to_first_token) * 1e3,
        stats.generated,
        decode_tps
    );
    Ok(())
}
