//! `wgllama quantize IN OUT --type q4_k_m|q8_0|f16|bf16|f32`: re-encode a model as a
//! GGUF file llama.cpp can load.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use wgllama_loaders::convert::{default_threads, quantize_model, Target};
use wgllama_loaders::ModelFile;

#[derive(Args)]
pub struct QuantizeArgs {
    /// Input model: a .gguf file or a Hugging Face folder.
    input: PathBuf,
    /// Output .gguf file.
    output: PathBuf,
    /// Output type: q4_k_m (llama.cpp's mix), q8_0, f16, bf16 or f32.
    #[arg(long = "type", default_value = "q4_k_m")]
    kind: String,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// List every tensor's input and output type.
    #[arg(short, long)]
    verbose: bool,
}

pub fn run(args: QuantizeArgs) -> Result<(), String> {
    let target = Target::parse(&args.kind).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let model = ModelFile::open(&args.input).map_err(|e| e.to_string())?;
    let bar = progress_bar("quantizing");
    let report = quantize_model(
        &model,
        &args.output,
        target,
        args.threads.unwrap_or_else(default_threads),
        &mut |name, i, n| {
            bar.set_length(n as u64);
            bar.set_position(i as u64 + 1);
            bar.set_message(name.to_string());
        },
    )
    .map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    if args.verbose {
        for (name, from, to) in &report.tensors {
            println!("{name:32} {:>5} -> {}", from.name(), to.name());
        }
    }
    eprintln!(
        "wrote {} ({}, {:.1} MiB from {:.1} MiB) in {:.1} s",
        args.output.display(),
        target.name(),
        report.bytes_out as f64 / (1 << 20) as f64,
        model.total_tensor_bytes() as f64 / (1 << 20) as f64,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

pub fn progress_bar(what: &str) -> ProgressBar {
    let bar = ProgressBar::new(1);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{what} {{bar:40}} {{pos}}/{{len}} {{msg}} {{elapsed}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}
