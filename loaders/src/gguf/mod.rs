//! GGUF: llama.cpp's single-file model format (metadata + tensor table + aligned data).

mod reader;
mod value;
mod writer;

pub use reader::{GgufFile, GgufTensorInfo, GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GGUF_MAX_DIMS};
pub use value::{GgufArray, GgufMetadata, GgufValue, GgufValueType};
pub use writer::{GgufStreamWriter, GgufTensorSpec, GgufWriter};
