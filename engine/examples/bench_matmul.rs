//! Times the linear-layer kernels on Llama-3-8B shapes for every weight type: mat-vec
//! (decode) as weight GB/s, the tiled mat-mul (prefill) as GFLOP/s.
//!
//!     cargo run --release -p wgllama-engine --example bench_matmul [-- FILTER [SCALE]]
//!
//! FILTER keeps the types whose name contains it ("q4_K", "" for all); SCALE divides every
//! dimension (e.g. 8 for a quick run on lavapipe). Each line gives the mat-vec that
//! `matmul` picks (the subgroup kernel where the device has subgroups), the workgroup
//! (fallback) kernel, and the tiled prefill kernel. FILTER "sweep" instead times every
//! mat-vec workgroup shape (lanes x rows) for a few types, to pick `MatvecShape::for_k`;
//! "sgsweep" every subgroup shape (subgroups x rows per subgroup), to pick
//! `SubgroupShape::for_dtype`. Each figure is the mean of REPS
//! back-to-back dispatches in one compute pass, timed with GPU timestamps where the adapter
//! has them (else wall clock, which adds submission overhead).

use wgllama_engine::ops::matmul::{
    matmul, matmul_tiled, matvec_subgroup, matvec_with, MatvecKind, MatvecShape, SubgroupShape,
};
use wgllama_engine::testing::pass_timer::PassTimer;
use wgllama_engine::testing::weights::random_weight_bytes;
use wgllama_engine::testing::Rng;
use wgllama_engine::{Dispatch, Gpu, GpuOptions, Result};
use wgllama_loaders::DType;

const REPS: u32 = 50;

/// Seconds per dispatch of `d`, over REPS dispatches in one pass.
fn time(gpu: &Gpu, d: &Dispatch) -> Result<f64> {
    gpu.run(std::slice::from_ref(d))?; // warm-up: pipeline and caches
    let t = PassTimer::new(gpu).run(gpu, true, &|pass| {
        for _ in 0..REPS {
            d.record(pass);
        }
    })?;
    Ok(t / REPS as f64)
}

fn main() -> Result<()> {
    let filter = std::env::args().nth(1).unwrap_or_default();
    let scale: usize = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let gpu = Gpu::new(&GpuOptions::default())?;
    println!("adapter: {}", gpu.describe());
    let types = [
        DType::Q4K,
        DType::Q6K,
        DType::Q8_0,
        DType::Q5K,
        DType::Q4_0,
        DType::Q5_0,
        DType::F16,
        DType::BF16,
        DType::F32,
    ];
    // (N, K): attention q/o, FFN gate/up, FFN down.
    let shapes = [(4096usize, 4096usize), (14336, 4096), (4096, 14336)]
        .map(|(n, k)| (n / scale, (k / scale).next_multiple_of(256)));
    let prefill_t = 512 / scale;
    let mut rng = Rng::new(1);
    if filter == "sweep" {
        return sweep(&gpu, &shapes, &mut rng);
    }
    if filter == "sgsweep" {
        return sgsweep(&gpu, &shapes, &mut rng);
    }
    for dtype in types.into_iter().filter(|d| d.name().contains(&filter)) {
        for &(n, k) in &shapes {
            let bytes = random_weight_bytes(&mut rng, dtype, n * k);
            let w = match gpu.upload_weight("w", dtype, &[n, k], &bytes) {
                Ok(w) => w,
                Err(e) => {
                    println!("{:5} N={n:6} K={k:6}: {e}", dtype.name());
                    continue;
                }
            };
            let x = gpu.upload_f32("x", &rng.normal_vec(k, 1.0), &[1, k])?;
            let y = gpu.zeros_f32("y", &[1, n])?;
            let d = matmul(&gpu, &x, &w, &y, false)?;
            let s = time(&gpu, &d)?;
            let kind = match MatvecKind::pick(&gpu, dtype, k) {
                MatvecKind::Family => "family",
                MatvecKind::Subgroup(_) => "sg",
                MatvecKind::Workgroup(_) => "wg",
            };
            let dw = matvec_with(&gpu, &x, &w, &y, false, MatvecShape::for_k(k))?;
            let sw = time(&gpu, &dw)?;
            let line = format!(
                "{:5} N={n:6} K={k:6}  matvec({kind}) {:8.1} us {:7.1} GB/s  wg {:7.1} GB/s (weights {:.1} MB)",
                dtype.name(),
                s * 1e6,
                d.cost.bytes as f64 / s * 1e-9,
                dw.cost.bytes as f64 / sw * 1e-9,
                d.cost.bytes as f64 * 1e-6
            );
            let xt = gpu.upload_f32("x", &rng.normal_vec(prefill_t * k, 1.0), &[prefill_t, k])?;
            let yt = gpu.zeros_f32("y", &[prefill_t, n])?;
            let dt = matmul_tiled(&gpu, &xt, &w, &yt, false)?;
            let st = time(&gpu, &dt)?;
            println!(
                "{line}   matmul T={prefill_t} {:8.1} us {:7.1} GFLOP/s",
                st * 1e6,
                dt.cost.flops as f64 / st * 1e-9
            );
        }
    }
    Ok(())
}

/// Mat-vec GB/s for every workgroup shape, one line per type and matrix shape.
fn sweep(gpu: &Gpu, shapes: &[(usize, usize)], rng: &mut Rng) -> Result<()> {
    for dtype in [DType::Q4K, DType::Q6K, DType::Q8_0, DType::F16] {
        for &(n, k) in shapes {
            let bytes = random_weight_bytes(rng, dtype, n * k);
            let w = gpu.upload_weight("w", dtype, &[n, k], &bytes)?;
            let x = gpu.upload_f32("x", &rng.normal_vec(k, 1.0), &[1, k])?;
            let y = gpu.zeros_f32("y", &[1, n])?;
            let mut line = format!("{:5} N={n:6} K={k:6} GB/s (lanes x rows):", dtype.name());
            for lanes in [32, 64, 128, 256] {
                for rows in [1, 2, 4, 8] {
                    let shape = MatvecShape { lanes, rows };
                    let d = matvec_with(gpu, &x, &w, &y, false, shape)?;
                    let s = time(gpu, &d)?;
                    line += &format!(" {lanes}x{rows} {:.0}", d.cost.bytes as f64 / s * 1e-9);
                }
            }
            println!("{line}");
        }
    }
    Ok(())
}

/// Subgroup mat-vec GB/s for every shape, one line per type and matrix shape.
fn sgsweep(gpu: &Gpu, shapes: &[(usize, usize)], rng: &mut Rng) -> Result<()> {
    println!("subgroup size {:?}", gpu.caps.subgroup_size);
    for dtype in [DType::Q4K, DType::Q6K, DType::Q8_0, DType::F16] {
        for &(n, k) in shapes {
            let bytes = random_weight_bytes(rng, dtype, n * k);
            let w = gpu.upload_weight("w", dtype, &[n, k], &bytes)?;
            let x = gpu.upload_f32("x", &rng.normal_vec(k, 1.0), &[1, k])?;
            let y = gpu.zeros_f32("y", &[1, n])?;
            let mut line = format!(
                "{:5} N={n:6} K={k:6} GB/s (subgroups x rows/subgroup):",
                dtype.name()
            );
            for subgroups in [1, 2, 4, 8] {
                for rows_per_subgroup in [1, 2, 4] {
                    let shape = SubgroupShape {
                        subgroups,
                        rows_per_subgroup,
                    };
                    let d = matvec_subgroup(gpu, &x, &w, &y, false, shape)?;
                    let s = time(gpu, &d)?;
                    line += &format!(
                        " {subgroups}x{rows_per_subgroup} {:.0}",
                        d.cost.bytes as f64 / s * 1e-9
                    );
                }
            }
            println!("{line}");
        }
    }
    Ok(())
}
