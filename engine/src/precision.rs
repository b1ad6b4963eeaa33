//! Where speed and exactness conflict, the caller chooses. `Exact` is what the golden checks
//! compare (`wgllama logits`, `golden model`); `Fast` is what `run` and `bench` use unless
//! told otherwise, and every benchmark line names the path it measured.

use std::fmt;
use std::str::FromStr;

use crate::gpu::Gpu;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    /// f32 activations and f32 accumulation in every kernel.
    #[default]
    Exact,
    /// Prompt (T > 1) linear layers on tensor cores with f16 inputs (activations rounded to
    /// f16, weights dequantised to f16) and f32 accumulation, where the adapter has
    /// cooperative matrices (elsewhere the exact kernels); decode mat-vecs over Q4_K and Q8_0
    /// weights (and Q6_K ones sharing their input) with activations quantised to int8 per 32
    /// values and `dot4I8Packed` products, as llama.cpp's GPU back ends do by default (float
    /// weights decode exactly either way).
    Fast,
}

impl Precision {
    /// What this path computes on `gpu`, for benchmark and profile headers.
    pub fn describe(self, gpu: &Gpu) -> String {
        match self {
            Precision::Exact => "exact (f32 activations)".into(),
            Precision::Fast if crate::ops::matmul_coop::coop_available(gpu) => {
                "fast (prompt GEMMs: f16 inputs on tensor cores, f32 accumulate; decode: int8 activations for Q4_K/Q8_0 weights)"
                    .into()
            }
            Precision::Fast => {
                "fast (prompt GEMMs exact: no cooperative matrices on this adapter; decode: int8 activations for Q4_K/Q8_0 weights)"
                    .into()
            }
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::Exact => "exact",
            Precision::Fast => "fast",
        })
    }
}

impl FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Precision, String> {
        match s.to_ascii_lowercase().as_str() {
            "exact" => Ok(Precision::Exact),
            "fast" => Ok(Precision::Fast),
            _ => Err(format!("unknown precision {s:?}: exact or fast")),
        }
    }
}
