//! Element-wise references: residual add and SwiGLU's silu(gate) * up.

pub fn add(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

fn silu(g: f64) -> f64 {
    g / (1.0 + (-g).exp())
}

/// y = silu(gate) * up, element by element.
pub fn silu_mul(gate: &[f32], up: &[f32]) -> Vec<f32> {
    gate.iter()
        .zip(up)
        .map(|(&g, &u)| (silu(g as f64) * u as f64) as f32)
        .collect()
}

/// y[T, F] from gate_up[T, 2F] whose rows hold the gate half, then the up half.
pub fn silu_mul_fused(gate_up: &[f32], f: usize) -> Vec<f32> {
    let mut y = Vec::with_capacity(gate_up.len() / 2);
    for row in gate_up.chunks(2 * f) {
        y.extend(silu_mul(&row[..f], &row[f..]));
    }
    y
}

/// x rounded to f16 (to nearest, ties to even), saturating at +-65504, back as f32.
pub fn to_f16(x: &[f32]) -> Vec<f32> {
    x.iter()
        .map(|&v| half::f16::from_f32(v.clamp(-65504.0, 65504.0)).to_f32())
        .collect()
}
