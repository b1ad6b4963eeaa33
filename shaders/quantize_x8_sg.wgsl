// quantize_x8.wgsl's block combination with subgroup shuffles (needs the device's SUBGROUP
// feature, subgroups of at least 8 lanes and WG a multiple of the subgroup size): the 8 lanes
// of a block are 8 aligned lanes of one subgroup (lanes are numbered subgroup by subgroup,
// subgroup_id * subgroup_size + lane), so an xor butterfly over 1, 2, 4 gives every lane the
// block's max |v| and over 1, 2 the 16-value sums, with no barrier. The row sum of rmsnorm_x8
// is reduce_sg.wgsl's (one barrier; the tree took log2(WG)).

struct Lanes {
    sg: u32,       // subgroup_id
    nsg: u32,      // num_subgroups
    sg_lane: u32,  // subgroup_invocation_id
    sg_size: u32,  // subgroup_size
}

fn lane_index(l: Lanes) -> u32 {
    return l.sg * l.sg_size + l.sg_lane;
}


fn put_unit(l: Lanes, u: u32, v: vec4<f32>, live: bool) {
    var m = abs_max4(v);
    m = max(m, subgroupShuffleXor(m, 1u));
    m = max(m, subgroupShuffleXor(m, 2u));
    m = max(m, subgroupShuffleXor(m, 4u));
    // For u % 4 == 0: (s_u + s_u+1) + (s_u+2 + s_u+3), the order of the workgroup variant.
    var s = hsum4(v);
    s = s + subgroupShuffleXor(s, 1u);
    s = s + subgroupShuffleXor(s, 2u);
    if (live) {
        write_unit(u, v, m, s);
    }
}

fn row_sum(l: Lanes, v: f32) -> f32 {
    return sg_wg_sum(v, l.sg, l.nsg, l.sg_lane, l.sg_size);
}

@compute @workgroup_size(WG)
fn quantize_x8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(subgroup_id) sg: u32, @builtin(num_subgroups) nsg: u32,
               @builtin(subgroup_invocation_id) sg_lane: u32, @builtin(subgroup_size) sg_size: u32) {
    quantize_main(Lanes(sg, nsg, sg_lane, sg_size), wid.x + wid.y * nwg.x);
}

@compute @workgroup_size(WG)
fn silu_mul_x8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(subgroup_id) sg: u32, @builtin(num_subgroups) nsg: u32,
               @builtin(subgroup_invocation_id) sg_lane: u32, @builtin(subgroup_size) sg_size: u32) {
    silu_mul_main(Lanes(sg, nsg, sg_lane, sg_size), wid.x + wid.y * nwg.x);
}

@compute @workgroup_size(WG)
fn rmsnorm_x8(@builtin(subgroup_id) sg: u32, @builtin(num_subgroups) nsg: u32,
              @builtin(subgroup_invocation_id) sg_lane: u32, @builtin(subgroup_size) sg_size: u32) {
    rmsnorm_main(Lanes(sg, nsg, sg_lane, sg_size));
}
