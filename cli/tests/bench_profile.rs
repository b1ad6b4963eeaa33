//! `wgllama bench` and `wgllama profile` end to end on the tiny GQA model (lavapipe in CI):
//! tables, CSV headers and the trace file. Times are only checked to be positive.

use std::path::PathBuf;
use std::process::Command;

fn model() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../golden/models/tiny-gqa/tiny-gqa-q8_0.gguf")
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("wgllama-{}-{name}", std::process::id()))
}

/// Runs the binary; panics with its stderr unless it succeeds. Returns stdout.
fn wgllama(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_wgllama"))
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "wgllama {args:?} failed:\n{stderr}");
    String::from_utf8(out.stdout).unwrap()
}

fn m() -> String {
    model().to_string_lossy().into_owned()
}

#[test]
fn bench_pp_tg_table_and_csv() {
    let csv = tmp("bench.csv");
    let out = wgllama(&[
        "bench",
        "-m",
        &m(),
        "--pp",
        "32,16",
        "--tg",
        "8",
        "-r",
        "2",
        "--warmup-ms",
        "0",
        "--csv",
        csv.to_str().unwrap(),
        "--each",
    ]);
    for test in ["| pp32 |", "| pp16 |", "| tg8 |"] {
        assert!(out.contains(test), "no {test} row in:\n{out}");
    }
    // --each: every repetition's t/s, in order, under the table.
    for test in ["pp32", "pp16", "tg8"] {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{test} repetitions")))
            .unwrap_or_else(|| panic!("no {test} repetitions line in:\n{out}"));
        let reps: Vec<f64> = line
            .rsplit(':')
            .next()
            .unwrap()
            .split_whitespace()
            .map(|v| v.parse().unwrap())
            .collect();
        assert!(reps.len() == 2 && reps.iter().all(|&t| t > 0.0), "{line}");
    }
    assert!(out.contains("f32 KV cache"), "{out}");
    let text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "model,size_gib,params_b,adapter,precision,test,reps,tps_mean,tps_sd,tps_median"
    );
    assert_eq!(lines.len(), 4);
    for line in &lines[1..] {
        // The last three fields are mean, sd and median t/s.
        let f: Vec<f64> = line
            .rsplit(',')
            .take(3)
            .map(|v| v.parse().unwrap())
            .collect();
        assert!(f[0] > 0.0 && f[2] > 0.0, "{line}");
    }
    std::fs::remove_file(csv).ok();
}

#[test]
fn bench_scenarios_csv() {
    let csv = tmp("scenarios.csv");
    let out = wgllama(&[
        "bench",
        "-m",
        &m(),
        "--scenarios",
        "--tg",
        "4",
        "-r",
        "2",
        "--kv-f16",
        "--warmup-ms",
        "0",
        "--csv",
        csv.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "backend,scenario,tokens,run,ms,ttft,tpt,throughput,generated"
    );
    assert_eq!(lines.len(), 1 + 4 * 2, "{text}");
    for (i, scenario) in ["short", "medium", "code", "long"].iter().enumerate() {
        assert!(out.contains(&format!("| {scenario} |")), "{out}");
        for run in 0..2 {
            let f: Vec<&str> = lines[1 + 2 * i + run].split(',').collect();
            assert!(f[0].starts_with("wgllama-wgpu-"), "{f:?}");
            assert_eq!((f[1], f[3]), (*scenario, run.to_string().as_str()));
            let tokens: usize = f[2].parse().unwrap();
            // The tiny model's context is 256: prompts are cut to leave room for 4 tokens.
            assert!(tokens > 0 && tokens <= 252, "{f:?}");
            let v: Vec<f64> = f[4..8].iter().map(|v| v.parse().unwrap()).collect();
            assert!(v.iter().all(|&x| x > 0.0), "{f:?}");
            assert!(v[1] <= v[0], "ttft within the total: {f:?}");
            assert_eq!(f[8], "4", "EOS is ignored: every run generates --tg tokens");
        }
    }
    std::fs::remove_file(csv).ok();
}

#[test]
fn profile_tables_csv_and_trace() {
    let (csv, trace) = (tmp("profile.csv"), tmp("trace.json"));
    let out = wgllama(&[
        "profile",
        "-m",
        &m(),
        "--pp",
        "48",
        "--tg",
        "6",
        "--bandwidth",
        "100",
        "--csv",
        csv.to_str().unwrap(),
        "--trace",
        trace.to_str().unwrap(),
    ]);
    assert!(out.contains("== prefill: 48 tokens"), "{out}");
    assert!(out.contains("== decode: 6 tokens"), "{out}");
    assert!(out.contains("plain pass"), "{out}");
    assert!(out.contains("bandwidth floor"), "{out}");

    let text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "phase,kernel,calls,total_ms,mean_us,percent,gbps,gflops"
    );
    // Decode (one token) does RoPE inside attention_decode, so only prefill has a rope row;
    // on the fast path decode folds its RMSNorms into the mat-vecs and the embedding lookup
    // (where the adapter has the folds, as lavapipe and the H100 do), so it may have no
    // rmsnorm row.
    for (phase, families) in [
        ("prefill", &["rmsnorm", "rope", "attention", "mat"][..]),
        ("decode", &["embedding", "attention", "mat"][..]),
    ] {
        let rows: Vec<Vec<&str>> = lines[1..]
            .iter()
            .map(|l| l.split(',').collect::<Vec<_>>())
            .filter(|f| f[0] == phase)
            .collect();
        for &family in families {
            assert!(
                rows.iter().any(|f| f[1].starts_with(family)),
                "{phase}: no {family} row in\n{text}"
            );
        }
        let total: f64 = rows.iter().map(|f| f[3].parse::<f64>().unwrap()).sum();
        assert!(total > 0.0, "{phase}: {text}");
        assert!(rows.iter().all(|f| f[2].parse::<usize>().unwrap() > 0));
    }

    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&trace).unwrap()).unwrap();
    let events = doc["traceEvents"].as_array().unwrap();
    let kernels: Vec<&serde_json::Value> = events.iter().filter(|e| e["ph"] == "X").collect();
    assert!(!kernels.is_empty());
    assert!(kernels.iter().all(|e| e["dur"].as_f64().unwrap() >= 0.0
        && e["ts"].as_f64().unwrap() >= 0.0
        && e["name"].is_string()));
    assert!(kernels.iter().any(|e| e["name"] == "rope_kv"));
    std::fs::remove_file(csv).ok();
    std::fs::remove_file(trace).ok();
}

#[test]
fn bench_refuses_tests_beyond_the_context() {
    let out = Command::new(env!("CARGO_BIN_EXE_wgllama"))
        .args(["bench", "-m", &m(), "--pp", "512", "--tg", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("context is 256"), "{stderr}");
}
