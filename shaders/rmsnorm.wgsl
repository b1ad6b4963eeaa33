// RMSNorm with weight: y[t, :] = x[t, :] / sqrt(mean(x[t, :]^2) + eps) * w[:].
// One workgroup per row (token).

struct Params {
    dim: u32,     // row length
    rows: u32,    // tokens
    eps: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;        // [rows, dim]
@group(0) @binding(2) var<storage, read> w: array<f32>;        // [dim]
@group(0) @binding(3) var<storage, read_write> y: array<f32>;  // [rows, dim]

override WG: u32 = 256;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * nwg.x;
    // Whole workgroups leave together, so the barriers below stay uniform.
    if (row >= p.rows) { return; }
    let base = row * p.dim;
    var ss = 0.0;
    for (var i = lid; i < p.dim; i = i + WG) {
        let v = x[base + i];
        ss = ss + v * v;
    }
    let total = wg_sum(ss, lid, WG);
    let scale = inverseSqrt(total / f32(p.dim) + p.eps);
    for (var i = lid; i < p.dim; i = i + WG) {
        y[base + i] = x[base + i] * scale * w[i];
    }
}
