//! Per-dispatch GPU timing with timestamp queries, for `wgllama profile`.
//!
//! The profiler records a graph itself (through `Session::prefill_with` / `decode_with`), so
//! the normal generation loop carries no timestamps and reads back nothing extra. Two ways:
//! - instrumented: a timestamp between every dispatch inside the one compute pass
//!   (`TIMESTAMP_QUERY_INSIDE_PASSES`), or, without that feature, one pass per dispatch with
//!   begin/end timestamps (slower still, and the output says so);
//! - plain: one timestamp pair around the whole pass, the graph otherwise as the session
//!   records it. Timestamps between dispatches inflate short kernels (~6 us each on the H100),
//!   so only the plain total says what a token really costs.
//!
//! Each recording resolves its queries into a buffer read back once that step has finished.

use std::collections::HashMap;

use crate::dispatch::{Cost, Dispatch};
use crate::error::{EngineError, Result};
use crate::gpu::Gpu;
use crate::llama::graph::Graph;
use crate::llama::Session;

/// wgpu's cap on queries in one query set.
const MAX_QUERIES: u32 = wgpu::QUERY_SET_MAX_QUERIES;

/// How per-dispatch timestamps are taken on this adapter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimestampMode {
    /// Between dispatches inside the one compute pass, as the session records it.
    InsidePass,
    /// One compute pass per dispatch (no `TIMESTAMP_QUERY_INSIDE_PASSES`): adds a pass
    /// boundary per dispatch, so per-kernel times include more overhead.
    PassPerKernel,
}

impl TimestampMode {
    pub fn describe(self) -> &'static str {
        match self {
            TimestampMode::InsidePass => "timestamps between dispatches inside one compute pass",
            TimestampMode::PassPerKernel => {
                "one compute pass per kernel (adapter lacks timestamps inside passes): \
                 per-kernel times include a pass boundary each"
            }
        }
    }
}

/// One timed dispatch. Times are ns on the GPU clock, from the first timestamp this profiler
/// read; `cost` is the dispatch's `Cost` (attention's scaled to the cache position).
#[derive(Clone, Debug)]
pub struct KernelEvent {
    pub label: &'static str,
    pub cost: Cost,
    pub start_ns: f64,
    pub dur_ns: f64,
    /// Which recorded graph run (0, 1, ...) the dispatch belongs to.
    pub run: usize,
}

/// Per-label totals over every instrumented run.
#[derive(Clone, Debug)]
pub struct KernelRow {
    pub label: &'static str,
    pub calls: usize,
    pub total_ms: f64,
    pub mean_us: f64,
    /// Share of the summed kernel time.
    pub percent: f64,
    pub gbps: f64,
    pub gflops: f64,
}

/// What a profiler measured: per-kernel rows (largest total first) and pass totals.
#[derive(Clone, Debug)]
pub struct Profile {
    pub mode: TimestampMode,
    /// Instrumented graph runs (prefill chunks or decode steps).
    pub runs: usize,
    pub rows: Vec<KernelRow>,
    /// Sum of instrumented kernel times.
    pub kernel_total_ms: f64,
    /// Bytes the instrumented runs' dispatches move, by their `Cost`s.
    pub bytes: u64,
    pub flops: u64,
    /// Un-instrumented runs and their summed pass time (one timestamp pair per pass).
    pub plain_runs: usize,
    pub plain_total_ms: f64,
}

enum Pending {
    /// Per dispatch: label, cost, start and end query.
    Kernels(Vec<(&'static str, Cost, u32, u32)>),
    /// Queries 0 and 1 bracket the pass.
    Pass,
}

pub struct Profiler<'g> {
    gpu: &'g Gpu,
    mode: TimestampMode,
    queries: Option<(wgpu::QuerySet, wgpu::Buffer, u32)>,
    period_ns: f64,
    origin: Option<u64>,
    pending: Option<(Pending, u32)>,
    /// An error met while recording (recording callbacks cannot return one).
    error: Option<EngineError>,
    /// Scales attention's cost (counted at a full cache) to the keys a run really reads.
    attention_fraction: f64,
    runs: usize,
    pub events: Vec<KernelEvent>,
    plain_ns: Vec<f64>,
    /// Plain runs record every dispatch except those with this label (`decode_plain_without`).
    skip: Option<&'static str>,
}

impl<'g> Profiler<'g> {
    /// Errors if the adapter has no timestamp queries at all.
    pub fn new(gpu: &'g Gpu) -> Result<Profiler<'g>> {
        if !gpu.caps.timestamps {
            return Err(EngineError::Gpu {
                context: "profiler".into(),
                message: format!("{} has no timestamp queries", gpu.info.name),
            });
        }
        let mode = if gpu.caps.timestamps_in_passes {
            TimestampMode::InsidePass
        } else {
            TimestampMode::PassPerKernel
        };
        Ok(Profiler {
            gpu,
            mode,
            queries: None,
            period_ns: gpu.queue.get_timestamp_period() as f64,
            origin: None,
            pending: None,
            error: None,
            attention_fraction: 1.0,
            runs: 0,
            events: Vec::new(),
            plain_ns: Vec::new(),
            skip: None,
        })
    }

    pub fn mode(&self) -> TimestampMode {
        self.mode
    }

    /// Prefills `tokens` with every dispatch timed; returns the sampled token.
    pub fn prefill(&mut self, session: &mut Session<'_>, tokens: &[u32]) -> Result<u32> {
        self.prompt(session, tokens, true)
    }

    /// Prefills `tokens` with only the pass totals timed.
    pub fn prefill_plain(&mut self, session: &mut Session<'_>, tokens: &[u32]) -> Result<u32> {
        self.prompt(session, tokens, false)
    }

    /// One decode step with every dispatch timed.
    pub fn decode(&mut self, session: &mut Session<'_>) -> Result<u32> {
        self.step(session, true)
    }

    /// One decode step with only the pass total timed.
    pub fn decode_plain(&mut self, session: &mut Session<'_>) -> Result<u32> {
        self.step(session, false)
    }

    /// One decode step with only the pass total timed and every dispatch labelled `label`
    /// left out: the drop in pass time is what those dispatches really cost, with no
    /// timestamps between kernels to inflate them (the outputs are meaningless, the timing is
    /// not). Returns the pass time in ns; it is not added to the report's plain total.
    pub fn decode_plain_without(
        &mut self,
        session: &mut Session<'_>,
        label: &'static str,
    ) -> Result<f64> {
        let before = self.plain_ns.len();
        self.skip = Some(label);
        let id = self.step(session, false);
        self.skip = None;
        id?;
        Ok(self.plain_ns.drain(before..).sum())
    }

    fn prompt(&mut self, s: &mut Session<'_>, tokens: &[u32], instrumented: bool) -> Result<u32> {
        let ctx = s.context() as f64;
        let mut pos = s.position();
        let id = s.prefill_with(tokens, |g, enc, keys| {
            self.attention_fraction = ((pos + g.t) as f64 / ctx).min(1.0);
            pos += g.t;
            self.record(g, enc, keys, instrumented);
        });
        self.finish(id)
    }

    fn step(&mut self, s: &mut Session<'_>, instrumented: bool) -> Result<u32> {
        self.attention_fraction = ((s.position() + 1) as f64 / s.context() as f64).min(1.0);
        let id = s.decode_with(|g, enc, keys| self.record(g, enc, keys, instrumented));
        self.finish(id)
    }

    /// Reads back the last recording (the session has waited for it) and reports any error.
    fn finish(&mut self, id: Result<u32>) -> Result<u32> {
        let id = id?;
        self.collect()?;
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(id),
        }
    }

    fn record(
        &mut self,
        g: &Graph,
        enc: &mut wgpu::CommandEncoder,
        keys: usize,
        instrumented: bool,
    ) {
        // A multi-chunk prefill records the next chunk after the last one was waited for.
        if let Err(e) = self.collect() {
            self.error.get_or_insert(e);
        }
        let n = g.dispatches_at(keys).count() as u32;
        let needed = match (instrumented, self.mode) {
            (false, _) => 2,
            (true, TimestampMode::InsidePass) => n + 2,
            (true, TimestampMode::PassPerKernel) => 2 * n,
        };
        if needed > MAX_QUERIES {
            self.error.get_or_insert(EngineError::Gpu {
                context: "profiler".into(),
                message: format!("{n} dispatches need {needed} timestamps, over {MAX_QUERIES}"),
            });
            g.record(enc, keys);
            return;
        }
        let set = self.query_set(needed);
        let pending = if !instrumented {
            record_plain(g, enc, keys, &set, self.skip);
            Pending::Pass
        } else if self.mode == TimestampMode::InsidePass {
            Pending::Kernels(record_inside_pass(g, enc, keys, &set))
        } else {
            Pending::Kernels(record_pass_per_kernel(g, enc, keys, &set))
        };
        let used = match &pending {
            Pending::Pass => 2,
            Pending::Kernels(k) => k.iter().map(|k| k.3 + 1).max().unwrap_or(0),
        };
        let (_, resolve, _) = self.queries.as_ref().expect("query set was just made");
        enc.resolve_query_set(&set, 0..used, resolve, 0);
        self.pending = Some((pending, used));
    }

    /// The query set, grown to hold at least `n` queries.
    fn query_set(&mut self, n: u32) -> wgpu::QuerySet {
        if self.queries.as_ref().is_none_or(|q| q.2 < n) {
            let set = self.gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("profiler"),
                ty: wgpu::QueryType::Timestamp,
                count: n,
            });
            let resolve = self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("profiler.resolve"),
                size: n as u64 * 8,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            self.queries = Some((set, resolve, n));
        }
        self.queries.as_ref().expect("set above").0.clone()
    }

    fn collect(&mut self) -> Result<()> {
        let Some((pending, used)) = self.pending.take() else {
            return Ok(());
        };
        let (_, resolve, _) = self.queries.as_ref().expect("pending implies a query set");
        let bytes = self.gpu.read_bytes(resolve, used as u64 * 8)?;
        let ticks: Vec<u64> = bytemuck::pod_collect_to_vec(&bytes);
        let origin = *self.origin.get_or_insert(ticks[0]);
        let ns = |a: u64, b: u64| b.saturating_sub(a) as f64 * self.period_ns;
        match pending {
            Pending::Pass => self.plain_ns.push(ns(ticks[0], ticks[1])),
            Pending::Kernels(kernels) => {
                for (label, cost, a, b) in kernels {
                    let (a, b) = (ticks[a as usize], ticks[b as usize]);
                    let cost = if label == "attention" {
                        scale(cost, self.attention_fraction)
                    } else {
                        cost
                    };
                    self.events.push(KernelEvent {
                        label,
                        cost,
                        start_ns: ns(origin, a),
                        dur_ns: ns(a, b),
                        run: self.runs,
                    });
                }
                self.runs += 1;
            }
        }
        Ok(())
    }

    /// Per-label totals of everything measured so far.
    pub fn report(&self) -> Profile {
        let mut by_label: HashMap<&'static str, (usize, f64, u64, u64)> = HashMap::new();
        let mut order = Vec::new();
        for e in &self.events {
            let row = by_label.entry(e.label).or_insert_with(|| {
                order.push(e.label);
                (0, 0.0, 0, 0)
            });
            row.0 += 1;
            row.1 += e.dur_ns;
            row.2 += e.cost.bytes;
            row.3 += e.cost.flops;
        }
        let total_ns: f64 = self.events.iter().map(|e| e.dur_ns).sum();
        let per_ns = |x: u64, ns: f64| if ns > 0.0 { x as f64 / ns } else { 0.0 };
        let mut rows: Vec<KernelRow> = order
            .iter()
            .map(|&label| {
                let (calls, ns, bytes, flops) = by_label[label];
                KernelRow {
                    label,
                    calls,
                    total_ms: ns / 1e6,
                    mean_us: ns / 1e3 / calls as f64,
                    percent: if total_ns > 0.0 {
                        100.0 * ns / total_ns
                    } else {
                        0.0
                    },
                    gbps: per_ns(bytes, ns),
                    gflops: per_ns(flops, ns),
                }
            })
            .collect();
        rows.sort_by(|a, b| b.total_ms.total_cmp(&a.total_ms));
        Profile {
            mode: self.mode,
            runs: self.runs,
            rows,
            kernel_total_ms: total_ns / 1e6,
            bytes: self.events.iter().map(|e| e.cost.bytes).sum(),
            flops: self.events.iter().map(|e| e.cost.flops).sum(),
            plain_runs: self.plain_ns.len(),
            plain_total_ms: self.plain_ns.iter().sum::<f64>() / 1e6,
        }
    }
}

fn scale(c: Cost, f: f64) -> Cost {
    Cost {
        bytes: (c.bytes as f64 * f) as u64,
        flops: (c.flops as f64 * f) as u64,
    }
}

fn pass_desc<'a>(
    set: &'a wgpu::QuerySet,
    begin: Option<u32>,
    end: Option<u32>,
) -> wgpu::ComputePassDescriptor<'a> {
    wgpu::ComputePassDescriptor {
        label: None,
        timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
            query_set: set,
            beginning_of_pass_write_index: begin,
            end_of_pass_write_index: end,
        }),
    }
}

/// The graph exactly as `Graph::record` lays it out (less the dispatches labelled `skip`),
/// with query 0 at the start of the first pass and query 1 at the end of the last.
fn record_plain(
    g: &Graph,
    enc: &mut wgpu::CommandEncoder,
    keys: usize,
    set: &wgpu::QuerySet,
    skip: Option<&'static str>,
) {
    let kept = |d: &&Dispatch| Some(d.label) != skip;
    if g.needs_last_row_copy() {
        let mut pass = enc.begin_compute_pass(&pass_desc(set, Some(0), None));
        g.body_at(keys)
            .filter(kept)
            .for_each(|d| d.record(&mut pass));
        drop(pass);
        g.record_last_row_copy(enc);
        let mut pass = enc.begin_compute_pass(&pass_desc(set, None, Some(1)));
        g.head_at(keys)
            .filter(kept)
            .for_each(|d| d.record(&mut pass));
    } else {
        let mut pass = enc.begin_compute_pass(&pass_desc(set, Some(0), Some(1)));
        g.dispatches_at(keys)
            .filter(kept)
            .for_each(|d| d.record(&mut pass));
    }
}

type Timed = Vec<(&'static str, Cost, u32, u32)>;

/// One pass (two around the last-row copy) with a timestamp before the first dispatch and
/// after each, so a dispatch runs between two consecutive queries.
fn record_inside_pass(
    g: &Graph,
    enc: &mut wgpu::CommandEncoder,
    keys: usize,
    set: &wgpu::QuerySet,
) -> Timed {
    let mut timed = Vec::new();
    let mut q = 0;
    if g.needs_last_row_copy() {
        timed_segment(enc, set, g.body_at(keys), &mut q, &mut timed);
        g.record_last_row_copy(enc);
        timed_segment(enc, set, g.head_at(keys), &mut q, &mut timed);
    } else {
        timed_segment(enc, set, g.dispatches_at(keys), &mut q, &mut timed);
    }
    timed
}

fn timed_segment<'d>(
    enc: &mut wgpu::CommandEncoder,
    set: &wgpu::QuerySet,
    dispatches: impl Iterator<Item = &'d Dispatch>,
    q: &mut u32,
    timed: &mut Timed,
) {
    let mut pass = enc.begin_compute_pass(&Default::default());
    pass.write_timestamp(set, *q);
    for d in dispatches {
        d.record(&mut pass);
        pass.write_timestamp(set, *q + 1);
        timed.push((d.label, d.cost, *q, *q + 1));
        *q += 1;
    }
    *q += 1;
}

/// One pass per dispatch, each with its own begin/end timestamps.
fn record_pass_per_kernel(
    g: &Graph,
    enc: &mut wgpu::CommandEncoder,
    keys: usize,
    set: &wgpu::QuerySet,
) -> Timed {
    let mut timed = Vec::new();
    let mut q = 0;
    let mut one = |enc: &mut wgpu::CommandEncoder, d: &Dispatch| {
        let mut pass = enc.begin_compute_pass(&pass_desc(set, Some(q), Some(q + 1)));
        d.record(&mut pass);
        timed.push((d.label, d.cost, q, q + 1));
        q += 2;
    };
    g.body_at(keys).for_each(|d| one(enc, d));
    if g.needs_last_row_copy() {
        g.record_last_row_copy(enc);
    }
    g.head_at(keys).for_each(|d| one(enc, d));
    timed
}
