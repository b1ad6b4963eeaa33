//! The `wgllama` command line: argument parsing, progress and output formatting only.
//! Library crates return errors; this is the only place that exits.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "wgllama",
    version,
    about = "Llama inference with hand-written WGSL kernels on wgpu"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the GPU adapters wgpu can see and the one wgllama would pick.
    Adapters,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Adapters => adapters(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn adapters() -> Result<(), String> {
    let gpu = wgllama_engine::Gpu::new(&Default::default()).map_err(|e| e.to_string())?;
    println!("adapter: {}", gpu.describe());
    println!("caps:    {:?}", gpu.caps);
    println!(
        "limits:  max_storage_buffer_binding_size {} B, max_buffer_size {} B, workgroup storage {} B",
        gpu.limits.max_storage_buffer_binding_size, gpu.limits.max_buffer_size, gpu.limits.max_compute_workgroup_storage_size
    );
    Ok(())
}
