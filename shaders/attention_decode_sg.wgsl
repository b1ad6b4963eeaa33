// Subgroup variant of attention_decode.wgsl (the module is step.wgsl, this file, then
// attention_decode.wgsl): the L lanes of a key are L consecutive lanes of one subgroup, and
// their partial score dots are summed by an xor butterfly of shuffles (every lane ends with
// the bitwise same sums, as a + b == b + a). Needs the device's SUBGROUP feature and L <= the
// subgroup size. No `enable subgroups;`: naga 30 rejects the directive and gates the builtins
// on the device feature instead.
//
// Invocations are numbered subgroup by subgroup (subgroup_id * subgroup_size + lane), so lane
// groups never straddle subgroups whatever the adapter's order; the host sizes WG as whole
// subgroups.

// The batch's partial scores sc<b><g> summed over the aligned group of L lanes.
fn reduce_scores(vlid: u32) {
    for (var mask = 1u; mask < L; mask = mask * 2u) {
        sc00 = sc00 + subgroupShuffleXor(sc00, mask);
        if (RG > 1u) { sc01 = sc01 + subgroupShuffleXor(sc01, mask); }
        if (B > 1u) {
            sc10 = sc10 + subgroupShuffleXor(sc10, mask);
            if (RG > 1u) { sc11 = sc11 + subgroupShuffleXor(sc11, mask); }
        }
        if (B > 2u) {
            sc20 = sc20 + subgroupShuffleXor(sc20, mask);
            sc30 = sc30 + subgroupShuffleXor(sc30, mask);
            if (RG > 1u) {
                sc21 = sc21 + subgroupShuffleXor(sc21, mask);
                sc31 = sc31 + subgroupShuffleXor(sc31, mask);
            }
        }
    }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(subgroup_id) sg: u32, @builtin(subgroup_size) sg_size: u32,
        @builtin(subgroup_invocation_id) sg_lane: u32) {
    decode(sg * sg_size + sg_lane, wid.x + wid.y * nwg.x);
}

@compute @workgroup_size(WG)
fn merge(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(subgroup_id) sg: u32, @builtin(subgroup_size) sg_size: u32,
         @builtin(subgroup_invocation_id) sg_lane: u32) {
    merge_block(sg * sg_size + sg_lane, wid.x + wid.y * nwg.x);
}
