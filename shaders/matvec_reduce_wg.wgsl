// matvec.wgsl's entry points and row reduction for devices without subgroups: a tree over
// workgroup memory, log2(WG) barriers, all rows at once.

struct Lanes {
    lid: u32,  // local_invocation_index
}

var<workgroup> wg_sums: array<f32, 2048>;  // [MAX_R][WG] partial sums

// The sum over the workgroup of row r's partial sums (hsum of acc[r]), returned to lane r
// (r < RT); other lanes get a meaningless value.
fn reduce_rows(acc: Acc, lanes: Lanes) -> f32 {
    let lid = lanes.lid;
    for (var r = 0u; r < RT; r = r + 1u) {
        wg_sums[r * WG + lid] = hsum(acc[r]);
    }
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (lid < s) {
            for (var r = 0u; r < RT; r = r + 1u) {
                wg_sums[r * WG + lid] = wg_sums[r * WG + lid] + wg_sums[r * WG + lid + s];
            }
        }
        workgroupBarrier();
    }
    return wg_sums[min(lid, RT - 1u) * WG];
}

@compute @workgroup_size(WG)
fn matvec(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    matvec_main(wid.x + wid.y * nwg.x, Lanes(lid));
}

@compute @workgroup_size(WG)
fn matvec_glu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    glu_main(wid.x + wid.y * nwg.x, Lanes(lid));
}
