/// What prefetch.wgsl writes: for each chunk of `per_wg` words of `words[start..start + n]`,
/// the XOR of every `stride`-th word from the chunk's start.
pub fn xor_lines(words: &[u32], start: usize, n: usize, per_wg: usize, stride: usize) -> Vec<u32> {
    words[start..start + n]
        .chunks(per_wg)
        .map(|chunk| chunk.iter().step_by(stride).fold(0, |a, &w| a ^ w))
        .collect()
}
