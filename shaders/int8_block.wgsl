// One 32-value block of int8 activations (matvec.wgsl's XQ input; layout in quantize_x8.wgsl):
// d = max|v| / 127 over the block, each value round(v / d) in a signed byte. Shared by the
// quantisers (quantize_x8.wgsl) and the decode attention merge (attention_decode.wgsl with
// QX), so both round alike.

// The largest magnitude of four values.
fn abs_max4(v: vec4<f32>) -> f32 {
    let a = abs(v);
    return max(max(a.x, a.y), max(a.z, a.w));
}

// The scale of a block whose largest magnitude is m.
fn int8_scale(m: f32) -> f32 {
    return m / 127.0;
}

// One value of a block with scale d as a signed byte's value (zero for d = 0): int8_pack's
// rounding, for a value per lane (matvec_reduce_sg.wgsl's norm fold).
fn int8_value(v: f32, d: f32) -> i32 {
    let inv = select(0.0, 1.0 / d, d > 0.0);
    return clamp(i32(round(v * inv)), -127, 127);
}

// Four values of a block with scale d as signed bytes (all zero for d = 0).
fn int8_pack(v: vec4<f32>, d: f32) -> u32 {
    let inv = select(0.0, 1.0 / d, d > 0.0);
    return pack4xI8(clamp(vec4<i32>(round(v * inv)), vec4<i32>(-127), vec4<i32>(127)));
}
