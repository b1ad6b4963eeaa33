//! `wgllama golden kernels|model`: checks against golden files from independent references.

use std::path::PathBuf;

use clap::Subcommand;
use wgllama_engine::golden::model::{check_model, ModelTolerance};
use wgllama_engine::{Gpu, GpuOptions};

use crate::load::load;

#[derive(Subcommand)]
pub enum GoldenCommand {
    /// Run every kernel case of the golden files in DIR on this adapter.
    Kernels {
        #[arg(default_value = "golden/kernels")]
        dir: PathBuf,
    },
    /// Compare a model's logits and greedy continuations with a golden file.
    Model {
        #[arg(short, long)]
        model: PathBuf,
        #[arg(long)]
        golden: PathBuf,
        /// Largest allowed absolute logit error, prompts and decode steps alike [default: 5e-2
        /// exact; fast: 1e-1 for prompts of several tokens, 4 for decode rows].
        #[arg(long)]
        max_abs: Option<f32>,
        /// Arithmetic path to check: `exact` (f32 throughout) or `fast` (tensor-core prompt
        /// mat-muls with f16 inputs where the adapter has them, int8 activations in decode
        /// mat-vecs over Q4_K/Q8_0 weights), each with its own default tolerance.
        #[arg(long, default_value = "exact")]
        precision: wgllama_engine::Precision,
    },
}

pub fn run(gpu_opts: &GpuOptions, cmd: GoldenCommand) -> Result<(), String> {
    match cmd {
        GoldenCommand::Kernels { dir } => kernels(gpu_opts, dir),
        GoldenCommand::Model {
            model,
            golden,
            max_abs,
            precision,
        } => {
            let loaded = load(gpu_opts, &model, true)?;
            println!("adapter: {}", loaded.gpu.describe());
            println!("precision: {}", precision.describe(&loaded.gpu));
            let mut tol = ModelTolerance::for_precision(precision);
            if let Some(m) = max_abs {
                tol.max_abs = m;
                tol.decode_max_abs = m;
            }
            let reports = check_model(&loaded.gpu, &loaded.weights, &golden, &tol, precision)
                .map_err(|e| e.to_string())?;
            let mut failed = 0;
            for r in &reports {
                let ok = r.passes(&tol);
                failed += usize::from(!ok);
                println!(
                    "prompt {} ({} tokens): max abs {:.2e}, mean abs {:.2e}, greedy logits max abs {:.2e}, mean abs {:.2e}, top-1 {:.1}%, greedy {}/{}  {}",
                    r.index,
                    r.tokens,
                    r.max_abs,
                    r.mean_abs,
                    r.greedy_max_abs,
                    r.greedy_mean_abs,
                    r.top1 * 100.0,
                    r.greedy_match,
                    r.greedy_len,
                    if ok { "PASS" } else { "FAIL" }
                );
            }
            if failed > 0 {
                return Err(format!(
                    "{failed} of {} prompts beyond tolerance ({tol:?})",
                    reports.len()
                ));
            }
            Ok(())
        }
    }
}

fn kernels(gpu_opts: &GpuOptions, dir: PathBuf) -> Result<(), String> {
    let gpu = Gpu::new(gpu_opts).map_err(|e| e.to_string())?;
    println!("adapter: {}", gpu.describe());
    let results =
        wgllama_engine::golden::kernels::run_dir(&gpu, &dir).map_err(|e| e.to_string())?;
    let mut failed = 0;
    for r in &results {
        failed += usize::from(!r.pass);
        println!("{r}");
    }
    println!("{} passed, {} failed", results.len() - failed, failed);
    if failed > 0 {
        return Err(format!("{failed} kernel cases failed"));
    }
    Ok(())
}
