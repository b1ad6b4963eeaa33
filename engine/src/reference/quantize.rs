//! Reference of quantize_x8.wgsl: activations as int8 blocks of 32 values for the int8 mat-vecs.

/// One row v (a multiple of 32 values) as (q, d, sums): q[i] = round(v[i] / d[b]) with
/// d[b] = max |v| / 127 over block b = i / 32 (q = 0 where d = 0), and the sum of v over each
/// 16 values (what the K-quant kernels subtract the block minimum with).
pub fn quantize_x8(v: &[f32]) -> (Vec<i8>, Vec<f32>, Vec<f32>) {
    let mut q = Vec::with_capacity(v.len());
    let mut d = Vec::with_capacity(v.len() / 32);
    for block in v.chunks(32) {
        let db = block.iter().fold(0f32, |m, x| m.max(x.abs())) / 127.0;
        let inv = if db > 0.0 { 1.0 / db } else { 0.0 };
        q.extend(
            block
                .iter()
                .map(|&x| (x * inv).round().clamp(-127.0, 127.0) as i8),
        );
        d.push(db);
    }
    let sums = v
        .chunks(16)
        .map(|c| c.iter().map(|&x| x as f64).sum::<f64>() as f32)
        .collect();
    (q, d, sums)
}
