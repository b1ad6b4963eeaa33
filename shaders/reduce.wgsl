// Workgroup-wide reductions through workgroup memory (the path every adapter has; subgroup
// variants come later). Callers must be uniform: every invocation of the workgroup calls.
// RED_WG is the workgroup size of the calling kernel and must be a power of two <= 1024.

var<workgroup> red_buf: array<f32, 1024>;

fn wg_sum(v: f32, lid: u32, wg: u32) -> f32 {
    red_buf[lid] = v;
    workgroupBarrier();
    for (var s = wg / 2u; s > 0u; s = s / 2u) {
        if (lid < s) {
            red_buf[lid] = red_buf[lid] + red_buf[lid + s];
        }
        workgroupBarrier();
    }
    let r = red_buf[0];
    workgroupBarrier();
    return r;
}

fn wg_max(v: f32, lid: u32, wg: u32) -> f32 {
    red_buf[lid] = v;
    workgroupBarrier();
    for (var s = wg / 2u; s > 0u; s = s / 2u) {
        if (lid < s) {
            red_buf[lid] = max(red_buf[lid], red_buf[lid + s]);
        }
        workgroupBarrier();
    }
    let r = red_buf[0];
    workgroupBarrier();
    return r;
}
