//! Throughput measurements in the manner of llama-bench: prompt processing (pp) and token
//! generation (tg) timed on the CPU wall clock, each call a continuous burst of GPU work.
//!
//! Callers warm up first (`warm_up`): graphs for a new prompt length are built on first use,
//! and a datacenter GPU idles at a low clock until it has run ~200 ms of continuous work.

use std::time::{Duration, Instant};

use crate::error::Result;
use crate::llama::Session;
use crate::testing::Rng;

/// `n` token ids drawn uniformly from the vocabulary (deterministic for a seed). Random ids
/// keep the embedding reads honest; content does not change the work done.
pub fn random_tokens(n: usize, vocab: usize, seed: u64) -> Vec<u32> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| (rng.next_u64() % vocab.max(1) as u64) as u32)
        .collect()
}

/// Time to prefill `tokens` from position 0 (a fresh cache), including the final sample and
/// its 4-byte readback.
pub fn time_prefill(session: &mut Session<'_>, tokens: &[u32]) -> Result<Duration> {
    session.reset();
    let start = Instant::now();
    session.prefill(tokens)?;
    Ok(start.elapsed())
}

/// Time for `n` decode steps after a one-token prompt (the prompt is not timed), pipelined
/// as `run` generates (`Session::decode_stream`: the next step is queued while the GPU runs
/// the current one; every token id is still read back).
pub fn time_decode(session: &mut Session<'_>, first: u32, n: usize) -> Result<Duration> {
    session.reset();
    session.prefill(&[first])?;
    let start = Instant::now();
    session.decode_stream(n, |_| true)?;
    Ok(start.elapsed())
}

/// Runs `work` once, then again until `min` has passed since the start, so that the GPU has
/// reached its working clock and every graph `work` needs is built.
pub fn warm_up(min: Duration, mut work: impl FnMut() -> Result<()>) -> Result<()> {
    let start = Instant::now();
    work()?;
    while start.elapsed() < min {
        work()?;
    }
    Ok(())
}

/// Mean, sample standard deviation and median of repeated measurements.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub mean: f64,
    pub sd: f64,
    pub median: f64,
}

impl Summary {
    /// `None` for no samples; `sd` is 0 for one sample.
    pub fn of(samples: &[f64]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        let n = samples.len() as f64;
        let mean = samples.iter().sum::<f64>() / n;
        let sd = if samples.len() > 1 {
            let ss: f64 = samples.iter().map(|x| (x - mean).powi(2)).sum();
            (ss / (n - 1.0)).sqrt()
        } else {
            0.0
        };
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let mid = sorted.len() / 2;
        let median = if sorted.len() % 2 == 1 {
            sorted[mid]
        } else {
            (sorted[mid - 1] + sorted[mid]) / 2.0
        };
        Some(Summary { mean, sd, median })
    }
}
