//! Random weights in their file encoding, for op tests and tiny test models.

use half::{bf16, f16};
use wgllama_loaders::DType;

use super::Rng;
use crate::gpu::Gpu;
use crate::tensor::Tensor;

/// A random [n, k] weight of `dtype` uploaded to `gpu`, and its values as the CPU
/// dequantiser reads them (what the references multiply by).
pub fn upload_random_weight(
    gpu: &Gpu,
    rng: &mut Rng,
    dtype: DType,
    n: usize,
    k: usize,
) -> (Tensor, Vec<f32>) {
    let bytes = random_weight_bytes(rng, dtype, n * k);
    let w = gpu.upload_weight("w", dtype, &[n, k], &bytes).unwrap();
    let values = crate::reference::matmul::weight_values(dtype, &bytes, n * k).unwrap();
    (w, values)
}

/// `n` random values of `dtype` in file bytes (ggml blocks for quantised types). Float
/// types get normal values (std 1). Blocks get random quant bytes (every bit pattern the
/// format has, scales included) and small random f16 block scales of either sign, so
/// values stay finite and roughly unit-sized; never NaN/Inf patterns.
pub fn random_weight_bytes(rng: &mut Rng, dtype: DType, n: usize) -> Vec<u8> {
    match dtype {
        DType::F32 => bytemuck::cast_slice(&rng.normal_vec(n, 1.0)).to_vec(),
        DType::F16 => rng
            .normal_vec(n, 1.0)
            .iter()
            .flat_map(|&v| f16::from_f32(v).to_le_bytes())
            .collect(),
        DType::BF16 => rng
            .normal_vec(n, 1.0)
            .iter()
            .flat_map(|&v| bf16::from_f32(v).to_le_bytes())
            .collect(),
        _ => {
            let block = dtype.block_bytes();
            let blocks = n / dtype.block_size();
            let mut bytes: Vec<u8> = (0..blocks * block).map(|_| rng.next_u64() as u8).collect();
            // (offset of an f16 scale in the block, magnitude range): ranges keep |x| ~ 1.
            let scales: &[(usize, f32, f32)] = match dtype {
                DType::Q8_0 => &[(0, 0.002, 0.02)],
                DType::Q4_0 => &[(0, 0.05, 0.3)],
                DType::Q5_0 => &[(0, 0.02, 0.15)],
                DType::Q4K => &[(0, 0.002, 0.02), (2, 0.002, 0.02)],
                DType::Q5K => &[(0, 0.001, 0.01), (2, 0.001, 0.01)],
                DType::Q6K => &[(208, 0.0002, 0.002)],
                _ => unreachable!("float types handled above"),
            };
            for b in bytes.chunks_exact_mut(block) {
                for &(at, lo, hi) in scales {
                    let sign = if rng.next_u64() & 1 == 0 { 1.0 } else { -1.0 };
                    let d = f16::from_f32(sign * rng.uniform(lo, hi));
                    b[at..at + 2].copy_from_slice(&d.to_le_bytes());
                }
            }
            bytes
        }
    }
}
