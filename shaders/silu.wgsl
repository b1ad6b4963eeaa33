// silu(g) = g * sigmoid(g), for SwiGLU (elementwise.wgsl, matvec.wgsl's matvec_glu). For g << 0,
// exp(-g) overflows to inf and the quotient is -0, the right limit, so no clamp is needed.
// (quantize_x8.wgsl's silu_mul_x8 writes the same product as g * up / (1 + exp(-g)) on vec4s.)

fn silu(g: f32) -> f32 {
    return g / (1.0 + exp(-g));
}
