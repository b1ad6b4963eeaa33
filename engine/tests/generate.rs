//! The generation loop: seeded sampling is reproducible, and bad prompts get clear errors.

use std::path::Path;

use wgllama_engine::llama::{LlamaWeights, Sampling, Session, SessionOptions};
use wgllama_engine::ops::attention_decode::{fold_supported, DecodeConfig};
use wgllama_engine::testing::{test_gpu, test_gpu_without_coherent};
use wgllama_engine::Gpu;
use wgllama_loaders::ModelFile;

fn weights() -> LlamaWeights {
    weights_on(test_gpu())
}

/// The test model's weights on `gpu` (a session uses weights of its own device).
fn weights_on(gpu: &Gpu) -> LlamaWeights {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../golden/models/tiny-gqa/tiny-gqa-q8_0.gguf");
    LlamaWeights::load(gpu, &ModelFile::open(&path).unwrap(), |_, _| {}).unwrap()
}

fn generate(w: &LlamaWeights, sampling: Sampling, seed: u64, prompt: &[u32], n: usize) -> Vec<u32> {
    let opts = SessionOptions {
        ctx: 64,
        seed,
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
    let sampling = Sampling {
        temperature: 1.0,
        top_k: 40,
        top_p: 0.95,
    };
    let a = generate(&w, sampling, 7, &prompt, 24);
    let b = generate(&w, sampling, 7, &prompt, 24);
    let c = generate(&w, sampling, 8, &prompt, 24);
    assert_eq!(a.len(), 24);
    assert_eq!(a, b, "same seed must give the same tokens");
    assert_ne!(a, c, "seeds 7 and 8 gave the same 24 tokens");
}

#[test]
fn greedy_generation_is_the_argmax_of_the_prompt_logits() {
    let w = weights();
    let prompt = [1, 50, 60, 70, 80];
    let first = generate(&w, Sampling::greedy(), 0, &prompt, 1)[0];
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

    // The same prompt in one chunk and one submission, against chunks of 4 submitted in
    // parts of 5 dispatches with no wait between chunks: the same last logits.
    for (prefill_chunk, submit_every) in [(64, 1000), (4, 5), (3, 1)] {
        let opts = SessionOptions {
            ctx: 32,
            prefill_chunk,
            submit_every,
            ..Default::default()
        };
        let mut s = Session::new(test_gpu(), &w, opts, Sampling::greedy()).unwrap();
        assert_eq!(s.prefill(&prompt).unwrap(), first);
        let other = s.last_logits(false).unwrap();
        let max = other
            .iter()
            .zip(want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            max < 1e-4,
            "chunk {prefill_chunk}, parts of {submit_every}: last logits differ by {max}"
        );
    }
}

#[test]
fn pipelined_decode_matches_step_by_step_decode_and_a_stop_rewinds() {
    // decode_stream keeps DECODE_DEPTH steps in flight; its tokens must equal one-step-at-
    // a-time decoding, and stopping early must leave the session where the delivered tokens
    // put it (position and fed-back token), despite the steps submitted past the stop.
    let w = weights();
    let opts = SessionOptions {
        ctx: 64,
        ..Default::default()
    };
    let prompt = [1, 11, 22, 33, 44];
    let mut s = Session::new(test_gpu(), &w, opts.clone(), Sampling::greedy()).unwrap();
    s.prefill(&prompt).unwrap();
    let want: Vec<u32> = (0..12).map(|_| s.decode().unwrap()).collect();

    let mut t = Session::new(test_gpu(), &w, opts, Sampling::greedy()).unwrap();
    t.prefill(&prompt).unwrap();
    let mut got = Vec::new();
    let n = t
        .decode_stream(12, |id| {
            got.push(id);
            true
        })
        .unwrap();
    assert_eq!((n, &got), (12, &want), "pipelined vs step-by-step tokens");
    assert_eq!(t.position(), prompt.len() + 12);

    // Stop after 5 tokens, then continue one step at a time: same tokens as never stopping.
    t.reset();
    t.prefill(&prompt).unwrap();
    let mut first = Vec::new();
    t.decode_stream(12, |id| {
        first.push(id);
        first.len() < 5
    })
    .unwrap();
    assert_eq!(first, want[..5]);
    assert_eq!(t.position(), prompt.len() + 5);
    let rest: Vec<u32> = (0..7).map(|_| t.decode().unwrap()).collect();
    assert_eq!(rest, want[5..], "decoding after a stop");
}

#[test]
fn prefill_graphs_stay_bounded_and_correct() {
    // Prompts of seven lengths would build seven graphs; the session keeps at most
    // PREFILL_GRAPHS, and a prompt whose graph was evicted still gives the same token.
    use wgllama_engine::llama::session::PREFILL_GRAPHS;
    let w = weights();
    let opts = SessionOptions {
        ctx: 64,
        ..Default::default()
    };
    let mut s = Session::new(test_gpu(), &w, opts, Sampling::greedy()).unwrap();
    let prompt = |n: usize| -> Vec<u32> { (0..n as u32).map(|i| i * 13 % 300 + 2).collect() };
    let mut first = Vec::new();
    for n in 1..=7 {
        s.reset();
        first.push(s.prefill(&prompt(n)).unwrap());
        assert!(
            s.prefill_graphs() <= PREFILL_GRAPHS,
            "{} graphs",
            s.prefill_graphs()
        );
    }
    for n in 1..=7 {
        s.reset();
        assert_eq!(
            s.prefill(&prompt(n)).unwrap(),
            first[n - 1],
            "prompt of {n}"
        );
    }
}

#[test]
fn decode_prefetches_change_no_logit() {
    // L2 prefetches only read weights: decode logits with every window on (budgets past the
    // tensors' sizes and inside them) are bit-identical to none, on the fast path whose folded
    // norms give every window a place.
    use wgllama_engine::llama::prefetch::Budgets;
    use wgllama_engine::Precision;
    let w = weights();
    let prompt = [1, 20, 30, 40, 50];
    let logits = |prefetch: Budgets| {
        let opts = SessionOptions {
            ctx: 32,
            precision: Precision::Fast,
            prefetch: Some(prefetch),
            ..Default::default()
        };
        let mut s = Session::new(test_gpu(), &w, opts, Sampling::greedy()).unwrap();
        let prefetches = s
            .decode_graph()
            .dispatches()
            .filter(|d| d.label == "prefetch")
            .count();
        // Every window placed: attention, merge (unless folded into attention: @coherent
        // storage buffers), Wo and SwiGLU (unless the gate/up mat-vec writes SwiGLU itself:
        // matvec_swiglu) in each layer, down in all but the last (or none).
        let layers = w.config.n_layers;
        let swiglu = s
            .decode_graph()
            .dispatches()
            .any(|d| d.label.starts_with("matvec_swiglu"));
        let windows = 3 + !fold_supported(test_gpu()) as usize + !swiglu as usize;
        let want_min = if prefetch == Budgets::default() {
            0
        } else {
            windows * layers - 1
        };
        assert!(
            prefetches >= want_min && (want_min > 0 || prefetches == 0),
            "{prefetches} prefetch dispatches for {layers} layers with {prefetch}"
        );
        s.prefill(&prompt).unwrap();
        (0..3)
            .flat_map(|_| {
                s.decode().unwrap();
                s.last_logits(true).unwrap()
            })
            .collect::<Vec<f32>>()
    };
    let none = logits(Budgets::default());
    for spec in ["0.001,0.002,0.003,0.004,0.005", "64,64,64,64,64"] {
        let got = logits(Budgets::parse(spec).unwrap());
        assert!(
            got.iter()
                .zip(&none)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "decode logits with prefetch budgets {spec} MiB differ from none"
        );
    }
}

#[test]
fn decode_records_the_attention_merge_only_past_one_split() {
    // attention_decode's merge has nothing to do while one split covers every key (it wrote
    // the output itself): a pass records it only once the keys outgrow that split. (The golden
    // model checks decode across the boundary and catch a merge left out past it.) On a
    // device without @coherent storage buffers; with them the merge is folded into the split
    // pass: no merge dispatch, one attention dispatch a layer at every context.
    let w = weights();
    let opts = SessionOptions {
        ctx: 256,
        ..Default::default()
    };
    let layers = w.config.n_layers;
    if fold_supported(test_gpu()) {
        let s = Session::new(test_gpu(), &w, opts.clone(), Sampling::greedy()).unwrap();
        let g = s.decode_graph();
        let count = |label: &str| g.dispatches().filter(|d| d.label == label).count();
        assert_eq!(
            count("attention_decode_merge"),
            0,
            "folded: no merge dispatch"
        );
        assert_eq!(count("attention_decode"), layers);
    }
    let plain = test_gpu_without_coherent();
    let w = weights_on(plain);
    let s = Session::new(plain, &w, opts, Sampling::greedy()).unwrap();
    let g = s.decode_graph();
    let merges = |keys: usize| {
        g.dispatches_at(keys)
            .filter(|d| d.label == "attention_decode_merge")
            .count()
    };
    let idle = g
        .dispatches()
        .find(|d| d.label == "attention_decode_merge")
        .map(|d| d.idle_keys)
        .expect("the decode graph has attention_decode merges");
    // The merge idles while one split covers every key: up to the picked fewest keys a split.
    let cfg = &w.config;
    let picked = DecodeConfig::pick(
        plain,
        cfg.n_heads / cfg.n_kv_heads,
        cfg.head_dim,
        cfg.n_kv_heads,
        256,
    );
    assert_eq!(idle, picked.min_chunk, "merge idle up to one split's keys");
    assert_eq!(
        (merges(1), merges(idle)),
        (0, 0),
        "merges at <= {idle} keys"
    );
    assert_eq!((merges(idle + 1), merges(256)), (layers, layers));
    assert_eq!(
        g.dispatches().count() - g.dispatches_at(idle).count(),
        layers,
        "only the merges are left out"
    );
}

#[test]
fn prompt_dequant_copies_change_no_logit() {
    // Long fast-path prompt chunks may decode quantised weights to f16 copies first and run the
    // F16 GEMMs (fused q/k/v, SwiGLU inside gate/up) over them: the same f16 products in the
    // same order as the GEMMs that decode while staging, so the same logits bit for bit. The
    // model mixes Q4_K, Q5_0, Q6_K and Q8_0 weights. Adapters without cooperative matrices
    // have no scratch (and nothing to compare).
    use wgllama_engine::Precision;
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../golden/models/tiny-gqa/tiny-gqa-q4_k_m.gguf");
    let w = LlamaWeights::load(test_gpu(), &ModelFile::open(&path).unwrap(), |_, _| {}).unwrap();
    let prompt: Vec<u32> = (0..200).map(|i| (i * 37 + 11) % 320).collect();
    let logits = |min_tokens: usize| {
        let opts = SessionOptions {
            ctx: 256,
            precision: Precision::Fast,
            dequant_min_tokens: min_tokens,
            ..Default::default()
        };
        let mut s = Session::new(test_gpu(), &w, opts, Sampling::greedy()).unwrap();
        let copies = s.dequant_scratch().map(|d| d.describe());
        let logits = s.prompt_logits(&prompt).unwrap();
        let decodes = s
            .prefill_dispatches()
            .filter(|d| d.label.starts_with("dequant_f16"))
            .count();
        // With a scratch every layer's four groups are copied (one dispatch a run of one type).
        assert_eq!(
            copies.is_some(),
            decodes >= 4 * w.config.n_layers,
            "{decodes} dequant_f16 dispatches with scratch {copies:?}"
        );
        (copies, logits)
    };
    let (none, plain) = logits(usize::MAX);
    assert!(none.is_none(), "a scratch no chunk can use: {none:?}");
    let (copies, got) = logits(100);
    let Some(copies) = copies else {
        eprintln!(
            "skipped: no cooperative matrices on {}",
            test_gpu().describe()
        );
        return;
    };
    eprintln!("{copies}");
    let bad = got
        .iter()
        .zip(&plain)
        .position(|(a, b)| a.to_bits() != b.to_bits());
    if let Some(i) = bad {
        let max = got
            .iter()
            .zip(&plain)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        panic!(
            "logit {i} (token {}): {} with f16 copies, {} without (max difference {max:e})",
            i / w.config.vocab_size,
            got[i],
            plain[i]
        );
    }
}
