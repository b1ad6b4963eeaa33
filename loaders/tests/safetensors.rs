//! Hugging Face folders: single file, sharded, dtypes, tied embeddings, corrupt input.

mod common;

use std::path::Path;

use common::*;
use wgllama_loaders::quant::quantize;
use wgllama_loaders::{
    DType, LoadError, ModelFile, ModelFormat, RopeLayout, RopeScaling, TokenizerSource, Weight,
};

fn err_text(r: Result<ModelFile, LoadError>) -> String {
    match r {
        Ok(m) => panic!("expected an error, got {m:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn single_file_bf16_folder() {
    let dir = TempDir::new("hf-bf16");
    write_hf_folder(dir.path(), DType::BF16, false, 1);
    let m = ModelFile::open(dir.path()).unwrap();
    assert_eq!(m.format(), ModelFormat::SafeTensors);
    let mut expected = tiny_config(RopeLayout::RotateHalf, false);
    expected.rms_norm_eps = 1e-5;
    assert_eq!(m.config(), &expected);
    m.check().unwrap();
    let q = m.weight(Weight::AttnQ(0)).unwrap();
    assert_eq!(q.info.name, "model.layers.0.self_attn.q_proj.weight");
    assert_eq!(
        (q.info.dtype, q.info.shape.clone(), q.info.n_bytes),
        (DType::BF16, vec![64, 64], 64 * 64 * 2)
    );
    let want = values_for(&q.info.name, 64 * 64);
    let got = q.to_f32().unwrap();
    assert!(got
        .iter()
        .zip(&want)
        .all(|(a, b)| (a - b).abs() <= b.abs() / 128.0));
    assert_eq!(
        m.weight(Weight::Output).unwrap().info.name,
        "lm_head.weight"
    );
    assert!(matches!(m.tokenizer_source(), TokenizerSource::Missing));
    assert!(m.metadata().is_none());
    assert_eq!(m.hf_config().unwrap()["model_type"], "llama");

    // The same model through the .safetensors path.
    let m2 = ModelFile::open(&dir.join("model.safetensors")).unwrap();
    assert_eq!(m2.config(), m.config());
    assert_eq!(m2.tensors(), m.tensors());
}

#[test]
fn sharded_f16_folder_with_tied_embeddings() {
    let dir = TempDir::new("hf-sharded");
    write_hf_folder(dir.path(), DType::F16, true, 3);
    std::fs::write(dir.join("tokenizer.json"), "{}").unwrap();
    let m = ModelFile::open(dir.path()).unwrap();
    m.check().unwrap();
    assert_eq!(m.files().count(), 3);
    assert!(m.config().tied_embeddings);
    assert_eq!(
        m.weight(Weight::Output).unwrap().info.name,
        "model.embed_tokens.weight"
    );
    // Shards in name order, tensors in data order within each.
    assert_eq!(m.tensors()[0].name, "model.embed_tokens.weight");
    let down = m.weight(Weight::FfnDown(1)).unwrap();
    assert_eq!(down.info.shape, vec![64, 96]);
    assert_eq!(
        m.file_of(&down.info.name).unwrap().file_name().unwrap(),
        "model-00003-of-00003.safetensors"
    );
    assert!(
        matches!(m.tokenizer_source(), TokenizerSource::HfJson(p) if p.ends_with("tokenizer.json"))
    );
    // Opening through the index file gives the same model.
    let m2 = ModelFile::open(&dir.join("model.safetensors.index.json")).unwrap();
    assert_eq!(m2.tensors(), m.tensors());
}

#[test]
fn f32_folder_and_config_variants() {
    let dir = TempDir::new("hf-f32");
    write_hf_folder(dir.path(), DType::F32, false, 1);
    let c = tiny_config(RopeLayout::RotateHalf, false);
    let mut json = hf_config_json(&c);
    json["head_dim"] = 16.into();
    json["eos_token_id"] = serde_json::json!([2, 5]);
    json["rope_scaling"] = serde_json::json!({
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
        "high_freq_factor": 4.0, "original_max_position_embeddings": 64
    });
    json.as_object_mut().unwrap().remove("vocab_size");
    std::fs::write(dir.join("config.json"), json.to_string()).unwrap();
    let m = ModelFile::open(dir.path()).unwrap();
    m.check().unwrap();
    assert_eq!(m.config().eos_token_ids, vec![2, 5]);
    assert_eq!(m.config().vocab_size, 32, "from the embedding shape");
    assert!(matches!(
        m.config().rope_scaling,
        RopeScaling::Llama3 { factor: 8.0, .. }
    ));
    assert_eq!(m.weight(Weight::OutputNorm).unwrap().info.dtype, DType::F32);
}

#[test]
fn missing_files() {
    let dir = TempDir::new("hf-missing");
    write_hf_folder(dir.path(), DType::F16, false, 2);
    std::fs::rename(dir.join("config.json"), dir.join("config.bak")).unwrap();
    let e = err_text(ModelFile::open(dir.path()));
    assert!(e.contains("config.json") && e.contains("not found"), "{e}");
    std::fs::rename(dir.join("config.bak"), dir.join("config.json")).unwrap();

    std::fs::remove_file(dir.join("model-00002-of-00002.safetensors")).unwrap();
    let e = err_text(ModelFile::open(dir.path()));
    assert!(
        e.contains("model-00002-of-00002.safetensors") && e.contains("not found"),
        "{e}"
    );

    let empty = TempDir::new("hf-empty");
    std::fs::write(empty.join("config.json"), "{}").unwrap();
    let e = err_text(ModelFile::open(empty.path()));
    assert!(
        e.contains("model.safetensors") && e.contains("not found"),
        "{e}"
    );
}

#[test]
fn malformed_json() {
    let dir = TempDir::new("hf-json");
    write_hf_folder(dir.path(), DType::F16, false, 2);
    std::fs::write(dir.join("config.json"), "{\"model_type\": \"llama\",").unwrap();
    let e = err_text(ModelFile::open(dir.path()));
    assert!(e.contains("config.json: invalid JSON"), "{e}");

    std::fs::write(dir.join("config.json"), "[1, 2]").unwrap();
    let e = err_text(ModelFile::open(dir.path()));
    assert!(
        e.contains("config.json: bad model config: config.json is not a JSON object"),
        "{e}"
    );

    let c = tiny_config(RopeLayout::RotateHalf, false);
    let mut json = hf_config_json(&c);
    json["num_attention_heads"] = "four".into();
    std::fs::write(dir.join("config.json"), json.to_string()).unwrap();
    let e = err_text(ModelFile::open(dir.path()));
    assert!(e.contains("`num_attention_heads` = \"four\""), "{e}");

    std::fs::write(dir.join("config.json"), hf_config_json(&c).to_string()).unwrap();
    std::fs::write(
        dir.join("model.safetensors.index.json"),
        "{\"weight_map\": 3}",
    )
    .unwrap();
    let e = err_text(ModelFile::open(dir.path()));
    assert!(
        e.contains("index.json: invalid JSON: no `weight_map`"),
        "{e}"
    );

    std::fs::write(
        dir.join("model.safetensors.index.json"),
        r#"{"weight_map": {"model.norm.weight": "../../etc/passwd"}}"#,
    )
    .unwrap();
    let e = err_text(ModelFile::open(dir.path()));
    assert!(e.contains("not a file name in the model folder"), "{e}");

    std::fs::write(
        dir.join("model.safetensors.index.json"),
        r#"{"weight_map": {"model.nope.weight": "model-00001-of-00002.safetensors"}}"#,
    )
    .unwrap();
    let e = err_text(ModelFile::open(dir.path()));
    assert!(
        e.contains("model-00001-of-00002.safetensors: tensor `model.nope.weight` not found"),
        "{e}"
    );
}

#[test]
fn duplicate_tensor_across_shards() {
    let dir = TempDir::new("hf-dup");
    write_hf_folder(dir.path(), DType::F16, false, 2);
    let shard1 = std::fs::read(dir.join("model-00001-of-00002.safetensors")).unwrap();
    std::fs::write(dir.join("model-00002-of-00002.safetensors"), shard1).unwrap();
    let e = err_text(ModelFile::open(dir.path()));
    assert!(
        e.contains("also stored in another shard") || e.contains("not found"),
        "{e}"
    );
}

#[test]
fn corrupt_safetensors_files() {
    let c = tiny_config(RopeLayout::RotateHalf, false);
    let config = hf_config_json(&c).to_string();
    let name = Path::new("m");
    let open = |bytes: Vec<u8>| {
        err_text(ModelFile::from_safetensors_bytes(
            bytes,
            config.as_bytes(),
            name,
        ))
    };

    let good: Vec<(String, DType, Vec<usize>, Vec<u8>)> = llama_tensors(&c, false, DType::F16)
        .into_iter()
        .map(|(n, _, s, v)| (n, DType::F16, s, quantize(DType::F16, &v).unwrap()))
        .collect();
    let bytes = safetensors_bytes(&good);
    ModelFile::from_safetensors_bytes(bytes.clone(), config.as_bytes(), name)
        .unwrap()
        .check()
        .unwrap();

    assert!(open(vec![]).contains("empty"));
    assert!(open(vec![1, 2, 3]).contains("bad safetensors header"));
    let mut huge = bytes.clone();
    huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(open(huge).contains("bad safetensors header"));
    let mut garbage = bytes.clone();
    garbage[9] = b'!';
    assert!(open(garbage).contains("bad safetensors header"));
    for cut in [1, 100, bytes.len() / 2] {
        let e = open(bytes[..bytes.len() - cut].to_vec());
        assert!(e.starts_with("m: bad safetensors header"), "{e}");
    }

    // Unsupported dtype, by name.
    let header = r#"{"model.norm.weight":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}}"#;
    let mut raw = (header.len() as u64).to_le_bytes().to_vec();
    raw.extend_from_slice(header.as_bytes());
    raw.extend_from_slice(&[0; 16]);
    let e = open(raw);
    assert!(e.contains("tensor `model.norm.weight` has type I64"), "{e}");

    // Shape disagreeing with the config: reported by check, naming the tensor.
    let mut wrong = good.clone();
    wrong[2].2 = vec![16, 64]; // layer 0's q_proj
    wrong[2].3.truncate(16 * 64 * 2);
    let m = ModelFile::from_safetensors_bytes(safetensors_bytes(&wrong), config.as_bytes(), name)
        .unwrap();
    let e = m.check().unwrap_err().to_string();
    assert!(
        e.contains(&format!("`{}`: shape [16, 64]", wrong[2].0)),
        "{e}"
    );

    // tie_word_embeddings = false without lm_head.
    let no_head: Vec<_> = good
        .iter()
        .filter(|t| t.0 != "lm_head.weight")
        .cloned()
        .collect();
    let m = ModelFile::from_safetensors_bytes(safetensors_bytes(&no_head), config.as_bytes(), name)
        .unwrap();
    let e = m.check().unwrap_err().to_string();
    assert!(
        e.contains("`lm_head.weight`: missing, and config.json says tie_word_embeddings = false"),
        "{e}"
    );
}

#[test]
fn weight_names_round_trip() {
    let c = tiny_config(RopeLayout::RotateHalf, false);
    for w in Weight::all(&c) {
        assert_eq!(Weight::from_gguf_name(&w.gguf_name()), Some(w));
        assert_eq!(Weight::from_hf_name(&w.hf_name()), Some(w));
    }
    assert_eq!(Weight::AttnOut(3).gguf_name(), "blk.3.attn_output.weight");
    assert_eq!(
        Weight::FfnNorm(0).hf_name(),
        "model.layers.0.post_attention_layernorm.weight"
    );
    assert_eq!(Weight::from_gguf_name("blk.01.attn_q.weight"), None);
    assert_eq!(Weight::from_gguf_name("blk.1.attn_q.bias"), None);
    assert_eq!(
        Weight::from_hf_name("model.layers.x.mlp.up_proj.weight"),
        None
    );
    assert_eq!(
        Weight::all(&tiny_config(RopeLayout::RotateHalf, true)).len(),
        2 * 9 + 2
    );
}

#[test]
fn architecture_from_the_architectures_list() {
    let dir = TempDir::new("hf-arch");
    write_hf_folder(dir.path(), DType::F16, false, 1);
    let mut json = hf_config_json(&tiny_config(RopeLayout::RotateHalf, false));
    json.as_object_mut().unwrap().remove("model_type");
    std::fs::write(dir.join("config.json"), json.to_string()).unwrap();
    ModelFile::open(dir.path()).unwrap().check().unwrap();
    json["architectures"] = serde_json::json!(["GPT2LMHeadModel"]);
    std::fs::write(dir.join("config.json"), json.to_string()).unwrap();
    let e = err_text(ModelFile::open(dir.path()));
    assert!(
        e.contains("unsupported architecture `GPT2LMHeadModel`"),
        "{e}"
    );
}
