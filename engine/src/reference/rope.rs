use crate::ops::rope::RopeStyle;

/// RoPE on x: [T, n_heads, head_dim]: token t at position pos + t, pair i turned by the f32
/// angle f32(pos + t) * inv_freq[i] (rounded, as transformers computes it), whose cos and sin
/// are then taken exactly (f64), as are the rotation's products.
pub fn rope(
    x: &[f32],
    n_heads: usize,
    head_dim: usize,
    pos: usize,
    inv_freq: &[f32],
    style: RopeStyle,
) -> Vec<f32> {
    let half = head_dim / 2;
    let mut y = x.to_vec();
    for (row, head) in y.chunks_mut(head_dim).enumerate() {
        let position = (pos + row / n_heads) as f32;
        for (i, &f) in inv_freq.iter().enumerate() {
            let (i0, i1) = match style {
                RopeStyle::Interleaved => (2 * i, 2 * i + 1),
                RopeStyle::RotateHalf => (i, i + half),
            };
            let angle = (position * f) as f64;
            let (s, c) = angle.sin_cos();
            let (x0, x1) = (head[i0] as f64, head[i1] as f64);
            head[i0] = (x0 * c - x1 * s) as f32;
            head[i1] = (x0 * s + x1 * c) as f32;
        }
    }
    y
}
