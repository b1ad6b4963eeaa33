// f32 values to the words of an `Elem::F16` tensor (two halves per u32, the first in the low
// 16 bits), saturating at f16's largest finite value: beyond it pack2x16float's result is
// indeterminate, and an inf would turn a whole tensor-core GEMM output row to inf / NaN.
// Shared by the kernels that write the prompt GEMMs' f16 inputs (rmsnorm, attention_coop,
// elementwise's to_f16 and silu_mul with an f16 output).

fn f16_pair(v: vec2<f32>) -> u32 {
    return pack2x16float(clamp(v, vec2<f32>(-65504.0), vec2<f32>(65504.0)));
}

fn f16_quad(v: vec4<f32>) -> vec2<u32> {
    return vec2<u32>(f16_pair(v.xy), f16_pair(v.zw));
}
