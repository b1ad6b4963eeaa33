//! The profiler and the bench timers on the tiny GQA model (lavapipe in CI): rows for every
//! kernel family, positive times, and profiled steps that still produce the session's tokens.

use std::path::Path;

use wgllama_engine::bench::{random_tokens, time_decode, time_prefill, Summary};
use wgllama_engine::llama::{LlamaWeights, Sampling, Session, SessionOptions};
use wgllama_engine::profile::Profiler;
use wgllama_engine::testing::test_gpu;
use wgllama_loaders::ModelFile;

fn tiny_gqa() -> LlamaWeights {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../golden/models/tiny-gqa/tiny-gqa-q8_0.gguf");
    let model = ModelFile::open(&path).unwrap();
    LlamaWeights::load(test_gpu(), &model, |_, _| {}).unwrap()
}

fn session(w: &LlamaWeights, prefill_chunk: usize) -> Session<'_> {
    let opts = SessionOptions {
        ctx: 64,
        prefill_chunk,
        ..Default::default()
    };
    Session::new(test_gpu(), w, opts, Sampling::greedy()).unwrap()
}

#[test]
fn profiler_times_every_kernel_family_and_keeps_tokens() {
    let gpu = test_gpu();
    if !gpu.caps.timestamps {
        eprintln!("skipped: {} has no timestamp queries", gpu.info.name);
        return;
    }
    let w = tiny_gqa();
    // A chunk of 16 splits the 40-token prompt into three graph runs, one with a short tail.
    let mut s = session(&w, 16);
    let prompt = random_tokens(40, w.config.vocab_size, 7);
    let want_first = s.prefill(&prompt).unwrap();
    let want: Vec<u32> = (0..4).map(|_| s.decode().unwrap()).collect();

    let mut p = Profiler::new(gpu).unwrap();
    s.reset();
    assert_eq!(p.prefill(&mut s, &prompt).unwrap(), want_first);
    let prefill = p.report();
    assert_eq!(prefill.runs, 3);
    let got: Vec<u32> = (0..4).map(|_| p.decode(&mut s).unwrap()).collect();
    assert_eq!(got, want, "profiled decode must pick the same tokens");

    let mut d = Profiler::new(gpu).unwrap();
    s.reset();
    s.prefill(&prompt).unwrap();
    for _ in 0..3 {
        d.decode(&mut s).unwrap();
        d.decode_plain(&mut s).unwrap();
    }
    let decode = d.report();
    assert_eq!((decode.runs, decode.plain_runs), (3, 3));
    assert!(decode.plain_total_ms > 0.0, "{decode:?}");

    // Decode (one token) does RoPE inside attention_decode, so only prefill has a rope row.
    for (profile, families) in [
        (&prefill, &["rmsnorm", "rope", "attention", "mat"][..]),
        (&decode, &["rmsnorm", "attention", "mat"][..]),
    ] {
        for &family in families {
            assert!(
                profile.rows.iter().any(|r| r.label.starts_with(family)),
                "no {family} row in {:?}",
                profile.rows.iter().map(|r| r.label).collect::<Vec<_>>()
            );
        }
        // The tiny model's q8_0 weights run through the q8_0 mat-vec / tiled kernels.
        assert!(profile.rows.iter().any(|r| r.label.ends_with("q8_0")));
        let total: f64 = profile.rows.iter().map(|r| r.percent).sum();
        assert!((total - 100.0).abs() < 1e-6, "percentages sum to {total}");
        assert!(profile.kernel_total_ms > 0.0);
        assert!(profile.bytes > 0 && profile.flops > 0);
        assert!(profile
            .rows
            .iter()
            .all(|r| r.calls > 0 && r.total_ms >= 0.0));
    }
    // 2 layers: 2 norms each plus the final norm, per decode step.
    let norms = decode.rows.iter().find(|r| r.label == "rmsnorm").unwrap();
    assert_eq!(norms.calls, 3 * 5);
    assert!(d
        .events
        .iter()
        .all(|e| e.dur_ns >= 0.0 && e.start_ns >= 0.0));
}

/// `decode_plain_without` (profile --ablate): a timed step with one kernel label left out
/// returns its pass time without adding to the report and still advances the session; with a
/// label no kernel has, the step is a whole decode step (the next token is the session's own).
#[test]
fn ablated_steps_time_the_pass_apart_from_the_report() {
    let gpu = test_gpu();
    if !gpu.caps.timestamps {
        eprintln!("skipped: {} has no timestamp queries", gpu.info.name);
        return;
    }
    let w = tiny_gqa();
    let mut s = session(&w, 64);
    let prompt = random_tokens(9, w.config.vocab_size, 3);
    s.prefill(&prompt).unwrap();
    let want: Vec<u32> = (0..2).map(|_| s.decode().unwrap()).collect();

    let mut p = Profiler::new(gpu).unwrap();
    s.reset();
    s.prefill(&prompt).unwrap();
    let full = p.decode_plain_without(&mut s, "no such kernel").unwrap();
    assert!(full > 0.0, "{full}");
    assert_eq!(
        s.decode().unwrap(),
        want[1],
        "a step with nothing left out is a decode step"
    );
    let ns = p.decode_plain_without(&mut s, "sample").unwrap();
    assert!(ns > 0.0, "{ns}");
    assert_eq!(s.position(), prompt.len() + 3);
    let r = p.report();
    assert_eq!(
        (r.runs, r.plain_runs),
        (0, 0),
        "ablated steps stay out of the report"
    );
}

#[test]
fn bench_timers_measure_positive_times() {
    let w = tiny_gqa();
    let mut s = session(&w, 32);
    let tokens = random_tokens(32, w.config.vocab_size, 1);
    assert!(tokens.iter().all(|&t| (t as usize) < w.config.vocab_size));
    let pp = time_prefill(&mut s, &tokens).unwrap();
    assert_eq!(s.position(), 32);
    let tg = time_decode(&mut s, tokens[0], 8).unwrap();
    assert_eq!(s.position(), 9);
    assert!(pp.as_secs_f64() > 0.0 && tg.as_secs_f64() > 0.0);
}

#[test]
fn summary_statistics() {
    let s = Summary::of(&[1.0, 2.0, 3.0, 10.0]).unwrap();
    assert_eq!(s.mean, 4.0);
    assert_eq!(s.median, 2.5);
    assert!((s.sd - 4.082_482_904_638_63).abs() < 1e-12);
    let one = Summary::of(&[5.0]).unwrap();
    assert_eq!((one.mean, one.sd, one.median), (5.0, 0.0, 5.0));
    assert!(Summary::of(&[]).is_none());
}
