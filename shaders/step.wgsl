// Values that change every forward pass, written once per step with queue.write_buffer and
// bound by every position-dependent dispatch at load time (see engine/src/step.rs).

struct Step {
    pos: u32,       // position of the first token of this batch
    n_tokens: u32,  // informational: kernels take T from their Params
    rand: u32,      // random u32 for sampling
    _pad: u32,
}
