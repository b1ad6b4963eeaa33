//! Tiny model builders shared by the integration tests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use safetensors::tensor::{Dtype, TensorView as StView};
use wgllama_loaders::gguf::{GgufArray, GgufValue, GgufWriter};
use wgllama_loaders::quant::quantize;
use wgllama_loaders::{DType, LlamaConfig, RopeLayout, RopeScaling, Weight};

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("wgllama-loaders-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// vocab 32, hidden 64, 2 layers, 4 heads of 16, 2 KV heads, ffn 96: every row a whole
/// number of 32-value blocks, so Q8_0/Q4_0 work.
pub fn tiny_config(format_layout: RopeLayout, tied: bool) -> LlamaConfig {
    LlamaConfig {
        architecture: "llama".into(),
        vocab_size: 32,
        hidden_size: 64,
        n_layers: 2,
        n_heads: 4,
        n_kv_heads: 2,
        head_dim: 16,
        ffn_size: 96,
        rope_theta: 10000.0,
        rope_scaling: RopeScaling::None,
        rope_layout: format_layout,
        rms_norm_eps: 1e-5,
        tied_embeddings: tied,
        context_length: 128,
        bos_token_id: Some(1),
        eos_token_ids: vec![2],
    }
}

/// The smallest sensible Llama (rows of 32 so Q8_0/Q4_0 work): for fuzz seeds.
pub fn micro_config(layout: RopeLayout) -> LlamaConfig {
    LlamaConfig {
        vocab_size: 4,
        hidden_size: 32,
        n_layers: 1,
        n_heads: 2,
        n_kv_heads: 1,
        head_dim: 16,
        ffn_size: 32,
        ..tiny_config(layout, false)
    }
}

/// Deterministic weight values for a tensor: small, distinct per tensor.
pub fn values_for(name: &str, n: usize) -> Vec<f32> {
    let seed = name
        .bytes()
        .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32));
    (0..n)
        .map(|i| {
            let x = (i as u32).wrapping_mul(2654435761).wrapping_add(seed);
            ((x >> 8) % 2001) as f32 / 1000.0 - 1.0
        })
        .collect()
}

/// (name, dtype, shape, values) of every Llama tensor for `c`, in forward order.
pub fn llama_tensors(
    c: &LlamaConfig,
    gguf: bool,
    matrix_dtype: DType,
) -> Vec<(String, DType, Vec<usize>, Vec<f32>)> {
    Weight::all(c)
        .into_iter()
        .map(|w| {
            let name = if gguf { w.gguf_name() } else { w.hf_name() };
            let shape = w.expected_shape(c).unwrap();
            let dtype = if w.is_norm() {
                DType::F32
            } else {
                matrix_dtype
            };
            let values = values_for(&name, shape.iter().product());
            (name, dtype, shape, values)
        })
        .collect()
}

/// A GGUF writer holding a complete tiny Llama (metadata + tensors).
pub fn tiny_gguf(matrix_dtype: DType, tied: bool) -> GgufWriter<'static> {
    gguf_for(&tiny_config(RopeLayout::Interleaved, tied), matrix_dtype)
}

/// A GGUF writer holding a complete Llama for config `c`.
pub fn gguf_for(c: &LlamaConfig, matrix_dtype: DType) -> GgufWriter<'static> {
    let mut w = GgufWriter::new();
    w.set_str("general.architecture", "llama")
        .set_str("general.name", "tiny")
        .set_u32("llama.context_length", c.context_length as u32)
        .set_u32("llama.embedding_length", c.hidden_size as u32)
        .set_u32("llama.block_count", c.n_layers as u32)
        .set_u32("llama.feed_forward_length", c.ffn_size as u32)
        .set_u32("llama.rope.dimension_count", c.head_dim as u32)
        .set_u32("llama.attention.head_count", c.n_heads as u32)
        .set_u32("llama.attention.head_count_kv", c.n_kv_heads as u32)
        .set_f32("llama.attention.layer_norm_rms_epsilon", c.rms_norm_eps)
        .set_f32("llama.rope.freq_base", c.rope_theta)
        .set_str("tokenizer.ggml.model", "llama")
        .set_array(
            "tokenizer.ggml.tokens",
            GgufArray::String((0..c.vocab_size).map(|i| format!("t{i}")).collect()),
        )
        .set_u32("tokenizer.ggml.bos_token_id", 1)
        .set_u32("tokenizer.ggml.eos_token_id", 2);
    for (name, dtype, shape, values) in llama_tensors(c, true, matrix_dtype) {
        w.add_tensor(name, dtype, &shape, quantize(dtype, &values).unwrap())
            .unwrap();
    }
    w
}

pub fn st_dtype(d: DType) -> Dtype {
    match d {
        DType::F32 => Dtype::F32,
        DType::F16 => Dtype::F16,
        DType::BF16 => Dtype::BF16,
        other => panic!("{other} is not a safetensors type"),
    }
}

/// Serialises `(name, dtype, shape, bytes)` tensors as one safetensors file.
pub fn safetensors_bytes(tensors: &[(String, DType, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
    let views: Vec<(String, StView)> = tensors
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            (
                name.clone(),
                StView::new(st_dtype(*dtype), shape.clone(), bytes).unwrap(),
            )
        })
        .collect();
    safetensors::serialize(views, None).unwrap()
}

pub fn hf_config_json(c: &LlamaConfig) -> serde_json::Value {
    serde_json::json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": c.vocab_size,
        "hidden_size": c.hidden_size,
        "num_hidden_layers": c.n_layers,
        "num_attention_heads": c.n_heads,
        "num_key_value_heads": c.n_kv_heads,
        "intermediate_size": c.ffn_size,
        "rms_norm_eps": c.rms_norm_eps,
        "rope_theta": c.rope_theta,
        "max_position_embeddings": c.context_length,
        "tie_word_embeddings": c.tied_embeddings,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "torch_dtype": "bfloat16",
    })
}

/// Writes a Hugging Face folder for the tiny config: config.json plus either one
/// model.safetensors or `shards` shards with an index.
pub fn write_hf_folder(dir: &Path, dtype: DType, tied: bool, shards: usize) {
    let c = tiny_config(RopeLayout::RotateHalf, tied);
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_vec_pretty(&hf_config_json(&c)).unwrap(),
    )
    .unwrap();
    let tensors: Vec<(String, DType, Vec<usize>, Vec<u8>)> = llama_tensors(&c, false, dtype)
        .into_iter()
        .map(|(name, _, shape, values)| {
            let bytes = quantize(dtype, &values).unwrap();
            (name, dtype, shape, bytes)
        })
        .collect();
    if shards <= 1 {
        std::fs::write(dir.join("model.safetensors"), safetensors_bytes(&tensors)).unwrap();
        return;
    }
    let per_shard = tensors.len().div_ceil(shards);
    let mut weight_map = HashMap::new();
    for (i, chunk) in tensors.chunks(per_shard).enumerate() {
        let file = format!("model-{:05}-of-{:05}.safetensors", i + 1, shards);
        for (name, ..) in chunk {
            weight_map.insert(name.clone(), file.clone());
        }
        std::fs::write(dir.join(&file), safetensors_bytes(chunk)).unwrap();
    }
    let index = serde_json::json!({"metadata": {"total_size": 0}, "weight_map": weight_map});
    std::fs::write(
        dir.join("model.safetensors.index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
}

pub fn gguf_string(s: &str) -> GgufValue {
    GgufValue::String(s.into())
}
