// Workgroup-memory variant of attention_decode.wgsl (the module is step.wgsl, this file, then
// attention_decode.wgsl), for adapters without subgroups: `reduce_scores` goes through sm4.

// Sum of quad slot `slot` over the aligned group of L invocations (each adds the same L
// values in the same order, so the group agrees bitwise).
fn group_sum(slot: u32, vlid: u32) -> vec4<f32> {
    let first = slot * WG + vlid - vlid % L;
    var acc = vec4<f32>(0.0);
    for (var k = 0u; k < L; k = k + 1u) { acc = acc + sm4[first + k]; }
    return acc;
}

// The batch's partial scores sc<b><g> summed over the aligned group of L invocations.
// Uniform control flow; slots [8, WG] quads of sm4.
fn reduce_scores(vlid: u32) {
    workgroupBarrier();  // earlier readers of sm4 are done
    sm4[vlid] = sc00;
    sm4[WG + vlid] = sc01;
    sm4[2u * WG + vlid] = sc10;
    sm4[3u * WG + vlid] = sc11;
    sm4[4u * WG + vlid] = sc20;
    sm4[5u * WG + vlid] = sc21;
    sm4[6u * WG + vlid] = sc30;
    sm4[7u * WG + vlid] = sc31;
    workgroupBarrier();
    sc00 = group_sum(0u, vlid);
    if (RG > 1u) { sc01 = group_sum(1u, vlid); }
    if (B > 1u) {
        sc10 = group_sum(2u, vlid);
        if (RG > 1u) { sc11 = group_sum(3u, vlid); }
    }
    if (B > 2u) {
        sc20 = group_sum(4u, vlid);
        sc30 = group_sum(6u, vlid);
        if (RG > 1u) {
            sc21 = group_sum(5u, vlid);
            sc31 = group_sum(7u, vlid);
        }
    }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    decode(lid, wid.x + wid.y * nwg.x);
}

@compute @workgroup_size(WG)
fn merge(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    merge_block(lid, wid.x + wid.y * nwg.x);
}
