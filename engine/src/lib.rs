//! wgllama-engine: the wgpu runtime, one dispatch module per WGSL kernel family, and a naive
//! CPU reference for every kernel.

pub mod bench;
pub mod dispatch;
pub mod error;
pub mod golden;
pub mod gpu;
pub mod kv_cache;
pub mod llama;
pub mod ops;
pub mod pipeline_cache;
pub mod precision;
pub mod profile;
pub mod reference;
pub mod step;
pub mod tensor;
pub mod testing;
pub mod weights;

pub use dispatch::{Cost, Dispatch};
pub use error::{EngineError, Result};
pub use gpu::{Gpu, GpuOptions};
pub use precision::Precision;
pub use tensor::{Elem, Tensor};
