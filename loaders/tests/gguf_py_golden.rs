//! A GGUF file written by the `gguf` Python package (golden/loaders/make_gguf_golden.py): a file
//! made by an independent writer must open, pass the check, and hold exactly the bytes
//! our quantisers produce for the same values.

use std::path::PathBuf;

use wgllama_loaders::gguf::{GgufArray, GgufValue};
use wgllama_loaders::quant::quantize;
use wgllama_loaders::tokenizer::build_tokenizer;
use wgllama_loaders::{DType, ModelFile, RopeLayout, Weight};

/// The generator's weight formula: value i of tensor k.
fn values(n: usize, k: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * 37 + k) % 101) as f64 / 101.0 - 0.5) as f32)
        .collect()
}

#[test]
fn gguf_py_file_opens_checks_and_matches_our_quantisers() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../golden/loaders/gguf/tiny-llama-gguf-py.gguf");
    let m = ModelFile::open(&path).unwrap();
    m.check().unwrap();
    let c = m.config();
    assert_eq!(
        (
            c.vocab_size,
            c.hidden_size,
            c.n_layers,
            c.n_heads,
            c.n_kv_heads,
            c.head_dim,
            c.ffn_size
        ),
        (8, 32, 1, 2, 1, 16, 64)
    );
    assert_eq!(
        (c.context_length, c.rope_theta, c.rms_norm_eps),
        (256, 500000.0, 1e-5)
    );
    assert_eq!(c.rope_layout, RopeLayout::Interleaved);
    assert!(!c.tied_embeddings);
    assert_eq!(
        (c.bos_token_id, c.eos_token_ids.clone()),
        (Some(1), vec![2])
    );

    let meta = m.metadata().unwrap();
    assert_eq!(meta.get("test.i8"), Some(&GgufValue::I8(-5)));
    assert_eq!(meta.get("test.u64"), Some(&GgufValue::U64(1 << 40)));
    assert_eq!(meta.get("test.f64"), Some(&GgufValue::F64(0.125)));
    assert_eq!(meta.get("test.bool"), Some(&GgufValue::Bool(true)));
    let GgufArray::Array(nested) = meta.get_array("test.nested").unwrap() else {
        panic!("nested array expected")
    };
    assert_eq!(nested[0], GgufArray::I32(vec![1, 2, 3]));
    assert_eq!(nested[1], GgufArray::String(vec!["x".into(), "y".into()]));
    assert_eq!(nested[2], GgufArray::Array(vec![GgufArray::F32(vec![0.5])]));

    let expected = [
        (Weight::TokenEmbd, DType::F16, vec![8, 32]),
        (Weight::AttnNorm(0), DType::F32, vec![32]),
        (Weight::AttnQ(0), DType::Q8_0, vec![32, 32]),
        (Weight::AttnK(0), DType::Q8_0, vec![16, 32]),
        (Weight::AttnV(0), DType::Q8_0, vec![16, 32]),
        (Weight::AttnOut(0), DType::Q8_0, vec![32, 32]),
        (Weight::FfnNorm(0), DType::F32, vec![32]),
        (Weight::FfnGate(0), DType::Q4_0, vec![64, 32]),
        (Weight::FfnUp(0), DType::Q5_0, vec![64, 32]),
        (Weight::FfnDown(0), DType::Q8_0, vec![32, 64]),
        (Weight::OutputNorm, DType::F32, vec![32]),
        (Weight::Output, DType::BF16, vec![8, 32]),
    ];
    for (k, (w, dtype, shape)) in expected.into_iter().enumerate() {
        let view = m.weight(w).unwrap();
        assert_eq!((view.info.dtype, &view.info.shape), (dtype, &shape), "{w}");
        let x = values(shape.iter().product(), k);
        assert_eq!(
            quantize(dtype, &x).unwrap(),
            view.data,
            "{w}: our {dtype} bytes differ from gguf-py's"
        );
    }

    let tok = build_tokenizer(&m).unwrap();
    let ids = tok.encode("a ab", true).unwrap().get_ids().to_vec();
    assert_eq!(ids, vec![1, 6, 3, 7], "<s> ▁a ▁ ab");
    assert_eq!(tok.decode(&ids, true).unwrap(), "a ab");
}
