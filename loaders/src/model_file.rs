//! [`ModelFile`]: the one way the engine and the CLI open a model, whatever its format.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::config::{LlamaConfig, RopeScaling, TensorFacts};
use crate::gguf::{GgufFile, GgufMetadata};
use crate::mapped::{map_file, read_small_file, Bytes};
use crate::names::Weight;
use crate::safetensors_folder::{
    open_folder, open_safetensors, parse_safetensors, StFile, CONFIG_FILE, INDEX_FILE,
    TOKENIZER_FILE,
};
use crate::{quant, DType, LoadError};

/// Name of the tensor llama.cpp uses for Llama 3.1's per-pair RoPE frequency divisors.
pub const ROPE_FREQS_TENSOR: &str = "rope_freqs.weight";
const MAX_CONFIG_BYTES: u64 = 16 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum ModelFormat {
    Gguf,
    SafeTensors,
}

impl fmt::Display for ModelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ModelFormat::Gguf => "GGUF",
            ModelFormat::SafeTensors => "SafeTensors",
        })
    }
}

/// A tensor's description, the same for both formats.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: DType,
    /// Outermost first (PyTorch order): a weight is `[out_features, in_features]`.
    /// GGUF stores ggml's `ne[]`, innermost first; it is reversed here.
    pub shape: Vec<usize>,
    pub n_bytes: u64,
}

impl TensorInfo {
    pub fn n_elements(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A tensor's bytes, borrowed from the memory map (nothing is copied).
#[derive(Clone, Copy, Debug)]
pub struct TensorView<'a> {
    pub info: &'a TensorInfo,
    /// Exactly `info.n_bytes` bytes in `info.dtype`'s layout. Not aligned to anything
    /// beyond what the file guarantees (32 bytes for GGUF, none for safetensors).
    pub data: &'a [u8],
}

impl TensorView<'_> {
    /// Dequantises (or converts) the whole tensor to f32 on the CPU.
    pub fn to_f32(&self) -> Result<Vec<f32>, LoadError> {
        quant::dequantize(self.info.dtype, self.data, self.info.n_elements())
    }
}

/// Where the tokenizer of a model comes from.
#[derive(Clone, Copy, Debug)]
pub enum TokenizerSource<'a> {
    /// A Hugging Face `tokenizer.json` next to the weights.
    HfJson(&'a Path),
    /// The vocabulary embedded in GGUF metadata (`tokenizer.ggml.*` keys).
    GgufMetadata(&'a GgufMetadata),
    /// Neither is there.
    Missing,
}

/// One problem found by [`ModelFile::check`].
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct CheckProblem {
    /// The tensor at fault, if the problem is about one.
    pub tensor: Option<String>,
    pub message: String,
}

impl fmt::Display for CheckProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.tensor {
            Some(t) => write!(f, "`{t}`: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// One mapped file of the model (the GGUF file, or one safetensors shard).
struct Source {
    path: PathBuf,
    bytes: Bytes,
}

/// Where a tensor's bytes are.
struct Span {
    source: usize,
    range: Range<usize>,
}

/// GGUF header facts beyond the config.
#[derive(Clone, Debug)]
pub struct GgufDetails {
    pub version: u32,
    pub alignment: u64,
    pub metadata: GgufMetadata,
}

/// An opened model: a GGUF file or a Hugging Face safetensors folder, memory-mapped.
pub struct ModelFile {
    /// What was opened: the .gguf file, or the checkpoint folder.
    path: PathBuf,
    format: ModelFormat,
    sources: Vec<Source>,
    /// File order (GGUF table order; shards by name, then data order).
    tensors: Vec<TensorInfo>,
    /// Parallel to `tensors`.
    spans: Vec<Span>,
    by_name: HashMap<String, usize>,
    config: LlamaConfig,
    gguf: Option<GgufDetails>,
    hf_config: Option<serde_json::Value>,
    tokenizer_json: Option<PathBuf>,
}

impl ModelFile {
    /// Opens a `.gguf` file, a Hugging Face folder (config.json + model.safetensors or
    /// a sharded index), or a `.safetensors` / index file inside such a folder.
    /// Headers are parsed and every tensor's byte range is checked; the data is not read.
    pub fn open(path: &Path) -> Result<ModelFile, LoadError> {
        if path.is_dir() {
            return Self::open_hf_folder(path, None);
        }
        if !path.exists() {
            return Err(LoadError::MissingFile {
                path: path.into(),
                what: "model file or folder",
            });
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let folder = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if name == INDEX_FILE {
            Self::open_hf_folder(folder, None)
        } else if name.ends_with(".safetensors") {
            Self::open_hf_folder(folder, Some(path))
        } else {
            // .gguf, or anything else: the GGUF parser names the file and its magic.
            Self::open_gguf(path)
        }
    }

    /// Opens a GGUF file.
    pub fn open_gguf(path: &Path) -> Result<ModelFile, LoadError> {
        let bytes = map_file(path)?;
        Self::from_gguf_source(path, bytes)
    }

    /// Parses a GGUF file held in memory; `name` is used in messages. (For fuzzing and
    /// tests; real models should be mapped with [`ModelFile::open`].)
    pub fn from_gguf_bytes(bytes: Vec<u8>, name: &Path) -> Result<ModelFile, LoadError> {
        Self::from_gguf_source(name, Bytes::Owned(bytes))
    }

    fn from_gguf_source(path: &Path, bytes: Bytes) -> Result<ModelFile, LoadError> {
        let gguf = GgufFile::parse(&bytes, path)?;
        let mut tensors = Vec::with_capacity(gguf.tensors.len());
        let mut spans = Vec::with_capacity(gguf.tensors.len());
        for t in &gguf.tensors {
            tensors.push(TensorInfo {
                name: t.name.clone(),
                dtype: t.dtype,
                shape: t.shape(),
                n_bytes: t.n_bytes,
            });
            spans.push(Span {
                source: 0,
                range: gguf.tensor_range(t),
            });
        }
        let by_name = index_by_name(&tensors);
        let facts = tensor_facts(&tensors, &by_name, ModelFormat::Gguf);
        let config = LlamaConfig::from_gguf(&gguf.metadata, &facts, path)?;
        Ok(ModelFile {
            path: path.into(),
            format: ModelFormat::Gguf,
            sources: vec![Source {
                path: path.into(),
                bytes,
            }],
            tensors,
            spans,
            by_name,
            config,
            gguf: Some(GgufDetails {
                version: gguf.version,
                alignment: gguf.alignment,
                metadata: gguf.metadata,
            }),
            hf_config: None,
            tokenizer_json: None,
        })
    }

    /// Opens a checkpoint folder; `single` picks one `.safetensors` file in it instead
    /// of the folder's index / model.safetensors.
    fn open_hf_folder(dir: &Path, single: Option<&Path>) -> Result<ModelFile, LoadError> {
        let config_path = dir.join(CONFIG_FILE);
        let config_bytes = read_small_file(
            &config_path,
            MAX_CONFIG_BYTES,
            "config.json next to the safetensors weights",
        )?;
        let files = match single {
            Some(file) => vec![open_safetensors(file)?],
            None => open_folder(dir)?,
        };
        let tokenizer = dir.join(TOKENIZER_FILE);
        let tokenizer_json = tokenizer.is_file().then_some(tokenizer);
        Self::from_safetensors_files(dir, files, &config_bytes, &config_path, tokenizer_json)
    }

    /// Parses one safetensors file and a config.json held in memory; `name` is used in
    /// messages. (For fuzzing and tests.)
    pub fn from_safetensors_bytes(
        bytes: Vec<u8>,
        config_json: &[u8],
        name: &Path,
    ) -> Result<ModelFile, LoadError> {
        let tensors = parse_safetensors(&bytes, name)?;
        let file = StFile {
            path: name.into(),
            bytes: Bytes::Owned(bytes),
            tensors,
        };
        Self::from_safetensors_files(name, vec![file], config_json, &name.join(CONFIG_FILE), None)
    }

    fn from_safetensors_files(
        path: &Path,
        files: Vec<StFile>,
        config_bytes: &[u8],
        config_path: &Path,
        tokenizer_json: Option<PathBuf>,
    ) -> Result<ModelFile, LoadError> {
        let hf_config: serde_json::Value =
            serde_json::from_slice(config_bytes).map_err(|e| LoadError::BadJson {
                path: config_path.into(),
                problem: e.to_string(),
            })?;
        let mut tensors = Vec::new();
        let mut spans = Vec::new();
        let mut sources = Vec::new();
        for (source, file) in files.into_iter().enumerate() {
            for t in file.tensors {
                let n_bytes = (t.range.end - t.range.start) as u64;
                tensors.push(TensorInfo {
                    name: t.name,
                    dtype: t.dtype,
                    shape: t.shape,
                    n_bytes,
                });
                spans.push(Span {
                    source,
                    range: t.range,
                });
            }
            sources.push(Source {
                path: file.path,
                bytes: file.bytes,
            });
        }
        let by_name = index_by_name(&tensors);
        let facts = tensor_facts(&tensors, &by_name, ModelFormat::SafeTensors);
        let config = LlamaConfig::from_hf_json(&hf_config, &facts, config_path)?;
        Ok(ModelFile {
            path: path.into(),
            format: ModelFormat::SafeTensors,
            sources,
            tensors,
            spans,
            by_name,
            config,
            gguf: None,
            hf_config: Some(hf_config),
            tokenizer_json,
        })
    }

    /// What was opened: the .gguf file or the checkpoint folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The mapped files: the GGUF file, or each safetensors shard.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        self.sources.iter().map(|s| s.path.as_path())
    }

    pub fn format(&self) -> ModelFormat {
        self.format
    }

    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// All tensors, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// Total bytes of tensor data.
    pub fn total_tensor_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.n_bytes).sum()
    }

    /// The file a tensor is stored in.
    pub fn file_of(&self, name: &str) -> Option<&Path> {
        let i = *self.by_name.get(name)?;
        Some(&self.sources[self.spans[i].source].path)
    }

    pub fn tensor(&self, name: &str) -> Result<TensorView<'_>, LoadError> {
        let &i = self
            .by_name
            .get(name)
            .ok_or_else(|| LoadError::MissingTensor {
                path: self.path.clone(),
                name: name.into(),
            })?;
        let span = &self.spans[i];
        Ok(TensorView {
            info: &self.tensors[i],
            data: &self.sources[span.source].bytes[span.range.clone()],
        })
    }

    /// A Llama weight by role. With tied embeddings, [`Weight::Output`] gives the token
    /// embedding (its `info.name` says so), since that is what the LM head multiplies by.
    pub fn weight(&self, w: Weight) -> Result<TensorView<'_>, LoadError> {
        let w = if w == Weight::Output && self.config.tied_embeddings {
            Weight::TokenEmbd
        } else {
            w
        };
        self.tensor(&w.name(self.format))
    }

    /// GGUF header details (version, alignment, all metadata); `None` for SafeTensors.
    pub fn gguf(&self) -> Option<&GgufDetails> {
        self.gguf.as_ref()
    }

    /// GGUF key/values; `None` for SafeTensors.
    pub fn metadata(&self) -> Option<&GgufMetadata> {
        self.gguf.as_ref().map(|g| &g.metadata)
    }

    /// The parsed `config.json`; `None` for GGUF.
    pub fn hf_config(&self) -> Option<&serde_json::Value> {
        self.hf_config.as_ref()
    }

    pub fn tokenizer_source(&self) -> TokenizerSource<'_> {
        match (&self.gguf, &self.tokenizer_json) {
            (Some(g), _) if g.metadata.contains("tokenizer.ggml.model") => {
                TokenizerSource::GgufMetadata(&g.metadata)
            }
            (_, Some(json)) => TokenizerSource::HfJson(json),
            _ => TokenizerSource::Missing,
        }
    }

    /// Inverse RoPE frequency of each pair of a head, with the model's scaling, including
    /// a GGUF `rope_freqs.weight` tensor's divisors when the file has one.
    pub fn rope_inv_freqs(&self) -> Result<Vec<f32>, LoadError> {
        let mut freqs = self.config.rope_inv_freqs();
        if self.config.rope_scaling == RopeScaling::FreqFactorsTensor {
            let factors = self.tensor(ROPE_FREQS_TENSOR)?.to_f32()?;
            if factors.len() != freqs.len() {
                return Err(LoadError::BadConfig {
                    path: self.path.clone(),
                    problem: format!(
                        "{ROPE_FREQS_TENSOR} has {} values, expected head_dim/2 = {}",
                        factors.len(),
                        freqs.len()
                    ),
                });
            }
            for (f, d) in freqs.iter_mut().zip(factors) {
                *f /= d;
            }
        }
        Ok(freqs)
    }

    /// Every problem that would stop a Llama forward pass: missing tensors, shapes that
    /// disagree with the config, norms in a quantised type, stray layers. Empty if fine.
    pub fn problems(&self) -> Vec<CheckProblem> {
        let mut problems = Vec::new();
        let c = &self.config;
        let problem = |tensor: &str, message: String| CheckProblem {
            tensor: Some(tensor.into()),
            message,
        };
        for w in Weight::all(c) {
            let name = w.name(self.format);
            let Some(&i) = self.by_name.get(&name) else {
                problems.push(problem(&name, "missing".into()));
                continue;
            };
            let info = &self.tensors[i];
            match w.expected_shape(c) {
                Some(expected) if expected == info.shape => {}
                expected => problems.push(problem(
                    &name,
                    format!(
                        "shape {:?}, but the config implies {}",
                        info.shape,
                        fmt_shape(expected)
                    ),
                )),
            }
            if w.is_norm() && info.dtype.is_quantized() {
                problems.push(problem(
                    &name,
                    format!(
                        "norm weights must be a float type, not {}",
                        info.dtype.name()
                    ),
                ));
            }
            // Already guaranteed by the parsers; cheap to confirm for the engine.
            let span = &self.spans[i];
            if (span.range.len() as u64) != info.n_bytes {
                problems.push(problem(&name, "byte range does not match its size".into()));
            }
        }
        if self.format == ModelFormat::SafeTensors && c.tied_embeddings {
            let tie = self
                .hf_config
                .as_ref()
                .and_then(|j| j.get("tie_word_embeddings"))
                .and_then(|v| v.as_bool());
            if tie == Some(false) {
                problems.push(problem(
                    "lm_head.weight",
                    "missing, and config.json says tie_word_embeddings = false".into(),
                ));
            }
        }
        for info in &self.tensors {
            match Weight::from_name(&info.name, self.format).and_then(Weight::layer) {
                Some(layer) if layer >= c.n_layers => problems.push(problem(
                    &info.name,
                    format!(
                        "belongs to layer {layer}, but the config has {} layers",
                        c.n_layers
                    ),
                )),
                _ => {}
            }
        }
        if let Some(&i) = self.by_name.get(ROPE_FREQS_TENSOR) {
            let info = &self.tensors[i];
            if info.shape != [c.head_dim / 2] || info.dtype.is_quantized() {
                problems.push(problem(
                    ROPE_FREQS_TENSOR,
                    format!(
                        "{} {:?}, expected f32 [{}]",
                        info.dtype.name(),
                        info.shape,
                        c.head_dim / 2
                    ),
                ));
            }
        }
        problems
    }

    /// Err([`LoadError::CheckFailed`]) listing [`ModelFile::problems`], if any.
    pub fn check(&self) -> Result<(), LoadError> {
        let problems = self.problems();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(LoadError::CheckFailed {
                path: self.path.clone(),
                problems,
            })
        }
    }
}

impl fmt::Debug for ModelFile {
    /// Summary only: the tensor table and metadata can be huge.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelFile")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("files", &self.sources.len())
            .field("tensors", &self.tensors.len())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn fmt_shape(shape: Option<Vec<usize>>) -> String {
    match shape {
        Some(s) => format!("{s:?}"),
        None => "a shape too large to represent".into(),
    }
}

fn index_by_name(tensors: &[TensorInfo]) -> HashMap<String, usize> {
    tensors
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.clone(), i))
        .collect()
}

fn tensor_facts(
    tensors: &[TensorInfo],
    by_name: &HashMap<String, usize>,
    format: ModelFormat,
) -> TensorFacts {
    let get = |w: Weight| by_name.get(&w.name(format)).map(|&i| &tensors[i]);
    TensorFacts {
        embedding_shape: get(Weight::TokenEmbd).map(|t| t.shape.clone()),
        has_output: get(Weight::Output).is_some(),
        has_rope_freqs: by_name.contains_key(ROPE_FREQS_TENSOR),
    }
}
