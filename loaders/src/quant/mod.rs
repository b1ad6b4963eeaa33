//! Quantised block formats: `#[repr(C)]` layouts, CPU dequantisation (the reference the
//! GPU kernels are checked against) and quantisers for every format.

pub mod blocks;
mod dequant;
mod kquants;
mod quantize;

pub use dequant::{dequantize, dequantize_into};
pub use quantize::{quantize, quantize_into};
