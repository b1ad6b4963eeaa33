//! Tokenizer construction (todo).
