//! Incremental detokenisation that never prints half a UTF-8 character: byte-fallback tokens
//! can split one character across several ids, so text is released only once it decodes
//! without a trailing replacement character.

use tokenizers::Tokenizer;

pub struct TextStream<'t> {
    tokenizer: &'t Tokenizer,
    ids: Vec<u32>,
    /// Decoding starts at this id: a sliding window keeps each step O(1) while leaving the
    /// decoder a few ids of context (for leading-space handling).
    start: usize,
    /// The text of `ids[start..]` already printed.
    printed: String,
}

impl<'t> TextStream<'t> {
    pub fn new(tokenizer: &'t Tokenizer) -> Self {
        TextStream {
            tokenizer,
            ids: Vec::new(),
            start: 0,
            printed: String::new(),
        }
    }

    fn decode(&self, from: usize) -> Result<String, String> {
        self.tokenizer
            .decode(&self.ids[from..], false)
            .map_err(|e| e.to_string())
    }

    /// Adds a token; returns the text that became printable (possibly empty).
    pub fn push(&mut self, id: u32) -> Result<String, String> {
        self.ids.push(id);
        let text = self.decode(self.start)?;
        if text.ends_with('\u{FFFD}') || !text.starts_with(&self.printed) {
            return Ok(String::new());
        }
        let new = text[self.printed.len()..].to_string();
        self.printed = text;
        if self.ids.len() - self.start > 16 {
            let start = self.ids.len() - 4;
            let window = self.decode(start)?;
            if !window.ends_with('\u{FFFD}') {
                self.start = start;
                self.printed = window;
            }
        }
        Ok(new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokenizers::models::bpe::BPE;

    /// A byte-fallback vocabulary where 'é' (C3 A9) only exists as two byte tokens.
    fn tokenizer() -> Tokenizer {
        let mut vocab: Vec<(String, u32)> = vec![("<unk>".into(), 0)];
        for b in 0..=255u32 {
            vocab.push((format!("<0x{b:02X}>"), b + 1));
        }
        vocab.push(("a".into(), 257));
        let bpe = BPE::builder()
            .vocab_and_merges(
                vocab
                    .into_iter()
                    .collect::<tokenizers::models::bpe::Vocab>(),
                vec![],
            )
            .byte_fallback(true)
            .unk_token("<unk>".into())
            .build()
            .unwrap();
        let mut t = Tokenizer::new(bpe);
        t.with_decoder(Some(
            tokenizers::decoders::byte_fallback::ByteFallback::default(),
        ));
        t
    }

    #[test]
    fn never_splits_a_character() {
        let t = tokenizer();
        let mut s = TextStream::new(&t);
        let ids = [257, 0xC3 + 1, 0xA9 + 1, 257];
        let out: Vec<String> = ids.iter().map(|&id| s.push(id).unwrap()).collect();
        assert_eq!(out, ["a", "", "é", "a"]);
    }

    #[test]
    fn long_streams_match_a_full_decode() {
        let t = tokenizer();
        let mut s = TextStream::new(&t);
        let ids: Vec<u32> = (0..100)
            .map(|i| {
                if i % 3 == 0 {
                    257
                } else {
                    [0xC3 + 1, 0xA9 + 1][i % 3 - 1]
                }
            })
            .collect();
        let streamed: String = ids.iter().map(|&id| s.push(id).unwrap()).collect();
        assert_eq!(streamed, t.decode(&ids, false).unwrap());
    }
}
