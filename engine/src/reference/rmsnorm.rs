/// y[t, i] = x[t, i] / sqrt(mean_j x[t, j]^2 + eps) * w[i], for x: [rows, dim], w: [dim].
pub fn rmsnorm(x: &[f32], w: &[f32], eps: f32) -> Vec<f32> {
    let dim = w.len();
    let mut y = vec![0.0; x.len()];
    for (xr, yr) in x.chunks(dim).zip(y.chunks_mut(dim)) {
        let ss: f64 = xr.iter().map(|&v| (v as f64) * (v as f64)).sum();
        let scale = 1.0 / (ss / dim as f64 + eps as f64).sqrt();
        for i in 0..dim {
            yr[i] = (xr[i] as f64 * scale) as f32 * w[i];
        }
    }
    y
}
