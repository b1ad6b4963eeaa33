//! `sample.wgsl`: the decode step's token choice on the GPU, written straight into the
//! `tokens` buffer the next step's embedding lookup reads (no CPU round trip but the 4-byte
//! readback for streaming).
//!
//! Semantics (reference/sample.rs implements them plainly):
//! - The row sampled is the last token of the batch: row `min(max(step.n_tokens, 1), rows) - 1`
//!   of `logits[rows, vocab]` (decode has one row; prefill may produce one per token).
//! - Rank order: logits descending in `f32::total_cmp` order (so +0 ranks above -0), ties to
//!   the lower index. Logits should not be NaN.
//! - `temperature <= 0`: greedy, the first token in rank order.
//! - Otherwise masses w_i = exp((x_i - max) / temperature), i.e. softmax(logits / T) up to a
//!   common factor. Keep the first `top_k` tokens in rank order (`top_k` = 0 or >= vocab: all).
//!   If `top_p < 1`, keep the shortest prefix of those whose mass reaches `top_p` times the
//!   mass kept by top-k (so top-p is relative to the top-k set, as in HF transformers and
//!   llama.cpp; always at least one token). With P the mass kept and u = (rand >> 8) / 2^24
//!   (the top 24 bits of `step.rand`, exact in f32 and < 1), pick the first kept token whose
//!   running mass exceeds u * P; if rounding leaves none, the last kept token.
//!
//! Algorithm and cost: see sample.wgsl. One dispatch of one workgroup (greedy on subgroup
//! adapters: `Greedy::Split`, one workgroup per 2048 logits and an atomic ticket); passes over
//! the row: greedy 1; sampling 1 + up to 13 per search for a 128256 vocab (3-6 in practice),
//! with a top-k search when 1 < k < vocab, a top-p search when p < 1, and the sample search:
//! about 5 passes for k=0 p=1 and 14 for k=40 p=0.9. The workgroup uses ~16.1 KiB of workgroup
//! memory. Speed-ups left for later: gather the top-k set (k <= a few hundred) into workgroup
//! memory so top-p and the sample touch only it; spread a search's first pass over many
//! workgroups.

use crate::dispatch::{Cost, Dispatch};
use crate::error::{EngineError, Result};
use crate::gpu::Gpu;
use crate::ops::expect;
use crate::tensor::{Elem, Tensor};

/// Mirrors `Params` in sample.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct SampleParams {
    pub vocab: u32,
    pub rows: u32,
    pub out_index: u32,
    pub top_k: u32,
    pub top_p: f32,
    pub temperature: f32,
    pub idx_digits: u32,
    pub _pad: u32,
}

/// How to choose the next token. `temperature <= 0` means greedy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampling {
    pub temperature: f32,
    /// 0: no top-k limit.
    pub top_k: u32,
    /// >= 1: no top-p limit.
    pub top_p: f32,
}

impl Sampling {
    pub fn greedy() -> Sampling {
        Sampling {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
        }
    }

    pub fn is_greedy(&self) -> bool {
        self.temperature <= 0.0
    }
}

/// Hexadecimal digits of `vocab - 1`, at least 1: the index part of the 64-bit rank key.
fn idx_digits(vocab: usize) -> u32 {
    let bits = usize::BITS - (vocab.saturating_sub(1)).leading_zeros();
    bits.div_ceil(4).max(1)
}

/// The greedy argmax kernels (sample.wgsl, sample_sg.wgsl), slowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Greedy {
    /// 128 lanes, the argmax `sample` also runs.
    Narrow,
    /// 1024 lanes, a workgroup-memory tree.
    Wide,
    /// 1024 lanes, subgroupMin and one barrier.
    Subgroup,
    /// One 256-lane workgroup per 2048 logits, each a single round of loads; the last to
    /// finish picks from their pairs (an atomic ticket).
    Split,
}

/// greedy_split's chunk per workgroup and most workgroups (sample_sg.wgsl SPLIT_CHUNK,
/// SPLIT_MAX_WG), and its scratch words: a (key, index) pair per workgroup and the ticket.
const SPLIT_CHUNK: usize = 2048;
const SPLIT_MAX_WG: usize = 256;
const SPLIT_WORDS: usize = 2 * SPLIT_MAX_WG + 1;

/// greedy_split's workgroups for a row of `vocab` logits, where it covers them.
fn split_workgroups(vocab: usize) -> Option<u32> {
    let n = vocab.div_ceil(SPLIT_CHUNK);
    (n <= SPLIT_MAX_WG).then_some(n as u32)
}

/// The greedy kernels this adapter can run, slowest first (`sample` takes the last).
pub fn greedy_kernels(gpu: &Gpu) -> Vec<Greedy> {
    let mut ks = vec![Greedy::Narrow];
    let wide = gpu.limits.max_compute_invocations_per_workgroup >= 1024
        && gpu.limits.max_compute_workgroup_size_x >= 1024;
    // sample_sg.wgsl keeps a pair per subgroup for at most 256 subgroups.
    let sg = gpu.caps.subgroups && gpu.caps.subgroup_size.0 >= 4;
    if wide {
        ks.push(Greedy::Wide);
        if sg {
            ks.push(Greedy::Subgroup);
        }
    }
    if sg {
        ks.push(Greedy::Split);
    }
    ks
}

fn greedy_entry(kernel: Greedy) -> (&'static wgllama_shaders::Shader, &'static str) {
    match kernel {
        Greedy::Narrow => (&wgllama_shaders::SAMPLE, "greedy"),
        Greedy::Wide => (&wgllama_shaders::SAMPLE, "greedy_wide"),
        Greedy::Subgroup => (&wgllama_shaders::SAMPLE_SG, "greedy_sg"),
        Greedy::Split => (&wgllama_shaders::SAMPLE_SG, "greedy_split"),
    }
}

/// `sample` with greedy decoding through `kernel` (one of `greedy_kernels`), for op tests.
pub fn greedy_with(
    gpu: &Gpu,
    logits: &Tensor,
    step: &wgpu::Buffer,
    tokens: &Tensor,
    out_index: usize,
    kernel: Greedy,
) -> Result<Dispatch> {
    if !greedy_kernels(gpu).contains(&kernel) {
        return Err(EngineError::Shape {
            op: "sample",
            detail: format!("greedy kernel {kernel:?}: not available on this adapter"),
        });
    }
    sample_via(
        gpu,
        logits,
        step,
        tokens,
        out_index,
        &Sampling::greedy(),
        kernel,
    )
}

/// Chooses a token from the last row of `logits[rows, vocab]` (f32) and writes it, as u32, to
/// `tokens[out_index]`. `step` is the step buffer (`crate::step::Step`, 16 bytes): its
/// `n_tokens` picks the row and its `rand` drives sampling.
pub fn sample(
    gpu: &Gpu,
    logits: &Tensor,
    step: &wgpu::Buffer,
    tokens: &Tensor,
    out_index: usize,
    sampling: &Sampling,
) -> Result<Dispatch> {
    let vocab = logits.shape.last().copied().unwrap_or(0);
    let fits = |k: &Greedy| *k != Greedy::Split || split_workgroups(vocab).is_some();
    let best = greedy_kernels(gpu)
        .into_iter()
        .rfind(fits)
        .unwrap_or(Greedy::Narrow);
    sample_via(gpu, logits, step, tokens, out_index, sampling, best)
}

fn sample_via(
    gpu: &Gpu,
    logits: &Tensor,
    step: &wgpu::Buffer,
    tokens: &Tensor,
    out_index: usize,
    sampling: &Sampling,
    greedy: Greedy,
) -> Result<Dispatch> {
    let op = "sample";
    let vocab = *logits.shape.last().unwrap_or(&0);
    if vocab == 0 {
        return Err(EngineError::Shape {
            op,
            detail: format!("logits: empty rows, shape {:?}", logits.shape),
        });
    }
    let rows = logits.numel() / vocab;
    expect(op, "logits", logits, Elem::F32, rows * vocab)?;
    if tokens.elem != Elem::U32 || out_index >= tokens.numel() {
        return Err(EngineError::Shape {
            op,
            detail: format!(
                "tokens: want U32 with more than {out_index} elements, got {:?} {:?}",
                tokens.elem, tokens.shape
            ),
        });
    }
    if step.size() < std::mem::size_of::<crate::step::Step>() as u64 {
        return Err(EngineError::Shape {
            op,
            detail: format!(
                "step: want a 16-byte Step buffer, got {} bytes",
                step.size()
            ),
        });
    }
    let Sampling {
        temperature,
        top_k,
        top_p,
    } = *sampling;
    if temperature.is_nan() || temperature.is_infinite() || top_p.is_nan() {
        return Err(EngineError::Shape {
            op,
            detail: format!("sampling: temperature and top_p must be numbers, got {sampling:?}"),
        });
    }
    let params = SampleParams {
        vocab: vocab as u32,
        rows: rows as u32,
        out_index: out_index as u32,
        top_k,
        top_p,
        temperature,
        idx_digits: idx_digits(vocab),
        _pad: 0,
    };
    let split = sampling.is_greedy() && greedy == Greedy::Split;
    let workgroups = if split {
        split_workgroups(vocab).ok_or_else(|| EngineError::Shape {
            op,
            detail: format!(
                "greedy_split: vocab {vocab} over its {} values",
                SPLIT_MAX_WG * SPLIT_CHUNK
            ),
        })?
    } else {
        1
    };
    let (shader, entry) = if sampling.is_greedy() {
        greedy_entry(greedy)
    } else {
        (&wgllama_shaders::SAMPLE, "sample")
    };
    let pipeline = gpu.pipeline(shader, entry, &[])?;
    let u = gpu.uniform("sample.params", &params);
    let bind_group = if split {
        // The pairs and the ticket (zero between dispatches: the last workgroup resets it).
        let scratch = gpu.upload_u32("sample.split", &[0; SPLIT_WORDS], &[SPLIT_WORDS])?;
        gpu.bind(
            op,
            &pipeline,
            &[&u, step, &logits.buffer, &tokens.buffer, &scratch.buffer],
        )
    } else {
        gpu.bind(op, &pipeline, &[&u, step, &logits.buffer, &tokens.buffer])
    };
    // A lower bound: the argmax pass plus one pass per search that runs.
    let searches = if sampling.is_greedy() {
        0
    } else {
        1 + (top_k > 1 && (top_k as usize) < vocab) as u64 + (top_p < 1.0) as u64
    };
    Ok(Dispatch {
        label: op,
        idle_keys: 0,
        pipeline,
        bind_group,
        workgroups: [workgroups, 1, 1],
        cost: Cost {
            bytes: 4 * vocab as u64 * (1 + searches),
            flops: 4 * vocab as u64 * (1 + searches),
        },
    })
}

/// The per-step random u32 for `Step::rand` (SplitMix64): the generation loop seeds it from
/// `--seed` and draws one value per step, so the same seed gives the same text.
#[derive(Clone, Debug)]
pub struct SampleRng {
    state: u64,
}

impl SampleRng {
    pub fn new(seed: u64) -> SampleRng {
        SampleRng { state: seed }
    }

    pub fn next_rand(&mut self) -> u32 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 32) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_digits_cover_the_vocab() {
        assert_eq!(idx_digits(1), 1);
        assert_eq!(idx_digits(16), 1);
        assert_eq!(idx_digits(17), 2);
        assert_eq!(idx_digits(32000), 4);
        assert_eq!(idx_digits(65536), 4);
        assert_eq!(idx_digits(65537), 5);
        assert_eq!(idx_digits(128256), 5);
    }

    #[test]
    fn same_seed_same_rands() {
        let a: Vec<u32> = {
            let mut r = SampleRng::new(42);
            (0..8).map(|_| r.next_rand()).collect()
        };
        let mut r = SampleRng::new(42);
        assert!(a.iter().all(|&v| v == r.next_rand()));
        assert_ne!(a, {
            let mut r = SampleRng::new(43);
            (0..8).map(|_| r.next_rand()).collect::<Vec<_>>()
        });
    }
}
