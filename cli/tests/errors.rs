//! The quantize and synth commands refuse bad arguments with a clear message.

use std::process::Command;

fn wgllama(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wgllama"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn unknown_preset_type_and_unwritable_output() {
    let (ok, err) = wgllama(&["synth", "--preset", "llama-9", "-o", "x.gguf"]);
    assert!(
        !ok && err.contains("unknown preset `llama-9`") && err.contains("tinyllama-1.1b"),
        "{err}"
    );
    let (ok, err) = wgllama(&[
        "synth", "--preset", "tiny", "--dtype", "q2_k", "-o", "x.gguf",
    ]);
    assert!(!ok && err.contains("unknown type `q2_k`"), "{err}");
    let (ok, err) = wgllama(&["synth", "--preset", "tiny", "-o", "/nonexistent-dir/x.gguf"]);
    assert!(!ok && err.contains("/nonexistent-dir/x.gguf"), "{err}");
    let model = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../golden/models/tiny-gqa/hf-f32"
    );
    let (ok, err) = wgllama(&[
        "quantize",
        model,
        "/nonexistent-dir/y.gguf",
        "--type",
        "q4_k_m",
    ]);
    assert!(!ok && err.contains("/nonexistent-dir/y.gguf"), "{err}");
    let (ok, err) = wgllama(&["quantize", model, "y.gguf", "--type", "q4_k_s"]);
    assert!(!ok && err.contains("unknown type `q4_k_s`"), "{err}");
}
