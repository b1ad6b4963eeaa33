// The decode step's token choice, on the GPU: greedy argmax, or temperature + top-k + top-p
// sampling driven by step.rand. ops/sample.rs states the exact semantics; reference/sample.rs
// implements them plainly (sort, cumulative sums) and the op tests compare the two.
//
// One workgroup does everything, so no intermediate buffer and no second dispatch. Tokens are
// ranked by logit, highest first, ties to the lower index: rank order is ascending
// (rank_key(x_i), i), a 64-bit key unique per token. Top-k, top-p and the sample are each "the
// first token in rank order at which a running count or mass reaches a target", over the tokens
// ranked at or before a limit (the previous search's answer). Each search is a radix select on
// that 64-bit key, 4 bits per pass, most significant first: one pass over the row histograms
// count and mass of the candidates that share the digits fixed so far into 16 bins, the bin in
// which the running total reaches the target fixes the next digit, and the search ends as soon
// as that bin holds a single token.
//
// Cost in passes over the row: 1 (argmax) + per search at most 8 + idx_digits (13 for a
// 128256 vocab), in practice 3-6 because the answer's bin soon holds one token (LM-like
// logits, vocab 128256: k=0 p=1 takes 1+3..4 passes, k=40 p=0.9 takes 1+12..14). Top-k runs
// when 1 < k < vocab, top-p when p < 1, the sample search always. Only a search's first pass
// does real work per token (exp, histogram); later passes mostly reject on the key prefix. Masses are
// exp((x - max) / T), unnormalised: every mass target is a fraction of the search's first-pass
// total, so no separate normalising pass is needed. Sums run in a fixed order (per-invocation
// bins, then a tree), never through atomics, so the same inputs always give the same token.

struct Params {
    vocab: u32,         // row length
    rows: u32,          // rows in logits; the row used is the batch's last token's
    out_index: u32,     // tokens[out_index] receives the choice
    top_k: u32,         // 0: all
    top_p: f32,         // >= 1: off
    temperature: f32,   // > 0 for `sample`
    idx_digits: u32,    // 4-bit digits needed for vocab - 1 (at least 1)
    _pad: u32,
}

struct Step { pos: u32, n_tokens: u32, rand: u32, _pad: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> step: Step;
@group(0) @binding(2) var<storage, read> logits: array<f32>;       // [rows, vocab]
@group(0) @binding(3) var<storage, read_write> tokens: array<u32>; // [> out_index]

// Fixed rather than an override: it sizes the [BINS][WG] arrays below (16 KiB together).
const WG: u32 = 128u;
const BINS: u32 = 16u;
const NONE: u32 = 0xffffffffu;
// The column reduction gives each bin PER_BIN invocations, each summing GROUP columns.
const PER_BIN: u32 = WG / BINS;
const GROUP: u32 = WG / PER_BIN;

// Per-invocation histogram columns, then (after the tree reduction) the totals in column 0.
var<workgroup> bin_mass: array<f32, 2048>;    // [BINS][WG]
var<workgroup> bin_count: array<u32, 2048>;   // [BINS][WG]
var<workgroup> bin_first: array<atomic<u32>, 16>;  // [BINS]: lowest token index in the bin

// Search state, written by invocation 0 between passes.
var<workgroup> key_mask: u32;       // rank_key digits fixed so far
var<workgroup> key_prefix: u32;
var<workgroup> idx_mask: u32;       // index digits fixed so far (after all 8 key digits)
var<workgroup> idx_prefix: u32;
var<workgroup> before_count: u32;   // candidates ranked before the current prefix
var<workgroup> before_mass: f32;    // and their mass
var<workgroup> target_mass: f32;
var<workgroup> search_done: u32;
var<workgroup> search_found: u32;

// The sampled row: the last token of this batch (prefill may produce a row per token).
fn row_base() -> u32 {
    let row = min(max(step.n_tokens, 1u), p.rows) - 1u;
    return row * p.vocab;
}

// Ascending rank_key = descending logit. The f32 bits are made monotonic as unsigned
// (negative: flip all bits; positive: set the sign bit), which is Rust's f32::total_cmp
// order, then inverted so the highest logit has the smallest key.
fn rank_key(x: f32) -> u32 {
    let b = bitcast<u32>(x);
    let ordered = select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
    return ~ordered;
}

// The first token in rank order (highest logit, lowest index among equals). Uniform result.
fn argmax(lid: u32, base: u32) -> u32 {
    var best_key = NONE;
    var best_idx = NONE;
    for (var i = lid; i < p.vocab; i = i + WG) {
        let k = rank_key(logits[base + i]);
        // Each invocation sees increasing indices, so strict < keeps the lowest among equals.
        if (k < best_key || best_idx == NONE) {
            best_key = k;
            best_idx = i;
        }
    }
    bin_count[lid] = best_key;
    bin_count[WG + lid] = best_idx;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (lid < s) {
            let k = bin_count[lid + s];
            let i = bin_count[WG + lid + s];
            let bk = bin_count[lid];
            if (k < bk || (k == bk && i < bin_count[WG + lid])) {
                bin_count[lid] = k;
                bin_count[WG + lid] = i;
            }
        }
        workgroupBarrier();
    }
    return workgroupUniformLoad(&bin_count[WG]);
}

// Invocation 0, after a pass: picks the bin in which the running total reaches the target,
// fixes that digit and ends the search when the bin holds one token.
fn choose(d: u32, digits: u32, shift: u32, by_mass: bool, k: u32, frac: f32, strict: bool) {
    if (d == 0u) {
        var total = 0.0;
        for (var b = 0u; b < BINS; b = b + 1u) {
            total = total + bin_mass[b * WG];
        }
        target_mass = frac * total;
    }
    var cum_count = before_count;
    var cum_mass = before_mass;
    var chosen = NONE;
    // The last non-empty bin and the totals before it: the answer when rounding keeps the
    // running mass just short of the target (the target is then within rounding of the end).
    var last = NONE;
    var last_count = 0u;
    var last_mass = 0.0;
    for (var b = 0u; b < BINS; b = b + 1u) {
        let c = bin_count[b * WG];
        if (c == 0u) { continue; }
        let m = bin_mass[b * WG];
        last = b;
        last_count = cum_count;
        last_mass = cum_mass;
        var reached: bool;
        if (by_mass) {
            reached = select(cum_mass + m >= target_mass, cum_mass + m > target_mass, strict);
        } else {
            reached = cum_count + c >= k;
        }
        if (reached) {
            chosen = b;
            break;
        }
        cum_count = cum_count + c;
        cum_mass = cum_mass + m;
    }
    if (last == NONE) {
        // No candidates at all: only possible with NaN logits. Answer something valid.
        search_done = 1u;
        search_found = 0u;
        return;
    }
    if (chosen == NONE) {
        chosen = last;
        cum_count = last_count;
        cum_mass = last_mass;
    }
    before_count = cum_count;
    before_mass = cum_mass;
    if (d < 8u) {
        key_mask = key_mask | (15u << shift);
        key_prefix = key_prefix | (chosen << shift);
    } else {
        idx_mask = idx_mask | (15u << shift);
        idx_prefix = idx_prefix | (chosen << shift);
    }
    if (bin_count[chosen * WG] == 1u) {
        search_done = 1u;
        search_found = atomicLoad(&bin_first[chosen]);
    } else if (d + 1u == digits) {
        // Every digit fixed: the prefix is the token (unreachable: keys are unique).
        search_done = 1u;
        search_found = idx_prefix;
    }
    for (var b = 0u; b < BINS; b = b + 1u) { atomicStore(&bin_first[b], NONE); }
}

// The first candidate in rank order whose running count reaches k (by_mass false), or whose
// running mass reaches frac * (mass of all candidates) (>= or, when strict, >). Candidates are
// the tokens ranked at or before (lim_key, lim_idx). Uniform result.
fn search(lid: u32, base: u32, m: f32, by_mass: bool, k: u32, frac: f32, strict: bool,
          lim_key: u32, lim_idx: u32) -> u32 {
    if (lid == 0u) {
        key_mask = 0u;
        key_prefix = 0u;
        idx_mask = 0u;
        idx_prefix = 0u;
        before_count = 0u;
        before_mass = 0.0;
        target_mass = 0.0;
        search_done = 0u;
        search_found = 0u;
        for (var b = 0u; b < BINS; b = b + 1u) { atomicStore(&bin_first[b], NONE); }
    }
    workgroupBarrier();
    let digits = 8u + p.idx_digits;
    for (var d = 0u; d < digits; d = d + 1u) {
        // Each invocation clears and fills only its own column, so no barrier is needed here.
        for (var b = 0u; b < BINS; b = b + 1u) {
            bin_mass[b * WG + lid] = 0.0;
            bin_count[b * WG + lid] = 0u;
        }
        let kmask = key_mask;
        let kprefix = key_prefix;
        let imask = idx_mask;
        let iprefix = idx_prefix;
        let on_key = d < 8u;
        let shift = select(4u * (digits - 1u - d), 28u - 4u * d, on_key);
        for (var i = lid; i < p.vocab; i = i + WG) {
            let x = logits[base + i];
            let key = rank_key(x);
            if (key > lim_key || (key == lim_key && i > lim_idx)) { continue; }
            if ((key & kmask) != kprefix || (i & imask) != iprefix) { continue; }
            let b = (select(i, key, on_key) >> shift) & 15u;
            let slot = b * WG + lid;
            let c = bin_count[slot];
            if (c == 0u) { atomicMin(&bin_first[b], i); }
            bin_count[slot] = c + 1u;
            if (by_mass) {
                bin_mass[slot] = bin_mass[slot] + exp((x - m) / p.temperature);
            }
        }
        workgroupBarrier();
        // Column totals in two steps (few barriers): invocation (bin, group) sums its group's
        // GROUP columns into the group's first column, then one invocation per bin sums those.
        {
            let first = (lid / PER_BIN) * WG + (lid % PER_BIN) * GROUP;
            var mass = 0.0;
            var count = 0u;
            for (var j = 0u; j < GROUP; j = j + 1u) {
                mass = mass + bin_mass[first + j];
                count = count + bin_count[first + j];
            }
            bin_mass[first] = mass;
            bin_count[first] = count;
        }
        workgroupBarrier();
        if (lid < BINS) {
            var mass = 0.0;
            var count = 0u;
            for (var j = 0u; j < WG; j = j + GROUP) {
                mass = mass + bin_mass[lid * WG + j];
                count = count + bin_count[lid * WG + j];
            }
            bin_mass[lid * WG] = mass;
            bin_count[lid * WG] = count;
        }
        workgroupBarrier();
        if (lid == 0u) { choose(d, digits, shift, by_mass, k, frac, strict); }
        if (workgroupUniformLoad(&search_done) != 0u) { break; }
    }
    return workgroupUniformLoad(&search_found);
}

// Greedy decode's argmax with 1024 lanes (where the adapter allows that many): the one-
// workgroup kernel is bound by dependent load latency, so each lane issues GREEDY_UNROLL loads
// before comparing any of them, and the whole vocabulary takes a few rounds (4 at 32000). (32
// loads per round measured 2x slower on the H100: 11 -> 26 us at 32000.)
const GREEDY_WG: u32 = 1024u;
const GREEDY_UNROLL: u32 = 8u;

// One round of GREEDY_UNROLL loads a lane, indices i0 + u * lanes + lid, all issued before any
// is compared (past the row a lane loads the last logit again and drops it), folded into
// `best` = (rank_key, index). Indices rise with u (and with i0 from round to round), so strict
// < keeps the lowest index among equal logits.
fn scan_round(lid: u32, base: u32, i0: u32, lanes: u32, best_in: vec2<u32>) -> vec2<u32> {
    var v: array<f32, GREEDY_UNROLL>;
    for (var u = 0u; u < GREEDY_UNROLL; u = u + 1u) {
        v[u] = logits[base + min(i0 + u * lanes + lid, p.vocab - 1u)];
    }
    var best = best_in;
    for (var u = 0u; u < GREEDY_UNROLL; u = u + 1u) {
        let i = i0 + u * lanes + lid;
        let k = rank_key(v[u]);
        if (i < p.vocab && (k < best.x || best.y == NONE)) {
            best = vec2<u32>(k, i);
        }
    }
    return best;
}

// This lane's (rank_key, index) of its first-ranked token of the row, (NONE, NONE) if none.
fn greedy_scan(lid: u32, base: u32) -> vec2<u32> {
    var best = vec2<u32>(NONE, NONE);
    for (var i0 = 0u; i0 < p.vocab; i0 = i0 + GREEDY_WG * GREEDY_UNROLL) {
        best = scan_round(lid, base, i0, GREEDY_WG, best);
    }
    return best;
}

@compute @workgroup_size(GREEDY_WG)
fn greedy_wide(@builtin(local_invocation_index) lid: u32) {
    let best = greedy_scan(lid, row_base());
    // bin_count holds [GREEDY_WG] keys then [GREEDY_WG] indices (2048 entries exactly).
    bin_count[lid] = best.x;
    bin_count[GREEDY_WG + lid] = best.y;
    workgroupBarrier();
    for (var s = GREEDY_WG / 2u; s > 0u; s = s / 2u) {
        if (lid < s) {
            let k = bin_count[lid + s];
            let i = bin_count[GREEDY_WG + lid + s];
            let bk = bin_count[lid];
            if (k < bk || (k == bk && i < bin_count[GREEDY_WG + lid])) {
                bin_count[lid] = k;
                bin_count[GREEDY_WG + lid] = i;
            }
        }
        workgroupBarrier();
    }
    if (lid == 0u) { tokens[p.out_index] = bin_count[GREEDY_WG]; }
}

@compute @workgroup_size(WG)
fn greedy(@builtin(local_invocation_index) lid: u32) {
    let best = argmax(lid, row_base());
    if (lid == 0u) { tokens[p.out_index] = best; }
}

@compute @workgroup_size(WG)
fn sample(@builtin(local_invocation_index) lid: u32) {
    let base = row_base();
    let best = argmax(lid, base);
    let m = logits[base + best];
    // Candidates: tokens ranked at or before (lim_key, lim_idx); at first all of them.
    var lim_key = NONE;
    var lim_idx = NONE;
    if (p.top_k == 1u) {
        lim_key = rank_key(m);
        lim_idx = best;
    } else if (p.top_k > 1u && p.top_k < p.vocab) {
        let t = search(lid, base, m, false, p.top_k, 0.0, false, lim_key, lim_idx);
        lim_key = rank_key(logits[base + t]);
        lim_idx = t;
    }
    if (p.top_p < 1.0) {
        let t = search(lid, base, m, true, 0u, p.top_p, false, lim_key, lim_idx);
        lim_key = rank_key(logits[base + t]);
        lim_idx = t;
    }
    // The top 24 bits of rand, so u is exact in f32 and strictly below 1.
    let u = f32(step.rand >> 8u) * (1.0 / 16777216.0);
    let t = search(lid, base, m, true, 0u, u, true, lim_key, lim_idx);
    if (lid == 0u) { tokens[p.out_index] = t; }
}
