use std::path::PathBuf;

/// Everything that can go wrong while reading a model. Messages name the file, and the
/// tensor or key where there is one, so a user can tell which of several shards is broken.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Raised by [`crate::DType::from_ggml_id`], which knows no file; readers wrap it in
    /// [`LoadError::UnsupportedTensorType`].
    #[error("unsupported tensor type {0}")]
    UnsupportedDType(String),
    #[error("{path}: tensor `{tensor}` has type {type_name}, which wgllama does not support")]
    UnsupportedTensorType {
        path: PathBuf,
        tensor: String,
        type_name: String,
    },
    #[error("{path}: the file is empty")]
    EmptyFile { path: PathBuf },
    #[error("{path}: not a GGUF file (magic bytes {found:02x?}, expected \"GGUF\")")]
    BadMagic { path: PathBuf, found: Vec<u8> },
    #[error("{path}: GGUF version {version} is not supported ({why})")]
    UnsupportedVersion {
        path: PathBuf,
        version: u32,
        why: &'static str,
    },
    /// The file ends before a structure it declares.
    #[error(
        "{path}: truncated: {what} needs {needed} bytes at offset {offset}, but the file has {len}"
    )]
    Truncated {
        path: PathBuf,
        what: String,
        offset: u64,
        needed: u64,
        len: u64,
    },
    /// Structurally wrong content (absurd counts, bad UTF-8, offsets out of range, ...).
    #[error("{path}: {problem}")]
    Malformed { path: PathBuf, problem: String },
    #[error("{path}: bad safetensors header: {problem}")]
    BadSafetensors { path: PathBuf, problem: String },
    #[error("{path}: invalid JSON: {problem}")]
    BadJson { path: PathBuf, problem: String },
    #[error("{path}: not found ({what})")]
    MissingFile { path: PathBuf, what: &'static str },
    #[error("{path}: unsupported architecture `{arch}` (wgllama runs Llama models)")]
    UnsupportedArchitecture { path: PathBuf, arch: String },
    #[error("{path}: metadata key `{key}` is missing")]
    MissingMetadata { path: PathBuf, key: String },
    /// A config value is missing, of the wrong type, or inconsistent with the others.
    #[error("{path}: bad model config: {problem}")]
    BadConfig { path: PathBuf, problem: String },
    #[error("{path}: tensor `{name}` not found")]
    MissingTensor { path: PathBuf, name: String },
    /// [`crate::ModelFile::check`] found problems; each one names its tensor.
    #[error("{path}: model check failed:\n{}", format_problems(problems))]
    CheckFailed {
        path: PathBuf,
        problems: Vec<crate::CheckProblem>,
    },
    #[error("{path}: tokenizer: {problem}")]
    Tokenizer { path: PathBuf, problem: String },
    /// A byte buffer given to a dequantiser does not hold the values asked for.
    #[error("{dtype}: {problem}")]
    BadData {
        dtype: &'static str,
        problem: String,
    },
}

fn format_problems(problems: &[crate::CheckProblem]) -> String {
    // Cap the list: a file with a wildly wrong layer count would otherwise print
    // thousands of lines.
    const SHOWN: usize = 20;
    let mut lines: Vec<String> = problems
        .iter()
        .take(SHOWN)
        .map(|p| format!("  - {p}"))
        .collect();
    if problems.len() > SHOWN {
        lines.push(format!("  ... and {} more", problems.len() - SHOWN));
    }
    lines.join("\n")
}
