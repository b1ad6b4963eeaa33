// Workgroup-memory variant of attention_decode.wgsl (the module is step.wgsl, this file, then
// attention_decode.wgsl), for adapters without subgroups: `lane_sum` goes through `sm`.

// s[e] (e < B * R) summed over the aligned group of L invocations, in every invocation of the
// group (each adds the same L values in the same order). Uniform control flow; WG * B * R <= 4096.
fn lane_sum(s: ptr<function, array<f32, 32>>, vlid: u32) {
    workgroupBarrier();  // earlier readers of sm are done
    for (var e = 0u; e < B * R; e = e + 1u) { sm[e * WG + vlid] = (*s)[e]; }
    workgroupBarrier();
    let first = vlid - vlid % L;
    for (var e = 0u; e < B * R; e = e + 1u) {
        var acc = 0.0;
        for (var k = 0u; k < L; k = k + 1u) { acc = acc + sm[e * WG + first + k]; }
        (*s)[e] = acc;
    }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    decode(lid, wid.x + wid.y * nwg.x);
}
