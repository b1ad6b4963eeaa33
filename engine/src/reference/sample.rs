//! Token choice, written as the semantics read (ops/sample.rs): sort, cumulate, pick.

use crate::ops::sample::Sampling;
use std::cmp::Ordering;

/// Token indices in rank order: logits descending (`total_cmp`), ties to the lower index.
pub fn rank_order(logits: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| match logits[b].total_cmp(&logits[a]) {
        Ordering::Equal => a.cmp(&b),
        o => o,
    });
    order
}

/// Greedy: the first token in rank order.
pub fn argmax(logits: &[f32]) -> u32 {
    rank_order(logits)[0] as u32
}

/// The tokens sampling may pick, in rank order, with their renormalised probabilities.
pub fn kept(logits: &[f32], s: &Sampling) -> Vec<(u32, f64)> {
    kept_with_top_p(logits, s, s.top_p as f64)
}

/// `kept` with top_p given exactly, so tests can probe a top-p target shifted by rounding.
pub fn kept_with_top_p(logits: &[f32], s: &Sampling, top_p: f64) -> Vec<(u32, f64)> {
    let order = rank_order(logits);
    let max = logits[order[0]] as f64;
    let t = s.temperature as f64;
    let k = if s.top_k == 0 || s.top_k as usize >= logits.len() {
        logits.len()
    } else {
        s.top_k as usize
    };
    let mass = |i: usize| ((logits[i] as f64 - max) / t).exp();
    let mut keep: Vec<(u32, f64)> = order[..k].iter().map(|&i| (i as u32, mass(i))).collect();
    if top_p < 1.0 {
        let target = top_p * keep.iter().map(|e| e.1).sum::<f64>();
        let mut cum = 0.0;
        let end = keep
            .iter()
            .position(|e| {
                cum += e.1;
                cum >= target
            })
            .unwrap_or(keep.len() - 1);
        keep.truncate(end + 1);
    }
    let total: f64 = keep.iter().map(|e| e.1).sum();
    keep.iter().map(|&(i, w)| (i, w / total)).collect()
}

/// u in [0, 1) from the step's random u32: its top 24 bits, as the GPU takes it.
pub fn unit(rand: u32) -> f64 {
    (rand >> 8) as f64 / (1u64 << 24) as f64
}

/// The token chosen for `rand` (greedy when temperature <= 0).
pub fn sample(logits: &[f32], s: &Sampling, rand: u32) -> u32 {
    if s.is_greedy() {
        return argmax(logits);
    }
    pick(&kept(logits, s), unit(rand))
}

/// The first kept token whose running probability exceeds u (the last one if none does).
pub fn pick(kept: &[(u32, f64)], u: f64) -> u32 {
    let mut cum = 0.0;
    for &(i, prob) in kept {
        cum += prob;
        if cum > u {
            return i;
        }
    }
    kept[kept.len() - 1].0
}
