//! Arbitrary bytes as a GGUF file: parse, derive the config, check, read every tensor,
//! build the tokenizer. Anything but an `Err` (panic, hang, huge allocation) is a bug.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use wgllama_loaders::gguf::GgufFile;
use wgllama_loaders::ModelFile;

fuzz_target!(|data: &[u8]| {
    let name = Path::new("fuzz.gguf");
    if let Ok(gguf) = GgufFile::parse(data, name) {
        for t in &gguf.tensors {
            let _ = gguf.tensor_bytes(data, t);
        }
    }
    let Ok(model) = ModelFile::from_gguf_bytes(data.to_vec(), name) else {
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
    let _ = wgllama_loaders::tokenizer::build_tokenizer(&model);
});
