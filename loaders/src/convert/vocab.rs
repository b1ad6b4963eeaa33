//! Tokenizer metadata for GGUF files: converted from a Hugging Face `tokenizer.json`, or
//! a synthetic SentencePiece-style vocabulary for random models.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

use crate::gguf::{GgufArray, GgufValue};
use crate::{LlamaConfig, LoadError};

/// ggml token types.
const NORMAL: i32 = 1;
const UNKNOWN: i32 = 2;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;
const UNUSED: i32 = 5;
const BYTE: i32 = 6;

type Keys = Vec<(String, GgufValue)>;

/// Converts a BPE `tokenizer.json` to `tokenizer.ggml.*` keys, as llama.cpp's converter
/// does: with byte fallback (Llama 1/2, TinyLlama, Mistral) → `"llama"` with tokens,
/// scores and token types; byte-level (Llama 3) → `"gpt2"` with tokens, merges and
/// token types. The vocabulary is padded to the model's `vocab_size` with unused tokens.
pub fn hf_tokenizer_metadata(path: &Path, c: &LlamaConfig) -> Result<Keys, LoadError> {
    let fail = |problem: String| LoadError::Tokenizer {
        path: path.into(),
        problem,
    };
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.into(),
        source,
    })?;
    let json: Value = serde_json::from_str(&text).map_err(|e| LoadError::BadJson {
        path: path.into(),
        problem: e.to_string(),
    })?;
    let model = &json["model"];
    if model["type"].as_str() != Some("BPE") {
        return Err(fail(format!(
            "model type {} is not BPE; only BPE tokenizers convert to GGUF here",
            model["type"]
        )));
    }
    // Ids → strings, from the model vocabulary and the added tokens.
    let mut by_id: HashMap<usize, String> = HashMap::new();
    let vocab = model["vocab"]
        .as_object()
        .ok_or_else(|| fail("model.vocab is not an object".into()))?;
    for (tok, id) in vocab {
        let id = id
            .as_u64()
            .ok_or_else(|| fail(format!("token `{tok}` has no integer id")))?;
        by_id.insert(id as usize, tok.clone());
    }
    let mut special = HashMap::new();
    for added in json["added_tokens"].as_array().into_iter().flatten() {
        let (Some(id), Some(tok)) = (added["id"].as_u64(), added["content"].as_str()) else {
            return Err(fail("an added token lacks id or content".into()));
        };
        by_id.insert(id as usize, tok.to_string());
        special.insert(id as usize, added["special"].as_bool().unwrap_or(false));
    }
    let n = by_id.keys().max().map_or(0, |m| m + 1);
    if n > c.vocab_size {
        return Err(fail(format!(
            "{n} tokens, more than the model's vocab_size {}",
            c.vocab_size
        )));
    }
    let mut merges: Vec<String> = Vec::new();
    for m in model["merges"].as_array().into_iter().flatten() {
        merges.push(match m {
            Value::String(s) => s.clone(),
            Value::Array(pair) if pair.len() == 2 => format!(
                "{} {}",
                pair[0].as_str().unwrap_or_default(),
                pair[1].as_str().unwrap_or_default()
            ),
            other => return Err(fail(format!("merge {other} is neither \"a b\" nor [a, b]"))),
        });
    }
    let unk = model["unk_token"].as_str();
    let mut tokens = Vec::with_capacity(c.vocab_size);
    let mut types = Vec::with_capacity(c.vocab_size);
    for id in 0..c.vocab_size {
        let tok = by_id.get(&id).cloned();
        let kind = match (&tok, special.get(&id)) {
            (None, _) => UNUSED,
            (Some(t), _) if Some(t.as_str()) == unk => UNKNOWN,
            (_, Some(true)) => CONTROL,
            (_, Some(false)) => USER_DEFINED,
            (Some(t), None) if is_byte_token(t) => BYTE,
            _ => NORMAL,
        };
        tokens.push(tok.unwrap_or_else(|| format!("[PAD{id}]")));
        types.push(kind);
    }

    let mut keys: Keys = Vec::new();
    let byte_fallback = model["byte_fallback"].as_bool().unwrap_or(false);
    let byte_level = json["pre_tokenizer"].to_string().contains("ByteLevel")
        || json["decoder"].to_string().contains("ByteLevel");
    if byte_fallback {
        keys.push(str_key("tokenizer.ggml.model", "llama"));
        keys.push(arr_key(
            "tokenizer.ggml.scores",
            GgufArray::F32(scores_from_merges(&tokens, &merges)),
        ));
        let prepends = json["normalizer"].to_string().contains("Prepend")
            || json["pre_tokenizer"].to_string().contains("prepend_scheme");
        keys.push((
            "tokenizer.ggml.add_space_prefix".into(),
            GgufValue::Bool(prepends),
        ));
    } else if byte_level {
        keys.push(str_key("tokenizer.ggml.model", "gpt2"));
        // Llama 3 splits with a regex before the byte-level step; GPT-2 does not.
        let pre = if json["pre_tokenizer"].to_string().contains("Split") {
            "llama-bpe"
        } else {
            "gpt2"
        };
        keys.push(str_key("tokenizer.ggml.pre", pre));
        keys.push(arr_key("tokenizer.ggml.merges", GgufArray::String(merges)));
    } else {
        return Err(fail(
            "BPE without byte fallback or byte-level pre-tokenization is not supported".into(),
        ));
    }
    keys.push(arr_key("tokenizer.ggml.tokens", GgufArray::String(tokens)));
    keys.push(arr_key("tokenizer.ggml.token_type", GgufArray::I32(types)));
    if let Some(unk_id) = unk.and_then(|u| vocab.get(u)).and_then(Value::as_u64) {
        keys.push((
            "tokenizer.ggml.unknown_token_id".into(),
            GgufValue::U32(unk_id as u32),
        ));
    }
    special_ids(c, &json, &mut keys);
    Ok(keys)
}

fn special_ids(c: &LlamaConfig, json: &Value, keys: &mut Keys) {
    if let Some(bos) = c.bos_token_id {
        keys.push(("tokenizer.ggml.bos_token_id".into(), GgufValue::U32(bos)));
        // Adds BOS when the HF post-processor does (it names the BOS token's id).
        let post = json["post_processor"].to_string();
        let adds = post.contains(&format!("[{bos}]")) || post.contains(&format!("\"id\":{bos}"));
        keys.push(("tokenizer.ggml.add_bos_token".into(), GgufValue::Bool(adds)));
    }
    if let Some(&eos) = c.eos_token_ids.first() {
        keys.push(("tokenizer.ggml.eos_token_id".into(), GgufValue::U32(eos)));
    }
    // Llama 3 Instruct lists <|eot_id|> as a second end token.
    if let Some(&eot) = c.eos_token_ids.get(1) {
        keys.push(("tokenizer.ggml.eot_token_id".into(), GgufValue::U32(eot)));
    }
}

fn is_byte_token(t: &str) -> bool {
    t.len() == 6 && t.starts_with("<0x") && t.ends_with('>')
}

/// SentencePiece-style scores that make the GGUF reader rebuild the same merges: the
/// piece made by merge `r` scores `-r` (earlier merges win); other pieces score 0.
fn scores_from_merges(tokens: &[String], merges: &[String]) -> Vec<f32> {
    let ids: HashMap<&str, usize> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i))
        .collect();
    let mut scores = vec![0f32; tokens.len()];
    let mut scored = vec![false; tokens.len()];
    for (rank, m) in merges.iter().enumerate() {
        let merged: String = m.split(' ').collect();
        if let Some(&id) = ids.get(merged.as_str()) {
            if !scored[id] {
                scores[id] = -(rank as f32);
                scored[id] = true;
            }
        }
    }
    scores
}

fn str_key(key: &str, value: &str) -> (String, GgufValue) {
    (key.into(), GgufValue::String(value.into()))
}

fn arr_key(key: &str, value: GgufArray) -> (String, GgufValue) {
    (key.into(), GgufValue::Array(value))
}

/// A synthetic SentencePiece-style ("llama") vocabulary of exactly `size` tokens:
/// `<unk> <s> </s>`, the 256 byte-fallback tokens, single characters, then pieces built
/// by appending a letter to an earlier piece (each one a merge of two existing pieces,
/// scored by creation order). Random models speak gibberish, but every string encodes
/// and decodes. Ids: unk 0, bos 1, eos 2.
pub fn synthetic_llama_vocab(size: usize) -> Result<Keys, LoadError> {
    const SPACE: char = '\u{2581}';
    let letters: Vec<char> = ('a'..='z').collect();
    let mut singles: Vec<String> = vec![SPACE.to_string()];
    singles.extend(letters.iter().map(|c| c.to_string()));
    singles.extend(('A'..='Z').chain('0'..='9').map(|c| c.to_string()));
    singles.extend(".,!?'\"-:;()".chars().map(|c| c.to_string()));
    let fixed = 3 + 256 + singles.len();
    if size < fixed {
        return Err(LoadError::BadData {
            dtype: "vocabulary",
            problem: format!(
                "a synthetic vocabulary needs at least {fixed} tokens, asked for {size}"
            ),
        });
    }
    let mut tokens: Vec<String> = ["<unk>", "<s>", "</s>"].map(String::from).to_vec();
    let mut types = vec![UNKNOWN, CONTROL, CONTROL];
    tokens.extend((0..256).map(|b| format!("<0x{b:02X}>")));
    types.extend(std::iter::repeat_n(BYTE, 256));
    tokens.extend(singles.iter().cloned());
    types.extend(std::iter::repeat_n(NORMAL, singles.len()));
    let mut scores = vec![0f32; tokens.len()];
    // Breadth first: all 2-character pieces, then 3, ... until the vocabulary is full.
    let mut level: Vec<String> = std::iter::once(SPACE)
        .chain(letters.iter().copied())
        .map(String::from)
        .collect();
    let mut rank = 0f32;
    'fill: loop {
        let mut next = Vec::new();
        for prefix in &level {
            for &c in &letters {
                if tokens.len() == size {
                    break 'fill;
                }
                let piece = format!("{prefix}{c}");
                tokens.push(piece.clone());
                types.push(NORMAL);
                scores.push(-rank);
                rank += 1.0;
                next.push(piece);
            }
        }
        level = next;
    }
    Ok(vec![
        str_key("tokenizer.ggml.model", "llama"),
        arr_key("tokenizer.ggml.tokens", GgufArray::String(tokens)),
        arr_key("tokenizer.ggml.scores", GgufArray::F32(scores)),
        arr_key("tokenizer.ggml.token_type", GgufArray::I32(types)),
        ("tokenizer.ggml.unknown_token_id".into(), GgufValue::U32(0)),
        ("tokenizer.ggml.bos_token_id".into(), GgufValue::U32(1)),
        ("tokenizer.ggml.eos_token_id".into(), GgufValue::U32(2)),
        ("tokenizer.ggml.add_bos_token".into(), GgufValue::Bool(true)),
        (
            "tokenizer.ggml.add_space_prefix".into(),
            GgufValue::Bool(true),
        ),
    ])
}
