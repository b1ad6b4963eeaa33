//! Naive CPU references, one per kernel: plain loops in f32 (f64 where a sum needs it), written
//! to be obviously right rather than fast. Op tests compare every GPU kernel against these.

pub mod attention;
pub mod elementwise;
pub mod embedding;
pub mod matmul;
pub mod prefetch;
pub mod quantize;
pub mod rmsnorm;
pub mod rope;
pub mod sample;
pub mod softmax;
