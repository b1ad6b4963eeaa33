//! wgllama-loaders: GGUF and SafeTensors parsing over memory maps, model configuration,
//! quant block formats with CPU dequantisation, and tokenizer construction. No GPU code.

pub mod dtype;
mod error;

pub use dtype::DType;
pub use error::LoadError;
