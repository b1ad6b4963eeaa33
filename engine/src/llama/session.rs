//! Running a model: prompts in chunks (prefill), then one submission per generated token with
//! only the sampled id read back.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::error::{EngineError, Result};
use crate::gpu::Gpu;
use crate::kv_cache::{KvCache, KvDtype};
use crate::llama::dequant_scratch::{DequantScratch, DEQUANT_MIN_TOKENS};
use crate::llama::graph::{Graph, GraphIo, LogitRows};
use crate::llama::weights::LlamaWeights;
use crate::ops::sample::{SampleRng, Sampling};
use crate::step::{Step, StepBuffer};
use crate::tensor::{Elem, Tensor};

/// Decode steps `decode_stream` keeps submitted ahead of the token it is reading back: step
/// i + 1 is recorded and queued while the GPU runs step i (the sampled id never leaves the
/// GPU between steps), so CPU encoding overlaps GPU work instead of adding to it.
pub const DECODE_DEPTH: usize = 2;

/// Prefill graphs a session keeps built (full chunks, the last chunk's length, all-rows
/// variants): each holds activation buffers for its length, so the cache is bounded.
pub const PREFILL_GRAPHS: usize = 4;

#[derive(Clone, Debug)]
pub struct SessionOptions {
    /// KV-cache slots: the longest prompt + generation this session can hold.
    pub ctx: usize,
    pub kv_dtype: KvDtype,
    /// Prompt tokens per prefill pass: bounds activation memory for long prompts.
    pub prefill_chunk: usize,
    /// Prompt-pass dispatches recorded per submission (`Graph::record_in_parts`).
    pub submit_every: usize,
    /// Exact (golden checks) or fast (tensor-core prompts) arithmetic: `precision.rs`.
    pub precision: crate::precision::Precision,
    /// Decode's L2 prefetches (`llama/prefetch.rs`); `None`: the adapter's default
    /// (`Budgets::for_model`, which reads WGLLAMA_PREFETCH).
    pub prefetch: Option<crate::llama::prefetch::Budgets>,
    /// Seeds the random numbers sampling draws from (one per step): the same seed, prompt and
    /// `Sampling` give the same tokens.
    pub seed: u64,
    /// Fast-path prompt chunks of at least this many tokens decode quantised weights once into
    /// f16 copies and run F16 GEMMs over them (`llama/dequant_scratch.rs`: faster prompts for
    /// a scratch of the largest weights in f16, allocated only where a chunk can use it);
    /// `usize::MAX`: never.
    pub dequant_min_tokens: usize,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            ctx: 2048,
            kv_dtype: KvDtype::F32,
            prefill_chunk: 256,
            submit_every: crate::llama::graph::SUBMIT_EVERY,
            precision: crate::precision::Precision::Exact,
            prefetch: None,
            seed: 0,
            dequant_min_tokens: DEQUANT_MIN_TOKENS,
        }
    }
}

/// Timings of one `generate` call.
#[derive(Clone, Debug, Default)]
pub struct GenerateStats {
    pub prompt_tokens: usize,
    pub prefill: Duration,
    /// From the call to the first generated token being known on the CPU.
    pub time_to_first_token: Duration,
    pub generated: usize,
    pub decode: Duration,
}

/// A caller's recording of a graph into an encoder (the profiler's timestamps), for a pass
/// whose last token attends to the given number of keys (`Graph::record`'s arguments).
type RecordHook<'a> = dyn FnMut(&Graph, &mut wgpu::CommandEncoder, usize) + 'a;

/// A submitted step whose token id is being copied into a readback slot.
struct PendingToken {
    buffer: wgpu::Buffer,
    submission: wgpu::SubmissionIndex,
    mapped: std::sync::mpsc::Receiver<std::result::Result<(), wgpu::BufferAsyncError>>,
}

pub struct Session<'m> {
    gpu: &'m Gpu,
    weights: &'m LlamaWeights,
    opts: SessionOptions,
    kv: KvCache,
    step: StepBuffer,
    /// Prompt token ids, one chunk at a time [prefill_chunk].
    prompt_tokens: Tensor,
    /// The sampled token id [1]: written by the sampler, read by the next decode's embedding.
    sampled: Tensor,
    /// A ring of 4-byte staging buffers: decode step i copies its sampled id into slot
    /// i % DECODE_DEPTH, so up to DECODE_DEPTH steps can be in flight (`decode_stream`).
    readback: Vec<wgpu::Buffer>,
    sampling: Sampling,
    rng: SampleRng,
    decode: Graph,
    /// Prefill graphs by (chunk length, all rows), most recently used last; at most
    /// `PREFILL_GRAPHS` are kept (a server's prompts end in chunks of every length).
    prefill: HashMap<(usize, bool), Graph>,
    prefill_order: Vec<(usize, bool)>,
    /// Key of the prefill graph that ran the last prompt chunk (its logits are `last_logits`).
    last_chunk: Option<(usize, bool)>,
    /// Tokens already in the KV cache.
    pos: usize,
    /// f16 copies of quantised weights for long prompt chunks (`opts.dequant_min_tokens`).
    scratch: Option<DequantScratch>,
}

impl<'m> Session<'m> {
    pub fn new(
        gpu: &'m Gpu,
        weights: &'m LlamaWeights,
        mut opts: SessionOptions,
        sampling: Sampling,
    ) -> Result<Session<'m>> {
        let c = &weights.config;
        if opts.prefetch.is_none() {
            opts.prefetch = Some(crate::llama::prefetch::Budgets::for_model(
                gpu,
                weights.float_layers(),
            )?);
        }
        if opts.ctx == 0 || opts.prefill_chunk == 0 || opts.submit_every == 0 {
            return Err(EngineError::Shape {
                op: "session",
                detail: "ctx, prefill_chunk and submit_every must be > 0".into(),
            });
        }
        let kv = KvCache::new(
            gpu,
            c.n_layers,
            opts.ctx,
            c.n_kv_heads,
            c.head_dim,
            opts.kv_dtype,
        )?;
        let step = StepBuffer::new(gpu)?;
        let prompt_tokens = gpu.upload_u32(
            "prompt_tokens",
            &vec![0; opts.prefill_chunk],
            &[opts.prefill_chunk],
        )?;
        let sampled = gpu.upload_u32("sampled", &[0], &[1])?;
        let readback = (0..DECODE_DEPTH)
            .map(|_| {
                gpu.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("sampled.readback"),
                    size: 4,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            })
            .collect();
        let io = GraphIo {
            tokens: &sampled,
            step: &step.buffer,
            kv: &kv,
            sampled: Some((&sampled, &sampling)),
            precision: opts.precision,
            prefetch: opts.prefetch.unwrap_or_default(),
            scratch: None,
        };
        let decode = Graph::build(gpu, weights, 1, LogitRows::Last, &io)?;
        let scratch = DequantScratch::new(
            gpu,
            weights,
            opts.precision,
            opts.prefill_chunk,
            opts.dequant_min_tokens,
        )?;
        Ok(Session {
            scratch,
            gpu,
            weights,
            kv,
            step,
            prompt_tokens,
            sampled,
            readback,
            sampling,
            rng: SampleRng::new(opts.seed),
            decode,
            prefill: HashMap::new(),
            prefill_order: Vec::new(),
            last_chunk: None,
            pos: 0,
            opts,
        })
    }

    /// Forgets the context (the cache is overwritten from position 0).
    pub fn reset(&mut self) {
        self.pos = 0;
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    /// KV-cache slots: the most tokens (prompt + generated) this session holds.
    pub fn context(&self) -> usize {
        self.opts.ctx
    }

    /// Prefill graphs currently built (at most `PREFILL_GRAPHS`).
    pub fn prefill_graphs(&self) -> usize {
        self.prefill.len()
    }

    /// Every dispatch of the prefill graphs built so far (their labels tell which kernels a
    /// prompt pass ran).
    pub fn prefill_dispatches(&self) -> impl Iterator<Item = &crate::dispatch::Dispatch> {
        self.prefill.values().flat_map(|g| g.dispatches())
    }

    /// The f16 copies' scratch for long prompt chunks, where this session has one.
    pub fn dequant_scratch(&self) -> Option<&DequantScratch> {
        self.scratch.as_ref()
    }

    pub fn decode_graph(&self) -> &Graph {
        &self.decode
    }

    fn check_room(&self, n: usize) -> Result<()> {
        if n == 0 {
            return Err(EngineError::Shape {
                op: "prompt",
                detail: "the prompt is empty (no tokens)".into(),
            });
        }
        if self.pos + n > self.opts.ctx {
            return Err(EngineError::Shape {
                op: "prompt",
                detail: format!(
                    "{} tokens at position {} do not fit the context of {} tokens (raise --ctx, up to the model's {})",
                    n, self.pos, self.opts.ctx, self.weights.config.context_length
                ),
            });
        }
        Ok(())
    }

    fn prefill_graph(&mut self, t: usize, all_rows: bool) -> Result<&Graph> {
        let key = (t, all_rows);
        if !self.prefill.contains_key(&key) {
            // The prompt buffer holds a whole chunk; this graph reads its first t ids.
            let tokens = Tensor {
                buffer: self.prompt_tokens.buffer.clone(),
                elem: Elem::U32,
                shape: vec![t],
            };
            let rows = if all_rows {
                LogitRows::All
            } else {
                LogitRows::Last
            };
            let sampled = if all_rows {
                None
            } else {
                Some((&self.sampled, &self.sampling))
            };
            let io = GraphIo {
                tokens: &tokens,
                step: &self.step.buffer,
                kv: &self.kv,
                sampled,
                precision: self.opts.precision,
                prefetch: Default::default(),
                scratch: self.scratch.as_ref(),
            };
            let g = Graph::build(self.gpu, self.weights, t, rows, &io)?;
            self.prefill.insert(key, g);
        }
        self.prefill_order.retain(|k| *k != key);
        self.prefill_order.push(key);
        // Evict the least recently used graphs beyond the bound (their buffers go with them);
        // never the one just used, nor the one whose logits `last_logits` reports.
        while self.prefill_order.len() > PREFILL_GRAPHS {
            let Some(i) = self
                .prefill_order
                .iter()
                .position(|k| *k != key && Some(*k) != self.last_chunk)
            else {
                break;
            };
            let old = self.prefill_order.remove(i);
            self.prefill.remove(&old);
        }
        Ok(&self.prefill[&key])
    }

    /// Runs `tokens` through the model in chunks, appending them to the cache. With
    /// `all_rows`, returns the logits of every token [n * vocab]; otherwise samples the next
    /// token (left on the GPU for `decode`) and returns its id. `record` None: each chunk is
    /// recorded in parts submitted as they are recorded (`Graph::record_in_parts`) and only
    /// the last chunk is waited for (the queue orders the chunks' token and step writes);
    /// Some: the chunk's graph is recorded by `record` into one encoder, and each chunk is
    /// submitted and waited for (the profiler's hook).
    fn run_prompt(
        &mut self,
        tokens: &[u32],
        all_rows: bool,
        mut record: Option<&mut RecordHook<'_>>,
    ) -> Result<(Vec<f32>, u32)> {
        self.check_room(tokens.len())?;
        let mut logits = Vec::new();
        let chunk = self.opts.prefill_chunk;
        let every = self.opts.submit_every;
        let mut next = 0;
        let n_chunks = tokens.len().div_ceil(chunk);
        for (i, part) in tokens.chunks(chunk).enumerate() {
            let t = part.len();
            self.gpu
                .queue
                .write_buffer(&self.prompt_tokens.buffer, 0, bytemuck::cast_slice(part));
            self.step.write(
                self.gpu,
                &Step {
                    pos: self.pos as u32,
                    n_tokens: t as u32,
                    rand: self.rng.next_rand(),
                    _pad: 0,
                },
            );
            let gpu = self.gpu;
            let keys = self.pos + t;
            let graph = self.prefill_graph(t, all_rows)?;
            let enc = match record.as_mut() {
                Some(r) => {
                    let mut enc = gpu.device.create_command_encoder(&Default::default());
                    r(graph, &mut enc, keys);
                    enc
                }
                None => graph.record_in_parts(gpu, every, keys),
            };
            if all_rows {
                gpu.queue.submit([enc.finish()]);
                logits.extend(gpu.read_f32(&graph.acts.logits)?);
            } else if record.is_some() || i + 1 == n_chunks {
                next = self.finish_with_readback(enc)?;
            } else {
                gpu.queue.submit([enc.finish()]);
            }
            self.pos += t;
            self.last_chunk = Some((t, all_rows));
        }
        Ok((logits, next))
    }

    /// Logits of every prompt position [n * vocab], from the prefill path, starting at position 0.
    pub fn prompt_logits(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        self.reset();
        Ok(self.run_prompt(tokens, true, None)?.0)
    }

    /// Appends a prompt and returns the sampled next token.
    pub fn prefill(&mut self, tokens: &[u32]) -> Result<u32> {
        Ok(self.run_prompt(tokens, false, None)?.1)
    }

    /// `prefill` with each chunk's graph recorded by `record` instead of `Graph::record`: the
    /// profiler's hook (it adds timestamps). Each chunk is submitted and waited for before
    /// `record` is called again.
    pub fn prefill_with(
        &mut self,
        tokens: &[u32],
        mut record: impl FnMut(&Graph, &mut wgpu::CommandEncoder, usize),
    ) -> Result<u32> {
        Ok(self.run_prompt(tokens, false, Some(&mut record))?.1)
    }

    /// Feeds the last sampled token and samples the next: one submission, 4 bytes read back.
    pub fn decode(&mut self) -> Result<u32> {
        self.decode_with(Graph::record)
    }

    /// `decode` with the graph recorded by `record` (the profiler's hook); the step has
    /// finished on the GPU when this returns.
    pub fn decode_with(
        &mut self,
        record: impl FnOnce(&Graph, &mut wgpu::CommandEncoder, usize),
    ) -> Result<u32> {
        self.check_room(1)?;
        self.step.write(
            self.gpu,
            &Step {
                pos: self.pos as u32,
                n_tokens: 1,
                rand: self.rng.next_rand(),
                _pad: 0,
            },
        );
        let mut enc = self.gpu.device.create_command_encoder(&Default::default());
        record(&self.decode, &mut enc, self.pos + 1);
        let id = self.finish_with_readback(enc)?;
        self.pos += 1;
        Ok(id)
    }

    /// Like `decode`, but feeds `token` instead of the last sampled one (teacher forcing, for
    /// golden checks).
    pub fn decode_forcing(&mut self, token: u32) -> Result<u32> {
        self.gpu
            .queue
            .write_buffer(&self.sampled.buffer, 0, bytemuck::bytes_of(&token));
        self.decode()
    }

    /// Decode's L2 prefetch budgets (resolved at creation).
    pub fn prefetch(&self) -> crate::llama::prefetch::Budgets {
        self.opts.prefetch.unwrap_or_default()
    }

    /// The logits the last `decode` or `prefill` chose from [vocab] (checks only: a readback).
    pub fn last_logits(&self, from_decode: bool) -> Result<Vec<f32>> {
        if from_decode {
            return self.gpu.read_f32(&self.decode.acts.logits);
        }
        // The graph of the last chunk, not any prefill graph: a chunked prompt leaves several.
        let g = self
            .last_chunk
            .filter(|k| !k.1)
            .and_then(|k| self.prefill.get(&k));
        match g {
            Some(g) => self.gpu.read_f32(&g.acts.logits),
            None => Err(EngineError::Shape {
                op: "last_logits",
                detail: "no prefill has run".into(),
            }),
        }
    }

    fn finish_with_readback(&self, enc: wgpu::CommandEncoder) -> Result<u32> {
        let pending = self.submit_with_readback(enc, 0);
        self.read_token(pending)
    }

    /// Appends the copy of the sampled id into readback slot `slot` to `enc`, submits it and
    /// starts mapping the slot; `read_token` waits for it.
    fn submit_with_readback(&self, mut enc: wgpu::CommandEncoder, slot: usize) -> PendingToken {
        let buffer = self.readback[slot].clone();
        enc.copy_buffer_to_buffer(&self.sampled.buffer, 0, &buffer, 0, 4);
        let submission = self.gpu.queue.submit([enc.finish()]);
        let (tx, rx) = std::sync::mpsc::channel();
        buffer.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        PendingToken {
            buffer,
            submission,
            mapped: rx,
        }
    }

    /// Waits for a submitted step (and everything queued before it, nothing after) and
    /// returns its token id.
    fn read_token(&self, p: PendingToken) -> Result<u32> {
        let gpu_err = |m: String| EngineError::Gpu {
            context: "token readback".into(),
            message: m,
        };
        self.gpu
            .device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(p.submission),
                timeout: None,
            })
            .map_err(|e| gpu_err(e.to_string()))?;
        p.mapped
            .recv()
            .map_err(|e| gpu_err(e.to_string()))?
            .map_err(|e| gpu_err(e.to_string()))?;
        let id = {
            let view = p
                .buffer
                .get_mapped_range(..)
                .map_err(|e| gpu_err(e.to_string()))?;
            u32::from_le_bytes([view[0], view[1], view[2], view[3]])
        };
        p.buffer.unmap();
        Ok(id)
    }

    /// Up to `n` decode steps, each feeding the previous step's sampled token, with
    /// `DECODE_DEPTH` steps in flight: step i + 1 is recorded and submitted before step i's
    /// token is read back. `on_token` gets each new token in order; returning false stops.
    /// Returns the tokens delivered. Steps submitted past a stop are discarded: the position
    /// and the fed-back token are restored to what was delivered, and their cache writes lie
    /// beyond the position, to be overwritten.
    pub fn decode_stream(
        &mut self,
        n: usize,
        mut on_token: impl FnMut(u32) -> bool,
    ) -> Result<usize> {
        if n == 0 {
            return Ok(0);
        }
        self.check_room(n)?;
        let start = self.pos;
        let mut in_flight = std::collections::VecDeque::new();
        let (mut submitted, mut delivered) = (0, 0);
        let mut stopped_at = None;
        while delivered < n {
            while submitted < n && in_flight.len() < DECODE_DEPTH && stopped_at.is_none() {
                self.step.write(
                    self.gpu,
                    &Step {
                        pos: (start + submitted) as u32,
                        n_tokens: 1,
                        rand: self.rng.next_rand(),
                        _pad: 0,
                    },
                );
                let mut enc = self.gpu.device.create_command_encoder(&Default::default());
                self.decode.record(&mut enc, start + submitted + 1);
                in_flight.push_back(self.submit_with_readback(enc, submitted % DECODE_DEPTH));
                submitted += 1;
            }
            let Some(p) = in_flight.pop_front() else {
                break;
            };
            let id = self.read_token(p)?;
            if stopped_at.is_some() {
                continue; // draining steps submitted past the stop
            }
            delivered += 1;
            if !on_token(id) {
                stopped_at = Some(id);
            }
        }
        // Drain what is still in flight (mapped buffers must be unmapped before reuse).
        while let Some(p) = in_flight.pop_front() {
            self.read_token(p)?;
        }
        self.pos = start + delivered;
        if let Some(last) = stopped_at.filter(|_| submitted > delivered) {
            // Later steps overwrote the fed-back id: put the last delivered token back.
            self.gpu
                .queue
                .write_buffer(&self.sampled.buffer, 0, bytemuck::bytes_of(&last));
        }
        Ok(delivered)
    }

    /// Prompt, then up to `max_new` tokens, calling `on_token` with each as soon as it is
    /// known; stops early at a token in `stop` or when `on_token` returns false.
    pub fn generate(
        &mut self,
        prompt: &[u32],
        max_new: usize,
        stop: &[u32],
        mut on_token: impl FnMut(u32) -> bool,
    ) -> Result<GenerateStats> {
        let start = Instant::now();
        let mut stats = GenerateStats {
            prompt_tokens: prompt.len(),
            ..Default::default()
        };
        if max_new > 0 {
            self.check_room(prompt.len() + max_new)?;
        }
        let token = self.prefill(prompt)?;
        stats.prefill = start.elapsed();
        stats.time_to_first_token = stats.prefill;
        let decode_start = Instant::now();
        if max_new > 0 && !stop.contains(&token) {
            stats.generated = 1;
            if on_token(token) && max_new > 1 {
                let mut generated = 1;
                self.decode_stream(max_new - 1, |t| {
                    if stop.contains(&t) {
                        return false;
                    }
                    generated += 1;
                    on_token(t)
                })?;
                stats.generated = generated;
            }
        }
        stats.decode = decode_start.elapsed();
        Ok(stats)
    }
}
