//! Arbitrary bytes as a Hugging Face checkpoint: a safetensors file with a fixed or a
//! fuzzed config.json, or a shard index. The first byte picks which.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use wgllama_loaders::safetensors_folder::parse_shard_index;
use wgllama_loaders::ModelFile;

const CONFIG: &[u8] = br#"{"model_type":"llama","vocab_size":32,"hidden_size":64,
"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,
"intermediate_size":96,"rms_norm_eps":1e-5,"max_position_embeddings":128}"#;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let name = Path::new("fuzz-model");
    let model = match selector % 3 {
        0 => ModelFile::from_safetensors_bytes(rest.to_vec(), CONFIG, name),
        1 => {
            // config.json, a NUL byte, then the safetensors file.
            let split = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            let (config, st) = rest.split_at(split);
            let st = st.get(1..).unwrap_or(&[]);
            ModelFile::from_safetensors_bytes(st.to_vec(), config, name)
        }
        _ => {
            let _ = parse_shard_index(rest, Path::new("model.safetensors.index.json"));
            return;
        }
    };
    let Ok(model) = model else {
        return;
    };
    let _ = model.problems();
    let _ = model.rope_inv_freqs();
    for info in model.tensors() {
        let view = model
            .tensor(&info.name)
            .expect("listed tensors can be viewed");
        assert_eq!(view.data.len() as u64, info.n_bytes);
        if info.n_bytes <= 1 << 16 {
            let _ = view.to_f32();
        }
    }
});
