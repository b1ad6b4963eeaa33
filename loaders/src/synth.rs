//! Deterministic random-weight Llama models (`wgllama synth`): any preset shape, any
//! storage type, GGUF or a Hugging Face folder, with a tokenizer so `run` works.
//!
//! Weights are scaled as golden/make_models.py does so activations stay O(1) and the
//! logits have a spread of a few units (greedy text is not one repeated token): linears
//! ~ N(0, 1/fan_in) (Q and K twice that scale, the LM head four times), the embedding
//! N(0, 1), norm gains uniform in [0.8, 1.2].
//!
//! Every row has its own counter-based random stream (seed, tensor, row, column), so the
//! bytes are the same whatever the number of threads. A GGUF and an HF folder of the same
//! seed are the same model: the GGUF's Q/K rows are llama.cpp's permutation of the HF ones.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::convert::{
    check_writable, llama_metadata, permuted_qk_row, rope_freq_factors, stream_tensor, tensor_type,
    vocab, write_gguf, PlannedTensor, RowFn, Target,
};
use crate::gguf::{GgufMetadata, GgufTensorSpec};
use crate::{DType, LlamaConfig, LoadError, RopeLayout, RopeScaling, Weight, ROPE_FREQS_TENSOR};

/// A model shape, as kept in `models/presets/*.json`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub ffn_size: usize,
    #[serde(default = "default_theta")]
    pub rope_theta: f32,
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f32,
    #[serde(default = "default_context")]
    pub context_length: usize,
    #[serde(default)]
    pub tied_embeddings: bool,
    /// Llama 3.1 scaling: {factor, low_freq_factor, high_freq_factor, original_max_position_embeddings}.
    #[serde(default)]
    pub llama3_rope_scaling: Option<Llama3Scaling>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Llama3Scaling {
    pub factor: f32,
    pub low_freq_factor: f32,
    pub high_freq_factor: f32,
    pub original_max_position_embeddings: usize,
}

fn default_theta() -> f32 {
    10_000.0
}
fn default_eps() -> f32 {
    1e-5
}
fn default_context() -> usize {
    4096
}

impl Preset {
    /// Parses a preset file's JSON; `path` names it in messages.
    pub fn from_json(text: &str, path: &Path) -> Result<Preset, LoadError> {
        let preset: Preset = serde_json::from_str(text).map_err(|e| LoadError::BadJson {
            path: path.into(),
            problem: e.to_string(),
        })?;
        preset.config().validate(path)?;
        Ok(preset)
    }

    /// The model config (Hugging Face layout; a GGUF writer permutes Q/K itself).
    pub fn config(&self) -> LlamaConfig {
        LlamaConfig {
            architecture: "llama".into(),
            vocab_size: self.vocab_size,
            hidden_size: self.hidden_size,
            n_layers: self.n_layers,
            n_heads: self.n_heads,
            n_kv_heads: self.n_kv_heads,
            head_dim: self.hidden_size / self.n_heads.max(1),
            ffn_size: self.ffn_size,
            rope_theta: self.rope_theta,
            rope_scaling: match &self.llama3_rope_scaling {
                None => RopeScaling::None,
                Some(s) => RopeScaling::Llama3 {
                    factor: s.factor,
                    low_freq_factor: s.low_freq_factor,
                    high_freq_factor: s.high_freq_factor,
                    original_max_position_embeddings: s.original_max_position_embeddings,
                },
            },
            rope_layout: RopeLayout::RotateHalf,
            rms_norm_eps: self.rms_norm_eps,
            tied_embeddings: self.tied_embeddings,
            context_length: self.context_length,
            bos_token_id: Some(1),
            eos_token_ids: vec![2],
        }
    }
}

/// One value per counter: splitmix64's finaliser, a good 64-bit mix.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A standard normal, approximately: the sum of four 16-bit uniforms (Irwin-Hall),
/// centred and scaled to variance 1. Bounded at ±3.46 and about 10x cheaper than
/// Box-Muller; random weights need the scale right, not the far tails.
fn normal_from(bits: u64) -> f32 {
    let sum = (bits & 0xffff) + ((bits >> 16) & 0xffff) + ((bits >> 32) & 0xffff) + (bits >> 48);
    (sum as f32 / 65536.0 - 2.0) * 3f32.sqrt()
}

/// The random stream of tensor `name` under `seed` (FNV-1a of the name, mixed).
fn stream_id(seed: u64, name: &str) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in name.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
    }
    mix64(h ^ mix64(seed))
}

/// Rows of weight `w` in Hugging Face order.
fn weight_rows(w: Weight, c: &LlamaConfig, seed: u64) -> RowFn<'static> {
    let stream = stream_id(seed, &w.hf_name());
    let fan_in = match w {
        Weight::AttnOut(_) => c.q_dim(),
        Weight::FfnDown(_) => c.ffn_size,
        _ => c.hidden_size,
    } as f32;
    let linear = 1.0 / fan_in.sqrt();
    let std = match w {
        // Tied models read logits off the embedding: a smaller scale keeps them sane.
        Weight::TokenEmbd if c.tied_embeddings => 0.25,
        Weight::TokenEmbd => 1.0,
        Weight::AttnQ(_) | Weight::AttnK(_) => 2.0 * linear,
        Weight::Output => 4.0 * linear,
        _ => linear,
    };
    let norm = w.is_norm();
    Box::new(move |row, out| {
        let base = mix64(stream ^ (row as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        for (i, v) in out.iter_mut().enumerate() {
            let bits = mix64(base.wrapping_add(i as u64));
            *v = if norm {
                0.8 + 0.4 * ((bits >> 40) as f32 / (1u64 << 24) as f32)
            } else {
                std * normal_from(bits)
            };
        }
        Ok(())
    })
}

/// Options of a synth run.
#[derive(Clone, Debug)]
pub struct SynthOptions {
    pub seed: u64,
    pub target: Target,
    pub threads: usize,
}

/// Writes a GGUF model of `preset`.
pub fn synth_gguf(
    preset: &Preset,
    opts: &SynthOptions,
    out: &Path,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<(), LoadError> {
    check_writable(out)?;
    let c = preset.config();
    let mut meta = GgufMetadata::new();
    llama_metadata(&c, &preset.name, opts.target.file_type(), &mut meta);
    for (key, value) in vocab::synthetic_llama_vocab(c.vocab_size)? {
        meta.set(key, value);
    }
    let mut tensors = Vec::new();
    if let Some(factors) = rope_freq_factors(&c) {
        let n = factors.len();
        tensors.push(PlannedTensor {
            spec: spec(ROPE_FREQS_TENSOR, DType::F32, vec![n]),
            rows: Box::new(move |_, out| {
                out.copy_from_slice(&factors);
                Ok(())
            }),
        });
    }
    for w in Weight::all(&c) {
        let shape = w.expected_shape(&c).expect("validated config");
        let cols = *shape.last().expect("weights have a shape");
        let dtype = tensor_type(opts.target, w, cols, c.n_layers, c.tied_embeddings);
        let hf_rows = weight_rows(w, &c, opts.seed);
        let rows: RowFn = match w {
            Weight::AttnQ(_) | Weight::AttnK(_) => {
                let hd = c.head_dim;
                Box::new(move |r, out| hf_rows(permuted_qk_row(r, hd), out))
            }
            _ => hf_rows,
        };
        tensors.push(PlannedTensor {
            spec: spec(&w.gguf_name(), dtype, shape),
            rows,
        });
    }
    let count = tensors.len();
    write_gguf(out, &meta, &tensors, opts.threads, &mut |name, i| {
        progress(name, i, count)
    })
}

fn spec(name: &str, dtype: DType, shape: Vec<usize>) -> GgufTensorSpec {
    GgufTensorSpec {
        name: name.into(),
        dtype,
        shape,
    }
}

/// Largest safetensors shard (Hugging Face's default is 5 GB; smaller shards map and
/// copy more comfortably).
pub const DEFAULT_SHARD_BYTES: u64 = 2 << 30;

/// Writes a Hugging Face folder (config.json, tokenizer.json, safetensors shards of at
/// most `shard_bytes` plus an index when there are several). F16, BF16 or F32 only.
pub fn synth_hf(
    preset: &Preset,
    opts: &SynthOptions,
    folder: &Path,
    shard_bytes: u64,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<(), LoadError> {
    let (dtype, st_name, torch) = match opts.target {
        Target::F16 => (DType::F16, "F16", "float16"),
        Target::BF16 => (DType::BF16, "BF16", "bfloat16"),
        Target::F32 => (DType::F32, "F32", "float32"),
        other => {
            return Err(LoadError::BadData {
                dtype: "target type",
                problem: format!(
                    "a Hugging Face folder holds f16, bf16 or f32 weights, not {}",
                    other.name()
                ),
            })
        }
    };
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| LoadError::Io { path, source }
    };
    std::fs::create_dir_all(folder).map_err(io_err(folder))?;
    let c = preset.config();

    let config = hf_config_json(&c, torch);
    let config_path = folder.join("config.json");
    std::fs::write(
        &config_path,
        serde_json::to_string_pretty(&config).expect("json"),
    )
    .map_err(io_err(&config_path))?;
    let mut vocab_meta = GgufMetadata::new();
    for (key, value) in vocab::synthetic_llama_vocab(c.vocab_size)? {
        vocab_meta.set(key, value);
    }
    let tok_path = folder.join("tokenizer.json");
    let tokenizer = crate::tokenizer::from_gguf_metadata(&vocab_meta, &tok_path)?;
    tokenizer
        .save(&tok_path, false)
        .map_err(|e| LoadError::Tokenizer {
            path: tok_path.clone(),
            problem: e.to_string(),
        })?;

    // Plan shards: weights in forward order, a new shard when the next would overflow.
    let weights = Weight::all(&c);
    let mut shards: Vec<Vec<(Weight, Vec<usize>, u64)>> = vec![vec![]];
    let mut in_shard = 0u64;
    for &w in &weights {
        let shape = w.expected_shape(&c).expect("validated config");
        let n_bytes = dtype
            .bytes_for(shape.iter().product::<usize>() as u64)
            .expect("floats");
        if in_shard > 0 && in_shard + n_bytes > shard_bytes {
            shards.push(vec![]);
            in_shard = 0;
        }
        in_shard += n_bytes;
        shards
            .last_mut()
            .expect("one shard")
            .push((w, shape, n_bytes));
    }
    let n_shards = shards.len();
    let mut weight_map = serde_json::Map::new();
    let mut total = 0u64;
    let mut done = 0;
    for (k, shard) in shards.iter().enumerate() {
        let file_name = if n_shards == 1 {
            "model.safetensors".to_string()
        } else {
            format!("model-{:05}-of-{n_shards:05}.safetensors", k + 1)
        };
        let path = folder.join(&file_name);
        let mut header = serde_json::Map::new();
        header.insert("__metadata__".into(), serde_json::json!({"format": "pt"}));
        let mut offset = 0u64;
        for (w, shape, n_bytes) in shard {
            header.insert(
                w.hf_name(),
                serde_json::json!({"dtype": st_name, "shape": shape, "data_offsets": [offset, offset + n_bytes]}),
            );
            weight_map.insert(w.hf_name(), file_name.clone().into());
            offset += n_bytes;
        }
        total += offset;
        let mut header = serde_json::to_vec(&header).expect("json");
        header.resize(header.len().next_multiple_of(8), b' ');
        let file = std::fs::File::create(&path).map_err(io_err(&path))?;
        let mut out = BufWriter::with_capacity(8 << 20, file);
        out.write_all(&(header.len() as u64).to_le_bytes())
            .and_then(|_| out.write_all(&header))
            .map_err(io_err(&path))?;
        for (w, shape, _) in shard {
            let t = PlannedTensor {
                spec: spec(&w.hf_name(), dtype, shape.clone()),
                rows: weight_rows(*w, &c, opts.seed),
            };
            stream_tensor(&t, opts.threads, &mut |bytes| {
                out.write_all(bytes).map_err(io_err(&path))
            })?;
            progress(&w.hf_name(), done, weights.len());
            done += 1;
        }
        out.flush().map_err(io_err(&path))?;
    }
    if n_shards > 1 {
        let index =
            serde_json::json!({"metadata": {"total_size": total}, "weight_map": weight_map});
        let path: PathBuf = folder.join("model.safetensors.index.json");
        std::fs::write(&path, serde_json::to_string_pretty(&index).expect("json"))
            .map_err(io_err(&path))?;
    }
    Ok(())
}

fn hf_config_json(c: &LlamaConfig, torch_dtype: &str) -> serde_json::Value {
    let scaling = match c.rope_scaling {
        RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings,
        } => serde_json::json!({"rope_type": "llama3", "factor": factor,
            "low_freq_factor": low_freq_factor, "high_freq_factor": high_freq_factor,
            "original_max_position_embeddings": original_max_position_embeddings}),
        _ => serde_json::Value::Null,
    };
    serde_json::json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": c.vocab_size, "hidden_size": c.hidden_size,
        "intermediate_size": c.ffn_size, "num_hidden_layers": c.n_layers,
        "num_attention_heads": c.n_heads, "num_key_value_heads": c.n_kv_heads,
        "head_dim": c.head_dim, "max_position_embeddings": c.context_length,
        "rms_norm_eps": c.rms_norm_eps, "rope_theta": c.rope_theta, "rope_scaling": scaling,
        "tie_word_embeddings": c.tied_embeddings, "bos_token_id": 1, "eos_token_id": 2,
        "hidden_act": "silu", "attention_bias": false, "mlp_bias": false,
        "torch_dtype": torch_dtype,
    })
}
