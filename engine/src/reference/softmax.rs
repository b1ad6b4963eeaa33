/// y[r, :] = softmax(x[r, :] / temperature) for rows of length `cols`, in f64.
pub fn softmax(x: &[f32], cols: usize, temperature: f32) -> Vec<f32> {
    let t = temperature as f64;
    let mut y = Vec::with_capacity(x.len());
    for row in x.chunks(cols) {
        let m = row.iter().map(|&v| v as f64 / t).fold(f64::MIN, f64::max);
        let e: Vec<f64> = row.iter().map(|&v| (v as f64 / t - m).exp()).collect();
        let sum: f64 = e.iter().sum();
        y.extend(e.iter().map(|v| (v / sum) as f32));
    }
    y
}
