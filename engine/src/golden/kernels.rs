//! `wgllama golden kernels`: every case of the golden files in a folder, run on this adapter.
//!
//! The files (made by golden/make_kernel_goldens.py from numpy and the `gguf` package) hold,
//! per case, inputs and the expected output "<case>.want"; the metadata "cases" lists each
//! case's op and parameters. Tolerances are per op and weight type, stated here.

use std::fmt;
use std::path::Path;

use serde_json::Value;
use wgllama_loaders::DType;

use crate::error::{EngineError, Result};
use crate::gpu::Gpu;
use crate::kv_cache::{KvCache, KvDtype};
use crate::ops::{
    attention, dequant, elementwise, embedding, kvcache, matmul, rmsnorm, rope, sample, softmax,
};
use crate::step::{Step, StepBuffer};
use crate::tensor::Tensor;
use crate::testing::{errors, Errors, Tol};

/// One case's outcome.
pub struct CaseResult {
    pub name: String,
    pub op: String,
    pub dtype: String,
    pub shape: String,
    pub errors: Errors,
    pub tol: Tol,
    pub pass: bool,
}

impl fmt::Display for CaseResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<11} {:<5} {:<22} max abs {:.2e} (tol {:.0e})  nmse {:.2e} (tol {:.0e})  {}",
            self.op,
            self.dtype,
            self.shape,
            self.errors.max_abs,
            self.tol.max_abs,
            self.errors.nmse,
            self.tol.nmse,
            if self.pass { "PASS" } else { "FAIL" }
        )
    }
}

/// Tolerance per op and weight type. The references are float64; the kernels accumulate in
/// f32, so errors are rounding of f32 sums over K terms plus the transcendental functions.
/// `max_abs` is relative to the case's largest expected magnitude (at least 1): quantised
/// mat-muls of random blocks produce outputs in the hundreds.
fn tolerance(op: &str, dtype: &str) -> Tol {
    match (op, dtype) {
        ("dequant", _) | ("embedding", _) => Tol {
            nmse: 1e-14,
            max_abs: 1e-6,
        },
        ("matmul", _) => Tol {
            nmse: 1e-11,
            max_abs: 1e-5,
        },
        ("rmsnorm", _) | ("add", _) | ("silu_mul", _) | ("softmax", _) => Tol {
            nmse: 1e-12,
            max_abs: 1e-5,
        },
        ("argmax", _) => Tol {
            nmse: 0.0,
            max_abs: 0.0,
        },
        ("rope", _) => Tol {
            nmse: 1e-11,
            max_abs: 1e-4,
        },
        ("attention", _) => Tol {
            nmse: 1e-11,
            max_abs: 1e-5,
        },
        _ => Tol {
            nmse: 0.0,
            max_abs: 0.0,
        },
    }
}

/// Runs every `*.safetensors` file of `dir`, in name order.
pub fn run_dir(gpu: &Gpu, dir: &Path) -> Result<Vec<CaseResult>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| EngineError::Golden(format!("{}: {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(EngineError::Golden(format!(
            "{}: no .safetensors golden files",
            dir.display()
        )));
    }
    let mut out = Vec::new();
    for f in files {
        out.extend(run_file(gpu, &f)?);
    }
    Ok(out)
}

pub fn run_file(gpu: &Gpu, path: &Path) -> Result<Vec<CaseResult>> {
    let bytes = super::read_file(path)?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| EngineError::Golden(format!("{}: {e}", path.display())))?;
    let st = super::parse(path, &bytes)?;
    let cases = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get("cases"))
        .ok_or_else(|| EngineError::Golden(format!("{}: no 'cases' metadata", path.display())))?;
    let cases: Vec<Value> = serde_json::from_str(cases)
        .map_err(|e| EngineError::Golden(format!("{}: cases: {e}", path.display())))?;
    let mut results = Vec::new();
    for case in &cases {
        let golden = Case {
            st: &st,
            path,
            case,
        };
        results.push(golden.run(gpu)?);
    }
    Ok(results)
}

struct Case<'a> {
    st: &'a safetensors::SafeTensors<'a>,
    path: &'a Path,
    case: &'a Value,
}

impl Case<'_> {
    fn name(&self) -> &str {
        self.case["name"].as_str().unwrap_or("?")
    }
    fn param(&self, key: &str) -> &Value {
        &self.case["params"][key]
    }
    fn usize(&self, key: &str) -> Result<usize> {
        self.param(key)
            .as_u64()
            .map(|v| v as usize)
            .ok_or_else(|| self.bad(&format!("param {key}")))
    }
    fn f32(&self, key: &str) -> Result<f32> {
        self.param(key)
            .as_f64()
            .map(|v| v as f32)
            .ok_or_else(|| self.bad(&format!("param {key}")))
    }
    fn bad(&self, what: &str) -> EngineError {
        EngineError::Golden(format!(
            "{}: case {}: bad or missing {what}",
            self.path.display(),
            self.name()
        ))
    }
    fn f32s(&self, tensor: &str) -> Result<(Vec<f32>, Vec<usize>)> {
        super::f32s(self.st, self.path, &format!("{}.{tensor}", self.name()))
    }
    fn input(&self, gpu: &Gpu, tensor: &str) -> Result<Tensor> {
        let (v, shape) = self.f32s(tensor)?;
        gpu.upload_f32(tensor, &v, &shape)
    }
    /// The case's weight, uploaded from its ggml bytes like a file's tensor.
    fn weight(&self, gpu: &Gpu) -> Result<(Tensor, String)> {
        let dtype_name = self
            .param("wdtype")
            .as_str()
            .ok_or_else(|| self.bad("wdtype"))?
            .to_string();
        let dtype = DType::from_name(&dtype_name).ok_or_else(|| self.bad("wdtype"))?;
        let shape: Vec<usize> = self
            .param("wshape")
            .as_array()
            .ok_or_else(|| self.bad("wshape"))?
            .iter()
            .map(|v| v.as_u64().unwrap_or(0) as usize)
            .collect();
        let t = super::tensor(
            self.st,
            self.path,
            &format!("{}.w", self.name()),
            safetensors::Dtype::U8,
        )?;
        Ok((
            gpu.upload_weight(self.name(), dtype, &shape, t.data())?,
            dtype_name,
        ))
    }

    fn run(&self, gpu: &Gpu) -> Result<CaseResult> {
        let op = self.case["op"]
            .as_str()
            .ok_or_else(|| self.bad("op"))?
            .to_string();
        let (want, want_shape) = if op == "argmax" {
            let t = super::tensor(
                self.st,
                self.path,
                &format!("{}.want", self.name()),
                safetensors::Dtype::U32,
            )?;
            let v: Vec<u32> = bytemuck::pod_collect_to_vec(t.data());
            (v.iter().map(|&x| x as f32).collect(), t.shape().to_vec())
        } else {
            self.f32s("want")?
        };
        let (got, dtype) = self.execute(gpu, &op, &want_shape)?;
        let scale = want.iter().fold(1f32, |m, v| m.max(v.abs())) as f64;
        let base = tolerance(&op, &dtype);
        let tol = Tol {
            nmse: base.nmse,
            max_abs: base.max_abs * scale,
        };
        let errors = errors(&got, &want);
        Ok(CaseResult {
            name: self.name().to_string(),
            shape: format!("{want_shape:?}").replace(' ', ""),
            pass: errors.within(tol),
            op,
            dtype,
            errors,
            tol,
        })
    }

    /// Runs the case's op; returns the output and the dtype label for the report.
    fn execute(&self, gpu: &Gpu, op: &str, want_shape: &[usize]) -> Result<(Vec<f32>, String)> {
        let out = || gpu.poisoned_f32("out", want_shape);
        let f32_ = "f32".to_string();
        match op {
            "dequant" => {
                let (w, dt) = self.weight(gpu)?;
                let y = out()?;
                gpu.run(&[dequant::dequant(gpu, &w, &y)?])?;
                Ok((gpu.read_f32(&y)?, dt))
            }
            "matmul" => {
                let (w, dt) = self.weight(gpu)?;
                let x = self.input(gpu, "x")?;
                let y = out()?;
                gpu.run(&[matmul::matmul(gpu, &x, &w, &y, false)?])?;
                Ok((gpu.read_f32(&y)?, dt))
            }
            "embedding" => {
                let (w, dt) = self.weight(gpu)?;
                let t = super::tensor(
                    self.st,
                    self.path,
                    &format!("{}.tokens", self.name()),
                    safetensors::Dtype::U32,
                )?;
                let ids: Vec<u32> = bytemuck::pod_collect_to_vec(t.data());
                let tokens = gpu.upload_u32("tokens", &ids, &[ids.len()])?;
                let y = out()?;
                gpu.run(&[embedding::embedding(gpu, &w, &tokens, &y)?])?;
                Ok((gpu.read_f32(&y)?, dt))
            }
            "rmsnorm" => {
                let (x, w, y) = (self.input(gpu, "x")?, self.input(gpu, "w")?, out()?);
                gpu.run(&[rmsnorm::rmsnorm(gpu, &x, &w, &y, self.f32("eps")?)?])?;
                Ok((gpu.read_f32(&y)?, f32_))
            }
            "add" => {
                let (a, b, y) = (self.input(gpu, "a")?, self.input(gpu, "b")?, out()?);
                gpu.run(&[elementwise::add(gpu, &a, &b, &y)?])?;
                Ok((gpu.read_f32(&y)?, f32_))
            }
            "silu_mul" => {
                let (g, u, y) = (self.input(gpu, "gate")?, self.input(gpu, "up")?, out()?);
                gpu.run(&[elementwise::silu_mul(gpu, &g, &u, &y)?])?;
                Ok((gpu.read_f32(&y)?, f32_))
            }
            "softmax" => {
                let (x, y) = (self.input(gpu, "x")?, out()?);
                gpu.run(&[softmax::softmax(gpu, &x, &y, self.f32("temperature")?)?])?;
                Ok((gpu.read_f32(&y)?, f32_))
            }
            "argmax" => {
                let x = self.input(gpu, "x")?;
                let ids = gpu.upload_u32("ids", &[u32::MAX], &[1])?;
                let step = StepBuffer::new(gpu)?;
                step.write(
                    gpu,
                    &Step {
                        pos: 0,
                        n_tokens: 1,
                        rand: 0,
                        _pad: 0,
                    },
                );
                gpu.run(&[sample::sample(
                    gpu,
                    &x,
                    &step.buffer,
                    &ids,
                    0,
                    &sample::Sampling::greedy(),
                )?])?;
                Ok((
                    gpu.read_u32(&ids)?.iter().map(|&v| v as f32).collect(),
                    "u32".into(),
                ))
            }
            "rope" => {
                let x = self.input(gpu, "x")?;
                let inv_freq = self.input(gpu, "inv_freq")?;
                let step = StepBuffer::new(gpu)?;
                step.write(
                    gpu,
                    &Step {
                        pos: self.usize("pos")? as u32,
                        n_tokens: x.shape[0] as u32,
                        rand: 0,
                        _pad: 0,
                    },
                );
                let style = match self.param("layout").as_str() {
                    Some("interleaved") => rope::RopeStyle::Interleaved,
                    Some("rotate_half") => rope::RopeStyle::RotateHalf,
                    _ => return Err(self.bad("layout")),
                };
                gpu.run(&[rope::rope(gpu, &x, &inv_freq, &step.buffer, style)?])?;
                Ok((gpu.read_f32(&x)?, f32_))
            }
            "attention" => {
                let q = self.input(gpu, "q")?;
                let (k, kshape) = self.f32s("k")?;
                let (v, _) = self.f32s("v")?;
                let (len, kv_heads, hd) = (kshape[0], kshape[1], kshape[2]);
                let pos = self.usize("pos")?;
                let t = q.shape[0];
                // Fill the cache through the engine's own write kernel: first the history
                // [0, pos) as one batch, then this step's T rows at pos.
                let cache = KvCache::new(gpu, 1, len, kv_heads, hd, KvDtype::F32)?;
                let step = StepBuffer::new(gpu)?;
                let row = kv_heads * hd;
                for (start, end) in [(0, pos), (pos, len)] {
                    if end == start {
                        continue;
                    }
                    let kt = gpu.upload_f32(
                        "k",
                        &k[start * row..end * row],
                        &[end - start, kv_heads, hd],
                    )?;
                    let vt = gpu.upload_f32(
                        "v",
                        &v[start * row..end * row],
                        &[end - start, kv_heads, hd],
                    )?;
                    step.write(
                        gpu,
                        &Step {
                            pos: start as u32,
                            n_tokens: (end - start) as u32,
                            rand: 0,
                            _pad: 0,
                        },
                    );
                    let layer = &cache.layers[0];
                    gpu.run(&[kvcache::kv_write(
                        gpu,
                        &kt,
                        &vt,
                        &layer.k,
                        &layer.v,
                        &step.buffer,
                    )?])?;
                }
                step.write(
                    gpu,
                    &Step {
                        pos: pos as u32,
                        n_tokens: t as u32,
                        rand: 0,
                        _pad: 0,
                    },
                );
                let y = gpu.poisoned_f32("out", &[t, q.shape[1], hd])?;
                let layer = &cache.layers[0];
                gpu.run(&attention::attention(
                    gpu,
                    &q,
                    &layer.k,
                    &layer.v,
                    &step.buffer,
                    &y,
                )?)?;
                Ok((gpu.read_f32(&y)?, f32_))
            }
            other => Err(EngineError::Golden(format!(
                "{}: case {}: unknown op {other}",
                self.path.display(),
                self.name()
            ))),
        }
    }
}
