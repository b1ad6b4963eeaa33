// matvec.wgsl's entry points and row reduction with subgroup operations (needs the device's
// SUBGROUP feature; no `enable subgroups;`: naga 30 rejects the directive and gates the
// builtins on the feature). Any subgroup size works: each subgroup sums its lanes with
// subgroupAdd, and where the workgroup has several subgroups their sums meet in workgroup
// memory.

struct Lanes {
    lid: u32,       // local_invocation_index
    sg: u32,        // subgroup_id
    nsg: u32,       // num_subgroups
    sg_lane: u32,   // subgroup_invocation_id
}

// Subgroup sums [MAX_R][MAX_SG]: MAX_WG lanes in subgroups of at least 4.
const MAX_SG: u32 = 64u;
var<workgroup> sg_sums: array<f32, 512>;

// The sum over the workgroup of row r's partial sums (hsum of acc[r]), returned to lane r
// (r < RT); other lanes get a meaningless value.
fn reduce_rows(acc: Acc, lanes: Lanes) -> f32 {
    var total = 0.0;
    for (var r = 0u; r < RT; r = r + 1u) {
        let s = subgroupAdd(hsum(acc[r]));
        if (lanes.nsg == 1u) {
            if (lanes.lid == r) {
                total = s;
            }
        } else if (lanes.sg_lane == 0u) {
            sg_sums[r * MAX_SG + lanes.sg] = s;
        }
    }
    // nsg is the same for the whole workgroup, so the barrier is uniform.
    if (lanes.nsg > 1u) {
        workgroupBarrier();
        if (lanes.lid < RT) {
            for (var i = 0u; i < lanes.nsg; i = i + 1u) {
                total = total + sg_sums[lanes.lid * MAX_SG + i];
            }
        }
    }
    return total;
}

@compute @workgroup_size(WG)
fn matvec(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32, @builtin(subgroup_id) sg: u32,
          @builtin(num_subgroups) nsg: u32, @builtin(subgroup_invocation_id) sg_lane: u32) {
    matvec_main(wid.x + wid.y * nwg.x, Lanes(lid, sg, nsg, sg_lane));
}

@compute @workgroup_size(WG)
fn matvec_glu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32, @builtin(subgroup_id) sg: u32,
              @builtin(num_subgroups) nsg: u32, @builtin(subgroup_invocation_id) sg_lane: u32) {
    glu_main(wid.x + wid.y * nwg.x, Lanes(lid, sg, nsg, sg_lane));
}

// ---- each subgroup its own rows (LPR = the subgroup size, which the host checks is fixed) ----

// Rows of subgroup `sg` of workgroup `wg`: R rows from (workgroup index * subgroups + sg) * R.
fn sgr_row0(index: u32, sg: u32) -> u32 {
    return (index * (WG / LPR) + sg) * R;
}

@compute @workgroup_size(WG)
fn matvec_sgr(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(subgroup_id) sg: u32, @builtin(subgroup_invocation_id) sg_lane: u32) {
    let wg = wid.x + wid.y * nwg.x;
    if (wg >= p.wg_end) {
        return;
    }
    let si = slot_and_index(wg);
    let s = si.x;
    let row0 = sgr_row0(si.y, sg);
    // NORM_IN: this lane's first block sum of x^2 is loaded now and added after the row, so
    // its latency hides behind the row's loads.
    let first_ss = norm_ss_first(sg_lane);
    if (R == 1u && has_flat(dt_of(s))) {
        let dot = subgroupAdd(row_flat(s, dt_of(s), min(row0, p.n[s] - 1u), sg_lane));
        let total = dot * norm_scale(first_ss, sg_lane);
        if (sg_lane == 0u && row0 < p.n[s]) {
            store(s, row0, total);
        }
        return;
    }
    let acc = rows_dot(dt_of(s), Rows(s, s, row0, row0), sg_lane);
    let scale = norm_scale(first_ss, sg_lane);
    for (var r = 0u; r < R; r = r + 1u) {
        // Every lane gets the total; lane r stores it.
        let total = subgroupAdd(hsum(acc[r])) * scale;
        if (sg_lane == r && row0 + r < p.n[s]) {
            store(s, row0 + r, total);
        }
    }
}

// ---- RMSNorm folded in (NORM_IN, NORM_OUT; see matvec.wgsl) --------------------------------

// Word of xq's block sums of x^2 (after quantize_x8.wgsl's layout for k values).
fn norm_ss_base(k: u32) -> u32 {
    return 11u * k / 32u;
}

// NORM_IN: block sum number `lane` of x^2 (0 past the last block, or without NORM_IN).
fn norm_ss_first(lane: u32) -> f32 {
    if (!NORM_IN) {
        return 0.0;
    }
    let nb = p.k / 32u;
    return select(0.0, bitcast<f32>(xq_word(norm_ss_base(p.k) + min(lane, nb - 1u))), lane < nb);
}

// NORM_IN: 1 / rms(x) from the block sums of x^2 (the subgroup's lanes share them out); 1
// without NORM_IN.
fn norm_scale(first: f32, lane: u32) -> f32 {
    if (!NORM_IN) {
        return 1.0;
    }
    var ss = first;
    for (var i = lane + LPR; i < p.k / 32u; i = i + LPR) {
        ss = ss + bitcast<f32>(xq_word(norm_ss_base(p.k) + i));
    }
    return inverseSqrt(subgroupAdd(ss) / f32(p.k) + p.eps);
}

// matvec_norm's block of 32 rows: v = w_norm * x_new and x_new^2.
var<workgroup> norm_v: array<f32, 32>;
var<workgroup> norm_x2: array<f32, 32>;

// NORM_OUT producer: x += W xq (one weight, int8 x, y0 = x) for 32 consecutive rows per
// workgroup, one per subgroup (WG = 32 LPR), then the block's int8 form of w_norm * x_new and
// its sum of x_new^2 into y1 (xq's layout for n0 values plus the block sums). w1: w_norm [n0]
// (f32 bits). n0 % 32 == 0.
@compute @workgroup_size(WG)
fn matvec_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32, @builtin(subgroup_id) sg: u32,
               @builtin(subgroup_invocation_id) sg_lane: u32) {
    let wg = wid.x + wid.y * nwg.x;
    if (wg >= p.wg_end) {
        return;
    }
    let n = p.n[0];
    let row = wg * 32u + sg;
    let dot = subgroupAdd(row_flat(0u, DT0, row, sg_lane));
    if (sg_lane == 0u) {
        let xn = y0[row] + dot;
        y0[row] = xn;
        norm_v[sg] = xn * bitcast<f32>(wword(1u, row));
        norm_x2[sg] = xn * xn;
    }
    workgroupBarrier();
    // Lanes 0..7 each pack four values; every one finds the block's max itself (32 reads of
    // workgroup memory beat another barrier). Lanes 0, 1 write the 16-value sums, lane 2 the
    // sum of squares, lane 0 the scale.
    if (lid < 8u) {
        var m = 0.0;
        for (var i = 0u; i < 32u; i = i + 1u) {
            m = max(m, abs(norm_v[i]));
        }
        let d = int8_scale(m);
        let v = vec4<f32>(norm_v[4u * lid], norm_v[4u * lid + 1u], norm_v[4u * lid + 2u], norm_v[4u * lid + 3u]);
        y1[wg * 8u + lid] = int8_pack(v, d);
        if (lid == 0u) {
            y1[n / 4u + wg] = bitcast<u32>(d);
        }
        if (lid < 2u) {
            var s16 = 0.0;
            for (var i = 0u; i < 16u; i = i + 1u) {
                s16 = s16 + norm_v[16u * lid + i];
            }
            y1[n / 4u + n / 32u + 2u * wg + lid] = bitcast<u32>(s16);
        }
        if (lid == 2u) {
            var ss = 0.0;
            for (var i = 0u; i < 32u; i = i + 1u) {
                ss = ss + norm_x2[i];
            }
            y1[norm_ss_base(n) + wg] = bitcast<u32>(ss);
        }
    }
}

@compute @workgroup_size(WG)
fn matvec_glu_sgr(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(subgroup_id) sg: u32, @builtin(subgroup_invocation_id) sg_lane: u32) {
    let wg = wid.x + wid.y * nwg.x;
    if (wg >= p.wg_end) {
        return;
    }
    let row0 = sgr_row0(wg, sg);
    if (R == 1u && has_flat(DT0) && has_flat(DT1)) {
        let row = min(row0, p.n[0] - 1u);
        let gate = subgroupAdd(row_flat(0u, DT0, row, sg_lane));
        let up = subgroupAdd(row_flat(1u, DT1, row, sg_lane));
        if (sg_lane == 0u && row0 < p.n[0]) {
            y0[row0] = silu(gate) * up;
        }
        return;
    }
    var acc: Acc;
    if (DT0 == DT1) {
        acc = rows_dot(DT0, Rows(0u, 1u, row0, row0), sg_lane);
    } else {
        acc = rows_dot(DT0, Rows(0u, 0u, row0, row0), sg_lane);
        let up = rows_dot(DT1, Rows(1u, 1u, row0, row0), sg_lane);
        for (var r = 0u; r < R; r = r + 1u) {
            acc[R + r] = up[r];
        }
    }
    for (var r = 0u; r < R; r = r + 1u) {
        let gate = subgroupAdd(hsum(acc[r]));
        let up = subgroupAdd(hsum(acc[R + r]));
        if (sg_lane == r && row0 + r < p.n[0]) {
            y0[row0 + r] = silu(gate) * up;
        }
    }
}
