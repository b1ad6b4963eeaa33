// L2 prefetch for decode: touches one word of every STRIDE-word line of a byte range of a
// weight buffer, so the mat-vec that reads those weights next finds them in the GPU's L2
// cache. Recorded right after a kernel that streams little memory (decode attention, its
// merge, SwiGLU) and with no barrier before it, it fills that kernel's idle memory time with
// the next weights' HBM traffic.
//
// The loads must not be dead code: each workgroup XORs the words it touched and writes the
// result to `sink` (its own slot), which `reference::prefetch` recomputes in the op test.

struct Params {
    start: u32,    // first word of the range
    words: u32,    // words in the range
    _pad: vec2<u32>,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;          // the weight buffer
@group(0) @binding(2) var<storage, read_write> sink: array<u32>;   // [workgroups]

// Words between touched words: 8 words = one 32-byte sector, the L2's unit of fill (the
// host's STRIDE).
const STRIDE: u32 = 8u;
const PF_WG: u32 = 256u;
// Lines a lane touches.
const LINES: u32 = 8u;
// Words a workgroup covers (the host's PER_WG, which sizes the grid and the sink).
const PER_WG: u32 = PF_WG * STRIDE * LINES;

var<workgroup> folded: atomic<u32>;

@compute @workgroup_size(PF_WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let wg = wid.x + wid.y * nwg.x;
    if (lid == 0u) {
        atomicStore(&folded, 0u);
    }
    workgroupBarrier();
    let first = wg * PER_WG;
    let end = min(first + PER_WG, p.words);
    // LINES loads a lane, all issued before any is used (a first version's loop measured the
    // same in the model on the H100: beside a short kernel the dispatch's cost is its launch).
    // Past the range a lane loads the last word again and drops it.
    var acc = 0u;
    let last = max(end, 1u) - 1u;
    for (var j = 0u; j < LINES; j++) {
        let i = first + lid * STRIDE + j * PF_WG * STRIDE;
        let v = src[p.start + min(i, last)];
        acc ^= select(0u, v, i < end);
    }
    atomicXor(&folded, acc);
    workgroupBarrier();
    if (lid == 0u && first < p.words) {
        sink[wg] = atomicLoad(&folded);
    }
}
