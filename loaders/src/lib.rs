//! wgllama-loaders: GGUF and SafeTensors parsing over memory maps, model configuration,
//! quant block formats with CPU dequantisation, and tokenizer construction. No GPU code.
//!
//! Start at [`ModelFile::open`]: it takes a `.gguf` file or a Hugging Face folder and
//! gives the [`LlamaConfig`], the tensor table, zero-copy [`TensorView`]s by name or by
//! [`Weight`] role, and [`ModelFile::check`].

pub mod config;
pub mod convert;
pub mod dtype;
mod error;
pub mod gguf;
mod mapped;
mod model_file;
pub mod names;
pub mod quant;
pub mod safetensors_folder;
pub mod synth;
pub mod tokenizer;

pub use config::{LlamaConfig, RopeLayout, RopeScaling};
pub use dtype::DType;
pub use error::LoadError;
pub use model_file::{
    CheckProblem, GgufDetails, ModelFile, ModelFormat, TensorInfo, TensorView, TokenizerSource,
    ROPE_FREQS_TENSOR,
};
pub use names::Weight;
