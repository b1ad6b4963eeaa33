//! The `wgllama` command line: argument parsing, progress and output formatting only.
//! Library crates return errors; this is the only place that exits.

mod bench;
mod golden;
mod inspect;
mod load;
mod logits;
mod profile;
mod quantize;
mod run;
mod stream;
mod synth;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "wgllama",
    version,
    about = "Llama inference with hand-written WGSL kernels on wgpu"
)]
struct Cli {
    /// Adapter to use: a case-insensitive part of its name or backend (default: WGLLAMA_ADAPTER,
    /// else the first discrete GPU, else whatever exists).
    #[arg(long, global = true)]
    adapter: Option<String>,
    /// Compile every kernel afresh instead of reusing the pipeline cache (kept in
    /// $WGLLAMA_CACHE_DIR, else $XDG_CACHE_HOME/wgllama, else ~/.cache/wgllama).
    #[arg(long, global = true)]
    no_pipeline_cache: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the adapter wgllama picks, its features and limits.
    Adapters,
    /// Describe a model (a .gguf file or a Hugging Face folder) and check its tensors.
    Inspect {
        model: PathBuf,
        /// One JSON object instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Generate text from a prompt, streaming tokens as they are made.
    Run(run::RunArgs),
    /// Write the logits of token sequences (from a safetensors file) for golden checks.
    Logits(logits::LogitsArgs),
    /// Check kernels or a whole model against golden files.
    #[command(subcommand)]
    Golden(golden::GoldenCommand),
    /// Time prompt processing and generation (llama-bench style), or the prompt scenarios.
    Bench(bench::BenchArgs),
    /// Per-shader GPU times for prefill and decode, against the bandwidth floor.
    Profile(profile::ProfileArgs),
    /// Re-encode a model (GGUF or HF folder) as a llama.cpp GGUF: q4_k_m, q8_0, f16, ...
    Quantize(quantize::QuantizeArgs),
    /// Write a deterministic random-weight Llama of a preset shape (GGUF or HF folder).
    Synth(synth::SynthArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let gpu_opts = wgllama_engine::GpuOptions {
        adapter: cli.adapter,
        pipeline_cache: if cli.no_pipeline_cache {
            None
        } else {
            wgllama_engine::pipeline_cache::default_cache_dir()
        },
    };
    let result = match cli.command {
        Command::Adapters => adapters(&gpu_opts),
        Command::Inspect { model, json } => inspect::run(&model, json),
        Command::Run(args) => run::run(&gpu_opts, args),
        Command::Logits(args) => logits::run(&gpu_opts, args),
        Command::Golden(cmd) => golden::run(&gpu_opts, cmd),
        Command::Bench(args) => bench::run(&gpu_opts, args),
        Command::Profile(args) => profile::run(&gpu_opts, args),
        Command::Quantize(args) => quantize::run(args),
        Command::Synth(args) => synth::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn adapters(opts: &wgllama_engine::GpuOptions) -> Result<(), String> {
    let gpu = wgllama_engine::Gpu::new(opts).map_err(|e| e.to_string())?;
    println!("adapter: {}", gpu.describe());
    println!("caps:    {:?}", gpu.caps);
    let l = &gpu.limits;
    println!(
        "limits:  max_storage_buffer_binding_size {} B, max_buffer_size {} B, workgroup storage {} B",
        l.max_storage_buffer_binding_size, l.max_buffer_size, l.max_compute_workgroup_storage_size
    );
    Ok(())
}
