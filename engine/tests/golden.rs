//! Golden checks in `cargo test`: every kernel case of golden/kernels and every tiny model of
//! golden/models against transformers' logits, on whatever adapter wgpu finds.

use std::path::{Path, PathBuf};

use wgllama_engine::golden::{kernels, model};
use wgllama_engine::llama::LlamaWeights;
use wgllama_engine::testing::test_gpu;
use wgllama_engine::Precision;
use wgllama_loaders::ModelFile;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../golden")
}

#[test]
fn kernel_goldens_pass() {
    let results = kernels::run_dir(test_gpu(), &golden_dir().join("kernels")).unwrap();
    assert!(
        results.len() >= 50,
        "only {} kernel cases found",
        results.len()
    );
    let failed: Vec<String> = results
        .iter()
        .filter(|r| !r.pass)
        .map(|r| format!("{} {r}", r.name))
        .collect();
    assert!(
        failed.is_empty(),
        "failing kernel goldens:\n{}",
        failed.join("\n")
    );
}

/// Every `<variant>.golden.safetensors` beside its model (a .gguf file or an HF folder).
fn model_cases() -> Vec<(PathBuf, PathBuf)> {
    let mut cases = Vec::new();
    for dir in std::fs::read_dir(golden_dir().join("models")).unwrap() {
        let dir = dir.unwrap().path();
        for f in std::fs::read_dir(&dir).unwrap() {
            let golden = f.unwrap().path();
            let name = golden.file_name().unwrap().to_string_lossy().to_string();
            let Some(variant) = name.strip_suffix(".golden.safetensors") else {
                continue;
            };
            let model = [dir.join(variant), dir.join(format!("{variant}.gguf"))]
                .into_iter()
                .find(|p| p.exists())
                .unwrap_or_else(|| panic!("no model for {}", golden.display()));
            cases.push((model, golden));
        }
    }
    cases.sort();
    cases
}

#[test]
fn model_goldens_pass() {
    // F32 weights aim for 1e-3 (issue 4); every model here is within 2e-4 on lavapipe.
    check_all(Precision::Exact, Some(1e-3));
}

#[test]
fn model_goldens_pass_on_the_fast_path() {
    // Fast rounds activations: to f16 in prompt mat-muls where the adapter has cooperative
    // matrices, to int8 per 32 values in decode mat-vecs over Q4_K/Q8_0 weights (every
    // adapter). Measured on the H100 (2026-11-23): prompts up to 5.2e-2 max abs on logits of
    // magnitude ~5-10, top-1 100% with near ties excused; int8 decode on lavapipe: see the
    // eprintln lines (greedy_max).
    check_all(Precision::Fast, None);
}

/// Every golden model on `precision`'s tolerance (`max_abs` tightened where given).
fn check_all(precision: Precision, max_abs: Option<f32>) {
    let gpu = test_gpu();
    let cases = model_cases();
    assert!(
        cases.len() >= 10,
        "only {} golden models found",
        cases.len()
    );
    let mut failures = Vec::new();
    for (path, golden) in cases {
        let file = ModelFile::open(&path).unwrap();
        let weights = LlamaWeights::load(gpu, &file, |_, _| {}).unwrap();
        let mut tol = model::ModelTolerance::for_precision(precision);
        if let Some(m) = max_abs {
            tol.max_abs = m;
            tol.decode_max_abs = m;
        }
        for r in model::check_model(gpu, &weights, &golden, &tol, precision).unwrap() {
            eprintln!("{}: {r:?}", path.display());
            if !r.passes(&tol) {
                failures.push(format!(
                    "{precision} {} prompt {}: {r:?}",
                    path.display(),
                    r.index
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
