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
    var scale = 1.0;
    if (NORM_IN) {
        scale = inv_rms(sg_lane);
    }
    if (R == 1u && has_flat(dt_of(s))) {
        let total = subgroupAdd(row_flat(s, dt_of(s), min(row0, p.n[s] - 1u), sg_lane)) * scale;
        if (sg_lane == 0u && row0 < p.n[s]) {
            store(s, row0, total);
        }
        return;
    }
    let acc = rows_dot(dt_of(s), Rows(s, s, row0, row0), sg_lane);
    for (var r = 0u; r < R; r = r + 1u) {
        // Every lane gets the total; lane r stores it.
        let total = subgroupAdd(hsum(acc[r])) * scale;
        if (sg_lane == r && row0 + r < p.n[s]) {
            store(s, row0 + r, total);
        }
    }
}

// 1 / rms(h) for NORM_IN from the per-block sums of h^2 after x's values (the int8 layout with
// XQ, else k f32); `lane` of the LPR lanes sharing a row (which all get the result).
fn inv_rms(lane: u32) -> f32 {
    let base = ss_at(p.k) / 4u;
    var s = 0.0;
    for (var i = lane; i < p.k / 128u; i = i + LPR) {
        var v: vec4<f32>;
        if (XQ) {
            v = bitcast<vec4<f32>>(xq[base + i]);
        } else {
            v = x[base + i];
        }
        s = s + (v.x + v.y) + (v.z + v.w);
    }
    return inverseSqrt(subgroupAdd(s) / f32(p.k) + p.norm.x);
}

// y0 += W0 x for one weight (R = 1, flat loops, ACC; rows of a workgroup divide 32 and
// n0 % 32 == 0: host-checked), then the next RMSNorm's input, w * y0 unnormalised, into nt
// (see "RMSNorm folded" in matvec.wgsl): each row is staged, and the last workgroup of each
// 32-row block sums its squares (and with XQ quantises it).
@compute @workgroup_size(WG)
fn matvec_sgr_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32, @builtin(subgroup_id) sg: u32,
                   @builtin(subgroup_invocation_id) sg_lane: u32,
                   @builtin(subgroup_size) sg_size: u32) {
    let wg = wid.x + wid.y * nwg.x;
    if (wg >= p.wg_end) {
        return;
    }
    let n = p.n[0];
    let row = sgr_row0(wg, sg);
    // The residual loaded first, so its latency hides behind the row's loads (it was the
    // first link of the hand-off's chain: load, add, store, fence, ticket).
    let h_old = y0[row];
    let total = subgroupAdd(row_flat(0u, DT0, row, sg_lane));
    if (sg_lane == 0u) {
        let h = h_old + total;
        y0[row] = h;
        atomicStore(&nt[stage_at(n) + row], bitcast<u32>(h));
        if (!XQ) {
            atomicStore(&nt[row], bitcast<u32>(h * nw[row]));
        }
    }
    // Release this workgroup's rows (device scope), then take the block's ticket.
    storageBarrier();
    let rows_wg = WG / LPR;
    let b = wg * rows_wg / 32u;
    if (lid == 0u) {
        nb_ticket = atomicAdd(&nt[ticket_at(n) + b], 1u);
    }
    if (workgroupUniformLoad(&nb_ticket) != 32u / rows_wg - 1u) {
        return;
    }
    storageBarrier();
    if (sg_size >= 32u) {
        // One subgroup holds the whole block: shuffles, no barrier, no serial loop.
        if (sg == 0u) {
            norm_block_sg(b, sg_lane);
        }
    } else {
        norm_block(b, lid);
    }
    if (lid == 0u) {
        atomicStore(&nt[ticket_at(n) + b], 0u);
    }
}

// norm_block by the 32 first lanes of one subgroup of at least 32 (lanes past 32 join the
// shuffles with zeros): the same values as int8_pack (int8_value), the sums in another order.
fn norm_block_sg(b: u32, lane: u32) {
    let n = p.n[0];
    let live = lane < 32u;
    let i = 32u * b + min(lane, 31u);
    var h = 0.0;
    var v = 0.0;
    if (live) {
        h = bitcast<f32>(atomicLoad(&nt[stage_at(n) + i]));
        v = h * nw[i];
    }
    let ss = subgroupAdd(h * h);
    if (lane == 0u) {
        atomicStore(&nt[ss_at(n) + b], bitcast<u32>(ss));
    }
    if (XQ) {
        int8_block_sg(b, lane, v);
    }
}

// The int8 form of block b into nt's first words (quantize_x8.wgsl's layout) from one value
// per lane (lane < 32; the others hold zero), by one subgroup of at least 32 lanes.
fn int8_block_sg(b: u32, lane: u32, v: f32) {
    let n = p.n[0];
    let live = lane < 32u;
    let d = int8_scale(subgroupMax(abs(v)));
    let s0 = subgroupAdd(select(0.0, v, lane < 16u));
    let s1 = subgroupAdd(select(0.0, v, live && lane >= 16u));
    var word = (bitcast<u32>(int8_value(v, d)) & 0xffu) << (8u * (lane % 4u));
    word = word | subgroupShuffleXor(word, 1u);
    word = word | subgroupShuffleXor(word, 2u);
    if (live && lane % 4u == 0u) {
        atomicStore(&nt[8u * b + lane / 4u], word);
    }
    if (lane == 0u) {
        atomicStore(&nt[n / 4u + b], bitcast<u32>(d));
        atomicStore(&nt[n / 4u + n / 32u + 2u * b], bitcast<u32>(s0));
        atomicStore(&nt[n / 4u + n / 32u + 2u * b + 1u], bitcast<u32>(s1));
    }
}

// Gate totals of matvec_sgr_glu, passed to the up subgroups (at most 32 pairs a workgroup).
var<workgroup> glu_gate: array<f32, 32>;

// a = silu(W_gate x) * (W_up x) (weights 0 and 1, R = 1, flat loops), each row by a pair of
// subgroups: of the workgroup's 2P subgroups, subgroup i < P takes gate row wg * P + i and
// subgroup P + i the same up row, so each runs the plain one-weight loop, and the gate total
// reaches the up subgroup through workgroup memory. With NORM_IN x is a folded norm's output.
// Without XQ a goes to y0 (f32, for a float down projection); with XQ it is quantised for an
// int8 one in nt's layout ("RMSNorm folded" in matvec.wgsl): rows staged, and the last
// workgroup of each 32-row block (P divides 32, n % 32 == 0: host-checked) quantises it. This
// spares the SwiGLU dispatch between gate/up and down (silu_mul / silu_mul_x8).
@compute @workgroup_size(WG)
fn matvec_sgr_glu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32, @builtin(subgroup_id) sg: u32,
                  @builtin(subgroup_invocation_id) sg_lane: u32,
                  @builtin(subgroup_size) sg_size: u32) {
    let wg = wid.x + wid.y * nwg.x;
    if (wg >= p.wg_end) {
        return;
    }
    let n = p.n[0];
    // >= 1: the host runs it with an even number of subgroups (the default overrides give 0).
    let pairs = max(WG / LPR / 2u, 1u);
    let up = sg >= pairs;
    let row = wg * pairs + sg - select(0u, pairs, up);
    // Each branch reads one weight slot, a constant: one loop with the slot as a value the
    // compiler cannot see is uniform switched on it at every load.
    var part: f32;
    if (up) {
        part = row_flat(1u, DT1, min(row, n - 1u), sg_lane);
    } else {
        part = row_flat(0u, DT0, min(row, n - 1u), sg_lane);
    }
    // The weight loads go out before inv_rms's: the row's memory round trip starts first.
    var total = subgroupAdd(part);
    if (NORM_IN) {
        total = total * inv_rms(sg_lane);
    }
    if (!up && sg_lane == 0u) {
        glu_gate[sg] = total;
    }
    workgroupBarrier();
    if (up && sg_lane == 0u && row < n) {
        let a = silu(glu_gate[sg - pairs]) * total;
        if (XQ) {
            atomicStore(&nt[stage_at(n) + row], bitcast<u32>(a));
        } else {
            y0[row] = a;
        }
    }
    if (!XQ) {
        return;
    }
    // Release this workgroup's rows (device scope), then take the block's ticket.
    storageBarrier();
    let b = wg * pairs / 32u;
    if (lid == 0u) {
        nb_ticket = atomicAdd(&nt[ticket_at(n) + b], 1u);
    }
    if (workgroupUniformLoad(&nb_ticket) != 32u / pairs - 1u) {
        return;
    }
    storageBarrier();
    if (sg_size >= 32u) {
        if (sg == 0u) {
            var v = 0.0;
            if (sg_lane < 32u) {
                v = bitcast<f32>(atomicLoad(&nt[stage_at(n) + 32u * b + sg_lane]));
            }
            int8_block_sg(b, sg_lane, v);
        }
    } else {
        glu_block(b, lid);
    }
    if (lid == 0u) {
        atomicStore(&nt[ticket_at(n) + b], 0u);
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
    let acc = glu_rows_dot(row0, sg_lane);
    for (var r = 0u; r < R; r = r + 1u) {
        let gate = subgroupAdd(hsum(acc[r]));
        let up = subgroupAdd(hsum(acc[R + r]));
        if (sg_lane == r && row0 + r < p.n[0]) {
            y0[row0 + r] = silu(gate) * up;
        }
    }
}
