// rmsnorm.wgsl's entry point and workgroup sum through workgroup memory (every adapter).

struct Lanes {
    lid: u32,
}

fn row_total(v: f32, l: Lanes) -> f32 {
    return wg_sum(v, l.lid, WG);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * nwg.x;
    // Whole workgroups leave together, so the barriers stay uniform.
    if (row >= p.rows) { return; }
    rmsnorm_main(row, lid, Lanes(lid));
}
