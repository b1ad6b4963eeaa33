// Decode attention's partials binding, plain: the merge runs as a second dispatch (entry
// `merge`), whose boundary makes the splits' writes visible. (The alternative part of the
// module, attention_decode_part_coherent.wgsl, declares it @coherent for FOLD.)
// Partials: accumulators [row blocks, S_MAX, R, HD/4] then (m, l, -, -) [row blocks, S_MAX, R].
@group(0) @binding(6) var<storage, read_write> part: array<vec4<f32>>;
// FOLD only (never with this part): tickets [row blocks].
@group(0) @binding(11) var<storage, read_write> tickets: array<atomic<u32>>;
