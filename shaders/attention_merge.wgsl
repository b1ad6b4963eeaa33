// Combines the n_splits partial results of attention.wgsl's split mode (flash-decoding): with
// each split's running max m_s, sum l_s and unnormalised accumulator acc_s,
//   out = sum_s exp(m_s - M) acc_s / sum_s exp(m_s - M) l_s,  M = max_s m_s.
// Empty splits carry m_s = -3e38, l_s = 0, acc_s = 0 and drop out. One workgroup per row.

struct Params {
    n_rows: u32,    // T * n_heads
    n_splits: u32,
    head_dim: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// acc [n_splits, n_rows, head_dim] followed by (max, sum) [n_splits, n_rows, 2]
@group(0) @binding(1) var<storage, read> part: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;  // [n_rows, head_dim]

override WG: u32 = 64;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= p.n_rows) { return; }
    let ml = p.n_splits * p.n_rows * p.head_dim;
    var m = -3.0e38;
    for (var s = 0u; s < p.n_splits; s = s + 1u) {
        m = max(m, part[ml + (s * p.n_rows + row) * 2u]);
    }
    var l = 0.0;
    for (var s = 0u; s < p.n_splits; s = s + 1u) {
        let i = ml + (s * p.n_rows + row) * 2u;
        l = l + exp(part[i] - m) * part[i + 1u];
    }
    for (var d = lid; d < p.head_dim; d = d + WG) {
        var o = 0.0;
        for (var s = 0u; s < p.n_splits; s = s + 1u) {
            let w = exp(part[ml + (s * p.n_rows + row) * 2u] - m);
            o = o + w * part[(s * p.n_rows + row) * p.head_dim + d];
        }
        out[row * p.head_dim + d] = o / l;
    }
}
