//! `wgllama synth --preset NAME --dtype f16|bf16|q8_0|q4_k_m -o OUT`: a deterministic
//! random-weight Llama of a preset shape (models/presets/*.json), as GGUF or an HF folder.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, ValueEnum};
use wgllama_loaders::convert::{default_threads, Target};
use wgllama_loaders::synth::{synth_gguf, synth_hf, Preset, SynthOptions, DEFAULT_SHARD_BYTES};

use crate::quantize::progress_bar;

/// The presets kept in models/presets, built into the binary.
const PRESETS: [(&str, &str); 5] = [
    ("tiny", include_str!("../../models/presets/tiny.json")),
    (
        "tinyllama-1.1b",
        include_str!("../../models/presets/tinyllama-1.1b.json"),
    ),
    (
        "llama-2-7b",
        include_str!("../../models/presets/llama-2-7b.json"),
    ),
    (
        "llama-3-8b",
        include_str!("../../models/presets/llama-3-8b.json"),
    ),
    (
        "mistral-7b",
        include_str!("../../models/presets/mistral-7b.json"),
    ),
];

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Gguf,
    Hf,
}

#[derive(Args)]
pub struct SynthArgs {
    /// A preset name (tiny, tinyllama-1.1b, llama-2-7b, llama-3-8b, mistral-7b) or a
    /// preset .json file.
    #[arg(long)]
    preset: String,
    /// Weight type: f16, bf16, q8_0, q4_k_m (or f32).
    #[arg(long, default_value = "f16")]
    dtype: String,
    /// Output: a .gguf file, or a folder with --format hf.
    #[arg(short, long)]
    output: PathBuf,
    #[arg(long, value_enum, default_value_t = Format::Gguf)]
    format: Format,
    /// Random seed: the same seed gives the same bytes.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Worker threads (default: all cores); the output does not depend on it.
    #[arg(long)]
    threads: Option<usize>,
    /// Largest safetensors shard in MiB (--format hf).
    #[arg(long, default_value_t = DEFAULT_SHARD_BYTES >> 20)]
    shard_mib: u64,
}

pub fn run(args: SynthArgs) -> Result<(), String> {
    let preset = find_preset(&args.preset)?;
    let target = Target::parse(&args.dtype).map_err(|e| e.to_string())?;
    let opts = SynthOptions {
        seed: args.seed,
        target,
        threads: args.threads.unwrap_or_else(default_threads),
    };
    let start = Instant::now();
    let bar = progress_bar("generating");
    let mut progress = |name: &str, i: usize, n: usize| {
        bar.set_length(n as u64);
        bar.set_position(i as u64 + 1);
        bar.set_message(name.to_string());
    };
    match args.format {
        Format::Gguf => synth_gguf(&preset, &opts, &args.output, &mut progress),
        Format::Hf => synth_hf(
            &preset,
            &opts,
            &args.output,
            args.shard_mib.max(1) << 20,
            &mut progress,
        ),
    }
    .map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    eprintln!(
        "wrote {} ({} {}, seed {}) in {:.1} s with {} threads",
        args.output.display(),
        preset.name,
        target.name(),
        args.seed,
        start.elapsed().as_secs_f64(),
        opts.threads
    );
    Ok(())
}

fn find_preset(name: &str) -> Result<Preset, String> {
    if let Some((_, text)) = PRESETS.iter().find(|(n, _)| *n == name) {
        return Preset::from_json(text, Path::new(name)).map_err(|e| e.to_string());
    }
    let path = Path::new(name);
    if path.extension().is_some_and(|e| e == "json") {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        return Preset::from_json(&text, path).map_err(|e| e.to_string());
    }
    let known: Vec<&str> = PRESETS.iter().map(|(n, _)| *n).collect();
    Err(format!(
        "unknown preset `{name}` (known: {}; or give a preset .json file)",
        known.join(", ")
    ))
}
