//! The Llama graph: weights on the GPU, the per-layer dispatch list, and a session that runs
//! prompts (prefill, in chunks) and generates (one submission per token).

pub mod dequant_scratch;
pub mod graph;
pub mod prefetch;
pub mod session;
pub mod weights;

pub use crate::ops::sample::Sampling;
pub use dequant_scratch::DEQUANT_MIN_TOKENS;
pub use graph::SUBMIT_EVERY;
pub use session::{GenerateStats, Session, SessionOptions};
pub use weights::LlamaWeights;
