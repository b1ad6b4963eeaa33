//! The generation loop: seeded sampling is reproducible, and bad prompts get clear errors.

use std::path::Path;

use wgllama_engine::llama::{LlamaWeights, Sampling, Session, SessionOptions};
use wgllama_engine::testing::test_gpu;
use wgllama_loaders::ModelFile;

fn weights() -> LlamaWeights {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../golden/models/tiny-gqa/tiny-gqa-q8_0.gguf");
    LlamaWeights::load(test_gpu(), &ModelFile::open(&path).unwrap(), |_, _| {}).unwrap()
}

fn generate(w: &LlamaWeights, sampling: Sampling, prompt: &[u32], n: usize) -> Vec<u32> {
    let opts = SessionOptions {
        ctx: 64,
        ..Default::default()
    };
    let mut s = Session::new(test_gpu(), w, opts, sampling).unwrap();
    let mut out = Vec::new();
    s.generate(prompt, n, &[], |t| {
        out.push(t);
        true
    })
    .unwrap();
    out
}

#[test]
fn same_seed_same_tokens_other_seed_other_tokens() {
    let w = weights();
    let prompt = [1, 20, 30, 40];
    let sampling = |seed| Sampling {
        temperature: 1.0,
        top_k: 40,
        top_p: 0.95,
        seed,
    };
    let a = generate(&w, sampling(7), &prompt, 24);
    let b = generate(&w, sampling(7), &prompt, 24);
    let c = generate(&w, sampling(8), &prompt, 24);
    assert_eq!(a.len(), 24);
    assert_eq!(a, b, "same seed must give the same tokens");
    assert_ne!(a, c, "seeds 7 and 8 gave the same 24 tokens");
}

#[test]
fn greedy_generation_is_the_argmax_of_the_prompt_logits() {
    let w = weights();
    let prompt = [1, 50, 60, 70, 80];
    let first = generate(&w, Sampling::greedy(), &prompt, 1)[0];
    let opts = SessionOptions {
        ctx: 16,
        ..Default::default()
    };
    let mut s = Session::new(test_gpu(), &w, opts, Sampling::greedy()).unwrap();
    let logits = s.prompt_logits(&prompt).unwrap();
    let last = &logits[(prompt.len() - 1) * w.config.vocab_size..];
    let argmax = (0..last.len()).fold(0, |b, i| if last[i] > last[b] { i } else { b });
    assert_eq!(first as usize, argmax);
}

#[test]
fn prompts_that_do_not_fit_or_are_empty_are_refused() {
    let w = weights();
    let opts = SessionOptions {
        ctx: 8,
        ..Default::default()
    };
    let mut s = Session::new(test_gpu(), &w, opts, Sampling::greedy()).unwrap();
    let long: Vec<u32> = (1..=9).collect();
    let e = s.prefill(&long).unwrap_err().to_string();
    assert!(e.contains("9 tokens") && e.contains("context of 8"), "{e}");
    let e = s.prefill(&[]).unwrap_err().to_string();
    assert!(e.contains("empty"), "{e}");
    // Filling the context exactly works; one more decode step is refused.
    s.prefill(&long[..8]).unwrap();
    let e = s.decode().unwrap_err().to_string();
    assert!(e.contains("context of 8"), "{e}");
}

#[test]
fn a_chunked_prompt_reports_the_logits_of_its_last_token() {
    // 11 tokens in chunks of 4 leave graphs for T = 4 and T = 3; the sampled token and
    // `last_logits` must come from the last chunk.
    let w = weights();
    let prompt: Vec<u32> = (1..=11).map(|i| i * 7 % 300 + 3).collect();
    let opts = SessionOptions {
        ctx: 32,
        prefill_chunk: 4,
        ..Default::default()
    };
    let mut s = Session::new(test_gpu(), &w, opts, Sampling::greedy()).unwrap();
    let all = s.prompt_logits(&prompt).unwrap();
    let want = &all[(prompt.len() - 1) * w.config.vocab_size..];
    s.reset();
    let first = s.prefill(&prompt).unwrap();
    let got = s.last_logits(false).unwrap();
    let max = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        max < 1e-4,
        "last_logits differs from the prompt's last row by {max}"
    );
    let argmax = (0..want.len()).fold(0, |b, i| if want[i] > want[b] { i } else { b });
    assert_eq!(first as usize, argmax);
}
