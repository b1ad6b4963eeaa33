//! Builds a `tokenizers::Tokenizer` from a Hugging Face `tokenizer.json` or from the
//! vocabulary embedded in GGUF metadata (`tokenizer.ggml.*`).
//!
//! GGUF vocabularies come in two kinds (`tokenizer.ggml.model`):
//! - `"llama"`: SentencePiece BPE (Llama 1/2, TinyLlama). Tokens carry scores, not merges:
//!   SentencePiece repeatedly merges the adjacent pair whose merged piece scores highest.
//!   We express that as BPE merges ranked by the merged piece's score, so the HF BPE
//!   model reproduces it. Spaces become `▁`, one `▁` is prepended, and characters not in
//!   the vocabulary fall back to `<0xXX>` byte tokens.
//! - `"gpt2"`: byte-level BPE with explicit merges (Llama 3), split first by Llama 3's
//!   pre-tokenizer regex.

use std::collections::HashMap;
use std::path::Path;

use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::normalizers::{Prepend, Replace, Sequence as NormalizerSequence};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence as PreTokenizerSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{
    AddedToken, DecoderWrapper, NormalizerWrapper, PreTokenizerWrapper, SplitDelimiterBehavior,
    Tokenizer,
};

use crate::gguf::{GgufArray, GgufMetadata};
use crate::{LoadError, ModelFile, TokenizerSource};

/// Llama 3's pre-tokenizer: contractions, words with one leading non-letter, numbers of up
/// to three digits, punctuation runs, newlines, and whitespace (not eating the space
/// before a word).
pub const LLAMA3_PRETOKENIZER_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// SentencePiece's word-boundary marker, which stands for a space.
const SPM_SPACE: &str = "\u{2581}";

/// Pieces longer than this (bytes) are not split into merges: real SentencePiece pieces
/// are a few dozen bytes, and the merge search is quadratic in a piece's length.
const MAX_MERGED_PIECE_BYTES: usize = 256;

/// ggml token types (`tokenizer.ggml.token_type`).
mod token_type {
    pub const UNKNOWN: i64 = 2;
    pub const CONTROL: i64 = 3;
    pub const USER_DEFINED: i64 = 4;
}

/// The tokenizer of an opened model.
pub fn build_tokenizer(model: &ModelFile) -> Result<Tokenizer, LoadError> {
    match model.tokenizer_source() {
        TokenizerSource::HfJson(path) => from_hf_json(path),
        TokenizerSource::GgufMetadata(meta) => from_gguf_metadata(meta, model.path()),
        TokenizerSource::Missing => Err(LoadError::Tokenizer {
            path: model.path().into(),
            problem: "no tokenizer.json next to the weights and no tokenizer.ggml.* metadata"
                .into(),
        }),
    }
}

/// Loads a Hugging Face `tokenizer.json`.
pub fn from_hf_json(path: &Path) -> Result<Tokenizer, LoadError> {
    Tokenizer::from_file(path).map_err(|e| LoadError::Tokenizer {
        path: path.into(),
        problem: e.to_string(),
    })
}

/// Builds the tokenizer described by GGUF `tokenizer.ggml.*` keys. `path` names the file
/// in messages.
pub fn from_gguf_metadata(meta: &GgufMetadata, path: &Path) -> Result<Tokenizer, LoadError> {
    let fail = |problem: String| LoadError::Tokenizer {
        path: path.into(),
        problem,
    };
    let kind = meta
        .get_str("tokenizer.ggml.model")
        .ok_or_else(|| fail("`tokenizer.ggml.model` is missing".into()))?;
    let vocab = GgufVocab::read(meta).map_err(fail)?;
    let mut tokenizer = match kind {
        "llama" => sentencepiece_bpe(&vocab, meta).map_err(fail)?,
        "gpt2" => byte_level_bpe(&vocab, meta).map_err(fail)?,
        other => {
            return Err(fail(format!(
                "tokenizer model `{other}` is not supported (llama and gpt2 are)"
            )))
        }
    };

    // Control tokens (<s>, <|eot_id|>, ...) are matched whole in the input and hidden when
    // decoding with skip_special_tokens; user-defined ones are matched whole but kept.
    let added: Vec<AddedToken> = vocab
        .tokens
        .iter()
        .zip(&vocab.types)
        .filter(|(_, &t)| t == token_type::CONTROL || t == token_type::USER_DEFINED)
        .map(|(tok, &t)| AddedToken::from(tok.clone(), t == token_type::CONTROL).normalized(false))
        .collect();
    tokenizer.add_special_tokens(&added);

    // BOS/EOS wrapping, as llama.cpp does from the add_bos/add_eos flags.
    let default_bos = kind == "llama";
    let add_bos = meta
        .get("tokenizer.ggml.add_bos_token")
        .and_then(|v| v.as_bool())
        .unwrap_or(default_bos);
    let add_eos = meta
        .get("tokenizer.ggml.add_eos_token")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let special = |key: &str| -> Option<(String, u32)> {
        let id = u32::try_from(meta.get_u64(key)?).ok()?;
        Some((vocab.tokens.get(id as usize)?.clone(), id))
    };
    let bos = special("tokenizer.ggml.bos_token_id").filter(|_| add_bos);
    let eos = special("tokenizer.ggml.eos_token_id").filter(|_| add_eos);
    if bos.is_some() || eos.is_some() {
        let mut template = Vec::new();
        let mut specials = Vec::new();
        if let Some((tok, id)) = &bos {
            template.push(tok.clone());
            specials.push((tok.clone(), *id));
        }
        template.push("$A".to_string());
        if let Some((tok, id)) = &eos {
            template.push(tok.clone());
            specials.push((tok.clone(), *id));
        }
        let processor = TemplateProcessing::builder()
            .try_single(template)
            .map_err(|e| fail(format!("BOS/EOS template: {e}")))?
            .special_tokens(specials)
            .build()
            .map_err(|e| fail(format!("BOS/EOS template: {e}")))?;
        tokenizer.with_post_processor(Some(processor));
    }
    Ok(tokenizer)
}

/// The vocabulary arrays of a GGUF file, checked for consistent lengths.
struct GgufVocab {
    tokens: Vec<String>,
    /// SentencePiece scores (0 when absent).
    scores: Vec<f32>,
    /// ggml token types (1 = normal when absent).
    types: Vec<i64>,
}

impl GgufVocab {
    fn read(meta: &GgufMetadata) -> Result<GgufVocab, String> {
        let tokens = meta
            .get_array("tokenizer.ggml.tokens")
            .and_then(GgufArray::as_strings)
            .ok_or("`tokenizer.ggml.tokens` is missing or not a string array")?
            .to_vec();
        if tokens.is_empty() || tokens.len() > u32::MAX as usize {
            return Err(format!("vocabulary of {} tokens", tokens.len()));
        }
        let scores = match meta.get_array("tokenizer.ggml.scores") {
            None => vec![0.0; tokens.len()],
            Some(a) => a
                .to_f32_vec()
                .ok_or("`tokenizer.ggml.scores` is not a float array")?,
        };
        let types = match meta.get_array("tokenizer.ggml.token_type") {
            None => vec![1; tokens.len()],
            Some(a) => a
                .to_i64_vec()
                .ok_or("`tokenizer.ggml.token_type` is not an integer array")?,
        };
        if scores.len() != tokens.len() || types.len() != tokens.len() {
            return Err(format!(
                "{} tokens but {} scores and {} token types",
                tokens.len(),
                scores.len(),
                types.len()
            ));
        }
        Ok(GgufVocab {
            tokens,
            scores,
            types,
        })
    }

    /// Token → id; on duplicate strings the first id wins (later ones are unreachable
    /// by encoding, as in llama.cpp).
    fn vocab_map(&self) -> Vocab {
        let mut map = Vocab::default();
        for (id, tok) in self.tokens.iter().enumerate() {
            map.entry(tok.clone()).or_insert(id as u32);
        }
        map
    }
}

fn sentencepiece_bpe(vocab: &GgufVocab, meta: &GgufMetadata) -> Result<Tokenizer, String> {
    let ids: HashMap<&str, usize> = vocab
        .tokens
        .iter()
        .enumerate()
        .rev() // so the first of duplicate strings wins
        .map(|(id, t)| (t.as_str(), id))
        .collect();
    let merges = merges_from_scores(vocab, &ids);
    let unk_id = meta
        .get_u64("tokenizer.ggml.unknown_token_id")
        .map(|id| id as usize)
        .or_else(|| vocab.types.iter().position(|&t| t == token_type::UNKNOWN))
        .filter(|&id| id < vocab.tokens.len());

    let mut builder = BPE::builder()
        .vocab_and_merges(vocab.vocab_map(), merges)
        .byte_fallback(true)
        .fuse_unk(true);
    if let Some(unk) = unk_id {
        builder = builder.unk_token(vocab.tokens[unk].clone());
    }
    let bpe = builder
        .build()
        .map_err(|e| format!("building the SentencePiece BPE: {e}"))?;

    let mut tokenizer = Tokenizer::new(bpe);
    let add_space_prefix = meta
        .get("tokenizer.ggml.add_space_prefix")
        .and_then(|v| v.as_bool())
        .unwrap_or(true);
    let mut normalizers: Vec<NormalizerWrapper> = Vec::new();
    if add_space_prefix {
        normalizers.push(Prepend::new(SPM_SPACE.into()).into());
    }
    normalizers.push(
        Replace::new(" ", SPM_SPACE)
            .map_err(|e| e.to_string())?
            .into(),
    );
    tokenizer.with_normalizer(Some(NormalizerSequence::new(normalizers)));

    let mut decoders: Vec<DecoderWrapper> = vec![
        Replace::new(SPM_SPACE, " ")
            .map_err(|e| e.to_string())?
            .into(),
        ByteFallback::new().into(),
        Fuse::new().into(),
    ];
    if add_space_prefix {
        decoders.push(Strip::new(' ', 1, 0).into());
    }
    tokenizer.with_decoder(Some(DecoderSequence::new(decoders)));
    Ok(tokenizer)
}

/// Merges that make HF's BPE follow SentencePiece: every way of writing a piece as two
/// shorter pieces, ranked by the piece's score (highest first, ties by id).
fn merges_from_scores(vocab: &GgufVocab, ids: &HashMap<&str, usize>) -> Vec<(String, String)> {
    let mut ranked: Vec<(f32, usize, usize, usize, &str, &str)> = Vec::new();
    for (id, piece) in vocab.tokens.iter().enumerate() {
        let normal = !matches!(
            vocab.types[id],
            token_type::CONTROL | token_type::USER_DEFINED | 6
        );
        if !normal || piece.len() > MAX_MERGED_PIECE_BYTES || ids.get(piece.as_str()) != Some(&id) {
            continue;
        }
        for (split, _) in piece.char_indices().skip(1) {
            let (left, right) = piece.split_at(split);
            if let (Some(&l), Some(&r)) = (ids.get(left), ids.get(right)) {
                ranked.push((vocab.scores[id], id, l, r, left, right));
            }
        }
    }
    // NaN scores sort last rather than poisoning the order.
    ranked.sort_by(|a, b| {
        b.0.partial_cmp(&a.0)
            .unwrap_or_else(|| a.0.is_nan().cmp(&b.0.is_nan()))
            .then(a.1.cmp(&b.1))
            .then(a.2.cmp(&b.2))
            .then(a.3.cmp(&b.3))
    });
    ranked
        .into_iter()
        .map(|(.., l, r)| (l.to_string(), r.to_string()))
        .collect()
}

fn byte_level_bpe(vocab: &GgufVocab, meta: &GgufMetadata) -> Result<Tokenizer, String> {
    let merges = meta
        .get_array("tokenizer.ggml.merges")
        .and_then(GgufArray::as_strings)
        .ok_or("`tokenizer.ggml.merges` is missing or not a string array")?
        .iter()
        .map(|m| {
            // Byte-level tokens never contain a raw space (it is mapped to 'Ġ').
            m.split_once(' ')
                .map(|(l, r)| (l.to_string(), r.to_string()))
                .ok_or_else(|| format!("merge `{m}` is not two tokens separated by a space"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab.vocab_map(), merges)
        .build()
        .map_err(|e| format!("building the byte-level BPE: {e}"))?;

    let pre = meta.get_str("tokenizer.ggml.pre").unwrap_or("llama-bpe");
    let byte_level = ByteLevel::new(false, true, false);
    let pre_tokenizer: PreTokenizerWrapper = match pre {
        "llama-bpe" | "llama3" | "llama-v3" => {
            let split = Split::new(
                SplitPattern::Regex(LLAMA3_PRETOKENIZER_REGEX.into()),
                SplitDelimiterBehavior::Isolated,
                false,
            )
            .map_err(|e| format!("pre-tokenizer regex: {e}"))?;
            PreTokenizerSequence::new(vec![split.into(), byte_level.into()]).into()
        }
        // GPT-2's own pattern, built into the byte-level pre-tokenizer.
        "gpt2" | "default" => ByteLevel::new(false, true, true).into(),
        other => {
            return Err(format!(
                "pre-tokenizer `{other}` is not supported (llama-bpe and gpt2 are)"
            ))
        }
    };
    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(pre_tokenizer));
    tokenizer.with_decoder(Some(ByteLevel::default()));
    Ok(tokenizer)
}
