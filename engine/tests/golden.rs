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
    check_all(Precision::Exact, 1e-3);
}

#[test]
fn model_goldens_pass_on_the_fast_path() {
    // Fast differs from exact only where the adapter has cooperative matrices (prompt
    // mat-muls with f16 inputs); elsewhere this would repeat the exact test.
    if !wgllama_engine::ops::matmul_coop::coop_available(test_gpu()) {
        eprintln!(
            "skipped: no cooperative matrices on {}",
            test_gpu().describe()
        );
        return;
    }
    // f16 rounding of activations and weights (~5e-4 relative each) through the prompt's
    // layers: measured on the H100 (2026-11-23) up to 5.2e-2 max abs on logits of magnitude
    // ~5-10, top-1 100% with near ties excused.
    check_all(Precision::Fast, 1e-1);
}

fn check_all(precision: Precision, max_abs: f32) {
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
        let tol = model::ModelTolerance {
            max_abs,
            ..Default::default()
        };
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
