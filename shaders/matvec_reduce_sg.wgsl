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

// ---- each subgroup its own rows (LPR = the subgroup size, which the host checks is fixed) ----

// Rows of subgroup `sg` of workgroup `wg`: R rows from (workgroup index * subgroups + sg) * R.
fn sgr_row0(index: u32, sg: u32) -> u32 {
    return (index * (WG / LPR) + sg) * R;
}

@compute @workgroup_size(WG)
fn matvec_sgr(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(subgroup_id) sg: u32, @builtin(subgroup_invocation_id) sg_lane: u32) {
    let wg = wid.x + wid.y * nwg.x;
    if (wg >= p.wg_end) {
        return;
    }
    let si = slot_and_index(wg);
    let s = si.x;
    let row0 = sgr_row0(si.y, sg);
    if (R == 1u && has_flat(dt_of(s))) {
        let total = subgroupAdd(row_flat(s, dt_of(s), min(row0, p.n[s] - 1u), sg_lane));
        if (sg_lane == 0u && row0 < p.n[s]) {
            store(s, row0, total);
        }
        return;
    }
    let acc = rows_dot(dt_of(s), Rows(s, s, row0, row0), sg_lane);
    for (var r = 0u; r < R; r = r + 1u) {
        // Every lane gets the total; lane r stores it.
        let total = subgroupAdd(hsum(acc[r]));
        if (sg_lane == r && row0 + r < p.n[s]) {
            store(s, row0 + r, total);
        }
    }
}

@compute @workgroup_size(WG)
fn matvec_glu_sgr(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(subgroup_id) sg: u32, @builtin(subgroup_invocation_id) sg_lane: u32) {
    let wg = wid.x + wid.y * nwg.x;
    if (wg >= p.wg_end) {
        return;
    }
    let row0 = sgr_row0(wg, sg);
    if (R == 1u && has_flat(DT0) && has_flat(DT1)) {
        let row = min(row0, p.n[0] - 1u);
        let gate = subgroupAdd(row_flat(0u, DT0, row, sg_lane));
        let up = subgroupAdd(row_flat(1u, DT1, row, sg_lane));
        if (sg_lane == 0u && row0 < p.n[0]) {
            y0[row0] = silu(gate) * up;
        }
        return;
    }
    let acc = glu_rows_dot(row0, sg_lane);
    for (var r = 0u; r < R; r = r + 1u) {
        let gate = subgroupAdd(hsum(acc[r]));
        let up = subgroupAdd(hsum(acc[R + r]));
        if (sg_lane == r && row0 + r < p.n[0]) {
            y0[row0 + r] = silu(gate) * up;
        }
    }
}
