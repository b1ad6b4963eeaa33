// Row softmax with temperature: y[r, i] = exp(x[r, i] / T - m) / sum_j exp(x[r, j] / T - m),
// m = max_j x[r, j] / T so no exp overflows. One workgroup per row, strided over the row, so a
// row may be as wide as a vocabulary (128256). Two reads of the row and one write: the first
// read keeps a running (max, sum) per invocation ("online softmax"), rescaling the sum when
// the max grows; the workgroup then merges those pairs.

struct Params {
    cols: u32,          // row length
    rows: u32,
    temperature: f32,   // > 0
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;        // [rows, cols]
@group(0) @binding(2) var<storage, read_write> y: array<f32>;  // [rows, cols]

override WG: u32 = 256;

// The lowest finite f32: a start value for maxima that keeps exp(start - m) at 0 instead of
// the NaN that -inf - -inf would give for invocations that see no element.
const LOWEST: f32 = -3.4028235e38;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * nwg.x;
    // Whole workgroups leave together, so the barriers below stay uniform.
    if (row >= p.rows) { return; }
    let base = row * p.cols;
    var m = LOWEST;
    var s = 0.0;
    for (var i = lid; i < p.cols; i = i + WG) {
        let v = x[base + i] / p.temperature;
        if (v > m) {
            s = s * exp(m - v) + 1.0;
            m = v;
        } else {
            s = s + exp(v - m);
        }
    }
    let row_max = wg_max(m, lid, WG);
    let total = wg_sum(s * exp(m - row_max), lid, WG);
    let inv_total = 1.0 / total;
    for (var i = lid; i < p.cols; i = i + WG) {
        y[base + i] = exp(x[base + i] / p.temperature - row_max) * inv_total;
    }
}
