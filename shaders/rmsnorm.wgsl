// RMSNorm with weight: y[t, :] = x[t, :] / sqrt(mean(x[t, :]^2) + eps) * w[:].
// One workgroup per row (token). Decode has a single row, so the host sizes the workgroup to
// the row (up to 1024 lanes, one or two vec4 loads each): the kernel's time is a couple of
// dependent L2 round trips and one reduction, not a long loop on 256 lanes. The entry point
// and the workgroup sum come after this file: rmsnorm_sg.wgsl (reduce_sg.wgsl's subgroup sum)
// or rmsnorm_wg.wgsl (reduce.wgsl's tree).

struct Params {
    dim: u32,     // row length
    rows: u32,    // tokens
    eps: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;        // [rows, dim]
@group(0) @binding(2) var<storage, read> w: array<vec4<f32>>;        // [dim]
@group(0) @binding(3) var<storage, read_write> y: array<vec4<f32>>;  // [rows, dim] (Y16: unused)
// Y16: [rows, dim] in f16, four per vec2 (the input of the tensor-core prompt mat-muls, which
// then need no to_f16 pass); else y again, unused.
@group(0) @binding(4) var<storage, read_write> y16: array<vec2<u32>>;

override WG: u32 = 256;      // a power of two <= 1024
override VEC4: bool = true;  // dim % 4 == 0: rows are whole vec4s
override Y16: bool = false;  // write y16 (VEC4 only), saturating at f16's +-65504, not y

// Output vec4 i of the row-major output.
fn put(i: u32, v: vec4<f32>) {
    if (Y16) {
        y16[i] = f16_quad(v);
    } else {
        y[i] = v;
    }
}

fn x_at(g: u32) -> f32 {
    return x[g >> 2u][g & 3u];
}

// Row `row`'s norm by this invocation (lane `lid` of WG); `row_total` (rmsnorm_sg.wgsl /
// rmsnorm_wg.wgsl) sums over the workgroup. Where the row is one vec4 per lane (decode), x and
// w are loaded once, before the sum (w after it put a second memory round trip on the path).
fn rmsnorm_main(row: u32, lid: u32, l: Lanes) {
    let base = row * p.dim;
    var ss = 0.0;
    let one_pass = VEC4 && p.dim / 4u <= WG;
    var x0 = vec4<f32>(0.0);
    var w0 = vec4<f32>(0.0);
    if (one_pass) {
        if (lid < p.dim / 4u) {
            x0 = x[base / 4u + lid];
            w0 = w[lid];
        }
        ss = dot(x0, x0);
    } else if (VEC4) {
        for (var i = lid; i < p.dim / 4u; i = i + WG) {
            let v = x[base / 4u + i];
            ss = ss + dot(v, v);
        }
    } else {
        for (var i = lid; i < p.dim; i = i + WG) {
            let v = x_at(base + i);
            ss = ss + v * v;
        }
    }
    let total = row_total(ss, l);
    let scale = inverseSqrt(total / f32(p.dim) + p.eps);
    if (one_pass) {
        if (lid < p.dim / 4u) {
            put(base / 4u + lid, x0 * scale * w0);
        }
    } else if (VEC4) {
        for (var i = lid; i < p.dim / 4u; i = i + WG) {
            put(base / 4u + i, x[base / 4u + i] * scale * w[i]);
        }
    } else {
        for (var i = lid; i < p.dim; i = i + WG) {
            let g = base + i;
            y[g >> 2u][g & 3u] = x_at(g) * scale * w[i >> 2u][i & 3u];
        }
    }
}
