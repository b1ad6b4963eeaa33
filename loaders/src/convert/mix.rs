//! Which storage type each tensor gets: the `--type` targets and llama.cpp's Q4_K_M mix.

use crate::{DType, LoadError, Weight};

/// What a whole file is converted to (`--type` / `--dtype`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    F32,
    F16,
    BF16,
    Q8_0,
    /// llama.cpp's Q4_K_M: Q4_K with Q6_K for the tensors that matter most.
    Q4KM,
}

impl Target {
    pub const NAMES: &'static str = "f32, f16, bf16, q8_0, q4_k_m";

    pub fn parse(s: &str) -> Result<Target, LoadError> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "f32" => Target::F32,
            "f16" => Target::F16,
            "bf16" => Target::BF16,
            "q8_0" => Target::Q8_0,
            "q4_k_m" => Target::Q4KM,
            other => {
                return Err(LoadError::BadData {
                    dtype: "target type",
                    problem: format!("unknown type `{other}` (known: {})", Target::NAMES),
                })
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Target::F32 => "f32",
            Target::F16 => "f16",
            Target::BF16 => "bf16",
            Target::Q8_0 => "q8_0",
            Target::Q4KM => "q4_k_m",
        }
    }

    /// llama.cpp's `general.file_type` (`llama_ftype`).
    pub fn file_type(self) -> u32 {
        match self {
            Target::F32 => 0,
            Target::F16 => 1,
            Target::Q8_0 => 7,
            Target::Q4KM => 15,
            Target::BF16 => 32,
        }
    }
}

/// The storage type of weight `w` whose rows have `cols` values, in a file of `target`
/// for a model of `n_layers` layers (`tied`: no output.weight, the embedding is the head).
///
/// Follows llama.cpp's `llama_tensor_get_type` for Llama: norms (1-D) stay F32; for
/// Q4_K_M the LM head (or the tied embedding) is Q6_K, and so are `attn_v` and `ffn_down`
/// of the layers `use_more_bits` picks (the first and last eighth, and every third layer
/// between); everything else is Q4_K. Rows that are not whole super-blocks of 256 fall
/// back as llama.cpp does (Q4_K→Q5_0, Q6_K→Q8_0), and to F16 when not whole blocks of 32.
/// (llama.cpp also gives 70B models' attn_v Q5_K; not done here.)
pub fn tensor_type(target: Target, w: Weight, cols: usize, n_layers: usize, tied: bool) -> DType {
    if w.is_norm() {
        return DType::F32;
    }
    let wanted = match target {
        Target::F32 => DType::F32,
        Target::F16 => DType::F16,
        Target::BF16 => DType::BF16,
        Target::Q8_0 => DType::Q8_0,
        Target::Q4KM => {
            let head = w == Weight::Output || (tied && w == Weight::TokenEmbd);
            let more_bits = |layer: usize| {
                let eighth = n_layers / 8;
                layer < eighth || layer >= 7 * n_layers / 8 || (layer - eighth) % 3 == 2
            };
            match w {
                _ if head => DType::Q6K,
                Weight::AttnV(l) | Weight::FfnDown(l) if more_bits(l) => DType::Q6K,
                _ => DType::Q4K,
            }
        }
    };
    let fallback = match wanted {
        DType::Q4K if !cols.is_multiple_of(256) => DType::Q5_0,
        DType::Q6K if !cols.is_multiple_of(256) => DType::Q8_0,
        t => t,
    };
    if !cols.is_multiple_of(fallback.block_size()) {
        DType::F16
    } else {
        fallback
    }
}
