// sin and cos of an f32 angle with explicit range reduction, shared by rope.wgsl and
// rope_kv.wgsl (listed before them in their modules).

// pi/2 split into three 12-bit pieces and a remainder (Cody-Waite): k * piece is exact in f32
// for k < 4096, so with k split into two 12-bit halves every product below is exact and the
// first five subtractions are exact too (whether or not the compiler fuses them into fma).
// The reduced argument is within ~1.1e-7 of a - k*pi/2 for a < 2^22.
const PIO2_1: f32 = 1.5703125;
const PIO2_2: f32 = 0.0004837512969970703125;
const PIO2_3: f32 = 7.549533620476722717285156e-08;
const PIO2_4: f32 = 2.5633440682570896e-12;
const TWO_OVER_PI: f32 = 0.636619772367581343;

// sin and cos of a >= 0, accurate to ~2e-7 absolute for a < 2^22 on every adapter. The built-in
// sin/cos are only required to be accurate on [-pi, pi]; at position 100k their error reaches
// 1e-3 on real GPUs, while transformers evaluates cos/sin of the same f32 angle accurately.
fn sincos(a: f32) -> vec2<f32> {
    let k = round(a * TWO_OVER_PI);
    let kh = floor(k * (1.0 / 4096.0));
    let kl = k - kh * 4096.0;
    var r = a - kh * (4096.0 * PIO2_1);
    r = r - kl * PIO2_1;
    r = r - kh * (4096.0 * PIO2_2);
    r = r - kl * PIO2_2;
    r = r - kh * (4096.0 * PIO2_3);
    r = r - kl * PIO2_3;
    r = r - k * PIO2_4;
    // |r| <= pi/4 (+ rounding of k): Taylor series to r^11 / r^12 are within 1e-7 there.
    let r2 = r * r;
    let s = r + r * r2 * (-1.0 / 6.0 + r2 * (1.0 / 120.0 + r2 * (-1.0 / 5040.0
        + r2 * (1.0 / 362880.0 + r2 * (-1.0 / 39916800.0)))));
    let c = 1.0 + r2 * (-0.5 + r2 * (1.0 / 24.0 + r2 * (-1.0 / 720.0
        + r2 * (1.0 / 40320.0 + r2 * (-1.0 / 3628800.0 + r2 * (1.0 / 479001600.0))))));
    switch (u32(k) & 3u) {
        case 0u: { return vec2<f32>(s, c); }
        case 1u: { return vec2<f32>(c, -s); }
        case 2u: { return vec2<f32>(-s, -c); }
        default: { return vec2<f32>(-c, s); }
    }
}
