//! `wgllama logits`: logits of every position of each `tokens_<i>` in a safetensors file,
//! plus optional greedy continuations through the decode path (the golden-check interface).

use std::collections::HashMap;
use std::path::PathBuf;

use clap::Args;
use wgllama_engine::llama::{Sampling, Session, SessionOptions};
use wgllama_engine::GpuOptions;

use crate::load::load;

#[derive(Args)]
pub struct LogitsArgs {
    /// Model: a .gguf file or a Hugging Face folder.
    #[arg(short, long)]
    model: PathBuf,
    /// Safetensors file with int32 tensors tokens_0, tokens_1, ...
    #[arg(long)]
    input: PathBuf,
    /// Where to write logits_<i> (f32 [n, vocab]) and, with --greedy, greedy_<i> and greedy_logits_<i>.
    #[arg(long)]
    output: PathBuf,
    /// Greedy tokens to generate after each prompt (EOS ignored).
    #[arg(long, default_value_t = 0)]
    greedy: usize,
}

pub fn run(gpu_opts: &GpuOptions, a: LogitsArgs) -> Result<(), String> {
    let bytes = std::fs::read(&a.input).map_err(|e| format!("{}: {e}", a.input.display()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| format!("{}: {e}", a.input.display()))?;
    let mut prompts = Vec::new();
    while let Ok(t) = st.tensor(&format!("tokens_{}", prompts.len())) {
        if t.dtype() != safetensors::Dtype::I32 {
            return Err(format!(
                "{}: tokens_{} must be int32, is {:?}",
                a.input.display(),
                prompts.len(),
                t.dtype()
            ));
        }
        let ids: Vec<i32> = bytemuck::pod_collect_to_vec(t.data());
        prompts.push(ids.into_iter().map(|v| v as u32).collect::<Vec<u32>>());
    }
    if prompts.is_empty() {
        return Err(format!("{}: no tensor tokens_0", a.input.display()));
    }
    let loaded = load(gpu_opts, &a.model, true)?;
    let vocab = loaded.weights.config.vocab_size;
    let mut out: HashMap<String, (safetensors::Dtype, Vec<usize>, Vec<u8>)> = HashMap::new();
    for (i, ids) in prompts.iter().enumerate() {
        if let Some(&bad) = ids.iter().find(|&&t| t as usize >= vocab) {
            return Err(format!(
                "tokens_{i} holds id {bad}, outside the vocabulary of {vocab}"
            ));
        }
        let opts = SessionOptions {
            ctx: ids.len() + a.greedy + 1,
            ..Default::default()
        };
        let mut session = Session::new(&loaded.gpu, &loaded.weights, opts, Sampling::greedy())
            .map_err(|e| e.to_string())?;
        let logits = session.prompt_logits(ids).map_err(|e| e.to_string())?;
        out.insert(
            format!("logits_{i}"),
            (
                safetensors::Dtype::F32,
                vec![ids.len(), vocab],
                bytemuck::cast_slice(&logits).to_vec(),
            ),
        );
        if a.greedy > 0 {
            session.reset();
            let mut tokens = vec![session.prefill(ids).map_err(|e| e.to_string())?];
            let mut chosen_from = session.last_logits(false).map_err(|e| e.to_string())?;
            while tokens.len() < a.greedy {
                tokens.push(session.decode().map_err(|e| e.to_string())?);
                chosen_from.extend(session.last_logits(true).map_err(|e| e.to_string())?);
            }
            let as_i32: Vec<i32> = tokens.iter().map(|&t| t as i32).collect();
            out.insert(
                format!("greedy_{i}"),
                (
                    safetensors::Dtype::I32,
                    vec![a.greedy],
                    bytemuck::cast_slice(&as_i32).to_vec(),
                ),
            );
            out.insert(
                format!("greedy_logits_{i}"),
                (
                    safetensors::Dtype::F32,
                    vec![a.greedy, vocab],
                    bytemuck::cast_slice(&chosen_from).to_vec(),
                ),
            );
        }
    }
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = out
        .iter()
        .map(|(k, (dt, shape, data))| {
            let v = safetensors::tensor::TensorView::new(*dt, shape.clone(), data)
                .map_err(|e| e.to_string())?;
            Ok((k.clone(), v))
        })
        .collect::<Result<_, String>>()?;
    safetensors::serialize_to_file(views, None, &a.output)
        .map_err(|e| format!("{}: {e}", a.output.display()))?;
    eprintln!("wrote {} tensors to {}", out.len(), a.output.display());
    Ok(())
}
