//! Linear layer and weight values, from a weight's file bytes (never the GPU layout).

use wgllama_loaders::{quant, DType, LoadError};

/// The values of `n` weights of `dtype` from their file bytes (ggml blocks for quantised
/// types), by the loaders' CPU dequantiser: independent of the GPU repacking.
pub fn weight_values(dtype: DType, bytes: &[u8], n: usize) -> Result<Vec<f32>, LoadError> {
    quant::dequantize(dtype, bytes, n)
}

/// y[t, i] = sum_j x[t, j] * w[i, j] (+ y0[t, i]), accumulated in f64, for x: [T, K],
/// w: [N, K] values, y0: [T, N].
pub fn matmul(x: &[f32], w: &[f32], k: usize, y0: Option<&[f32]>) -> Vec<f32> {
    let n = w.len() / k;
    let mut y = vec![0.0; x.len() / k * n];
    for (t, xr) in x.chunks(k).enumerate() {
        for (i, wr) in w.chunks(k).enumerate() {
            let dot: f64 = xr.iter().zip(wr).map(|(&a, &b)| a as f64 * b as f64).sum();
            let add = y0.map_or(0.0, |y0| y0[t * n + i] as f64);
            y[t * n + i] = (dot + add) as f32;
        }
    }
    y
}
