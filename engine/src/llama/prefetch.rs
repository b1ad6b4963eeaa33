//! L2 prefetches in the decode graph: while a decode kernel that streams little memory runs,
//! `ops::prefetch` dispatches pull the weights the next mat-vecs read into the GPU's L2, so
//! those mat-vecs spend less of their time on HBM. Each layer's weights after attention form a
//! stream (Wo, gate, up); the windows beside attention's split pass, its merge (where it is a
//! dispatch of its own: not folded into the split pass) and Wo take consecutive bytes of it,
//! each up to its budget; SwiGLU's window (where SwiGLU is a dispatch of its own: not written
//! by the gate/up mat-vec, `matvec_swiglu`) takes the down projection's first bytes, and the down's the next layer's q, k, v. By default only the attention window
//! is open: beside the other, shorter kernels a prefetch lengthened the chain on the H100.

use crate::dispatch::Dispatch;
use crate::error::{EngineError, Result};
use crate::gpu::Gpu;
use crate::ops::prefetch;
use crate::tensor::Tensor;

/// Bytes each window prefetches (0: none).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Budgets {
    /// During attention's split pass: the start of Wo, gate, up.
    pub attention: u64,
    /// During the merge dispatch (none where the merge is folded into attention): the next
    /// bytes of that stream.
    pub merge: u64,
    /// During Wo: gate/up bytes after those (never Wo's own).
    pub wo: u64,
    /// During SwiGLU (none where the gate/up mat-vec writes SwiGLU itself, `matvec_swiglu`):
    /// the start of the down projection.
    pub glu: u64,
    /// During the down projection: the next layer's q, k, v.
    pub down: u64,
}

/// The default attention windows on GPUs. On the H100, 16 MiB for F16/BF16 layers (Wo and the
/// start of gate/up) took TinyLlama F16's decode pass 1578 -> 1548-1553 us (tg128 621 -> 632
/// t/s) and Llama-2-7B F16's 6088-6095 -> 6047 (163.4 -> 164.4 t/s), but made Llama-2-7B
/// Q4_K_M 0.9% slower; 4 MiB for quantised layers took TinyLlama Q4_K_M 1156 -> 1144-1146 us
/// and Llama-2-7B Q4_K_M 2845 -> 2827-2828 (tg128 347.5 -> 349.8). 24 MiB outlasted
/// attention; prefetches beside the short merge or SwiGLU kernels cost ~3.8 us a layer each
/// (benches/results/2026-11-24-h100-s12/prefetch-*).
const ATTENTION_FLOAT: u64 = 16 << 20;
const ATTENTION_QUANTISED: u64 = 4 << 20;

impl Budgets {
    /// The budgets for a model on this adapter: `WGLLAMA_PREFETCH="A,M,W,S,D"` (MiB during
    /// attention, merge, Wo, SwiGLU, down; missing fields 0; "0" turns prefetching off) where
    /// set; else on a GPU the attention window, 16 MiB for `float` (F16/BF16) layers and 4 for
    /// quantised ones; none on CPU adapters (no L2 to fill).
    pub fn for_model(gpu: &Gpu, float: bool) -> Result<Budgets> {
        match std::env::var("WGLLAMA_PREFETCH") {
            Ok(s) => Budgets::parse(&s),
            Err(_) if gpu.info.device_type == wgpu::DeviceType::Cpu => Ok(Budgets::default()),
            Err(_) => Ok(Budgets {
                attention: if float {
                    ATTENTION_FLOAT
                } else {
                    ATTENTION_QUANTISED
                },
                ..Budgets::default()
            }),
        }
    }

    /// "A,M,W,S,D" in MiB (up to five non-negative numbers).
    pub fn parse(s: &str) -> Result<Budgets> {
        let bad = || EngineError::Setting {
            name: "WGLLAMA_PREFETCH",
            value: s.to_string(),
            expected: "up to 5 comma-separated MiB budgets (attention, merge, Wo, SwiGLU, down), \
                       e.g. \"16\" or \"0\"",
        };
        let mib: Vec<f64> = s
            .split(',')
            .map(|f| f.trim().parse::<f64>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| bad())?;
        if mib.len() > 5 || mib.iter().any(|m| !(0.0..=4096.0).contains(m)) {
            return Err(bad());
        }
        let at = |i: usize| (mib.get(i).copied().unwrap_or(0.0) * (1u64 << 20) as f64) as u64;
        Ok(Budgets {
            attention: at(0),
            merge: at(1),
            wo: at(2),
            glu: at(3),
            down: at(4),
        })
    }
}

impl std::fmt::Display for Budgets {
    /// "off", or the windows' budgets: "attention 16 MiB, merge 4 MiB".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let named = [
            ("attention", self.attention),
            ("merge", self.merge),
            ("Wo", self.wo),
            ("SwiGLU", self.glu),
            ("down", self.down),
        ];
        let on: Vec<String> = named
            .iter()
            .filter(|(_, b)| *b > 0)
            .map(|(n, b)| match b % (1 << 20) {
                0 => format!("{n} {} MiB", b >> 20),
                _ => format!("{n} {:.3} MiB", *b as f64 / (1u64 << 20) as f64),
            })
            .collect();
        if on.is_empty() {
            f.write_str("off")
        } else {
            f.write_str(&on.join(", "))
        }
    }
}

/// A window: after body dispatch `after`, bytes [from, from + budget) of `stream` (the
/// tensors' buffers end to end).
struct Window {
    after: usize,
    stream: Vec<Tensor>,
    from: u64,
    budget: u64,
}

/// The windows of one decode graph, collected while it is built and inserted at the end.
pub struct Prefetches {
    budgets: Budgets,
    windows: Vec<Window>,
}

fn bytes(ts: &[&Tensor]) -> u64 {
    ts.iter().map(|t| t.buffer.size()).sum()
}

impl Prefetches {
    pub fn new(budgets: Budgets) -> Prefetches {
        Prefetches {
            budgets,
            windows: Vec::new(),
        }
    }

    fn add(&mut self, after: usize, stream: &[&Tensor], from: u64, budget: u64) {
        if budget > 0 && from < bytes(stream) {
            self.windows.push(Window {
                after,
                stream: stream.iter().map(|&t| t.clone()).collect(),
                from,
                budget,
            });
        }
    }

    /// Attention's dispatches start at body index `at` (`n` of them: split pass, and merge
    /// unless folded), then Wo at `at + n`; `stream` = Wo, gate, up.
    pub fn attention(&mut self, at: usize, n: usize, stream: &[&Tensor]) {
        let b = self.budgets;
        self.add(at, stream, 0, b.attention);
        // The merge's window only where the merge is a dispatch: its bytes are not skipped
        // by Wo's window otherwise.
        let merge = if n > 1 { b.merge } else { 0 };
        if n > 1 {
            self.add(at + 1, stream, b.attention, merge);
        }
        let wo = stream.first().map_or(0, |t| t.buffer.size());
        self.add(at + n, stream, (b.attention + merge).max(wo), b.wo);
    }

    /// SwiGLU at body index `at`, the down projection (`down`) after it.
    pub fn glu(&mut self, at: usize, down: &Tensor) {
        self.add(at, &[down], 0, self.budgets.glu);
    }

    /// The down projection at body index `at`; `next` = the next layer's q, k, v.
    pub fn down(&mut self, at: usize, next: &[&Tensor]) {
        self.add(at, next, 0, self.budgets.down);
    }

    /// Inserts each window's prefetch dispatches right after its kernel (no barrier between
    /// them: each has a sink of its own).
    pub fn insert(self, gpu: &Gpu, body: &mut Vec<Dispatch>) -> Result<()> {
        let mut windows = self.windows;
        windows.sort_by_key(|w| std::cmp::Reverse(w.after));
        for w in windows {
            let mut ds = Vec::new();
            let mut base = 0;
            let end = w.from + w.budget;
            for t in &w.stream {
                let size = t.buffer.size();
                let (lo, hi) = (w.from.max(base), end.min(base + size));
                if lo < hi {
                    let n = prefetch::sink_len(hi - lo);
                    let sink = gpu.upload_u32("prefetch.sink", &vec![0; n], &[n])?;
                    ds.push(prefetch::prefetch(
                        gpu,
                        &t.buffer,
                        lo - base,
                        hi - lo,
                        &sink,
                    )?);
                }
                base += size;
            }
            let at = (w.after + 1).min(body.len());
            body.splice(at..at, ds);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_parse_in_mib_and_refuse_junk() {
        let b = Budgets::parse("16, 4").unwrap();
        assert_eq!((b.attention, b.merge, b.down), (16 << 20, 4 << 20, 0));
        assert_eq!(Budgets::parse("0").unwrap(), Budgets::default());
        assert_eq!(b.to_string(), "attention 16 MiB, merge 4 MiB");
        assert_eq!(Budgets::default().to_string(), "off");
        for bad in ["", "x", "1,2,3,4,5,6", "-1", "1e9"] {
            assert!(Budgets::parse(bad).is_err(), "{bad:?}");
        }
    }
}
