//! Opening a model and uploading it with a progress bar: shared by the commands that run one.

use std::path::Path;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use wgllama_engine::llama::LlamaWeights;
use wgllama_engine::{Gpu, GpuOptions};
use wgllama_loaders::ModelFile;

pub struct Loaded {
    pub gpu: Gpu,
    pub model: ModelFile,
    pub weights: LlamaWeights,
    pub load_time: Duration,
}

pub fn load(opts: &GpuOptions, path: &Path, quiet: bool) -> Result<Loaded, String> {
    let start = Instant::now();
    let model = ModelFile::open(path).map_err(|e| e.to_string())?;
    let gpu = Gpu::new(opts).map_err(|e| e.to_string())?;
    if !quiet {
        eprintln!("adapter: {}", gpu.describe());
    }
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(model.total_tensor_bytes())
    };
    bar.set_style(
        ProgressStyle::with_template(
            "uploading {bar:40} {binary_bytes}/{binary_total_bytes} {elapsed}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let weights = LlamaWeights::load(&gpu, &model, |done, _| bar.set_position(done))
        .map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    Ok(Loaded {
        gpu,
        model,
        weights,
        load_time: start.elapsed(),
    })
}
