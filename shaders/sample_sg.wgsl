// Greedy decode's argmax with subgroup operations (the module is sample.wgsl, then this file;
// needs the device's SUBGROUP feature): each lane scans as greedy_wide, then the lowest
// (rank_key, index) pair comes from two subgroupMin per subgroup, a barrier, and the same
// over the subgroups' pairs, instead of greedy_wide's eleven-barrier tree.

var<workgroup> sg_best: array<vec2<u32>, 256>;  // [subgroups]: (rank_key, index)

// The lowest (key, index) pair over the subgroup, by key and then index.
fn subgroup_first(key: u32, idx: u32) -> vec2<u32> {
    let k = subgroupMin(key);
    return vec2<u32>(k, subgroupMin(select(NONE, idx, key == k)));
}

// The workgroup's first (key, index) pair of every lane's `key`/`idx` (every lane calls it
// and gets the answer). Every subgroup reduces the subgroups' pairs (subgroup operations stay
// in uniform control flow): lane j takes the subgroups j, j + sg_size, ... in order; ties keep
// the lower index.
fn workgroup_first(key: u32, idx: u32, sg: u32, nsg: u32, sg_lane: u32, sg_size: u32) -> vec2<u32> {
    let mine = subgroup_first(key, idx);
    if (sg_lane == 0u) {
        sg_best[sg] = mine;
    }
    workgroupBarrier();
    var best = vec2<u32>(NONE, NONE);
    for (var j = sg_lane; j < nsg; j = j + sg_size) {
        let c = sg_best[j];
        if (c.x < best.x || (c.x == best.x && c.y < best.y)) {
            best = c;
        }
    }
    let first = subgroup_first(best.x, best.y);
    workgroupBarrier();  // sg_best is reused by a second call
    return first;
}

@compute @workgroup_size(GREEDY_WG)
fn greedy_sg(@builtin(local_invocation_index) lid: u32, @builtin(subgroup_id) sg: u32,
             @builtin(num_subgroups) nsg: u32, @builtin(subgroup_invocation_id) sg_lane: u32,
             @builtin(subgroup_size) sg_size: u32) {
    let scan = greedy_scan(lid, row_base());
    let first = workgroup_first(scan.x, scan.y, sg, nsg, sg_lane, sg_size);
    if (lid == 0u) {
        tokens[p.out_index] = first.y;
    }
}

// ---- greedy_split: the argmax over many workgroups, one dispatch ----
// One workgroup has a single SM's load latency to pay for the whole row (4 rounds of loads at
// 32000, ~11-20 us on the H100). Here each of ceil(vocab / SPLIT_CHUNK) workgroups scans one
// chunk in a single round (`scan_round`: 8 loads a lane, issued before use), reduces it by
// subgroupMin, and writes its (rank_key, index) pair to `split` by atomicStore; the last
// workgroup to take the ticket (after storageBarrier, device-scope acquire-release) reads
// the pairs back by atomicLoad (plain loads may hit stale L1 lines on the H100:
// examples/probe_ticket.rs), picks the first and resets the ticket for the next step.
// Chunks rise with the workgroup id and lanes scan in index order, so the lowest
// (key, index) pair is the lowest index among equal logits, as in greedy_wide.

// Pairs [2 w, 2 w + 1] per workgroup w, then the ticket at 2 * SPLIT_MAX_WG.
@group(0) @binding(4) var<storage, read_write> split: array<atomic<u32>>;

const SPLIT_WG: u32 = 256u;
// One scan_round (GREEDY_UNROLL loads a lane) a workgroup.
const SPLIT_CHUNK: u32 = SPLIT_WG * GREEDY_UNROLL;
// Most workgroups (the host checks ceil(vocab / SPLIT_CHUNK) against it): 256 * 2048 values.
const SPLIT_MAX_WG: u32 = 256u;

var<workgroup> split_last: u32;

@compute @workgroup_size(SPLIT_WG)
fn greedy_split(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>, @builtin(subgroup_id) sg: u32,
                @builtin(num_subgroups) nsg: u32, @builtin(subgroup_invocation_id) sg_lane: u32,
                @builtin(subgroup_size) sg_size: u32) {
    let base = row_base();
    let mine0 = scan_round(lid, base, wid.x * SPLIT_CHUNK, SPLIT_WG, vec2<u32>(NONE, NONE));
    let mine = workgroup_first(mine0.x, mine0.y, sg, nsg, sg_lane, sg_size);
    if (lid == 0u) {
        atomicStore(&split[2u * wid.x], mine.x);
        atomicStore(&split[2u * wid.x + 1u], mine.y);
    }
    storageBarrier();
    if (lid == 0u) {
        split_last = u32(atomicAdd(&split[2u * SPLIT_MAX_WG], 1u) == nwg.x - 1u);
    }
    if (workgroupUniformLoad(&split_last) == 0u) {
        return;
    }
    storageBarrier();
    var k = NONE;
    var i = NONE;
    if (lid < nwg.x) {
        k = atomicLoad(&split[2u * lid]);
        i = atomicLoad(&split[2u * lid + 1u]);
    }
    // nwg.x <= SPLIT_MAX_WG = SPLIT_WG: one pair per lane at most.
    let all = workgroup_first(k, i, sg, nsg, sg_lane, sg_size);
    if (lid == 0u) {
        tokens[p.out_index] = all.y;
        atomicStore(&split[2u * SPLIT_MAX_WG], 0u);
    }
}
