//! `wgllama inspect MODEL [--json]`: what a model file holds and whether wgllama can run it.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};
use wgllama_loaders::gguf::GgufArray;
use wgllama_loaders::{LlamaConfig, ModelFile, ModelFormat, RopeScaling, TokenizerSource};

/// Prints the model's format, hyperparameters, tokenizer, tensor table with totals and
/// the `check()` verdict (as one JSON object with `json`). Returns `Err` when the model
/// cannot be opened or fails the check, so the caller can exit non-zero; the problems
/// themselves have already been printed in that case.
pub fn run(model: &Path, json: bool) -> Result<(), String> {
    let file = ModelFile::open(model).map_err(|e| e.to_string())?;
    let problems = file.problems();
    let tokenizer = tokenizer_summary(&file);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&to_json(&file, &tokenizer, &problems))
                .map_err(|e| e.to_string())?
        );
    } else {
        print_text(&file, &tokenizer, &problems);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        let n = problems.len();
        let s = if n == 1 { "" } else { "s" };
        Err(format!(
            "{}: model check failed ({n} problem{s})",
            model.display()
        ))
    }
}

/// Where the tokenizer comes from, its kind and size, as far as can be told cheaply.
struct TokenizerSummary {
    source: &'static str,
    kind: Option<String>,
    n_tokens: Option<usize>,
}

fn tokenizer_summary(file: &ModelFile) -> TokenizerSummary {
    match file.tokenizer_source() {
        TokenizerSource::GgufMetadata(meta) => TokenizerSummary {
            source: "gguf",
            kind: meta.get_str("tokenizer.ggml.model").map(str::to_string),
            n_tokens: meta.get_array("tokenizer.ggml.tokens").map(GgufArray::len),
        },
        TokenizerSource::HfJson(path) => {
            // Parsing the JSON (a few MB) is cheap; building the tokenizer is not needed.
            let parsed: Option<Value> = std::fs::read(path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            TokenizerSummary {
                source: "tokenizer.json",
                kind: parsed
                    .as_ref()
                    .and_then(|j| j["model"]["type"].as_str())
                    .map(str::to_string),
                n_tokens: parsed.as_ref().and_then(hf_vocab_size),
            }
        }
        TokenizerSource::Missing => TokenizerSummary {
            source: "none",
            kind: None,
            n_tokens: None,
        },
    }
}

/// Highest token id + 1 over the model vocabulary and the added tokens.
fn hf_vocab_size(json: &Value) -> Option<usize> {
    let vocab_ids: Vec<u64> = match &json["model"]["vocab"] {
        Value::Object(map) => map.values().filter_map(Value::as_u64).collect(),
        // Unigram: a list of [piece, score]; ids are positions.
        Value::Array(list) => (0..list.len() as u64).collect(),
        _ => return None,
    };
    let added = json["added_tokens"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["id"].as_u64());
    vocab_ids
        .into_iter()
        .chain(added)
        .max()
        .map(|m| m as usize + 1)
}

fn format_line(file: &ModelFile) -> String {
    match (file.format(), file.gguf()) {
        (ModelFormat::Gguf, Some(g)) => format!("GGUF v{} (alignment {})", g.version, g.alignment),
        _ => {
            let n = file.files().count();
            format!("SafeTensors ({n} file{})", if n == 1 { "" } else { "s" })
        }
    }
}

fn rope_scaling_text(c: &LlamaConfig) -> String {
    match &c.rope_scaling {
        RopeScaling::None => "none".into(),
        RopeScaling::Linear { factor } => format!("linear ×{factor}"),
        RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings,
        } => format!(
            "llama3 (factor {factor}, low {low_freq_factor}, high {high_freq_factor}, original context {original_max_position_embeddings})"
        ),
        RopeScaling::FreqFactorsTensor => "per-pair factors from rope_freqs.weight".into(),
    }
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn print_text(
    file: &ModelFile,
    tok: &TokenizerSummary,
    problems: &[wgllama_loaders::CheckProblem],
) {
    let c = file.config();
    println!("model:         {}", file.path().display());
    println!("format:        {}", format_line(file));
    println!("architecture:  {}", c.architecture);
    println!("hyperparameters:");
    let rows: [(&str, String); 14] = [
        ("vocab_size", c.vocab_size.to_string()),
        ("hidden_size", c.hidden_size.to_string()),
        ("n_layers", c.n_layers.to_string()),
        ("n_heads", c.n_heads.to_string()),
        ("n_kv_heads", c.n_kv_heads.to_string()),
        ("head_dim", c.head_dim.to_string()),
        ("ffn_size", c.ffn_size.to_string()),
        ("context_length", c.context_length.to_string()),
        ("rope_theta", c.rope_theta.to_string()),
        ("rope_scaling", rope_scaling_text(c)),
        ("rope_layout", format!("{:?}", c.rope_layout)),
        ("rms_norm_eps", c.rms_norm_eps.to_string()),
        ("tied_embeddings", c.tied_embeddings.to_string()),
        (
            "bos / eos",
            format!(
                "{} / {}",
                c.bos_token_id.map_or("-".into(), |b| b.to_string()),
                if c.eos_token_ids.is_empty() {
                    "-".into()
                } else {
                    format!("{:?}", c.eos_token_ids)
                }
            ),
        ),
    ];
    for (k, v) in rows {
        println!("  {k:<16} {v}");
    }
    let kind = tok.kind.as_deref().unwrap_or("?");
    match (tok.source, tok.n_tokens) {
        ("none", _) => println!("tokenizer:     none found"),
        (source, Some(n)) => println!("tokenizer:     {kind} from {source}, {n} tokens"),
        (source, None) => println!("tokenizer:     {kind} from {source}"),
    }

    let tensors = file.tensors();
    let name_w = tensors
        .iter()
        .map(|t| t.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    println!("tensors:");
    println!(
        "  {:<name_w$}  {:<6}  {:<16}  {:>14}",
        "name", "dtype", "shape", "bytes"
    );
    for t in tensors {
        println!(
            "  {:<name_w$}  {:<6}  {:<16}  {:>14}",
            t.name,
            t.dtype.name(),
            format!("{:?}", t.shape),
            t.n_bytes
        );
    }
    let mut by_dtype: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
    for t in tensors {
        let e = by_dtype.entry(t.dtype.name()).or_default();
        e.0 += 1;
        e.1 += t.n_bytes;
    }
    let total = file.total_tensor_bytes();
    let params: u64 = tensors.iter().map(|t| t.n_elements() as u64).sum();
    println!(
        "  total: {} tensors, {params} values, {total} bytes ({})",
        tensors.len(),
        human_bytes(total)
    );
    for (dtype, (n, bytes)) in by_dtype {
        println!("    {dtype:<6} {n:>5} tensors  {:>12}", human_bytes(bytes));
    }
    if problems.is_empty() {
        println!(
            "check:         OK (every Llama tensor present with the shape the config implies)"
        );
    } else {
        let n = problems.len();
        println!(
            "check:         FAILED ({n} problem{})",
            if n == 1 { "" } else { "s" }
        );
        for p in problems {
            println!("  - {p}");
        }
    }
}

fn to_json(
    file: &ModelFile,
    tok: &TokenizerSummary,
    problems: &[wgllama_loaders::CheckProblem],
) -> Value {
    let tensors: Vec<Value> = file
        .tensors()
        .iter()
        .map(|t| json!({"name": t.name, "dtype": t.dtype.name(), "shape": t.shape, "bytes": t.n_bytes}))
        .collect();
    json!({
        "path": file.path(),
        "format": match file.format() { ModelFormat::Gguf => "gguf", ModelFormat::SafeTensors => "safetensors" },
        "gguf_version": file.gguf().map(|g| g.version),
        "files": file.files().collect::<Vec<_>>(),
        "architecture": file.config().architecture,
        "config": file.config(),
        "tokenizer": {"source": tok.source, "kind": tok.kind, "tokens": tok.n_tokens},
        "tensors": tensors,
        "n_tensors": file.tensors().len(),
        "total_bytes": file.total_tensor_bytes(),
        "check": {"ok": problems.is_empty(), "problems": problems},
    })
}
