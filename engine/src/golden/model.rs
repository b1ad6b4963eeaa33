//! `wgllama golden model`: a model's logits and greedy continuations against transformers.

use std::path::Path;

use crate::error::{EngineError, Result};
use crate::gpu::Gpu;
use crate::llama::{LlamaWeights, Sampling, Session, SessionOptions};

/// Pass criteria (issue 4): top-1 agreement, greedy continuation, max abs logit error.
#[derive(Clone, Copy, Debug)]
pub struct ModelTolerance {
    /// Largest abs logit error of a prompt of several tokens (the prefill path).
    pub max_abs: f32,
    /// Largest abs logit error of rows the decode graph computes: the greedy steps, and a
    /// one-token prompt.
    pub decode_max_abs: f32,
    /// Largest mean abs logit error, over the prompt rows and over the greedy steps.
    pub max_mean_abs: f32,
    pub min_top1: f64,
    /// Greedy tokens that must match the golden continuation from the start.
    pub min_greedy: usize,
    /// A position whose golden top-2 logits are closer than this is a near tie: either
    /// choice counts as agreement.
    pub tie: f32,
}

impl Default for ModelTolerance {
    fn default() -> Self {
        ModelTolerance {
            max_abs: 5e-2,
            decode_max_abs: 5e-2,
            max_mean_abs: 1e-2,
            min_top1: 0.99,
            min_greedy: 32,
            tie: 1e-2,
        }
    }
}

impl ModelTolerance {
    /// The default criteria of a precision path. `Exact` is the default above. `Fast` rounds
    /// activations. Prompts of several tokens (f16 tensor-core mat-muls where the adapter has
    /// them) stayed within 5.2e-2 of the golden logits on the H100, so 1e-1. Rows from the
    /// decode graph (int8 activations for Q4_K/Q8_0 weights) moved the golden models' logits
    /// (std ~4) by 0.05-0.18 on average and up to 2.0 at single logits over 32 decode steps of
    /// random weights (lavapipe and H100, 2026-11-23), as llama.cpp's int8 (q8_1) paths do:
    /// they are judged on the mean error (0.25) and on top-1 / greedy choices with near ties
    /// (golden logits within 0.5) excused, their max error only bounded (4); a wrong index or
    /// a missing scale moves the mean by the logits' whole spread.
    pub fn for_precision(precision: crate::precision::Precision) -> ModelTolerance {
        match precision {
            crate::precision::Precision::Exact => ModelTolerance::default(),
            crate::precision::Precision::Fast => ModelTolerance {
                max_abs: 1e-1,
                decode_max_abs: 4.0,
                max_mean_abs: 0.25,
                min_top1: 0.99,
                min_greedy: 32,
                tie: 0.5,
            },
        }
    }
}

/// Per-prompt comparison.
#[derive(Clone, Debug)]
pub struct PromptReport {
    pub index: usize,
    pub tokens: usize,
    pub max_abs: f32,
    pub mean_abs: f32,
    /// Positions (prompt and greedy steps) whose argmax agrees, near ties excused.
    pub top1: f64,
    pub greedy_match: usize,
    pub greedy_len: usize,
    /// Max abs error of the logits the greedy steps chose from (decode path).
    pub greedy_max_abs: f32,
    /// Mean abs error of those logits.
    pub greedy_mean_abs: f32,
}

impl PromptReport {
    pub fn passes(&self, tol: &ModelTolerance) -> bool {
        let prompt_bound = if self.tokens > 1 {
            tol.max_abs
        } else {
            tol.decode_max_abs
        };
        self.max_abs <= prompt_bound
            && self.greedy_max_abs <= tol.decode_max_abs
            && self.mean_abs <= tol.max_mean_abs
            && self.greedy_mean_abs <= tol.max_mean_abs
            && self.top1 >= tol.min_top1
            && self.greedy_match >= tol.min_greedy.min(self.greedy_len)
    }
}

fn argmax(x: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best
}

/// Compares rows of logits; returns (max abs, sum abs, agreeing rows).
fn compare_rows(got: &[f32], want: &[f32], vocab: usize, tie: f32) -> (f32, f64, usize) {
    let (mut max_abs, mut sum_abs, mut agree) = (0f32, 0f64, 0usize);
    for (g, w) in got.chunks(vocab).zip(want.chunks(vocab)) {
        for (a, b) in g.iter().zip(w) {
            let d = (a - b).abs();
            max_abs = if d.is_nan() {
                f32::INFINITY
            } else {
                max_abs.max(d)
            };
            sum_abs += d as f64;
        }
        let (ga, wa) = (argmax(g), argmax(w));
        if ga == wa || w[wa] - w[ga] <= tie {
            agree += 1;
        }
    }
    (max_abs, sum_abs, agree)
}

/// Runs every prompt of `golden` through the model: prompt logits through prefill, then the
/// greedy continuation through the KV-cache decode path.
pub fn check_model(
    gpu: &Gpu,
    weights: &LlamaWeights,
    golden: &Path,
    tol: &ModelTolerance,
    precision: crate::precision::Precision,
) -> Result<Vec<PromptReport>> {
    let bytes = super::read_file(golden)?;
    let st = super::parse(golden, &bytes)?;
    let vocab = weights.config.vocab_size;
    let mut reports = Vec::new();
    for index in 0.. {
        if st.tensor(&format!("tokens_{index}")).is_err() {
            break;
        }
        let tokens: Vec<u32> = super::i32s(&st, golden, &format!("tokens_{index}"))?
            .iter()
            .map(|&t| t as u32)
            .collect();
        let (want, shape) = super::f32s(&st, golden, &format!("logits_{index}"))?;
        if shape != [tokens.len(), vocab] {
            return Err(EngineError::Golden(format!(
                "{}: logits_{index} has shape {shape:?}, the model needs [{}, {vocab}]",
                golden.display(),
                tokens.len()
            )));
        }
        let greedy: Vec<u32> = super::i32s(&st, golden, &format!("greedy_{index}"))?
            .iter()
            .map(|&t| t as u32)
            .collect();
        let (greedy_want, _) = super::f32s(&st, golden, &format!("greedy_logits_{index}"))?;
        let ctx = tokens.len() + greedy.len() + 1;
        let opts = SessionOptions {
            ctx,
            precision,
            ..Default::default()
        };
        let mut session = Session::new(gpu, weights, opts, Sampling::greedy())?;
        let got = session.prompt_logits(&tokens)?;
        let (max_abs, sum_abs, agree) = compare_rows(&got, &want, vocab, tol.tie);

        // Greedy: prefill again (sampling the first token), then decode step by step, each
        // step fed the golden token, so every step's logits are comparable even past a
        // divergence; the match length counts our choices up to the first difference.
        session.reset();
        let mut ours = vec![session.prefill(&tokens)?];
        let mut greedy_got = session.last_logits(false)?;
        while ours.len() < greedy.len() {
            ours.push(session.decode_forcing(greedy[ours.len() - 1])?);
            greedy_got.extend(session.last_logits(true)?);
        }
        let (g_max, g_sum, g_agree) = compare_rows(&greedy_got, &greedy_want, vocab, tol.tie);
        // A step agrees when it picked the golden token or one whose golden logit is within
        // `tie` of it (a near tie, excused as in top-1).
        let greedy_match = ours
            .iter()
            .zip(&greedy)
            .enumerate()
            .take_while(|&(i, (&a, &b))| {
                let row = greedy_want.get(i * vocab..(i + 1) * vocab).unwrap_or(&[]);
                let near_tie = match (row.get(b as usize), row.get(a as usize)) {
                    (Some(wb), Some(wa)) => wb - wa <= tol.tie,
                    _ => false,
                };
                a == b || near_tie
            })
            .count();
        let rows = tokens.len() + greedy.len();
        reports.push(PromptReport {
            index,
            tokens: tokens.len(),
            max_abs,
            mean_abs: (sum_abs / (tokens.len() * vocab) as f64) as f32,
            top1: (agree + g_agree) as f64 / rows as f64,
            greedy_match,
            greedy_len: greedy.len(),
            greedy_max_abs: g_max,
            greedy_mean_abs: (g_sum / greedy_want.len().max(1) as f64) as f32,
        });
    }
    if reports.is_empty() {
        return Err(EngineError::Golden(format!(
            "{}: no tokens_0 tensor",
            golden.display()
        )));
    }
    Ok(reports)
}
