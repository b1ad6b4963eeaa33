//! Throughput measurements in the manner of llama-bench: prompt processing (pp) and token
//! generation (tg) timed on the CPU wall clock, each call a continuous burst of GPU work.
//!
//! Callers warm up first (`warm_up_steady`; `warm_up` for a fixed time): graphs for a new
//! prompt length are built on first use, and a datacenter GPU idles at a low clock until it has
//! run ~200 ms of continuous work (~0.5 s after a long idle).

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

/// Runs the timed `work` until at least `min` has passed *and* its latest runs, spanning at
/// least `STEADY_WINDOW` and `STEADY_RUNS` runs, agree within `STEADY_SPREAD` (the GPU has
/// reached its working clock), or until `max` has passed. After a long idle (a model load, a
/// synthesis) the H100 took ~0.5 s of continuous work to reach its clock, in steps: behind a
/// fixed 300 ms warm-up the first timed prompts of a run came out at 23-80% of the rest, and
/// three agreeing 13 ms runs could still sit on an intermediate step
/// (benches/results/2026-11-24-h100-s13/pp-each/). Returns the runs made.
pub fn warm_up_steady(
    min: Duration,
    max: Duration,
    mut work: impl FnMut() -> Result<Duration>,
) -> Result<usize> {
    let start = Instant::now();
    let mut times: Vec<Duration> = Vec::new();
    loop {
        times.push(work()?);
        let elapsed = start.elapsed();
        if elapsed >= max || (elapsed >= min && steady(&times)) {
            return Ok(times.len());
        }
    }
}

/// The longest the CLI's warm-ups wait for steady run times.
pub const WARM_UP_MAX: Duration = Duration::from_secs(5);
/// The fewest latest runs that must agree for `warm_up_steady`...
pub const STEADY_RUNS: usize = 3;
/// ...and the least time they must span (a clock step can last several short runs).
pub const STEADY_WINDOW: Duration = Duration::from_millis(250);
/// How far apart (slowest / fastest - 1) those runs may be.
pub const STEADY_SPREAD: f64 = 0.03;

/// Whether the latest runs of `times` spanning `STEADY_WINDOW` (and `STEADY_RUNS` runs)
/// agree within `STEADY_SPREAD`.
fn steady(times: &[Duration]) -> bool {
    let mut span = Duration::ZERO;
    let mut k = 0;
    for t in times.iter().rev() {
        span += *t;
        k += 1;
        if k >= STEADY_RUNS && span >= STEADY_WINDOW {
            let last = &times[times.len() - k..];
            let lo = last.iter().min().unwrap().as_secs_f64();
            let hi = last.iter().max().unwrap().as_secs_f64();
            return hi <= lo * (1.0 + STEADY_SPREAD);
        }
    }
    false
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A work closure replaying `ms` as its run times (the last one forever), counting calls.
    fn replay(ms: &[u64]) -> impl FnMut() -> Result<Duration> + '_ {
        let mut i = 0;
        move || {
            let t = ms[i.min(ms.len() - 1)];
            i += 1;
            Ok(Duration::from_millis(t))
        }
    }

    #[test]
    fn steady_warm_up_waits_for_agreeing_runs() {
        // A clock ramp: slow runs, then three that agree within 3%. With no minimum time, the
        // warm-up stops at the third agreeing run.
        let ramp = [300, 200, 130, 102, 100, 101, 100];
        let runs = warm_up_steady(Duration::ZERO, Duration::from_secs(60), replay(&ramp)).unwrap();
        assert_eq!(runs, 6);
        // Runs 4% apart never agree: the maximum time ends it (a zero maximum: one run).
        let jitter = [100, 104, 100, 104];
        let runs = warm_up_steady(Duration::ZERO, Duration::ZERO, replay(&jitter)).unwrap();
        assert_eq!(runs, 1);
        assert!(!steady(&[100, 104, 100].map(Duration::from_millis)));
        assert!(steady(&[100, 102, 101].map(Duration::from_millis)));
        assert!(!steady(&[100, 100].map(Duration::from_millis)));
        // Short runs on a clock step (five 20 ms runs agree but span 100 ms), then the full
        // clock: it waits for 250 ms of agreeing 10 ms runs, not the step's three.
        let mut step = vec![40, 20, 20, 20, 20, 20];
        step.extend([10; 40]);
        let runs = warm_up_steady(Duration::ZERO, Duration::from_secs(60), replay(&step)).unwrap();
        assert_eq!(runs, 6 + 25);
    }
}
