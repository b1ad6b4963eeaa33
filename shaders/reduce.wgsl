// Workgroup-wide reductions through workgroup memory (the path every adapter has). Callers
// must be uniform: every invocation of the workgroup calls, with wg the workgroup size of the
// calling kernel, a power of two <= 1024.
//
// Two rounds with a barrier each instead of a halving tree: the first min(wg, FAN) lanes each
// combine wg / FAN values, then every lane combines those FAN partials. A tree takes log2(wg)
// barriers (9 for decode's 512-lane RMSNorm), and on the H100 the single-workgroup RMSNorm
// feeding the int8 mat-vecs cost ~5.3 us a call in the decode chain against ~3 us for the
// barrier-light small kernels (benches/results/2026-11-24-h100-s5/).

const FAN: u32 = 32u;

var<workgroup> red_buf: array<f32, 1024>;  // one value per lane
var<workgroup> red_part: array<f32, 32>;   // FAN partials

// Lanes of round 1: lane i < FAN combines red_buf[i], red_buf[i + FAN], ... into red_part[i].
// A second array (not red_buf again) lets round 2 follow after one barrier; the next call's
// writes are ordered after this call's reads by the barriers each call starts with.
fn red_lanes(wg: u32) -> u32 {
    return min(wg, FAN);
}

fn wg_sum(v: f32, lid: u32, wg: u32) -> f32 {
    red_buf[lid] = v;
    workgroupBarrier();
    let lanes = red_lanes(wg);
    if (lid < lanes) {
        var part = 0.0;
        for (var i = lid; i < wg; i = i + lanes) {
            part = part + red_buf[i];
        }
        red_part[lid] = part;
    }
    workgroupBarrier();
    var total = 0.0;
    for (var i = 0u; i < lanes; i = i + 1u) {
        total = total + red_part[i];
    }
    return total;
}

fn wg_max(v: f32, lid: u32, wg: u32) -> f32 {
    red_buf[lid] = v;
    workgroupBarrier();
    let lanes = red_lanes(wg);
    if (lid < lanes) {
        var part = red_buf[lid];
        for (var i = lid + lanes; i < wg; i = i + lanes) {
            part = max(part, red_buf[i]);
        }
        red_part[lid] = part;
    }
    workgroupBarrier();
    var total = red_part[0];
    for (var i = 1u; i < lanes; i = i + 1u) {
        total = max(total, red_part[i]);
    }
    return total;
}
