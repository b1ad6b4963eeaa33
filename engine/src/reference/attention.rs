/// Causal GQA attention over the full score matrix, f64 throughout.
/// q: [T, n_heads, head_dim]; k, v: cache contents [slots >= pos + T, n_kv_heads, head_dim];
/// query t (position pos + t) of head h sees slots 0 ..= pos + t of kv head h / group.
pub fn attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
    pos: usize,
) -> Vec<f32> {
    let (d, group) = (head_dim, n_heads / n_kv_heads);
    let n_tokens = q.len() / (n_heads * d);
    let scale = 1.0 / (d as f64).sqrt();
    let mut out = vec![0.0f32; q.len()];
    for t in 0..n_tokens {
        for h in 0..n_heads {
            let qr = &q[(t * n_heads + h) * d..][..d];
            let kv_row = |slot: usize| (slot * n_kv_heads + h / group) * d;
            let scores: Vec<f64> = (0..=pos + t)
                .map(|j| {
                    let kr = &k[kv_row(j)..][..d];
                    scale
                        * qr.iter()
                            .zip(kr)
                            .map(|(&a, &b)| a as f64 * b as f64)
                            .sum::<f64>()
                })
                .collect();
            let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
            let sum: f64 = weights.iter().sum();
            for i in 0..d {
                let o: f64 = weights
                    .iter()
                    .enumerate()
                    .map(|(j, w)| w * v[kv_row(j) + i] as f64)
                    .sum();
                out[(t * n_heads + h) * d + i] = (o / sum) as f32;
            }
        }
    }
    out
}
