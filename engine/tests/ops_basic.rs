//! Op tests for the small kernels: smoke round trip and RMSNorm.

use wgllama_engine::ops::matvec::Reduction;
use wgllama_engine::ops::prefetch::{prefetch, sink_len, PER_WG, STRIDE};
use wgllama_engine::ops::{rmsnorm::rmsnorm_with, sg_reduction, smoke::smoke};
use wgllama_engine::reference;
use wgllama_engine::testing::{assert_close, assert_f16_rounding, read_f16, test_gpu, Rng, Tol};

#[test]
fn smoke_round_trip() {
    let gpu = test_gpu();
    let mut rng = Rng::new(1);
    let n = 1000; // not a multiple of the workgroup (64)
    let x = rng.vec(n, -2.0, 2.0);
    let tx = gpu.upload_f32("x", &x, &[n]).unwrap();
    let ty = gpu.poisoned_f32("y", &[n]).unwrap();
    gpu.run(&[smoke(gpu, &tx, &ty).unwrap()]).unwrap();
    let want: Vec<f32> = x.iter().map(|v| 2.0 * v + 1.0).collect();
    assert_close(
        "smoke n=1000",
        &gpu.read_f32(&ty).unwrap(),
        &want,
        Tol {
            nmse: 0.0,
            max_abs: 0.0,
        },
    );
}

#[test]
fn prefetch_touches_every_line_of_its_range() {
    // The sink holds each workgroup's XOR of the words it loaded: a range, workgroup split or
    // stride off by one changes it. Ranges start off a line, end mid-workgroup, or run past
    // the buffer (clamped).
    let gpu = test_gpu();
    let mut rng = Rng::new(7);
    let n = 3 * PER_WG + 1237;
    let words: Vec<u32> = (0..n).map(|_| rng.next_u64() as u32).collect();
    let src = gpu.upload_u32("src", &words, &[n]).unwrap();
    for (from_word, count) in [
        (0, n),
        (5, 1),
        (13, PER_WG + 9),
        (PER_WG - 3, 2 * PER_WG),
        (n - 700, 5000),
    ] {
        let bytes = count as u64 * 4;
        let sink_n = sink_len(bytes);
        let sink = gpu
            .upload_u32("sink", &vec![0xdead_beef; sink_n], &[sink_n])
            .unwrap();
        gpu.run(&[prefetch(gpu, &src.buffer, from_word as u64 * 4, bytes, &sink).unwrap()])
            .unwrap();
        let got = gpu.read_u32(&sink).unwrap();
        let touched = count.min(n - from_word);
        let want = reference::prefetch::xor_lines(&words, from_word, touched, PER_WG, STRIDE);
        assert_eq!(
            &got[..want.len()],
            &want[..],
            "prefetch from word {from_word}, {count} words, buffer of {n}"
        );
    }
    assert!(prefetch(
        gpu,
        &src.buffer,
        (n as u64 + 8) * 4,
        16,
        &gpu.upload_u32("s", &[0], &[1]).unwrap()
    )
    .is_err());
}

#[test]
fn rmsnorm_matches_reference() {
    let gpu = test_gpu();
    let tol = Tol {
        nmse: 1e-12,
        max_abs: 1e-5,
    };
    for (i, &(rows, dim)) in [
        (1, 64),
        (3, 1000),
        (7, 2048),
        (2, 4097),
        (130, 96),
        (1, 2048),
        (1, 4096),
        (1, 5000),
        (1, 4099),
        (1, 3),
    ]
    .iter()
    .enumerate()
    {
        let mut rng = Rng::new(100 + i as u64);
        let x = rng.normal_vec(rows * dim, 1.5);
        let w = rng.vec(dim, 0.5, 1.5);
        let eps = 1e-5;
        let tx = gpu.upload_f32("x", &x, &[rows, dim]).unwrap();
        let tw = gpu.upload_f32("w", &w, &[dim]).unwrap();
        let want = reference::rmsnorm::rmsnorm(&x, &w, eps);
        let mut reductions = vec![Reduction::Workgroup];
        if sg_reduction(gpu) == Reduction::Subgroup {
            reductions.push(Reduction::Subgroup);
        }
        for reduction in reductions {
            let ty = gpu.poisoned_f32("y", &[rows, dim]).unwrap();
            gpu.run(&[rmsnorm_with(gpu, &tx, &tw, &ty, eps, reduction).unwrap()])
                .unwrap();
            assert_close(
                &format!("rmsnorm rows={rows} dim={dim} eps={eps} {reduction:?}"),
                &gpu.read_f32(&ty).unwrap(),
                &want,
                tol,
            );
        }
    }
}

#[test]
fn pipeline_cache_round_trips_through_its_file() {
    // Pipelines built with a cache fill it; the saved file seeds a second cache on a fresh
    // device, whose pipelines then build (and run) as before. Where the adapter lacks
    // PIPELINE_CACHE, `use_pipeline_cache` says so with None and nothing changes.
    let dir = std::env::temp_dir().join(format!("wgllama-pcache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let gpu = wgllama_engine::Gpu::new(&Default::default()).unwrap();
    let Some(path) = gpu.use_pipeline_cache(&dir) else {
        eprintln!("skipped: {} has no PIPELINE_CACHE", gpu.describe());
        return;
    };
    let x = gpu.upload_f32("x", &[1.0, -2.0, 3.0], &[3]).unwrap();
    let y = gpu.zeros_f32("y", &[3]).unwrap();
    let d = wgllama_engine::ops::elementwise::add(&gpu, &x, &x, &y).unwrap();
    gpu.run(&[d]).unwrap();
    gpu.save_pipeline_cache().unwrap();
    let saved = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    assert!(saved > 0, "no cache data written to {}", path.display());
    drop(gpu);
    let again = wgllama_engine::Gpu::new(&Default::default()).unwrap();
    assert_eq!(again.use_pipeline_cache(&dir), Some(path));
    let x = again.upload_f32("x", &[1.0, -2.0, 3.0], &[3]).unwrap();
    let y = again.zeros_f32("y", &[3]).unwrap();
    again
        .run(&[wgllama_engine::ops::elementwise::add(&again, &x, &x, &y).unwrap()])
        .unwrap();
    assert_eq!(again.read_f32(&y).unwrap(), [2.0, -4.0, 6.0]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// rmsnorm with an f16 output (the tensor-core prompt mat-muls' input): the f32 kernel's
/// values rounded to f16, both reductions, with rows whose outputs pass f16's range (saturated).
#[test]
fn rmsnorm_f16_is_rmsnorm_rounded() {
    let gpu = test_gpu();
    for (i, &(rows, dim)) in [(1, 64), (3, 1000), (130, 96), (5, 2048), (2, 4100)]
        .iter()
        .enumerate()
    {
        let mut rng = Rng::new(200 + i as u64);
        let x = rng.normal_vec(rows * dim, 1.5);
        // Large weights on every 7th value push those outputs past 65504.
        let w: Vec<f32> = (0..dim)
            .map(|j| {
                if j % 7 == 3 {
                    3e4
                } else {
                    rng.uniform(0.5, 1.5)
                }
            })
            .collect();
        let tx = gpu.upload_f32("x", &x, &[rows, dim]).unwrap();
        let tw = gpu.upload_f32("w", &w, &[dim]).unwrap();
        let mut reductions = vec![Reduction::Workgroup];
        if sg_reduction(gpu) == Reduction::Subgroup {
            reductions.push(Reduction::Subgroup);
        }
        for reduction in reductions {
            let y32 = gpu.poisoned_f32("y", &[rows, dim]).unwrap();
            let y16 = gpu.zeros_f16("y16", &[rows, dim]).unwrap();
            gpu.run(&[
                rmsnorm_with(gpu, &tx, &tw, &y32, 1e-5, reduction).unwrap(),
                rmsnorm_with(gpu, &tx, &tw, &y16, 1e-5, reduction).unwrap(),
            ])
            .unwrap();
            let case = format!("rmsnorm f16 rows={rows} dim={dim} {reduction:?}");
            let want = gpu.read_f32(&y32).unwrap();
            assert!(
                want.iter().any(|v| v.abs() > 65504.0),
                "{case}: no value saturates"
            );
            assert_f16_rounding(&case, &read_f16(gpu, &y16), &want);
        }
    }
    // f16 output needs whole vec4 rows.
    let x = gpu.upload_f32("x", &[1.0; 6], &[1, 6]).unwrap();
    let w = gpu.upload_f32("w", &[1.0; 6], &[6]).unwrap();
    let y = gpu.zeros_f16("y", &[1, 6]).unwrap();
    let e = rmsnorm_with(gpu, &x, &w, &y, 1e-5, Reduction::Workgroup).unwrap_err();
    assert!(
        matches!(e, wgllama_engine::EngineError::Shape { .. }),
        "{e}"
    );
}
