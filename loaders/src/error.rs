use std::path::PathBuf;

/// Everything that can go wrong while reading a model. Messages name the file, tensor or key.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("unsupported tensor type {0}")]
    UnsupportedDType(String),
}
