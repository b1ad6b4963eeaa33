//! Writing models: llama.cpp-style GGUF files (the `quantize` and `synth` commands).
//!
//! Everything streams: a tensor is described by its shape, its storage type and a
//! function that produces any one of its rows as f32. Rows are made and encoded in
//! parallel a batch at a time and written in order, so memory stays at a few batches
//! whatever the model size, and the bytes do not depend on the number of threads.

mod mix;
mod quantize_model;
pub mod vocab;

use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};

use crate::gguf::{GgufMetadata, GgufStreamWriter, GgufTensorSpec, GgufValue};
use crate::{LlamaConfig, LoadError, RopeScaling};

pub use mix::{tensor_type, Target};
pub use quantize_model::{quantize_model, QuantizeReport};

/// Produces row `r` of a tensor into the slice (its length is the row length).
pub type RowFn<'a> = Box<dyn Fn(usize, &mut [f32]) -> Result<(), LoadError> + Sync + 'a>;

/// A tensor to write: where it goes, how it is stored, and how to make its rows.
pub struct PlannedTensor<'a> {
    pub spec: GgufTensorSpec,
    pub rows: RowFn<'a>,
}

impl PlannedTensor<'_> {
    /// (rows, row length): the last dimension is the row.
    pub fn rows_and_cols(&self) -> (usize, usize) {
        let cols = self.spec.shape.last().copied().unwrap_or(1);
        let n: usize = self.spec.shape.iter().product();
        (n.checked_div(cols).unwrap_or(0), cols)
    }
}

/// How many worker threads to use: all the machine's cores unless told otherwise.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Encoded bytes per batch: large enough to keep every thread busy, small enough that
/// a 128k-row embedding never sits in memory whole.
const BATCH_BYTES: usize = 16 << 20;

/// Makes and encodes every row of `t`, handing the bytes to `sink` in file order, batch
/// by batch; `threads` workers share each batch in contiguous row ranges.
pub fn stream_tensor(
    t: &PlannedTensor,
    threads: usize,
    sink: &mut dyn FnMut(&[u8]) -> Result<(), LoadError>,
) -> Result<(), LoadError> {
    let (rows, cols) = t.rows_and_cols();
    let dtype = t.spec.dtype;
    let row_bytes = dtype
        .bytes_for(cols as u64)
        .ok_or_else(|| LoadError::BadData {
            dtype: dtype.name(),
            problem: format!(
                "tensor `{}`: rows of {cols} are not whole blocks",
                t.spec.name
            ),
        })? as usize;
    if rows == 0 || row_bytes == 0 {
        return Ok(());
    }
    let batch_rows = (BATCH_BYTES / row_bytes).max(threads).max(1).min(rows);
    let mut buffer = vec![0u8; batch_rows * row_bytes];
    let mut first = 0;
    while first < rows {
        let n = batch_rows.min(rows - first);
        let out = &mut buffer[..n * row_bytes];
        let per_thread = n.div_ceil(threads.max(1));
        let results: Vec<Result<(), LoadError>> = std::thread::scope(|scope| {
            let workers: Vec<_> = out
                .chunks_mut(per_thread * row_bytes)
                .enumerate()
                .map(|(k, chunk)| {
                    let start = first + k * per_thread;
                    scope.spawn(move || encode_rows(t, start, cols, chunk, row_bytes))
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().expect("encoder thread panicked"))
                .collect()
        });
        results.into_iter().collect::<Result<(), LoadError>>()?;
        sink(out)?;
        first += n;
    }
    Ok(())
}

fn encode_rows(
    t: &PlannedTensor,
    start: usize,
    cols: usize,
    out: &mut [u8],
    row_bytes: usize,
) -> Result<(), LoadError> {
    let mut values = vec![0f32; cols];
    let mut encoded = Vec::with_capacity(row_bytes);
    for (k, dst) in out.chunks_exact_mut(row_bytes).enumerate() {
        (t.rows)(start + k, &mut values)?;
        encoded.clear();
        crate::quant::quantize_into(t.spec.dtype, &values, &mut encoded)?;
        dst.copy_from_slice(&encoded);
    }
    Ok(())
}

/// Writes a GGUF file: `metadata`, then `tensors` in order, streamed. `progress` is told
/// each tensor's name and index once it is written.
pub fn write_gguf(
    path: &Path,
    metadata: &GgufMetadata,
    tensors: &[PlannedTensor],
    threads: usize,
    progress: &mut dyn FnMut(&str, usize),
) -> Result<(), LoadError> {
    let io_err = |source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::create(path).map_err(io_err)?;
    let specs: Vec<GgufTensorSpec> = tensors.iter().map(|t| t.spec.clone()).collect();
    let mut writer =
        GgufStreamWriter::new(BufWriter::with_capacity(8 << 20, file), metadata, &specs)
            .map_err(|e| at_path(e, path))?;
    for (i, t) in tensors.iter().enumerate() {
        stream_tensor(t, threads, &mut |bytes| {
            writer.write_data(bytes).map_err(io_err)
        })?;
        progress(&t.spec.name, i);
    }
    writer.finish().map_err(io_err)?;
    Ok(())
}

fn at_path(e: LoadError, path: &Path) -> LoadError {
    match e {
        LoadError::BadData { problem, .. } => LoadError::Io {
            path: path.into(),
            source: io::Error::other(problem),
        },
        other => other,
    }
}

/// The `llama.*` and `general.*` keys llama.cpp reads, from a config.
pub fn llama_metadata(c: &LlamaConfig, name: &str, file_type: u32, meta: &mut GgufMetadata) {
    let u32_of = |v: usize| GgufValue::U32(v as u32);
    meta.set("general.architecture", GgufValue::String("llama".into()));
    meta.set("general.name", GgufValue::String(name.into()));
    meta.set("general.file_type", GgufValue::U32(file_type));
    meta.set("general.quantization_version", GgufValue::U32(2));
    meta.set("llama.context_length", u32_of(c.context_length));
    meta.set("llama.embedding_length", u32_of(c.hidden_size));
    meta.set("llama.block_count", u32_of(c.n_layers));
    meta.set("llama.feed_forward_length", u32_of(c.ffn_size));
    meta.set("llama.attention.head_count", u32_of(c.n_heads));
    meta.set("llama.attention.head_count_kv", u32_of(c.n_kv_heads));
    meta.set("llama.attention.key_length", u32_of(c.head_dim));
    meta.set("llama.attention.value_length", u32_of(c.head_dim));
    meta.set("llama.rope.freq_base", GgufValue::F32(c.rope_theta));
    meta.set("llama.rope.dimension_count", u32_of(c.head_dim));
    meta.set(
        "llama.attention.layer_norm_rms_epsilon",
        GgufValue::F32(c.rms_norm_eps),
    );
    meta.set("llama.vocab_size", u32_of(c.vocab_size));
    // Llama 3.1 scaling travels as the rope_freqs.weight tensor (see rope_freq_factors),
    // as llama.cpp's converter writes it; linear scaling as metadata.
    if let RopeScaling::Linear { factor } = c.rope_scaling {
        meta.set(
            "llama.rope.scaling.type",
            GgufValue::String("linear".into()),
        );
        meta.set("llama.rope.scaling.factor", GgufValue::F32(factor));
    }
}

/// `rope_freqs.weight` for Llama 3.1 scaling: per RoPE pair, the divisor of its frequency
/// (1 for short wavelengths, `factor` for long ones, a smooth blend between).
pub fn rope_freq_factors(c: &LlamaConfig) -> Option<Vec<f32>> {
    let RopeScaling::Llama3 {
        factor,
        low_freq_factor,
        high_freq_factor,
        original_max_position_embeddings,
    } = c.rope_scaling
    else {
        return None;
    };
    let original = original_max_position_embeddings as f64;
    let (low, high, factor) = (
        low_freq_factor as f64,
        high_freq_factor as f64,
        factor as f64,
    );
    let factors = (0..c.head_dim / 2)
        .map(|i| {
            let freq = (c.rope_theta as f64).powf(-(2.0 * i as f64) / c.head_dim as f64);
            let wavelen = 2.0 * std::f64::consts::PI / freq;
            if wavelen < original / high {
                1.0
            } else if wavelen > original / low {
                factor as f32
            } else {
                let smooth = (original / wavelen - low) / (high - low);
                (1.0 / ((1.0 - smooth) / factor + smooth)) as f32
            }
        })
        .collect();
    Some(factors)
}

/// llama.cpp's converter reorders the rows of each Q/K head from Hugging Face's "rotate
/// half" order to interleaved RoPE pairs: destination row `2i + j` of a head is source
/// row `j * head_dim/2 + i`. Returns the source row of destination row `row`.
pub fn permuted_qk_row(row: usize, head_dim: usize) -> usize {
    let (head, within) = (row / head_dim, row % head_dim);
    let (i, j) = (within / 2, within % 2);
    head * head_dim + j * (head_dim / 2) + i
}

/// Fails early, with the path, when the output's folder does not exist (rather than
/// after minutes of work).
pub fn check_writable(path: &Path) -> Result<(), LoadError> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    if !parent.is_dir() {
        return Err(LoadError::Io {
            path: path.into(),
            source: io::Error::new(io::ErrorKind::NotFound, "the output folder does not exist"),
        });
    }
    Ok(())
}
