// quantize_x8.wgsl's block combination through workgroup memory (every adapter): the 8
// lanes of a block meet in `unit_max` / `unit_sum` between two barriers; row sums by
// reduce.wgsl's tree.

struct Lanes {
    lid: u32,  // local_invocation_index
}

fn lane_index(l: Lanes) -> u32 {
    return l.lid;
}

var<workgroup> unit_max: array<f32, 1024>;
var<workgroup> unit_sum: array<f32, 1024>;

fn put_unit(l: Lanes, u: u32, v: vec4<f32>, live: bool) {
    let lid = l.lid;
    unit_max[lid] = abs_max4(v);
    unit_sum[lid] = hsum4(v);
    workgroupBarrier();
    if (live) {
        let first = lid & ~7u;
        var m = 0.0;
        for (var i = 0u; i < 8u; i = i + 1u) {
            m = max(m, unit_max[first + i]);
        }
        // Read only where u % 4 == 0 (then lid % 4 == 0 too: WG is a multiple of 8).
        let r = min(lid, 1020u);
        let s16 = (unit_sum[r] + unit_sum[r + 1u]) + (unit_sum[r + 2u] + unit_sum[r + 3u]);
        write_unit(u, v, m, s16);
    }
    workgroupBarrier();
}

fn row_sum(l: Lanes, v: f32) -> f32 {
    return wg_sum(v, l.lid, WG);
}

@compute @workgroup_size(WG)
fn quantize_x8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    quantize_main(Lanes(lid), wid.x + wid.y * nwg.x);
}

@compute @workgroup_size(WG)
fn silu_mul_x8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    silu_mul_main(Lanes(lid), wid.x + wid.y * nwg.x);
}

@compute @workgroup_size(WG)
fn rmsnorm_x8(@builtin(local_invocation_index) lid: u32) {
    rmsnorm_main(Lanes(lid));
}
