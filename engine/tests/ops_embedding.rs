//! Op tests for the embedding lookup, every table type, against the loaders' CPU dequantiser.

use wgllama_engine::ops::embedding::embedding;
use wgllama_engine::reference::embedding::embedding as ref_embedding;
use wgllama_engine::reference::matmul::weight_values;
use wgllama_engine::testing::weights::random_weight_bytes;
use wgllama_engine::testing::{assert_close, test_gpu, Rng, Tol};
use wgllama_engine::EngineError;
use wgllama_loaders::DType;

/// A lookup copies decoded values, which decode bit-exactly: no error at all.
const EXACT: Tol = Tol {
    nmse: 0.0,
    max_abs: 0.0,
};

fn check_embedding(dtype: DType, vocab: usize, d: usize, t: usize) {
    let gpu = test_gpu();
    let mut rng = Rng::new(300 + dtype.ggml_id() as u64 * 7 + d as u64);
    let bytes = random_weight_bytes(&mut rng, dtype, vocab * d);
    let table = gpu
        .upload_weight("token_embd.weight", dtype, &[vocab, d], &bytes)
        .unwrap();
    // Random ids with the first and last rows, and ids past the table (zeros, no OOB read).
    let mut ids: Vec<u32> = (0..t).map(|_| rng.below(vocab as u64) as u32).collect();
    ids[0] = 0;
    ids[t / 2] = vocab as u32 - 1;
    ids[t - 1] = vocab as u32;
    ids[1] = u32::MAX;
    let tokens = gpu.upload_u32("tokens", &ids, &[t]).unwrap();
    let out = gpu.poisoned_f32("out", &[t, d]).unwrap();
    gpu.run(&[embedding(gpu, &table, &tokens, &out).unwrap()])
        .unwrap();
    let values = weight_values(dtype, &bytes, vocab * d).unwrap();
    assert_close(
        &format!("embedding {} vocab={vocab} D={d} T={t}", dtype.name()),
        &gpu.read_f32(&out).unwrap(),
        &ref_embedding(&values, d, &ids),
        EXACT,
    );
}

#[test]
fn embedding_every_type() {
    for dtype in DType::ALL {
        let d = match dtype.block_size() {
            256 => 768,
            32 => 544,
            _ => 1000,
        };
        check_embedding(dtype, 67, d, 37);
    }
    // Rows that are not whole 16-value chunks, odd element counts.
    check_embedding(DType::F16, 31, 7, 9);
    check_embedding(DType::BF16, 5, 1, 4);
    check_embedding(DType::F32, 67, 100, 37);
}

#[test]
fn embedding_rejects_bad_operands() {
    let gpu = test_gpu();
    let table = gpu
        .upload_weight("emb", DType::F16, &[4, 8], &[0u8; 64])
        .unwrap();
    let tokens = gpu.upload_u32("tokens", &[0, 1, 2], &[3]).unwrap();
    let out = gpu.zeros_f32("out", &[3, 8]).unwrap();
    assert!(embedding(gpu, &table, &tokens, &out).is_ok());
    let short = gpu.zeros_f32("out", &[3, 7]).unwrap();
    let float_ids = gpu.zeros_f32("ids", &[3]).unwrap();
    for (r, what) in [
        (embedding(gpu, &table, &tokens, &short), "out"),
        (embedding(gpu, &table, &float_ids, &out), "tokens"),
        (embedding(gpu, &tokens, &tokens, &out), "table"),
    ] {
        match r {
            Err(e @ EngineError::Shape { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains("embedding") && msg.contains(what), "{msg}");
            }
            other => panic!("expected a shape error about {what}, got {other:?}"),
        }
    }
}

#[test]
fn embedding_norm_rejects_bad_operands() {
    use wgllama_engine::ops::embedding::embedding_norm;
    use wgllama_engine::ops::matvec::{norm_f32_len, norm_int8_words};
    let gpu = test_gpu();
    let d = 128;
    let table = gpu
        .upload_weight("emb", DType::F16, &[4, d], &vec![0u8; 8 * d])
        .unwrap();
    let token = gpu.upload_u32("token", &[1], &[1]).unwrap();
    let out = gpu.zeros_f32("out", &[1, d]).unwrap();
    let nw = gpu.zeros_f32("nw", &[d]).unwrap();
    let xn8 = gpu.upload_u32("xn", &vec![0; norm_int8_words(d)], &[norm_int8_words(d)]);
    let xn8 = xn8.unwrap();
    let xnf = gpu.zeros_f32("xn", &[norm_f32_len(d)]).unwrap();
    assert!(embedding_norm(gpu, &table, &token, &out, &nw, &xn8).is_ok());
    assert!(embedding_norm(gpu, &table, &token, &out, &nw, &xnf).is_ok());
    let two = gpu.upload_u32("tokens", &[1, 2], &[2]).unwrap();
    let short_xn = gpu.zeros_f32("xn", &[norm_f32_len(d) - 1]).unwrap();
    let short_nw = gpu.zeros_f32("nw", &[d - 1]).unwrap();
    // Rows of 96 values: not a multiple of 128, which the folded mat-vecs need.
    let narrow = gpu
        .upload_weight("emb", DType::F16, &[4, 96], &[0u8; 768])
        .unwrap();
    let out96 = gpu.zeros_f32("out", &[1, 96]).unwrap();
    let nw96 = gpu.zeros_f32("nw", &[96]).unwrap();
    let xn96 = gpu.zeros_f32("xn", &[norm_f32_len(96)]).unwrap();
    for (r, what) in [
        (embedding_norm(gpu, &table, &two, &out, &nw, &xnf), "tokens"),
        (
            embedding_norm(gpu, &table, &token, &out, &nw, &short_xn),
            "xn",
        ),
        (
            embedding_norm(gpu, &table, &token, &out, &short_nw, &xnf),
            "norm_w",
        ),
        (
            embedding_norm(gpu, &narrow, &token, &out96, &nw96, &xn96),
            "multiple of 128",
        ),
    ] {
        match r {
            Err(e @ EngineError::Shape { .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("embedding_norm") && msg.contains(what),
                    "{msg}"
                );
            }
            other => panic!("expected a shape error about {what}, got {other:?}"),
        }
    }
}
