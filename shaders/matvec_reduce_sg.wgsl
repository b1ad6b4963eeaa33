// matvec.wgsl's entry points and row reduction with subgroup operations (needs the device's
// SUBGROUP feature; no `enable subgroups;`: naga 30 rejects the directive and gates the
// builtins on the feature). Any subgroup size works: each subgroup sums its lanes with
// subgroupAdd, and where the workgroup has several subgroups their sums meet in workgroup
// memory.

struct Lanes {
    lid: u32,       // local_invocation_index
    sg: u32,        // subgroup_id
    nsg: u32,       // num_subgroups
    sg_lane: u32,   // subgroup_invocation_id
}

// Subgroup sums [MAX_R][MAX_SG]: MAX_WG lanes in subgroups of at least 4.
const MAX_SG: u32 = 64u;
var<workgroup> sg_sums: array<f32, 512>;

// The sum over the workgroup of row r's partial sums (hsum of acc[r]), returned to lane r
// (r < RT); other lanes get a meaningless value.
fn reduce_rows(acc: Acc, lanes: Lanes) -> f32 {
    var total = 0.0;
    for (var r = 0u; r < RT; r = r + 1u) {
        let s = subgroupAdd(hsum(acc[r]));
        if (lanes.nsg == 1u) {
            if (lanes.lid == r) {
                total = s;
            }
        } else if (lanes.sg_lane == 0u) {
            sg_sums[r * MAX_SG + lanes.sg] = s;
        }
    }
    // nsg is the same for the whole workgroup, so the barrier is uniform.
    if (lanes.nsg > 1u) {
        workgroupBarrier();
        if (lanes.lid < RT) {
            for (var i = 0u; i < lanes.nsg; i = i + 1u) {
                total = total + sg_sums[lanes.lid * MAX_SG + i];
            }
        }
    }
    return total;
}

@compute @workgroup_size(WG)
fn matvec(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32, @builtin(subgroup_id) sg: u32,
          @builtin(num_subgroups) nsg: u32, @builtin(subgroup_invocation_id) sg_lane: u32) {
    matvec_main(wid.x + wid.y * nwg.x, Lanes(lid, sg, nsg, sg_lane));
}

@compute @workgroup_size(WG)
fn matvec_glu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32, @builtin(subgroup_id) sg: u32,
              @builtin(num_subgroups) nsg: u32, @builtin(subgroup_invocation_id) sg_lane: u32) {
    glu_main(wid.x + wid.y * nwg.x, Lanes(lid, sg, nsg, sg_lane));
}
