// RMSNorm with weight: y[t, :] = x[t, :] / sqrt(mean(x[t, :]^2) + eps) * w[:].
// One workgroup per row (token). Decode has a single row, so the host sizes the workgroup to
// the row (up to 1024 lanes, one or two vec4 loads each): the kernel's time is a couple of
// dependent L2 round trips and one reduction, not a long loop on 256 lanes.

struct Params {
    dim: u32,     // row length
    rows: u32,    // tokens
    eps: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;        // [rows, dim]
@group(0) @binding(2) var<storage, read> w: array<vec4<f32>>;        // [dim]
@group(0) @binding(3) var<storage, read_write> y: array<vec4<f32>>;  // [rows, dim]

override WG: u32 = 256;      // a power of two <= 1024
override VEC4: bool = true;  // dim % 4 == 0: rows are whole vec4s

fn x_at(g: u32) -> f32 {
    return x[g >> 2u][g & 3u];
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * nwg.x;
    // Whole workgroups leave together, so the barriers below stay uniform.
    if (row >= p.rows) { return; }
    let base = row * p.dim;
    var ss = 0.0;
    if (VEC4) {
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
    let total = wg_sum(ss, lid, WG);
    let scale = inverseSqrt(total / f32(p.dim) + p.eps);
    if (VEC4) {
        for (var i = lid; i < p.dim / 4u; i = i + WG) {
            y[base / 4u + i] = x[base / 4u + i] * scale * w[i];
        }
    } else {
        for (var i = lid; i < p.dim; i = i + WG) {
            let g = base + i;
            y[g >> 2u][g & 3u] = x_at(g) * scale * w[i >> 2u][i & 3u];
        }
    }
}
