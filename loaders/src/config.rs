//! Llama hyperparameters, read from GGUF `llama.*` metadata or a Hugging Face `config.json`.

use std::path::Path;

use serde_json::Value;

use crate::gguf::GgufMetadata;
use crate::LoadError;

/// Which elements of a head rotate together under RoPE. The two formats store the Q and
/// K projections differently, so the engine must pair elements to match the file:
/// llama.cpp's converter permutes Q/K rows so pairs are adjacent, Hugging Face keeps
/// Meta's "rotate half" order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum RopeLayout {
    /// Pair i of a head is elements (2i, 2i+1). GGUF files.
    Interleaved,
    /// Pair i of a head is elements (i, i + head_dim/2). SafeTensors (HF) files.
    RotateHalf,
}

/// How RoPE frequencies are stretched for long contexts.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub enum RopeScaling {
    None,
    /// Positions divided by `factor` (equivalently, every frequency divided by it).
    Linear {
        factor: f32,
    },
    /// Llama 3.1's scheme: low frequencies divided by `factor`, high ones kept, a smooth
    /// blend between the wavelengths `original / low_freq_factor` and
    /// `original / high_freq_factor`.
    Llama3 {
        factor: f32,
        low_freq_factor: f32,
        high_freq_factor: f32,
        original_max_position_embeddings: usize,
    },
    /// GGUF files made by llama.cpp carry Llama 3.1's scaling as a `rope_freqs.weight`
    /// tensor `[head_dim / 2]` of per-pair divisors of the frequency instead of metadata.
    /// [`crate::ModelFile::rope_inv_freqs`] applies it.
    FreqFactorsTensor,
}

/// A Llama model's hyperparameters. All sizes are element counts.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LlamaConfig {
    /// "llama" (GGUF `general.architecture`, HF `model_type`).
    pub architecture: String,
    pub vocab_size: usize,
    /// Model width (d_model).
    pub hidden_size: usize,
    pub n_layers: usize,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads (< n_heads for grouped-query attention).
    pub n_kv_heads: usize,
    /// Per-head width: stated in the file, else hidden_size / n_heads.
    pub head_dim: usize,
    /// Hidden width of the SwiGLU MLP.
    pub ffn_size: usize,
    pub rope_theta: f32,
    pub rope_scaling: RopeScaling,
    pub rope_layout: RopeLayout,
    pub rms_norm_eps: f32,
    /// The LM head reuses the token embedding (the file has no output / lm_head tensor).
    pub tied_embeddings: bool,
    /// Longest sequence the model was trained for (max_position_embeddings).
    pub context_length: usize,
    pub bos_token_id: Option<u32>,
    /// Tokens that end generation (HF allows several; GGUF eos plus eot when present).
    pub eos_token_ids: Vec<u32>,
}

/// Limits that catch corrupt or hostile configs before anything loops over layers or
/// sizes buffers from them. Far beyond any real Llama.
const MAX_LAYERS: usize = 1 << 12;
const MAX_DIM: usize = 1 << 22;
const MAX_VOCAB: usize = 1 << 24;

/// What the file says about itself that the config needs but metadata may not state.
pub(crate) struct TensorFacts {
    /// Shape of the token embedding, outermost first, if the tensor exists.
    pub embedding_shape: Option<Vec<usize>>,
    /// The file has an output / lm_head tensor.
    pub has_output: bool,
    /// The file has a `rope_freqs.weight` tensor.
    pub has_rope_freqs: bool,
}

impl LlamaConfig {
    /// `n_heads * head_dim`: rows of the Q projection.
    pub fn q_dim(&self) -> usize {
        self.n_heads * self.head_dim
    }

    /// `n_kv_heads * head_dim`: rows of the K and V projections.
    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }

    /// Inverse RoPE frequency of each of the `head_dim / 2` pairs, scaling applied
    /// (except [`RopeScaling::FreqFactorsTensor`], whose factors live in the file: use
    /// [`crate::ModelFile::rope_inv_freqs`]). Which elements form pair i depends on
    /// [`LlamaConfig::rope_layout`].
    pub fn rope_inv_freqs(&self) -> Vec<f32> {
        rope_inv_freqs(self.head_dim, self.rope_theta, &self.rope_scaling)
    }

    /// Reads a GGUF file's `general.architecture` and `<arch>.*` keys.
    pub(crate) fn from_gguf(
        meta: &GgufMetadata,
        facts: &TensorFacts,
        path: &Path,
    ) -> Result<LlamaConfig, LoadError> {
        let arch = meta
            .get_str("general.architecture")
            .ok_or_else(|| missing(path, "general.architecture"))?;
        if arch != "llama" {
            return Err(LoadError::UnsupportedArchitecture {
                path: path.into(),
                arch: arch.into(),
            });
        }
        let key = |k: &str| format!("{arch}.{k}");
        let uint = |k: &str| -> Result<Option<usize>, LoadError> {
            let k = key(k);
            match meta.get(&k) {
                None => Ok(None),
                Some(v) => v
                    .as_u64()
                    .and_then(|x| usize::try_from(x).ok())
                    .map(Some)
                    .ok_or_else(|| bad(path, format!("`{k}` = {v} is not a non-negative integer"))),
            }
        };
        let float = |k: &str| -> Result<Option<f32>, LoadError> {
            let k = key(k);
            match meta.get(&k) {
                None => Ok(None),
                Some(v) => v
                    .as_f64()
                    .map(|x| Some(x as f32))
                    .ok_or_else(|| bad(path, format!("`{k}` = {v} is not a number"))),
            }
        };
        let required = |k: &str| uint(k)?.ok_or_else(|| missing(path, &key(k)));

        let hidden_size = required("embedding_length")?;
        let n_heads = required("attention.head_count")?;
        let head_dim = match uint("attention.key_length")? {
            Some(d) => d,
            None => derived_head_dim(hidden_size, n_heads, path)?,
        };
        if let Some(v) = uint("attention.value_length")? {
            if v != head_dim {
                return Err(bad(
                    path,
                    format!("value_length {v} differs from key_length {head_dim}"),
                ));
            }
        }
        if let Some(r) = uint("rope.dimension_count")? {
            if r != head_dim {
                return Err(bad(path, format!("partial RoPE (rope.dimension_count {r} of head_dim {head_dim}) is not supported")));
            }
        }
        let vocab_size = match uint("vocab_size")? {
            Some(v) => v,
            None => embedding_vocab(facts, path)?,
        };

        let scaling_type = meta.get_str(&key("rope.scaling.type")).unwrap_or("none");
        let rope_scaling = match scaling_type {
            "none" if facts.has_rope_freqs => RopeScaling::FreqFactorsTensor,
            "none" => RopeScaling::None,
            "linear" => RopeScaling::Linear {
                factor: float("rope.scaling.factor")?
                    .ok_or_else(|| missing(path, &key("rope.scaling.factor")))?,
            },
            "llama3" => RopeScaling::Llama3 {
                factor: float("rope.scaling.factor")?
                    .ok_or_else(|| missing(path, &key("rope.scaling.factor")))?,
                // Llama 3.1's published values, used by every Llama 3.x release.
                low_freq_factor: float("rope.scaling.low_freq_factor")?.unwrap_or(1.0),
                high_freq_factor: float("rope.scaling.high_freq_factor")?.unwrap_or(4.0),
                original_max_position_embeddings: uint("rope.scaling.original_context_length")?
                    .ok_or_else(|| missing(path, &key("rope.scaling.original_context_length")))?,
            },
            other => {
                return Err(bad(
                    path,
                    format!("RoPE scaling type `{other}` is not supported"),
                ))
            }
        };

        let token_id =
            |k: &str| -> Option<u32> { meta.get_u64(k).and_then(|v| u32::try_from(v).ok()) };
        let mut eos_token_ids: Vec<u32> = token_id("tokenizer.ggml.eos_token_id")
            .into_iter()
            .collect();
        // Chat models end a turn with an end-of-turn token that differs from EOS.
        if let Some(eot) = token_id("tokenizer.ggml.eot_token_id") {
            if !eos_token_ids.contains(&eot) {
                eos_token_ids.push(eot);
            }
        }

        let config = LlamaConfig {
            architecture: arch.into(),
            vocab_size,
            hidden_size,
            n_layers: required("block_count")?,
            n_heads,
            n_kv_heads: uint("attention.head_count_kv")?.unwrap_or(n_heads),
            head_dim,
            ffn_size: required("feed_forward_length")?,
            rope_theta: float("rope.freq_base")?.unwrap_or(10_000.0),
            rope_scaling,
            rope_layout: RopeLayout::Interleaved,
            rms_norm_eps: float("attention.layer_norm_rms_epsilon")?
                .ok_or_else(|| missing(path, &key("attention.layer_norm_rms_epsilon")))?,
            tied_embeddings: !facts.has_output,
            context_length: required("context_length")?,
            bos_token_id: token_id("tokenizer.ggml.bos_token_id"),
            eos_token_ids,
        };
        config.validate(path)?;
        Ok(config)
    }

    /// Reads a Hugging Face `config.json` (already parsed). `path` names config.json.
    pub(crate) fn from_hf_json(
        json: &Value,
        facts: &TensorFacts,
        path: &Path,
    ) -> Result<LlamaConfig, LoadError> {
        let obj = json
            .as_object()
            .ok_or_else(|| bad(path, "config.json is not a JSON object".into()))?;
        // `model_type` names the family; very old configs only list `architectures`.
        let arch = match obj.get("model_type").and_then(Value::as_str) {
            Some(t) => t.to_string(),
            None => obj
                .get("architectures")
                .and_then(|a| a.get(0))
                .and_then(Value::as_str)
                .map(|a| match a {
                    "LlamaForCausalLM" => "llama".to_string(),
                    "MistralForCausalLM" => "mistral".to_string(),
                    other => other.to_string(),
                })
                .unwrap_or_else(|| "(no model_type)".into()),
        };
        // Mistral-7B-style checkpoints use the same tensors and maths (without sliding window).
        if !matches!(arch.as_str(), "llama" | "mistral") {
            return Err(LoadError::UnsupportedArchitecture {
                path: path.into(),
                arch,
            });
        }
        let present = |k: &str| obj.get(k).filter(|v| !v.is_null());
        let uint = |k: &str| -> Result<Option<usize>, LoadError> {
            match present(k) {
                None => Ok(None),
                Some(v) => v
                    .as_u64()
                    .and_then(|x| usize::try_from(x).ok())
                    .map(Some)
                    .ok_or_else(|| bad(path, format!("`{k}` = {v} is not a non-negative integer"))),
            }
        };
        let float = |k: &str| -> Result<Option<f32>, LoadError> {
            match present(k) {
                None => Ok(None),
                Some(v) => v
                    .as_f64()
                    .map(|x| Some(x as f32))
                    .ok_or_else(|| bad(path, format!("`{k}` = {v} is not a number"))),
            }
        };
        let required = |k: &str| uint(k)?.ok_or_else(|| bad(path, format!("`{k}` is missing")));

        let hidden_size = required("hidden_size")?;
        let n_heads = required("num_attention_heads")?;
        let head_dim = match uint("head_dim")? {
            Some(d) => d,
            None => derived_head_dim(hidden_size, n_heads, path)?,
        };
        let vocab_size = match uint("vocab_size")? {
            Some(v) => v,
            None => embedding_vocab(facts, path)?,
        };
        let rope_scaling = match present("rope_scaling") {
            None => RopeScaling::None,
            Some(v) => hf_rope_scaling(v, path)?,
        };
        let token_ids = |k: &str| -> Result<Vec<u32>, LoadError> {
            let bad_id = || bad(path, format!("`{k}` is not a token id or a list of them"));
            let one = |v: &Value| {
                v.as_u64()
                    .and_then(|x| u32::try_from(x).ok())
                    .ok_or_else(bad_id)
            };
            match present(k) {
                None => Ok(vec![]),
                Some(Value::Array(list)) => list.iter().map(one).collect(),
                Some(v) => Ok(vec![one(v)?]),
            }
        };

        let config = LlamaConfig {
            architecture: "llama".into(),
            vocab_size,
            hidden_size,
            n_layers: required("num_hidden_layers")?,
            n_heads,
            n_kv_heads: uint("num_key_value_heads")?.unwrap_or(n_heads),
            head_dim,
            ffn_size: required("intermediate_size")?,
            rope_theta: float("rope_theta")?.unwrap_or(10_000.0),
            rope_scaling,
            rope_layout: RopeLayout::RotateHalf,
            // transformers' LlamaConfig default.
            rms_norm_eps: float("rms_norm_eps")?.unwrap_or(1e-6),
            // The tensor decides; `tie_word_embeddings: false` without an lm_head is
            // reported by check().
            tied_embeddings: !facts.has_output,
            context_length: uint("max_position_embeddings")?.unwrap_or(2048),
            bos_token_id: token_ids("bos_token_id")?.first().copied(),
            eos_token_ids: token_ids("eos_token_id")?,
        };
        config.validate(path)?;
        Ok(config)
    }

    /// Refuses zero, absurd and inconsistent values, so later arithmetic (shapes, loops
    /// over layers) cannot overflow or run for ever.
    pub fn validate(&self, path: &Path) -> Result<(), LoadError> {
        let limits = [
            ("vocab_size", self.vocab_size, MAX_VOCAB),
            ("hidden_size", self.hidden_size, MAX_DIM),
            ("n_layers", self.n_layers, MAX_LAYERS),
            ("n_heads", self.n_heads, MAX_DIM),
            ("n_kv_heads", self.n_kv_heads, MAX_DIM),
            ("head_dim", self.head_dim, MAX_DIM),
            ("ffn_size", self.ffn_size, MAX_DIM),
            ("context_length", self.context_length, usize::MAX),
        ];
        for (name, value, max) in limits {
            if value == 0 || value > max {
                return Err(bad(
                    path,
                    format!("{name} = {value} is out of range (1..={max})"),
                ));
            }
        }
        if !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return Err(bad(
                path,
                format!(
                    "n_heads {} is not a multiple of n_kv_heads {}",
                    self.n_heads, self.n_kv_heads
                ),
            ));
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(bad(
                path,
                format!("head_dim {} is odd; RoPE rotates pairs", self.head_dim),
            ));
        }
        if self
            .n_heads
            .checked_mul(self.head_dim)
            .is_none_or(|q| q > MAX_DIM)
        {
            return Err(bad(
                path,
                format!(
                    "n_heads × head_dim = {} × {} is too large",
                    self.n_heads, self.head_dim
                ),
            ));
        }
        let positive = |name: &str, v: f32| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(bad(path, format!("{name} = {v} must be a positive number")))
            }
        };
        positive("rope_theta", self.rope_theta)?;
        positive("rms_norm_eps", self.rms_norm_eps)?;
        match self.rope_scaling {
            RopeScaling::Linear { factor } => positive("rope scaling factor", factor)?,
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } => {
                positive("rope scaling factor", factor)?;
                positive("low_freq_factor", low_freq_factor)?;
                positive("high_freq_factor", high_freq_factor)?;
                if high_freq_factor <= low_freq_factor || original_max_position_embeddings == 0 {
                    return Err(bad(path, "llama3 rope scaling needs high_freq_factor > low_freq_factor and original_max_position_embeddings > 0".into()));
                }
            }
            RopeScaling::None | RopeScaling::FreqFactorsTensor => {}
        }
        Ok(())
    }
}

fn hf_rope_scaling(v: &Value, path: &Path) -> Result<RopeScaling, LoadError> {
    let field = |k: &str| v.get(k).filter(|x| !x.is_null());
    let num = |k: &str| -> Result<f32, LoadError> {
        field(k)
            .and_then(Value::as_f64)
            .map(|x| x as f32)
            .ok_or_else(|| bad(path, format!("rope_scaling.{k} is missing or not a number")))
    };
    // Older configs say "type", newer "rope_type".
    let kind = field("rope_type")
        .or_else(|| field("type"))
        .and_then(Value::as_str)
        .unwrap_or("");
    match kind {
        "default" => Ok(RopeScaling::None),
        "linear" => Ok(RopeScaling::Linear { factor: num("factor")? }),
        "llama3" => Ok(RopeScaling::Llama3 {
            factor: num("factor")?,
            low_freq_factor: num("low_freq_factor")?,
            high_freq_factor: num("high_freq_factor")?,
            original_max_position_embeddings: field("original_max_position_embeddings")
                .and_then(Value::as_u64)
                .and_then(|x| usize::try_from(x).ok())
                .ok_or_else(|| bad(path, "rope_scaling.original_max_position_embeddings is missing or not an integer".into()))?,
        }),
        other => Err(bad(path, format!("rope_scaling type `{other}` is not supported"))),
    }
}

fn derived_head_dim(hidden: usize, heads: usize, path: &Path) -> Result<usize, LoadError> {
    if heads == 0 || !hidden.is_multiple_of(heads) {
        return Err(bad(
            path,
            format!(
                "hidden size {hidden} is not divisible by {heads} heads and no head_dim is stated"
            ),
        ));
    }
    Ok(hidden / heads)
}

fn embedding_vocab(facts: &TensorFacts, path: &Path) -> Result<usize, LoadError> {
    match facts.embedding_shape.as_deref() {
        Some([vocab, _hidden]) => Ok(*vocab),
        Some(other) => Err(bad(
            path,
            format!("no vocab size stated and the token embedding has shape {other:?}"),
        )),
        None => Err(bad(
            path,
            "no vocab size stated and no token embedding tensor".into(),
        )),
    }
}

fn missing(path: &Path, key: &str) -> LoadError {
    LoadError::MissingMetadata {
        path: path.into(),
        key: key.into(),
    }
}

fn bad(path: &Path, problem: String) -> LoadError {
    LoadError::BadConfig {
        path: path.into(),
        problem,
    }
}

/// inv_freq[i] = theta^(-2i/head_dim) for i < head_dim/2, scaled as `scaling` says
/// ([`RopeScaling::FreqFactorsTensor`]'s divisors live in the file and are applied by
/// [`crate::ModelFile::rope_inv_freqs`]).
///
/// Follows transformers' `_compute_default_rope_parameters` and `_compute_llama3_parameters`
/// step by step in f32, as torch evaluates them: the exponent 2i/head_dim is rounded to f32,
/// the power is rounded once from f64 (torch's f32 `pow` is within an ulp of that), and every
/// scaling step is an f32 operation in the same order. Results agree with transformers to an
/// ulp or two (engine/tests/ops_rope.rs checks numpy goldens of the formula).
pub fn rope_inv_freqs(head_dim: usize, theta: f32, scaling: &RopeScaling) -> Vec<f32> {
    let mut inv_freq: Vec<f32> = (0..head_dim / 2)
        .map(|i| {
            let exponent = (2 * i) as f32 / head_dim as f32;
            1.0f32 / (theta as f64).powf(exponent as f64) as f32
        })
        .collect();
    match *scaling {
        RopeScaling::None | RopeScaling::FreqFactorsTensor => {}
        RopeScaling::Linear { factor } => inv_freq.iter_mut().for_each(|f| *f /= factor),
        RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings,
        } => {
            let old_context_len = original_max_position_embeddings as f32;
            let low_freq_wavelen = old_context_len / low_freq_factor;
            let high_freq_wavelen = old_context_len / high_freq_factor;
            for f in inv_freq.iter_mut() {
                let wavelen = (2.0 * std::f64::consts::PI) as f32 / *f;
                // Long wavelengths (low frequencies) are slowed by `factor`, short ones kept,
                // and the band between blends the two linearly in old_context_len / wavelen.
                let llama = if wavelen > low_freq_wavelen {
                    *f / factor
                } else {
                    *f
                };
                let smooth = (old_context_len / wavelen - low_freq_factor)
                    / (high_freq_factor - low_freq_factor);
                let smoothed = (1.0 - smooth) * llama / factor + smooth * llama;
                // transformers: ~(wavelen < high) * ~(wavelen > low); wavelen is never NaN.
                let medium = wavelen >= high_freq_wavelen && wavelen <= low_freq_wavelen;
                *f = if medium { smoothed } else { llama };
            }
        }
    }
    inv_freq
}
