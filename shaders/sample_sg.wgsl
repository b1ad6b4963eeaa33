// Greedy decode's argmax with subgroup operations (the module is sample.wgsl, then this file;
// needs the device's SUBGROUP feature): each lane scans as greedy_wide, then the lowest
// (rank_key, index) pair comes from two subgroupMin per subgroup, one barrier, and the same
// over the subgroups' pairs, instead of greedy_wide's eleven-barrier tree.

var<workgroup> sg_best: array<vec2<u32>, 256>;  // [subgroups]: (rank_key, index)

// The lowest (key, index) pair over the subgroup, by key and then index.
fn subgroup_first(key: u32, idx: u32) -> vec2<u32> {
    let k = subgroupMin(key);
    return vec2<u32>(k, subgroupMin(select(NONE, idx, key == k)));
}

@compute @workgroup_size(GREEDY_WG)
fn greedy_sg(@builtin(local_invocation_index) lid: u32, @builtin(subgroup_id) sg: u32,
             @builtin(num_subgroups) nsg: u32, @builtin(subgroup_invocation_id) sg_lane: u32,
             @builtin(subgroup_size) sg_size: u32) {
    let scan = greedy_scan(lid, row_base());
    let mine = subgroup_first(scan.x, scan.y);
    if (sg_lane == 0u) {
        sg_best[sg] = mine;
    }
    workgroupBarrier();
    // Every subgroup reduces the pairs (subgroup operations stay in uniform control flow);
    // subgroup 0 writes. Lane j takes the subgroups j, j + sg_size, ... in order; ties keep the
    // lower index.
    var best = vec2<u32>(NONE, NONE);
    for (var j = sg_lane; j < nsg; j = j + sg_size) {
        let c = sg_best[j];
        if (c.x < best.x || (c.x == best.x && c.y < best.y)) {
            best = c;
        }
    }
    let first = subgroup_first(best.x, best.y);
    if (sg == 0u && sg_lane == 0u) {
        tokens[p.out_index] = first.y;
    }
}
