/// out[t, :] = table[tokens[t], :] for a table of `d` values per row; ids past the table
/// give zeros (the kernel's documented behaviour for bad ids).
pub fn embedding(table: &[f32], d: usize, tokens: &[u32]) -> Vec<f32> {
    let vocab = table.len() / d;
    let mut out = vec![0.0; tokens.len() * d];
    for (&id, row) in tokens.iter().zip(out.chunks_mut(d)) {
        if (id as usize) < vocab {
            row.copy_from_slice(&table[id as usize * d..(id as usize + 1) * d]);
        }
    }
    out
}
