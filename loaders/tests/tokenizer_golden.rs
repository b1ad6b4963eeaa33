//! The tokenizer built from a GGUF file's embedded SentencePiece vocabulary must encode like the
//! Hugging Face tokenizer.json of the same model (made independently by golden/make_models.py
//! and read by the `tokenizers` crate as is).

use std::path::Path;

use wgllama_loaders::{tokenizer, ModelFile};

fn golden(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../golden/models")
        .join(rel)
}

#[test]
fn gguf_llama_vocabulary_encodes_like_tokenizer_json() {
    for (gguf, hf) in [
        ("tiny-gqa/tiny-gqa-q8_0.gguf", "tiny-gqa/hf-f32"),
        ("tiny-llama3/tiny-llama3-f32.gguf", "tiny-llama3/hf-f16"),
    ] {
        let from_gguf =
            tokenizer::build_tokenizer(&ModelFile::open(&golden(gguf)).unwrap()).unwrap();
        let from_json = tokenizer::build_tokenizer(&ModelFile::open(&golden(hf)).unwrap()).unwrap();
        for text in [
            "Once upon a time there was a little robot.",
            "the river was wide, and the robot was happy",
            "def main():\n    print('hello, world')",
            "héllo wörld — 日本 🙂 42!",
            " leading and  double  spaces ",
        ] {
            let a = from_gguf.encode(text, true).unwrap();
            let b = from_json.encode(text, true).unwrap();
            assert_eq!(a.get_ids(), b.get_ids(), "{gguf} vs {hf} on {text:?}");
            let round = from_gguf.decode(a.get_ids(), true).unwrap();
            assert_eq!(round, text, "{gguf}: decode(encode(x)) on {text:?}");
        }
    }
}
