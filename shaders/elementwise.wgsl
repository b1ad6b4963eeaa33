// Element-wise kernels over flat f32 tensors: residual add, SwiGLU's silu(gate) * up, copy,
// and the f16 copy of an activation that a tensor-core mat-mul stages as straight 16-byte loads.
// One invocation per output element; the grid may spread workgroups over x and y.
// Each entry point declares its own buffers at bindings 1.. (several entry points share a
// binding number; only one of them is used per pipeline), so the auto layout of each entry
// has exactly the bindings the Rust side binds, in order.

struct Params {
    n: u32,       // output elements
    cols: u32,    // silu_mul_fused: F, the output row length (input rows are 2F long)
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

override WG: u32 = 256;

fn element(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

// ---- add: y = a + b ------------------------------------------------------------------------
@group(0) @binding(1) var<storage, read> add_a: array<f32>;        // [n]
@group(0) @binding(2) var<storage, read> add_b: array<f32>;        // [n]
@group(0) @binding(3) var<storage, read_write> add_y: array<f32>;  // [n], aliases neither

@compute @workgroup_size(WG)
fn add(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i >= p.n) { return; }
    add_y[i] = add_a[i] + add_b[i];
}

// ---- add_in_place: acc += b (the residual stream accumulating a block's output) -----------
@group(0) @binding(1) var<storage, read_write> acc_a: array<f32>;  // [n]
@group(0) @binding(2) var<storage, read> acc_b: array<f32>;        // [n]

@compute @workgroup_size(WG)
fn add_in_place(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i >= p.n) { return; }
    acc_a[i] = acc_a[i] + acc_b[i];
}

// ---- silu_mul: y = silu(gate) * up, gate and up separate -----------------------------------
@group(0) @binding(1) var<storage, read> sm_gate: array<f32>;     // [T, F]
@group(0) @binding(2) var<storage, read> sm_up: array<f32>;       // [T, F]
@group(0) @binding(3) var<storage, read_write> sm_y: array<f32>;  // [T, F]

@compute @workgroup_size(WG)
fn silu_mul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i >= p.n) { return; }
    sm_y[i] = silu(sm_gate[i]) * sm_up[i];
}

// ---- silu_mul_f16: y = silu(gate) * up rounded to f16 (saturating), for the tensor-core down
// projection of a prompt (no to_f16 pass after it). One invocation per pair of values.
@group(0) @binding(1) var<storage, read> sh_gate: array<vec2<f32>>;  // [T, F]
@group(0) @binding(2) var<storage, read> sh_up: array<vec2<f32>>;    // [T, F]
@group(0) @binding(3) var<storage, read_write> sh_y: array<u32>;     // [T, F] f16, two per word

@compute @workgroup_size(WG)
fn silu_mul_f16(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i >= p.n) { return; }
    let g = sh_gate[i];
    let v = vec2<f32>(silu(g.x), silu(g.y)) * sh_up[i];
    sh_y[i] = f16_pair(v);
}

// ---- silu_mul_fused: y = silu(gate) * up from one fused gate/up mat-mul output ------------
@group(0) @binding(1) var<storage, read> fu_gate_up: array<f32>;  // [T, 2F]: gate row half, then up
@group(0) @binding(2) var<storage, read_write> fu_y: array<f32>;  // [T, F]

@compute @workgroup_size(WG)
fn silu_mul_fused(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i >= p.n) { return; }
    let row = i / p.cols;
    let col = i - row * p.cols;
    let g = row * 2u * p.cols + col;
    fu_y[i] = silu(fu_gate_up[g]) * fu_gate_up[g + p.cols];
}

// ---- copy: y = x ---------------------------------------------------------------------------
@group(0) @binding(1) var<storage, read> cp_x: array<f32>;        // [n]
@group(0) @binding(2) var<storage, read_write> cp_y: array<f32>;  // [n]

@compute @workgroup_size(WG)
fn copy(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i >= p.n) { return; }
    cp_y[i] = cp_x[i];
}

// ---- to_f16: y = x rounded to f16, saturating at +-65504 (for matmul_coop's f16 x) ---------
// One invocation per pair of values (p.n = pairs); no f16 types, so no f16 feature needed.
@group(0) @binding(1) var<storage, read> h_x: array<vec2<f32>>;   // [2n]
@group(0) @binding(2) var<storage, read_write> h_y: array<u32>;   // [2n] f16, two per word

@compute @workgroup_size(WG)
fn to_f16(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let i = element(wid, nwg, lid);
    if (i >= p.n) { return; }
    h_y[i] = f16_pair(h_x[i]);
}
