// Decode attention's partials binding, @coherent (SPIR-V's Coherent decoration; the device
// feature MEMORY_DECORATION_COHERENT), for FOLD: the last live split of a row block to take a
// ticket merges the block's partials in the same dispatch, and its plain loads of the other
// splits' records must not hit stale lines of its SM's L1 (without the decoration they did on
// the H100: examples/probe_ticket.rs).
// Partials: accumulators [row blocks, S_MAX, R, HD/4] then (m, l, -, -) [row blocks, S_MAX, R].
@coherent @group(0) @binding(6) var<storage, read_write> part: array<vec4<f32>>;
// Tickets [row blocks]: live splits of the block that have written their partials; the
// merging split resets its block's to 0 for the next run.
@group(0) @binding(11) var<storage, read_write> tickets: array<atomic<u32>>;
