// Subgroup variant of attention_decode.wgsl (the module is step.wgsl, this file, then
// attention_decode.wgsl): the L lanes of a key are L consecutive lanes of one subgroup, and
// their score dots are summed by an xor butterfly of shuffles (every lane ends with the
// bitwise same sum, as a + b == b + a). Needs the device's SUBGROUP feature and L <= the
// subgroup size. No `enable subgroups;`: naga 30 rejects the directive and gates the builtins
// on the device feature instead.
//
// Invocations are numbered subgroup by subgroup (subgroup_id * subgroup_size + lane), so lane
// groups never straddle subgroups whatever the adapter's order; the host sizes WG as whole
// subgroups.

// s[e] (e < B * R) summed over the aligned group of L lanes, in every lane of the group.
fn lane_sum(s: ptr<function, array<f32, 32>>, vlid: u32) {
    for (var mask = 1u; mask < L; mask = mask * 2u) {
        for (var e = 0u; e < B * R; e = e + 1u) {
            (*s)[e] = (*s)[e] + subgroupShuffleXor((*s)[e], mask);
        }
    }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(subgroup_id) sg: u32, @builtin(subgroup_size) sg_size: u32,
        @builtin(subgroup_invocation_id) sg_lane: u32) {
    decode(sg * sg_size + sg_lane, wid.x + wid.y * nwg.x);
}
