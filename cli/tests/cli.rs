//! The binary as a user runs it: logits against the golden file, seeded runs, clear errors.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

fn wgllama(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wgllama"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn logits_command_matches_the_transformers_golden() {
    let out =
        std::env::temp_dir().join(format!("wgllama-logits-{}.safetensors", std::process::id()));
    let golden = repo("golden/models/tiny-mha/tiny-mha-q8_0.golden.safetensors");
    let model = repo("golden/models/tiny-mha/tiny-mha-q8_0.gguf");
    let o = wgllama(&[
        "logits",
        "-m",
        model.to_str().unwrap(),
        "--input",
        golden.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--greedy",
        "8",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ours = std::fs::read(&out).unwrap();
    let theirs = std::fs::read(&golden).unwrap();
    let (ours, theirs) = (
        safetensors::SafeTensors::deserialize(&ours).unwrap(),
        safetensors::SafeTensors::deserialize(&theirs).unwrap(),
    );
    for i in 0..3 {
        let a: Vec<f32> =
            bytemuck::pod_collect_to_vec(ours.tensor(&format!("logits_{i}")).unwrap().data());
        let b: Vec<f32> =
            bytemuck::pod_collect_to_vec(theirs.tensor(&format!("logits_{i}")).unwrap().data());
        assert_eq!(a.len(), b.len());
        let max = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(max < 1e-3, "logits_{i}: max abs error {max}");
        let g: Vec<i32> =
            bytemuck::pod_collect_to_vec(ours.tensor(&format!("greedy_{i}")).unwrap().data());
        let h: Vec<i32> =
            bytemuck::pod_collect_to_vec(theirs.tensor(&format!("greedy_{i}")).unwrap().data());
        assert_eq!(g[..], h[..8], "greedy_{i}");
    }
    let _ = std::fs::remove_file(out);
}

#[test]
fn run_streams_the_same_text_for_the_same_seed() {
    let model = repo("golden/models/tiny-gqa/hf-f32");
    let args = [
        "run",
        "-m",
        model.to_str().unwrap(),
        "-p",
        "the robot",
        "-n",
        "12",
        "--seed",
        "5",
    ];
    let a = wgllama(&args);
    let b = wgllama(&args);
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert_eq!(a.stdout, b.stdout);
    assert!(String::from_utf8_lossy(&a.stdout).starts_with("the robot"));
    let stats = String::from_utf8_lossy(&a.stderr);
    assert!(
        stats.contains("generated") && stats.contains("t/s"),
        "{stats}"
    );
}

#[test]
fn bad_input_is_a_clear_error() {
    let model = repo("golden/models/tiny-gqa/tiny-gqa-q8_0.gguf");
    let m = model.to_str().unwrap();
    let too_long = "robot ".repeat(50);
    for (args, needle) in [
        (
            vec!["run", "-m", m, "-p", too_long.as_str(), "-c", "16"],
            "context",
        ),
        (vec!["run", "-m", m, "-p", ""], "empty"),
        (
            vec!["run", "-m", "/nonexistent/model.gguf", "-p", "x"],
            "/nonexistent/model.gguf",
        ),
        (vec!["inspect", "Cargo.toml"], "Cargo.toml"),
    ] {
        let o = wgllama(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}
