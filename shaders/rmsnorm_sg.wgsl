// rmsnorm.wgsl's entry point with reduce_sg.wgsl's subgroup sum (needs SUBGROUP, subgroups of
// at least 8 lanes).

struct Lanes {
    sg: u32,
    nsg: u32,
    sg_lane: u32,
    sg_size: u32,
}

fn row_total(v: f32, l: Lanes) -> f32 {
    return sg_wg_sum(v, l.sg, l.nsg, l.sg_lane, l.sg_size);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32, @builtin(subgroup_id) sg: u32,
        @builtin(num_subgroups) nsg: u32, @builtin(subgroup_invocation_id) sg_lane: u32,
        @builtin(subgroup_size) sg_size: u32) {
    let row = wid.x + wid.y * nwg.x;
    // Whole workgroups leave together, so the barrier stays uniform.
    if (row >= p.rows) { return; }
    rmsnorm_main(row, lid, Lanes(sg, nsg, sg_lane, sg_size));
}
