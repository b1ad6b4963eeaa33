//! f16 copies of quantised weights for long prompt passes.
//!
//! A prompt GEMM over a quantised weight decodes each weight tile in every workgroup that
//! reads it (T / 128 times for T tokens); its decode made Q4_K and Q6_K GEMMs run at
//! ~120-135 TFLOP/s on the H100 where F16 ones reach ~165-195. Past ~160 tokens (H100) it
//! pays to decode each weight once into a scratch buffer (`matmul_coop::dequant_f16`, the
//! GEMM's own decode, so the products are the same) and run the F16 GEMMs over the copies,
//! fused as the F16 models' are (q/k/v in one dispatch, SwiGLU inside the gate/up GEMM).

use crate::dispatch::Dispatch;
use crate::error::Result;
use crate::gpu::Gpu;
use crate::llama::graph::tensor_core_prompts;
use crate::llama::weights::LlamaWeights;
use crate::ops::matmul_coop;
use crate::precision::Precision;
use crate::tensor::{Elem, Tensor};
use wgllama_loaders::DType;

/// Prompt chunks of at least this many tokens take the f16 copies by default
/// (`SessionOptions::dequant_min_tokens`). On the H100 (benches/results/2026-11-24-h100-s15/
/// threshold/), copies against none: TinyLlama Q4_K_M pp128 +5%, pp192 +12%, pp256 +10%;
/// Llama-2-7B Q4_K_M pp128 -4%, pp192 +16%, pp256 +15% (the decode writes 2 bytes a value
/// whatever T; the GEMMs save time in proportion to T).
pub const DEQUANT_MIN_TOKENS: usize = 160;

/// Scratch buffers for the f16 copies, one per position in a group of weights that share an
/// input: slot 0 holds q, Wo, gate or down while its GEMM runs, slot 1 k or up, slot 2 v.
/// Each slot is as large as the largest quantised weight it takes. One scratch serves every
/// prompt graph of a session: passes run one after another on the queue.
pub struct DequantScratch {
    slots: Vec<Option<wgpu::Buffer>>,
    /// Prompt chunks of at least this many tokens use it.
    pub min_tokens: usize,
}

/// The groups a layer's prompt GEMMs read, as slots: [q, k, v], [Wo], [gate, up], [down].
fn groups(l: &crate::llama::weights::LayerWeights) -> [Vec<&Tensor>; 4] {
    [
        vec![&l.wq, &l.wk, &l.wv],
        vec![&l.wo],
        vec![&l.w_gate, &l.w_up],
        vec![&l.w_down],
    ]
}

fn quantised(w: &Tensor) -> bool {
    matches!(w.elem, Elem::Weight(d) if d.is_quantized())
}

impl DequantScratch {
    /// The scratch for prompt chunks of up to `chunk` tokens, or None where no pass would use
    /// it: the exact precision, no cooperative matrices, no quantised layer weight, a GEMM row
    /// length not a multiple of 16, chunks shorter than `min_tokens`, or a copy beyond the
    /// adapter's largest binding.
    pub fn new(
        gpu: &Gpu,
        w: &LlamaWeights,
        precision: Precision,
        chunk: usize,
        min_tokens: usize,
    ) -> Result<Option<DequantScratch>> {
        if chunk < min_tokens.max(2) || !tensor_core_prompts(gpu, &w.config, precision) {
            return Ok(None);
        }
        let mut bytes = [0u64; 3];
        for l in &w.layers {
            for g in groups(l) {
                for (slot, t) in g.iter().enumerate() {
                    if !quantised(t) {
                        continue;
                    }
                    bytes[slot] = bytes[slot].max(2 * t.numel() as u64);
                }
            }
        }
        // No quantised weight, or a copy larger than one binding (an f16 copy is up to 3.6x
        // its Q4_K weight): the GEMMs decode as they stage, as without the option.
        if bytes[0] == 0 || bytes.iter().any(|&b| b > gpu.max_binding()) {
            return Ok(None);
        }
        let slots = bytes
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                (b > 0)
                    .then(|| gpu.storage(&format!("dequant_scratch.{i}"), b))
                    .transpose()
            })
            .collect::<Result<_>>()?;
        Ok(Some(DequantScratch { slots, min_tokens }))
    }

    /// Bytes of GPU memory the slots hold.
    pub fn bytes(&self) -> u64 {
        self.slots.iter().flatten().map(|b| b.size()).sum()
    }

    /// One line for `bench` and `profile`: when the copies are taken and what they hold.
    pub fn describe(&self) -> String {
        format!(
            "prompt chunks of >= {} tokens decode quantised weights to f16 copies first ({:.1} MiB scratch)",
            self.min_tokens,
            self.bytes() as f64 / (1 << 20) as f64
        )
    }

    /// The weights a prompt GEMM reads for `ws` (one group, slot i for ws[i]): the f16 copy
    /// of each quantised weight (a view of its slot, written by `decode`), each other weight
    /// itself.
    pub fn views(&self, ws: &[&Tensor]) -> Vec<Tensor> {
        ws.iter()
            .enumerate()
            .map(|(i, w)| match self.slots.get(i).and_then(|s| s.as_ref()) {
                Some(buffer) if quantised(w) => Tensor {
                    buffer: buffer.clone(),
                    elem: Elem::Weight(DType::F16),
                    shape: w.shape.clone(),
                },
                _ => (*w).clone(),
            })
            .collect()
    }

    /// Pushes onto `body` the dispatches that write `views(ws)`'s copies: one for each run of
    /// quantised weights of one type.
    pub fn decode(&self, gpu: &Gpu, body: &mut Vec<Dispatch>, ws: &[&Tensor]) -> Result<()> {
        let views = self.views(ws);
        let pairs: Vec<(&Tensor, &Tensor)> = ws
            .iter()
            .copied()
            .zip(&views)
            .filter(|(w, _)| quantised(w))
            .collect();
        for run in pairs.chunk_by(|a, b| a.0.elem == b.0.elem) {
            let (src, dst): (Vec<&Tensor>, Vec<&Tensor>) = run.iter().copied().unzip();
            body.push(matmul_coop::dequant_f16(gpu, &src, &dst)?);
        }
        Ok(())
    }
}

/// The weights a prompt pass's GEMMs read for the group `ws`: with a scratch, its views
/// (`DequantScratch::views`), else the weights themselves.
pub fn prompt_views(scratch: Option<&DequantScratch>, ws: &[&Tensor]) -> Vec<Tensor> {
    match scratch {
        Some(s) => s.views(ws),
        None => ws.iter().map(|w| (*w).clone()).collect(),
    }
}

/// `prompt_views`, with the dispatches that write the copies pushed onto `body` first.
pub fn prompt_weights(
    gpu: &Gpu,
    scratch: Option<&DequantScratch>,
    body: &mut Vec<Dispatch>,
    ws: &[&Tensor],
) -> Result<Vec<Tensor>> {
    if let Some(s) = scratch {
        s.decode(gpu, body, ws)?;
    }
    Ok(prompt_views(scratch, ws))
}
