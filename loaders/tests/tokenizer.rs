//! Tokenizers built from tiny synthetic GGUF vocabularies, and from tokenizer.json.

mod common;

use std::path::Path;

use common::*;
use wgllama_loaders::gguf::{GgufArray, GgufMetadata, GgufValue};
use wgllama_loaders::tokenizer::{build_tokenizer, from_gguf_metadata};
use wgllama_loaders::{DType, ModelFile};

const NORMAL: i32 = 1;
const UNKNOWN: i32 = 2;
const CONTROL: i32 = 3;
const BYTE: i32 = 6;

fn meta_with_vocab(
    model: &str,
    tokens: &[String],
    types: &[i32],
    scores: Option<Vec<f32>>,
) -> GgufMetadata {
    let mut m = GgufMetadata::new();
    m.set("tokenizer.ggml.model", GgufValue::String(model.into()));
    m.set(
        "tokenizer.ggml.tokens",
        GgufValue::Array(GgufArray::String(tokens.to_vec())),
    );
    m.set(
        "tokenizer.ggml.token_type",
        GgufValue::Array(GgufArray::I32(types.to_vec())),
    );
    if let Some(s) = scores {
        m.set("tokenizer.ggml.scores", GgufValue::Array(GgufArray::F32(s)));
    }
    m
}

/// A SentencePiece vocabulary in the Llama 2 layout: unk, BOS, EOS, 256 byte tokens,
/// then pieces scored so that longer pieces win.
fn spm_meta() -> (GgufMetadata, Vec<String>) {
    let mut tokens: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
    let mut types = vec![UNKNOWN, CONTROL, CONTROL];
    for b in 0..=255u8 {
        tokens.push(format!("<0x{b:02X}>"));
        types.push(BYTE);
    }
    let pieces = [
        "▁", "h", "e", "l", "o", "w", "r", "d", "▁h", "ll", "▁he", "llo", "▁hello", "▁w", "or",
        "▁wor", "ld", "▁world",
    ];
    for p in pieces {
        tokens.push(p.into());
        types.push(NORMAL);
    }
    let scores = tokens
        .iter()
        .zip(&types)
        .map(|(t, &ty)| {
            if ty == NORMAL {
                t.chars().count() as f32
            } else {
                0.0
            }
        })
        .collect();
    let mut m = meta_with_vocab("llama", &tokens, &types, Some(scores));
    m.set("tokenizer.ggml.bos_token_id", GgufValue::U32(1));
    m.set("tokenizer.ggml.eos_token_id", GgufValue::U32(2));
    m.set("tokenizer.ggml.unknown_token_id", GgufValue::U32(0));
    (m, tokens)
}

fn id_of(tokens: &[String], t: &str) -> u32 {
    tokens.iter().position(|x| x == t).unwrap() as u32
}

#[test]
fn sentencepiece_vocab_encodes_decodes_and_adds_bos() {
    let (meta, tokens) = spm_meta();
    let tok = from_gguf_metadata(&meta, Path::new("t.gguf")).unwrap();
    let enc = tok.encode("hello world", true).unwrap();
    assert_eq!(
        enc.get_ids(),
        &[1, id_of(&tokens, "▁hello"), id_of(&tokens, "▁world")]
    );
    assert_eq!(tok.decode(enc.get_ids(), true).unwrap(), "hello world");
    // Without special tokens: no BOS.
    let enc = tok.encode("hello", false).unwrap();
    assert_eq!(enc.get_ids(), &[id_of(&tokens, "▁hello")]);
}

#[test]
fn sentencepiece_byte_fallback_for_characters_not_in_the_vocab() {
    let (meta, tokens) = spm_meta();
    let tok = from_gguf_metadata(&meta, Path::new("t.gguf")).unwrap();
    // 'é' is not a piece: its UTF-8 bytes C3 A9 become byte tokens.
    let enc = tok.encode("hé", false).unwrap();
    assert_eq!(
        enc.get_ids(),
        &[
            id_of(&tokens, "▁h"),
            id_of(&tokens, "<0xC3>"),
            id_of(&tokens, "<0xA9>")
        ]
    );
    assert_eq!(tok.decode(enc.get_ids(), true).unwrap(), "hé");
    let text = "hello wörld 🦙";
    let enc = tok.encode(text, true).unwrap();
    assert_eq!(enc.get_ids()[0], 1);
    assert_eq!(tok.decode(enc.get_ids(), true).unwrap(), text);
}

#[test]
fn sentencepiece_control_tokens_are_matched_whole() {
    let (meta, tokens) = spm_meta();
    let tok = from_gguf_metadata(&meta, Path::new("t.gguf")).unwrap();
    let enc = tok.encode("hello</s>", false).unwrap();
    assert_eq!(enc.get_ids(), &[id_of(&tokens, "▁hello"), 2]);
}

/// GPT-2's byte ↔ printable-character map: printable bytes stand for themselves, the
/// rest are moved to U+0100 onwards.
fn byte_char(b: u8) -> char {
    let printable = |b: u8| (33..=126).contains(&b) || (161..=172).contains(&b) || b >= 174;
    if printable(b) {
        b as char
    } else {
        let n = (0..b).filter(|&x| !printable(x)).count() as u32;
        char::from_u32(256 + n).unwrap()
    }
}

#[test]
fn byte_level_bpe_vocab_with_llama3_pretokenizer() {
    let mut tokens: Vec<String> = (0..=255u8).map(|b| byte_char(b).to_string()).collect();
    let mut types = vec![NORMAL; 256];
    let merges = [
        "h e", "l l", "he ll", "hell o", "Ġ w", "o r", "Ġw or", "l d", "Ġwor ld", "1 2", "12 3",
    ];
    for m in merges {
        tokens.push(m.replace(' ', ""));
        types.push(NORMAL);
    }
    for special in ["<|begin_of_text|>", "<|end_of_text|>"] {
        tokens.push(special.into());
        types.push(CONTROL);
    }
    let bos = tokens.len() as u32 - 2;
    let mut meta = meta_with_vocab("gpt2", &tokens, &types, None);
    meta.set("tokenizer.ggml.pre", GgufValue::String("llama-bpe".into()));
    meta.set(
        "tokenizer.ggml.merges",
        GgufValue::Array(GgufArray::String(
            merges.iter().map(|s| s.to_string()).collect(),
        )),
    );
    meta.set("tokenizer.ggml.bos_token_id", GgufValue::U32(bos));
    meta.set("tokenizer.ggml.eos_token_id", GgufValue::U32(bos + 1));
    meta.set("tokenizer.ggml.add_bos_token", GgufValue::Bool(true));
    let tok = from_gguf_metadata(&meta, Path::new("t.gguf")).unwrap();

    let enc = tok.encode("hello world", true).unwrap();
    assert_eq!(
        enc.get_ids(),
        &[bos, id_of(&tokens, "hello"), id_of(&tokens, "Ġworld")]
    );
    assert_eq!(tok.decode(enc.get_ids(), true).unwrap(), "hello world");
    // Digits are split in threes by the pre-tokenizer before merging.
    let enc = tok.encode("12312", false).unwrap();
    assert_eq!(
        enc.get_ids(),
        &[id_of(&tokens, "123"), id_of(&tokens, "12")]
    );
    // Any UTF-8 survives through byte-level tokens.
    let text = "héllo\n  wörld 🦙<|end_of_text|>";
    let enc = tok.encode(text, false).unwrap();
    assert_eq!(*enc.get_ids().last().unwrap(), bos + 1);
    assert_eq!(tok.decode(enc.get_ids(), false).unwrap(), text);
}

#[test]
fn bad_vocabularies_are_errors() {
    let tokens = vec!["a".to_string(), "b".to_string()];
    let meta = meta_with_vocab("llama", &tokens, &[NORMAL], None);
    let e = from_gguf_metadata(&meta, Path::new("t.gguf"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("2 tokens but 2 scores and 1 token types"), "{e}");
    let meta = meta_with_vocab("bert", &tokens, &[NORMAL, NORMAL], None);
    let e = from_gguf_metadata(&meta, Path::new("t.gguf"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("`bert` is not supported"), "{e}");
    let meta = meta_with_vocab("gpt2", &tokens, &[NORMAL, NORMAL], None);
    let e = from_gguf_metadata(&meta, Path::new("t.gguf"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("tokenizer.ggml.merges"), "{e}");
}

#[test]
fn model_file_tokenizer_from_gguf_and_from_tokenizer_json() {
    // The tiny GGUF has a 32-token "llama" vocabulary (t0..t31, no scores).
    let m =
        ModelFile::from_gguf_bytes(tiny_gguf(DType::F32, false).to_bytes(), Path::new("t.gguf"))
            .unwrap();
    let tok = build_tokenizer(&m).unwrap();
    assert_eq!(tok.get_vocab_size(true), 32);

    let dir = TempDir::new("tok-json");
    write_hf_folder(dir.path(), DType::F16, false, 1);
    let m = ModelFile::open(dir.path()).unwrap();
    let e = build_tokenizer(&m).unwrap_err().to_string();
    assert!(e.contains("no tokenizer.json"), "{e}");
    // Save an HF tokenizer built from the SentencePiece vocab and load it back.
    let (meta, tokens) = spm_meta();
    from_gguf_metadata(&meta, Path::new("t.gguf"))
        .unwrap()
        .save(dir.join("tokenizer.json"), false)
        .unwrap();
    let m = ModelFile::open(dir.path()).unwrap();
    let tok = build_tokenizer(&m).unwrap();
    assert_eq!(
        tok.encode("hello", true).unwrap().get_ids(),
        &[1, id_of(&tokens, "▁hello")]
    );
    std::fs::write(dir.join("tokenizer.json"), "{not json").unwrap();
    let m = ModelFile::open(dir.path()).unwrap();
    let e = build_tokenizer(&m).unwrap_err().to_string();
    assert!(e.contains("tokenizer.json: tokenizer:"), "{e}");
}
