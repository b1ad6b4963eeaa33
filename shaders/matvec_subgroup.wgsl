// Decode mat-vec (t == 1), y = x W^T (+ y with ACC), with subgroup reductions; quant.wgsl
// (before this file in the module) decodes the weights. Needs the device's SUBGROUP
// feature. No `enable subgroups;`: naga 30 rejects that directive ("not yet supported") and
// gates the subgroup builtins and ops on the device feature instead.
//
// A workgroup owns R consecutive rows. Each subgroup takes RS of them at a time (rows
// r0 .. r0 + RS - 1, the next RS rows num_subgroups * RS further on): its lanes stride over
// the rows' 16-value chunks (consecutive lanes, consecutive chunks, so a subgroup reads one
// contiguous run of weight bytes), each lane loads the x chunk once for all RS rows, and one
// subgroupAdd per row gives the sum. No workgroup memory, no barriers.
//
// Needs whole chunks (k % 16 == 0, W_ALIGNED): float weights with other row lengths use
// matmul.wgsl's matvec. Rows are independent of the subgroup size, which may be anything
// (8 on lavapipe, 32 on NVIDIA, 16..64 elsewhere): the host only sizes WG as whole subgroups.

struct Params {
    n: u32,   // weight rows = output features
    k: u32,   // row length = input features, a multiple of 16
    t: u32,   // tokens (1)
    nb: u32,  // blocks in the whole weight (n * k / block size), for the repacked layouts
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w: array<vec4<u32>>;   // [n, k] weight, GPU layout of DT
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;   // [1, k]
@group(0) @binding(3) var<storage, read_write> y: array<f32>;   // [1, n]

override WG: u32 = 128u;   // lanes per workgroup, whole subgroups
override R: u32 = 4u;      // rows per workgroup, a multiple of RS
override RS: u32 = 1u;     // rows a subgroup computes together, <= MAX_RS
override ACC: bool = false;

const MAX_RS: u32 = 4u;

fn sg_store(i: u32, v: f32) {
    if (ACC) {
        y[i] = y[i] + v;
    } else {
        y[i] = v;
    }
}

fn sg_dot16(a: Chunk, b: Chunk) -> f32 {
    return dot(a[0], b[0]) + dot(a[1], b[1]) + dot(a[2], b[2]) + dot(a[3], b[3]);
}

@compute @workgroup_size(WG)
fn matvec_sg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(subgroup_id) sg: u32, @builtin(num_subgroups) nsg: u32) {
    // Lane index and count from the lanes actually present (nothing has diverged yet), so a
    // partial subgroup still covers every chunk.
    let lane = subgroupExclusiveAdd(1u);
    let lanes = subgroupAdd(1u);
    let row0 = (wid.x + wid.y * nwg.x) * R;
    // Rows past n (last workgroup) are skipped; the excess workgroups of a 2-D grid do nothing.
    let row_end = min(row0 + R, p.n);
    let chunks = p.k / 16u;
    // The loop bounds depend only on the subgroup, never the lane, so every subgroupAdd
    // below runs with the whole subgroup.
    for (var r0 = row0 + sg * RS; r0 < row_end; r0 = r0 + nsg * RS) {
        var acc: array<f32, MAX_RS>;
        for (var c = lane; c < chunks; c = c + lanes) {
            let i = 4u * c;
            let xv = Chunk(x[i], x[i + 1u], x[i + 2u], x[i + 3u]);
            for (var r = 0u; r < RS; r = r + 1u) {
                // Rows past n (only when n % RS != 0) re-read row n - 1; their sums are dropped.
                let row = min(r0 + r, p.n - 1u);
                acc[r] = acc[r] + sg_dot16(w16(row, c, p.k, p.nb), xv);
            }
        }
        for (var r = 0u; r < RS; r = r + 1u) {
            let s = subgroupAdd(acc[r]);
            if (lane == 0u && r0 + r < row_end) {
                sg_store(r0 + r, s);
            }
        }
    }
}
