//! Op tests for the small kernels: smoke round trip and RMSNorm.

use wgllama_engine::ops::{rmsnorm::rmsnorm, smoke::smoke};
use wgllama_engine::reference;
use wgllama_engine::testing::{assert_close, test_gpu, Rng, Tol};

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
fn rmsnorm_matches_reference() {
    let gpu = test_gpu();
    let tol = Tol {
        nmse: 1e-12,
        max_abs: 1e-5,
    };
    for (i, &(rows, dim)) in [(1, 64), (3, 1000), (7, 2048), (2, 4097), (130, 96)]
        .iter()
        .enumerate()
    {
        let mut rng = Rng::new(100 + i as u64);
        let x = rng.normal_vec(rows * dim, 1.5);
        let w = rng.vec(dim, 0.5, 1.5);
        let eps = 1e-5;
        let tx = gpu.upload_f32("x", &x, &[rows, dim]).unwrap();
        let tw = gpu.upload_f32("w", &w, &[dim]).unwrap();
        let ty = gpu.poisoned_f32("y", &[rows, dim]).unwrap();
        gpu.run(&[rmsnorm(gpu, &tx, &tw, &ty, eps).unwrap()])
            .unwrap();
        let want = reference::rmsnorm::rmsnorm(&x, &w, eps);
        assert_close(
            &format!("rmsnorm rows={rows} dim={dim} eps={eps}"),
            &gpu.read_f32(&ty).unwrap(),
            &want,
            tol,
        );
    }
}
