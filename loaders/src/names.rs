//! The tensors of a Llama model by role, with their GGUF and Hugging Face names and the
//! shape the config implies.

use std::fmt;

use crate::config::LlamaConfig;
use crate::ModelFormat;

/// A Llama weight by role. `usize` fields are the layer (block) index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Weight {
    /// `[vocab, hidden]`
    TokenEmbd,
    /// `[hidden]`: final RMSNorm gain.
    OutputNorm,
    /// `[vocab, hidden]`: the LM head. Absent when the embeddings are tied.
    Output,
    /// `[hidden]`
    AttnNorm(usize),
    /// `[n_heads * head_dim, hidden]`
    AttnQ(usize),
    /// `[n_kv_heads * head_dim, hidden]`
    AttnK(usize),
    /// `[n_kv_heads * head_dim, hidden]`
    AttnV(usize),
    /// `[hidden, n_heads * head_dim]`
    AttnOut(usize),
    /// `[hidden]`
    FfnNorm(usize),
    /// `[ffn, hidden]`
    FfnGate(usize),
    /// `[ffn, hidden]`
    FfnUp(usize),
    /// `[hidden, ffn]`
    FfnDown(usize),
}

/// Per-layer roles, in the order a forward pass uses them.
const LAYER_ROLES: [fn(usize) -> Weight; 9] = [
    Weight::AttnNorm,
    Weight::AttnQ,
    Weight::AttnK,
    Weight::AttnV,
    Weight::AttnOut,
    Weight::FfnNorm,
    Weight::FfnGate,
    Weight::FfnUp,
    Weight::FfnDown,
];

impl Weight {
    /// llama.cpp's name, e.g. `blk.3.attn_q.weight`.
    pub fn gguf_name(self) -> String {
        let layer = |n: usize, part: &str| format!("blk.{n}.{part}.weight");
        match self {
            Weight::TokenEmbd => "token_embd.weight".into(),
            Weight::OutputNorm => "output_norm.weight".into(),
            Weight::Output => "output.weight".into(),
            Weight::AttnNorm(n) => layer(n, "attn_norm"),
            Weight::AttnQ(n) => layer(n, "attn_q"),
            Weight::AttnK(n) => layer(n, "attn_k"),
            Weight::AttnV(n) => layer(n, "attn_v"),
            Weight::AttnOut(n) => layer(n, "attn_output"),
            Weight::FfnNorm(n) => layer(n, "ffn_norm"),
            Weight::FfnGate(n) => layer(n, "ffn_gate"),
            Weight::FfnUp(n) => layer(n, "ffn_up"),
            Weight::FfnDown(n) => layer(n, "ffn_down"),
        }
    }

    /// Hugging Face transformers' name, e.g. `model.layers.3.self_attn.q_proj.weight`.
    pub fn hf_name(self) -> String {
        let layer = |n: usize, part: &str| format!("model.layers.{n}.{part}.weight");
        match self {
            Weight::TokenEmbd => "model.embed_tokens.weight".into(),
            Weight::OutputNorm => "model.norm.weight".into(),
            Weight::Output => "lm_head.weight".into(),
            Weight::AttnNorm(n) => layer(n, "input_layernorm"),
            Weight::AttnQ(n) => layer(n, "self_attn.q_proj"),
            Weight::AttnK(n) => layer(n, "self_attn.k_proj"),
            Weight::AttnV(n) => layer(n, "self_attn.v_proj"),
            Weight::AttnOut(n) => layer(n, "self_attn.o_proj"),
            Weight::FfnNorm(n) => layer(n, "post_attention_layernorm"),
            Weight::FfnGate(n) => layer(n, "mlp.gate_proj"),
            Weight::FfnUp(n) => layer(n, "mlp.up_proj"),
            Weight::FfnDown(n) => layer(n, "mlp.down_proj"),
        }
    }

    /// The name in a file of `format`.
    pub fn name(self, format: ModelFormat) -> String {
        match format {
            ModelFormat::Gguf => self.gguf_name(),
            ModelFormat::SafeTensors => self.hf_name(),
        }
    }

    /// Parses a GGUF tensor name; `None` for names that are not Llama weights.
    pub fn from_gguf_name(name: &str) -> Option<Weight> {
        match name {
            "token_embd.weight" => return Some(Weight::TokenEmbd),
            "output_norm.weight" => return Some(Weight::OutputNorm),
            "output.weight" => return Some(Weight::Output),
            _ => {}
        }
        let rest = name.strip_prefix("blk.")?.strip_suffix(".weight")?;
        let (layer, part) = rest.split_once('.')?;
        let layer = parse_layer(layer)?;
        Some(match part {
            "attn_norm" => Weight::AttnNorm(layer),
            "attn_q" => Weight::AttnQ(layer),
            "attn_k" => Weight::AttnK(layer),
            "attn_v" => Weight::AttnV(layer),
            "attn_output" => Weight::AttnOut(layer),
            "ffn_norm" => Weight::FfnNorm(layer),
            "ffn_gate" => Weight::FfnGate(layer),
            "ffn_up" => Weight::FfnUp(layer),
            "ffn_down" => Weight::FfnDown(layer),
            _ => return None,
        })
    }

    /// Parses a Hugging Face tensor name; `None` for names that are not Llama weights.
    pub fn from_hf_name(name: &str) -> Option<Weight> {
        match name {
            "model.embed_tokens.weight" => return Some(Weight::TokenEmbd),
            "model.norm.weight" => return Some(Weight::OutputNorm),
            "lm_head.weight" => return Some(Weight::Output),
            _ => {}
        }
        let rest = name
            .strip_prefix("model.layers.")?
            .strip_suffix(".weight")?;
        let (layer, part) = rest.split_once('.')?;
        let layer = parse_layer(layer)?;
        Some(match part {
            "input_layernorm" => Weight::AttnNorm(layer),
            "self_attn.q_proj" => Weight::AttnQ(layer),
            "self_attn.k_proj" => Weight::AttnK(layer),
            "self_attn.v_proj" => Weight::AttnV(layer),
            "self_attn.o_proj" => Weight::AttnOut(layer),
            "post_attention_layernorm" => Weight::FfnNorm(layer),
            "mlp.gate_proj" => Weight::FfnGate(layer),
            "mlp.up_proj" => Weight::FfnUp(layer),
            "mlp.down_proj" => Weight::FfnDown(layer),
            _ => return None,
        })
    }

    pub fn from_name(name: &str, format: ModelFormat) -> Option<Weight> {
        match format {
            ModelFormat::Gguf => Weight::from_gguf_name(name),
            ModelFormat::SafeTensors => Weight::from_hf_name(name),
        }
    }

    /// The layer index, for per-layer weights.
    pub fn layer(self) -> Option<usize> {
        match self {
            Weight::TokenEmbd | Weight::OutputNorm | Weight::Output => None,
            Weight::AttnNorm(n)
            | Weight::AttnQ(n)
            | Weight::AttnK(n)
            | Weight::AttnV(n)
            | Weight::AttnOut(n)
            | Weight::FfnNorm(n)
            | Weight::FfnGate(n)
            | Weight::FfnUp(n)
            | Weight::FfnDown(n) => Some(n),
        }
    }

    /// RMSNorm gains: 1-D, applied elementwise, so they must stay in a float type.
    pub fn is_norm(self) -> bool {
        matches!(
            self,
            Weight::OutputNorm | Weight::AttnNorm(_) | Weight::FfnNorm(_)
        )
    }

    /// Shape outermost first (PyTorch order): a matrix is `[out_features, in_features]`.
    /// `None` if a dimension overflows (only possible with a nonsensical config).
    pub fn expected_shape(self, c: &LlamaConfig) -> Option<Vec<usize>> {
        let q_dim = c.n_heads.checked_mul(c.head_dim)?;
        let kv_dim = c.n_kv_heads.checked_mul(c.head_dim)?;
        Some(match self {
            Weight::TokenEmbd | Weight::Output => vec![c.vocab_size, c.hidden_size],
            Weight::OutputNorm | Weight::AttnNorm(_) | Weight::FfnNorm(_) => vec![c.hidden_size],
            Weight::AttnQ(_) => vec![q_dim, c.hidden_size],
            Weight::AttnK(_) | Weight::AttnV(_) => vec![kv_dim, c.hidden_size],
            Weight::AttnOut(_) => vec![c.hidden_size, q_dim],
            Weight::FfnGate(_) | Weight::FfnUp(_) => vec![c.ffn_size, c.hidden_size],
            Weight::FfnDown(_) => vec![c.hidden_size, c.ffn_size],
        })
    }

    /// Every weight a model with this config needs, in forward order (the LM head only
    /// when the embeddings are not tied).
    pub fn all(c: &LlamaConfig) -> Vec<Weight> {
        let mut all = vec![Weight::TokenEmbd];
        for layer in 0..c.n_layers {
            all.extend(LAYER_ROLES.iter().map(|role| role(layer)));
        }
        all.push(Weight::OutputNorm);
        if !c.tied_embeddings {
            all.push(Weight::Output);
        }
        all
    }
}

/// A layer index as written in a name: plain decimal digits, no sign or leading zeros
/// (so "blk.01" is not silently taken for layer 1).
fn parse_layer(s: &str) -> Option<usize> {
    let ok =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    ok.then(|| s.parse().ok()).flatten()
}

impl fmt::Display for Weight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.gguf_name())
    }
}
