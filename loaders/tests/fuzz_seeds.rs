//! Writes seed inputs for the fuzzers (`fuzz/corpus/<target>/`, git-ignored).
//! Run by hand: `cargo test -p wgllama-loaders --test fuzz_seeds -- --ignored`.

mod common;

use std::path::PathBuf;

use common::*;
use wgllama_loaders::quant::quantize;
use wgllama_loaders::{DType, RopeLayout};

#[test]
#[ignore]
fn write_fuzz_seeds() {
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let gguf_dir = corpus.join("gguf");
    let st_dir = corpus.join("safetensors");
    std::fs::create_dir_all(&gguf_dir).unwrap();
    std::fs::create_dir_all(&st_dir).unwrap();
    for (i, (dtype, tied)) in [
        (DType::F16, false),
        (DType::Q8_0, true),
        (DType::Q4_0, false),
    ]
    .into_iter()
    .enumerate()
    {
        let mut c = micro_config(RopeLayout::Interleaved);
        c.tied_embeddings = tied;
        std::fs::write(
            gguf_dir.join(format!("seed-{i}")),
            gguf_for(&c, dtype).to_bytes(),
        )
        .unwrap();
    }
    let c = micro_config(RopeLayout::RotateHalf);
    for (i, dtype) in [DType::F16, DType::BF16].into_iter().enumerate() {
        let tensors: Vec<_> = llama_tensors(&c, false, dtype)
            .into_iter()
            .map(|(n, _, s, v)| (n, dtype, s, quantize(dtype, &v).unwrap()))
            .collect();
        let st = safetensors_bytes(&tensors);
        // Selector 0: fixed config; selector 1: config, NUL, safetensors.
        let mut fixed = vec![0u8];
        fixed.extend_from_slice(&st);
        std::fs::write(st_dir.join(format!("seed-fixed-{i}")), fixed).unwrap();
        let mut with_config = vec![1u8];
        with_config.extend_from_slice(hf_config_json(&c).to_string().as_bytes());
        with_config.push(0);
        with_config.extend_from_slice(&st);
        std::fs::write(st_dir.join(format!("seed-config-{i}")), with_config).unwrap();
    }
    let index = br#"{"metadata":{"total_size":10},"weight_map":{"model.norm.weight":"model-00001-of-00002.safetensors","lm_head.weight":"model-00002-of-00002.safetensors"}}"#;
    let mut idx = vec![2u8];
    idx.extend_from_slice(index);
    std::fs::write(st_dir.join("seed-index"), idx).unwrap();
}
