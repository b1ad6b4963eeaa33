//! GGUF: writer/reader round trips, end-to-end model files, and corrupt input.

mod common;

use std::path::Path;

use common::*;
use wgllama_loaders::gguf::{GgufArray, GgufFile, GgufValue, GgufWriter};
use wgllama_loaders::quant::{dequantize, quantize};
use wgllama_loaders::{
    DType, LoadError, ModelFile, ModelFormat, RopeLayout, RopeScaling, TokenizerSource, Weight,
};

fn parse(bytes: &[u8]) -> Result<GgufFile, LoadError> {
    GgufFile::parse(bytes, Path::new("t.gguf"))
}

fn open_bytes(bytes: Vec<u8>) -> Result<ModelFile, LoadError> {
    ModelFile::from_gguf_bytes(bytes, Path::new("t.gguf"))
}

/// Hand-built headers for the corrupt cases.
#[derive(Default)]
struct Raw(Vec<u8>);

impl Raw {
    fn header(version: u32, n_tensors: u64, n_kv: u64) -> Raw {
        let mut r = Raw(b"GGUF".to_vec());
        r.u32(version).u64(n_tensors).u64(n_kv);
        r
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn str(&mut self, s: &str) -> &mut Self {
        self.u64(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    /// A tensor info: name, ne (innermost first), ggml type, offset.
    fn tensor(&mut self, name: &str, ne: &[u64], ty: u32, offset: u64) -> &mut Self {
        self.str(name).u32(ne.len() as u32);
        for &d in ne {
            self.u64(d);
        }
        self.u32(ty).u64(offset)
    }
    fn pad(&mut self, to: usize) -> &mut Self {
        self.0.resize(self.0.len().next_multiple_of(to), 0);
        self
    }
    fn zeros(&mut self, n: usize) -> &mut Self {
        self.0.resize(self.0.len() + n, 0);
        self
    }
    fn bytes(&self) -> Vec<u8> {
        self.0.clone()
    }
}

fn err_text(r: Result<impl std::fmt::Debug, LoadError>) -> String {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn metadata_of_every_type_round_trips() {
    let values = vec![
        ("u8", GgufValue::U8(200)),
        ("i8", GgufValue::I8(-100)),
        ("u16", GgufValue::U16(60000)),
        ("i16", GgufValue::I16(-30000)),
        ("u32", GgufValue::U32(4_000_000_000)),
        ("i32", GgufValue::I32(-2_000_000_000)),
        ("f32", GgufValue::F32(1.5)),
        ("bool", GgufValue::Bool(true)),
        ("string", GgufValue::String("héllo ▁world".into())),
        ("u64", GgufValue::U64(u64::MAX)),
        ("i64", GgufValue::I64(i64::MIN)),
        ("f64", GgufValue::F64(-2.25)),
        ("empty", GgufValue::Array(GgufArray::U8(vec![]))),
        ("a.u8", GgufValue::Array(GgufArray::U8(vec![1, 2, 3]))),
        ("a.i8", GgufValue::Array(GgufArray::I8(vec![-1, 2]))),
        ("a.u16", GgufValue::Array(GgufArray::U16(vec![1, 65535]))),
        ("a.i16", GgufValue::Array(GgufArray::I16(vec![-1, 7]))),
        ("a.u32", GgufValue::Array(GgufArray::U32(vec![9, 8]))),
        ("a.i32", GgufValue::Array(GgufArray::I32(vec![-9, 8]))),
        ("a.f32", GgufValue::Array(GgufArray::F32(vec![0.5, -0.25]))),
        (
            "a.bool",
            GgufValue::Array(GgufArray::Bool(vec![true, false])),
        ),
        (
            "a.str",
            GgufValue::Array(GgufArray::String(vec!["a".into(), "".into(), "ü".into()])),
        ),
        ("a.u64", GgufValue::Array(GgufArray::U64(vec![1 << 40]))),
        ("a.i64", GgufValue::Array(GgufArray::I64(vec![-(1 << 40)]))),
        ("a.f64", GgufValue::Array(GgufArray::F64(vec![1e300]))),
        (
            "nested",
            GgufValue::Array(GgufArray::Array(vec![
                GgufArray::U32(vec![1, 2]),
                GgufArray::String(vec!["x".into()]),
                GgufArray::Array(vec![GgufArray::F32(vec![3.0])]),
            ])),
        ),
    ];
    let mut w = GgufWriter::new();
    for (k, v) in &values {
        w.set(*k, v.clone());
    }
    let bytes = w.to_bytes();
    let file = parse(&bytes).unwrap();
    assert_eq!(file.version, 3);
    assert_eq!(file.alignment, 32);
    let keys: Vec<&str> = file.metadata.iter().map(|(k, _)| k).collect();
    assert_eq!(
        keys,
        values.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
        "file order kept"
    );
    for (k, v) in &values {
        assert_eq!(file.metadata.get(k), Some(v), "{k}");
    }
}

#[test]
fn tensors_round_trip_with_custom_alignment_and_version_2() {
    for (version, alignment) in [(2, 32), (3, 64), (3, 8)] {
        let mut w = GgufWriter::new();
        w.set_version(version);
        w.set_alignment(alignment);
        let a: Vec<u8> = (0..12u8).collect(); // f32 [3] (12 bytes: forces padding)
        let b = quantize(DType::Q8_0, &values_for("b", 64)).unwrap();
        w.add_tensor("a", DType::F32, &[3], a.clone()).unwrap();
        w.add_tensor("b", DType::Q8_0, &[2, 32], b.clone()).unwrap();
        let bytes = w.to_bytes();
        let file = parse(&bytes).unwrap();
        assert_eq!((file.version, file.alignment), (version, alignment as u64));
        assert_eq!(file.data_offset % alignment as u64, 0);
        assert_eq!(file.tensors[0].ne, vec![3]);
        assert_eq!(file.tensors[1].ne, vec![32, 2], "ne is innermost first");
        assert_eq!(file.tensors[1].shape(), vec![2, 32]);
        for t in &file.tensors {
            assert_eq!(t.offset % alignment as u64, 0);
        }
        assert_eq!(file.tensor_bytes(&bytes, &file.tensors[0]), &a[..]);
        assert_eq!(file.tensor_bytes(&bytes, &file.tensors[1]), &b[..]);
    }
}

#[test]
fn f32_model_opens_from_disk_zero_copy() {
    let dir = TempDir::new("gguf-f32");
    let path = dir.join("tiny.gguf");
    tiny_gguf(DType::F32, false).write_file(&path).unwrap();
    let m = ModelFile::open(&path).unwrap();
    assert_eq!(m.format(), ModelFormat::Gguf);
    let c = m.config();
    let expected = tiny_config(RopeLayout::Interleaved, false);
    assert_eq!(c, &expected);
    m.check().unwrap();
    assert_eq!(m.tensors().len(), 2 * 9 + 3);
    assert_eq!(m.tensors()[0].name, "token_embd.weight", "file order");

    let q = m.weight(Weight::AttnQ(1)).unwrap();
    assert_eq!(q.info.name, "blk.1.attn_q.weight");
    assert_eq!(q.info.shape, vec![64, 64]);
    assert_eq!(q.info.dtype, DType::F32);
    assert_eq!(
        q.to_f32().unwrap(),
        values_for("blk.1.attn_q.weight", 64 * 64)
    );
    let k = m.weight(Weight::AttnK(0)).unwrap();
    assert_eq!(k.info.shape, vec![32, 64], "[n_kv_heads*head_dim, hidden]");
    let out = m.weight(Weight::Output).unwrap();
    assert_eq!(out.info.name, "output.weight");

    // Views borrow the file's bytes: two looks give the same pointer.
    let again = m.tensor("blk.1.attn_q.weight").unwrap();
    assert_eq!(q.data.as_ptr(), again.data.as_ptr());
    assert!(matches!(
        m.tokenizer_source(),
        TokenizerSource::GgufMetadata(_)
    ));
    assert_eq!(m.metadata().unwrap().get_str("general.name"), Some("tiny"));
    assert_eq!(m.file_of("output.weight"), Some(path.as_path()));
}

#[test]
fn q8_0_model_with_tied_embeddings() {
    let m = open_bytes(tiny_gguf(DType::Q8_0, true).to_bytes()).unwrap();
    m.check().unwrap();
    assert!(m.config().tied_embeddings);
    let embd = m.weight(Weight::TokenEmbd).unwrap();
    assert_eq!(embd.info.dtype, DType::Q8_0);
    assert_eq!(embd.info.n_bytes, 32 * 64 / 32 * 34);
    // The LM head of a tied model is the embedding.
    assert_eq!(
        m.weight(Weight::Output).unwrap().info.name,
        "token_embd.weight"
    );
    let want = values_for("token_embd.weight", 32 * 64);
    let got = embd.to_f32().unwrap();
    let max_err = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(max_err < 1.0 / 127.0, "q8_0 error {max_err}");
    assert!(m.weight(Weight::AttnNorm(0)).unwrap().info.dtype == DType::F32);
}

#[test]
fn config_reads_optional_keys_and_llama3_rope_scaling() {
    let mut w = tiny_gguf(DType::F32, false);
    w.set_u32("llama.attention.key_length", 16)
        .set_u32("llama.vocab_size", 32)
        .set_str("llama.rope.scaling.type", "llama3")
        .set_f32("llama.rope.scaling.factor", 8.0)
        .set_f32("llama.rope.scaling.low_freq_factor", 1.0)
        .set_f32("llama.rope.scaling.high_freq_factor", 4.0)
        .set_u32("llama.rope.scaling.original_context_length", 64)
        .set_u32("tokenizer.ggml.eot_token_id", 3);
    let m = open_bytes(w.to_bytes()).unwrap();
    let c = m.config();
    assert_eq!(
        c.rope_scaling,
        RopeScaling::Llama3 {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 64
        }
    );
    assert_eq!(c.eos_token_ids, vec![2, 3]);
    let freqs = m.rope_inv_freqs().unwrap();
    assert_eq!(freqs.len(), 8);
    assert_eq!(freqs[0], 1.0, "highest frequency is kept");
    // The lowest frequency (wavelength 2π·10000^(14/16) ≫ 64) is divided by the factor.
    let base = 10000f64.powf(-14.0 / 16.0);
    assert!((freqs[7] as f64 - base / 8.0).abs() < 1e-9);
}

#[test]
fn rope_freqs_tensor_is_recognised_and_applied() {
    let mut w = tiny_gguf(DType::F32, false);
    let factors: Vec<f32> = (0..8).map(|i| 1.0 + i as f32).collect();
    w.add_tensor(
        "rope_freqs.weight",
        DType::F32,
        &[8],
        quantize(DType::F32, &factors).unwrap(),
    )
    .unwrap();
    let m = open_bytes(w.to_bytes()).unwrap();
    assert_eq!(m.config().rope_scaling, RopeScaling::FreqFactorsTensor);
    m.check().unwrap();
    let plain = m.config().rope_inv_freqs();
    let scaled = m.rope_inv_freqs().unwrap();
    for i in 0..8 {
        assert_eq!(scaled[i], plain[i] / factors[i]);
    }
}

#[test]
fn vocab_size_falls_back_to_the_embedding_shape() {
    let m = open_bytes(tiny_gguf(DType::F32, false).to_bytes()).unwrap();
    assert!(m.metadata().unwrap().get("llama.vocab_size").is_none());
    assert_eq!(m.config().vocab_size, 32);
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let bytes = tiny_gguf(DType::Q8_0, false).to_bytes();
    let header_end = parse(&bytes).unwrap().data_offset as usize;
    // Every prefix through the header, then a stride through the data.
    let lengths = (0..header_end + 64).chain((header_end..bytes.len()).step_by(97));
    for len in lengths {
        let e = err_text(open_bytes(bytes[..len].to_vec()));
        assert!(e.starts_with("t.gguf: "), "names the file: {e}");
    }
    assert!(err_text(open_bytes(bytes[..bytes.len() - 1].to_vec())).contains("truncated"));
}

#[test]
fn empty_file_on_disk() {
    let dir = TempDir::new("empty");
    let path = dir.join("empty.gguf");
    std::fs::write(&path, b"").unwrap();
    let e = err_text(ModelFile::open(&path));
    assert!(e.contains("empty.gguf") && e.contains("empty"), "{e}");
    let e = err_text(ModelFile::open(&dir.join("nope.gguf")));
    assert!(e.contains("nope.gguf") && e.contains("not found"), "{e}");
}

#[test]
fn wrong_magic_and_versions() {
    let e = err_text(parse(b"GGML\x03\0\0\0"));
    assert!(e.contains("not a GGUF file"), "{e}");
    let e = err_text(parse(&Raw::header(1, 0, 0).bytes()));
    assert!(e.contains("version 1") && e.contains("v1"), "{e}");
    let e = err_text(parse(&Raw::header(4, 0, 0).bytes()));
    assert!(e.contains("version 4"), "{e}");
    let e = err_text(parse(&Raw::header(3u32.swap_bytes(), 0, 0).bytes()));
    assert!(e.contains("big-endian"), "{e}");
    // A header alone (no tensors, no metadata) parses at the reader level...
    parse(&Raw::header(2, 0, 0).bytes()).unwrap();
    // ...but is not a Llama.
    let e = err_text(open_bytes(Raw::header(3, 0, 0).bytes()));
    assert!(e.contains("general.architecture"), "{e}");
}

#[test]
fn absurd_counts_and_lengths_are_refused_before_allocating() {
    let e = err_text(parse(&Raw::header(3, u64::MAX, 0).bytes()));
    assert!(e.contains("tensor count"), "{e}");
    let e = err_text(parse(&Raw::header(3, 0, 1 << 60).bytes()));
    assert!(e.contains("metadata count"), "{e}");
    // String length beyond the file.
    let mut r = Raw::header(3, 0, 1);
    r.u64(u64::MAX - 3).zeros(16);
    let e = err_text(parse(&r.bytes()));
    assert!(
        e.contains("truncated") && e.contains("metadata key #0"),
        "{e}"
    );
    // Array count beyond the file (u64 elements).
    let mut r = Raw::header(3, 0, 1);
    r.str("k").u32(9).u32(10).u64(1 << 61);
    let e = err_text(parse(&r.bytes()));
    assert!(e.contains("array `k`") && e.contains("claims"), "{e}");
    // Array of strings with a huge count.
    let mut r = Raw::header(3, 0, 1);
    r.str("tokenizer.ggml.tokens")
        .u32(9)
        .u32(8)
        .u64(u64::MAX / 2);
    let e = err_text(parse(&r.bytes()));
    assert!(e.contains("tokenizer.ggml.tokens"), "{e}");
    // Nested arrays deeper than any real file.
    let mut r = Raw::header(3, 0, 1);
    r.str("deep").u32(9);
    for _ in 0..100 {
        r.u32(9).u64(1);
    }
    r.u32(0).u64(0);
    let e = err_text(parse(&r.bytes()));
    assert!(e.contains("nested deeper"), "{e}");
}

#[test]
fn malformed_metadata_values() {
    let mut r = Raw::header(3, 0, 1);
    r.str("k").u32(13).u32(0);
    assert!(err_text(parse(&r.bytes())).contains("unknown value type 13"));
    let mut r = Raw::header(3, 0, 1);
    r.str("k").u32(7).0.push(2);
    assert!(err_text(parse(&r.bytes())).contains("bool byte 2"));
    let mut r = Raw::header(3, 0, 2);
    r.str("k").u32(4).u32(1).str("k").u32(4).u32(2);
    assert!(err_text(parse(&r.bytes())).contains("appears twice"));
    let mut r = Raw::header(3, 0, 1);
    r.str("k").u32(8).u64(2);
    r.0.extend_from_slice(&[0xff, 0xfe]);
    assert!(err_text(parse(&r.bytes())).contains("not valid UTF-8"));
    let mut r = Raw::header(3, 0, 1);
    r.str("general.alignment").u32(4).u32(24);
    assert!(err_text(parse(&r.bytes())).contains("power of two"));
}

#[test]
fn malformed_tensor_infos() {
    let one_tensor = |ne: &[u64], ty: u32, offset: u64, data: usize| {
        let mut r = Raw::header(3, 1, 0);
        r.tensor("w", ne, ty, offset).pad(32).zeros(data);
        parse(&r.bytes())
    };
    one_tensor(&[32, 2], 0, 0, 256).unwrap();
    assert!(err_text(one_tensor(&[32, 2], 0, 0, 255)).contains("data of tensor `w`"));
    assert!(err_text(one_tensor(&[32, 2], 0, 1 << 40, 256)).contains("truncated"));
    assert!(err_text(one_tensor(&[32, 2], 0, u64::MAX - 31, 256)).contains("truncated"));
    assert!(err_text(one_tensor(&[32, 2], 0, 4, 256)).contains("not a multiple of the alignment"));
    assert!(err_text(one_tensor(&[1 << 32, 1 << 32], 0, 0, 0)).contains("overflow"));
    assert!(err_text(one_tensor(&[1 << 62, 4], 0, 0, 0)).contains("overflow"));
    assert!(err_text(one_tensor(&[1, 1, 1, 1, 1], 0, 0, 4)).contains("5 dimensions"));
    assert!(err_text(one_tensor(&[48], 8, 0, 64)).contains("not a whole number of q8_0 blocks"));
    let e = err_text(one_tensor(&[32], 3, 0, 64));
    assert!(e.contains("tensor `w`") && e.contains("q4_1"), "{e}");
    let e = err_text(one_tensor(&[32], 99, 0, 64));
    assert!(e.contains("unknown ggml type id 99"), "{e}");
    let mut r = Raw::header(3, 2, 0);
    r.tensor("w", &[1], 0, 0)
        .tensor("w", &[1], 0, 32)
        .pad(32)
        .zeros(64);
    assert!(err_text(parse(&r.bytes())).contains("appears twice"));
}

#[test]
fn model_level_problems_name_the_tensor() {
    // Shape disagreeing with the config.
    let mut w = tiny_gguf(DType::F32, false);
    w.set_u32("llama.feed_forward_length", 128);
    let m = open_bytes(w.to_bytes()).unwrap();
    let e = m.check().unwrap_err().to_string();
    assert!(
        e.contains("`blk.0.ffn_gate.weight`: shape [96, 64], but the config implies [128, 64]"),
        "{e}"
    );

    // A missing layer tensor.
    let c = tiny_config(RopeLayout::Interleaved, false);
    let mut w = tiny_gguf(DType::F32, false);
    w.set_u32("llama.block_count", 3);
    let m = open_bytes(w.to_bytes()).unwrap();
    let problems = m.problems();
    assert!(problems
        .iter()
        .any(|p| p.tensor.as_deref() == Some("blk.2.attn_q.weight") && p.message == "missing"));
    let e = m.weight(Weight::AttnQ(2)).unwrap_err().to_string();
    assert_eq!(e, "t.gguf: tensor `blk.2.attn_q.weight` not found");

    // Stray layer beyond n_layers, quantised norm.
    let mut w = GgufWriter::new();
    let src = tiny_gguf(DType::F32, false);
    let parsed = parse(&src.to_bytes()).unwrap();
    for (k, v) in parsed.metadata.iter() {
        w.set(k, v.clone());
    }
    for (name, dtype, shape, values) in llama_tensors(&c, true, DType::F32) {
        let dtype = if name == "blk.0.attn_norm.weight" {
            DType::Q8_0
        } else {
            dtype
        };
        w.add_tensor(name, dtype, &shape, quantize(dtype, &values).unwrap())
            .unwrap();
    }
    w.add_tensor("blk.7.attn_q.weight", DType::F32, &[1], vec![0; 4])
        .unwrap();
    let m = open_bytes(w.to_bytes()).unwrap();
    let text = m.check().unwrap_err().to_string();
    assert!(
        text.contains("`blk.0.attn_norm.weight`: norm weights must be a float type"),
        "{text}"
    );
    assert!(
        text.contains("`blk.7.attn_q.weight`: belongs to layer 7"),
        "{text}"
    );
}

#[test]
fn config_errors_are_clear() {
    let bad = |edit: &dyn Fn(&mut GgufWriter<'static>)| {
        let mut w = tiny_gguf(DType::F32, false);
        edit(&mut w);
        err_text(open_bytes(w.to_bytes()))
    };
    let e = bad(&|w| {
        w.set_str("general.architecture", "qwen2");
    });
    assert!(e.contains("unsupported architecture `qwen2`"), "{e}");
    let e = bad(&|w| {
        w.set_u32("llama.attention.head_count", 5);
    });
    assert!(
        e.contains("not divisible by 5 heads") || e.contains("rope.dimension_count"),
        "{e}"
    );
    let e = bad(&|w| {
        w.set_u32("llama.block_count", 1 << 30);
    });
    assert!(e.contains("n_layers = 1073741824 is out of range"), "{e}");
    let e = bad(&|w| {
        w.set_u32("llama.attention.head_count_kv", 3);
    });
    assert!(e.contains("not a multiple of n_kv_heads"), "{e}");
    let e = bad(&|w| {
        w.set("llama.embedding_length", GgufValue::String("64".into()));
    });
    assert!(e.contains("llama.embedding_length"), "{e}");
    let e = bad(&|w| {
        w.set_str("llama.rope.scaling.type", "yarn");
    });
    assert!(e.contains("`yarn` is not supported"), "{e}");
}

#[test]
fn dequantize_rejects_wrong_lengths() {
    assert!(dequantize(DType::Q8_0, &[0; 34], 31).is_err());
    assert!(dequantize(DType::Q8_0, &[0; 33], 32).is_err());
    assert!(dequantize(DType::F32, &[0; 8], 2).is_ok());
    assert!(quantize(DType::Q4_0, &[0.0; 33]).is_err());
}

#[test]
fn quantisers_round_trip_within_their_step() {
    let x = values_for("q", 256);
    for (dtype, tolerance) in [
        (DType::Q8_0, 1.0 / 127.0),
        (DType::Q5_0, 1.0 / 15.0),
        (DType::Q4_0, 1.0 / 7.0),
    ] {
        let bytes = quantize(dtype, &x).unwrap();
        let y = dequantize(dtype, &bytes, x.len()).unwrap();
        let err = x
            .iter()
            .zip(&y)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(err <= tolerance * 1.01, "{dtype}: {err}");
    }
}
