// A workgroup-wide sum with subgroup operations (needs the device's SUBGROUP feature and
// subgroups of at least 8 lanes at 1024 invocations: `sg_part` holds one partial per
// subgroup). Callers must be uniform: every invocation of the workgroup calls, once per
// kernel run (the partials are not fenced for reuse).

var<workgroup> sg_part: array<f32, 128>;

// The sum of v over the workgroup, to every invocation: a subgroupAdd per subgroup, one
// barrier, then one more subgroupAdd over the partials where a subgroup holds them all (32 at
// 1024 lanes on the H100; a serial loop over them cost ~0.4 us there), else a loop. (The
// workgroup-memory tree of reduce.wgsl takes log2(WG) barriers.)
fn sg_wg_sum(v: f32, sg: u32, nsg: u32, sg_lane: u32, sg_size: u32) -> f32 {
    let s = subgroupAdd(v);
    if (sg_lane == 0u) {
        sg_part[sg] = s;
    }
    workgroupBarrier();
    if (nsg <= sg_size) {
        return subgroupAdd(select(0.0, sg_part[min(sg_lane, nsg - 1u)], sg_lane < nsg));
    }
    var t = 0.0;
    for (var i = 0u; i < nsg; i = i + 1u) {
        t = t + sg_part[i];
    }
    return t;
}
