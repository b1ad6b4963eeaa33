//! `quantize`: re-encode a model (GGUF or Hugging Face folder) as a llama.cpp GGUF file.

use std::path::Path;

use super::{
    check_writable, llama_metadata, permuted_qk_row, rope_freq_factors, tensor_type, vocab,
    write_gguf, PlannedTensor, RowFn, Target,
};
use crate::gguf::{GgufMetadata, GgufTensorSpec};
use crate::quant::dequantize_into;
use crate::{
    DType, LoadError, ModelFile, ModelFormat, RopeLayout, TokenizerSource, Weight,
    ROPE_FREQS_TENSOR,
};

/// What was written: each tensor's name with its input and output type.
#[derive(Debug)]
pub struct QuantizeReport {
    pub tensors: Vec<(String, DType, DType)>,
    pub bytes_out: u64,
}

/// Writes `model` to `out` as a GGUF file of `target`, tensor by tensor. `progress` gets
/// (tensor name, index, count) after each tensor.
pub fn quantize_model(
    model: &ModelFile,
    out: &Path,
    target: Target,
    threads: usize,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<QuantizeReport, LoadError> {
    check_writable(out)?;
    model.check()?;
    let c = model.config();
    let metadata = output_metadata(model, target)?;

    let mut tensors: Vec<PlannedTensor> = Vec::new();
    let mut report = Vec::new();
    // Llama 3.1 frequency factors: copied from a GGUF, computed for a Hugging Face config.
    if model.tensors().iter().any(|t| t.name == ROPE_FREQS_TENSOR) {
        let view = model.tensor(ROPE_FREQS_TENSOR)?;
        report.push((ROPE_FREQS_TENSOR.to_string(), view.info.dtype, DType::F32));
        tensors.push(PlannedTensor {
            spec: spec(ROPE_FREQS_TENSOR, DType::F32, view.info.shape.clone()),
            rows: rows_of(model, view.info.name.as_str(), None)?,
        });
    } else if let Some(factors) = rope_freq_factors(c) {
        report.push((ROPE_FREQS_TENSOR.to_string(), DType::F32, DType::F32));
        let n = factors.len();
        tensors.push(PlannedTensor {
            spec: spec(ROPE_FREQS_TENSOR, DType::F32, vec![n]),
            rows: Box::new(move |_, out| {
                out.copy_from_slice(&factors);
                Ok(())
            }),
        });
    }
    for w in Weight::all(c) {
        let view = model.weight(w)?;
        let shape = view.info.shape.clone();
        let cols = *shape.last().unwrap_or(&1);
        let dtype = tensor_type(target, w, cols, c.n_layers, c.tied_embeddings);
        // Hugging Face Q/K rows are in "rotate half" order; llama.cpp expects pairs adjacent.
        let permute = match (c.rope_layout, w) {
            (RopeLayout::RotateHalf, Weight::AttnQ(_) | Weight::AttnK(_)) => Some(c.head_dim),
            _ => None,
        };
        report.push((w.gguf_name(), view.info.dtype, dtype));
        tensors.push(PlannedTensor {
            spec: spec(&w.gguf_name(), dtype, shape),
            rows: rows_of(model, view.info.name.as_str(), permute)?,
        });
    }
    let count = tensors.len();
    write_gguf(out, &metadata, &tensors, threads, &mut |name, i| {
        progress(name, i, count)
    })?;
    let bytes_out = std::fs::metadata(out)
        .map_err(|source| LoadError::Io {
            path: out.into(),
            source,
        })?
        .len();
    Ok(QuantizeReport {
        tensors: report,
        bytes_out,
    })
}

fn spec(name: &str, dtype: DType, shape: Vec<usize>) -> GgufTensorSpec {
    GgufTensorSpec {
        name: name.into(),
        dtype,
        shape,
    }
}

/// Row `r` of input tensor `name`, dequantised; with `permute = Some(head_dim)` the rows
/// are taken in llama.cpp's Q/K order.
fn rows_of<'a>(
    model: &'a ModelFile,
    name: &str,
    permute: Option<usize>,
) -> Result<RowFn<'a>, LoadError> {
    let view = model.tensor(name)?;
    let cols = *view.info.shape.last().unwrap_or(&1);
    let dtype = view.info.dtype;
    let row_bytes = dtype
        .bytes_for(cols as u64)
        .filter(|_| cols > 0)
        .ok_or_else(|| LoadError::BadData {
            dtype: dtype.name(),
            problem: format!("tensor `{name}`: rows of {cols} values are not whole blocks"),
        })? as usize;
    let data = view.data;
    Ok(Box::new(move |row, out| {
        let src = permute.map_or(row, |hd| permuted_qk_row(row, hd));
        dequantize_into(dtype, &data[src * row_bytes..(src + 1) * row_bytes], out)
    }))
}

/// A GGUF input keeps its metadata (tokenizer included) with the llama.* keys rewritten;
/// a Hugging Face input gets llama.* keys from config.json and a tokenizer converted
/// from tokenizer.json.
fn output_metadata(model: &ModelFile, target: Target) -> Result<GgufMetadata, LoadError> {
    let c = model.config();
    let mut meta = GgufMetadata::new();
    let name = model
        .path()
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("model")
        .to_string();
    match model.format() {
        ModelFormat::Gguf => {
            let input = model.metadata().expect("a GGUF file has metadata");
            for (key, value) in input.iter() {
                // The writer uses the default alignment; the rest is rewritten below.
                if key != "general.alignment" {
                    meta.set(key, value.clone());
                }
            }
            let name = input.get_str("general.name").unwrap_or(&name).to_string();
            llama_metadata(c, &name, target.file_type(), &mut meta);
        }
        ModelFormat::SafeTensors => {
            llama_metadata(c, &name, target.file_type(), &mut meta);
            match model.tokenizer_source() {
                TokenizerSource::HfJson(path) => {
                    for (key, value) in vocab::hf_tokenizer_metadata(path, c)? {
                        meta.set(key, value);
                    }
                }
                _ => {
                    return Err(LoadError::Tokenizer {
                        path: model.path().into(),
                        problem: "no tokenizer.json next to the weights; llama.cpp needs a vocabulary in the GGUF file".into(),
                    })
                }
            }
        }
    }
    Ok(meta)
}
