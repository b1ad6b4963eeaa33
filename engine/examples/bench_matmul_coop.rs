//! Times the cooperative-matrix (tensor-core) prefill mat-mul against the tiled f32 kernel at
//! T = 512 on the linear layers of TinyLlama-1.1B and Llama-2-7B, in TFLOP/s.
//!
//!     cargo run --release -p wgllama-engine --example bench_matmul_coop [-- MODE [SCALE]]
//!
//! MODE: "models" (default) times `matmul_coop` (CoopTile::pick) and `matmul_tiled` on
//! every layer shape for Q4_K, Q6_K and F16, and projects the GEMM-only pp512 rate (all
//! layers' mat-muls at T = 512, output layer excluded; f16 x, as the prompt pass has it);
//! "sweep" times every `CoopTile::candidates()` tile on the large shapes (f16 x); "all" runs the sweep, then the models
//! with the sweep's best tile as well; "exp" times the first kernel (depth 0, f32 x) against
//! depth 1 with f32 and f16 x on eight tiles and the large shapes, then on the models (the
//! first kernel with the tile pick it had, the others with `CoopTile::pick`), all with the
//! session-3 tiles (bk 32, double-buffered); "big" times the picked tile against 128 x 256 and
//! 256 x 128 tiles of 16 subgroups on the model shapes (no tiled kernel); "prompt IDX,IDX.."
//! times the F16 prompt pass's four GEMMs a layer as the graph calls them (q/k/v fused, Wo,
//! SwiGLU, down) with the picked tiles and with the candidates of those indices. SCALE divides
//! every dimension (a quick run).
//!
//! The H100 idles at a low clock and drops back to it in gaps (a pipeline compile is one): all
//! dispatches are built first, then 300 ms of warm-up, then each timing is a pass of untimed
//! dispatches followed, in the same submit, by the timed pass (GPU timestamps around it where
//! the adapter has them, else wall clock), the best of two rounds.

use std::time::Instant;

use wgllama_engine::ops::matmul::matmul_tiled;
use wgllama_engine::ops::matmul_coop::{
    coop_available, glu_fits, matmul_coop, matmul_coop_glu_with, matmul_coop_multi,
    matmul_coop_multi_with, matmul_coop_with, CoopTile,
};
use wgllama_engine::testing::pass_timer::PassTimer;
use wgllama_engine::testing::weights::random_weight_bytes;
use wgllama_engine::testing::Rng;
use wgllama_engine::{Dispatch, Gpu, GpuOptions, Result, Tensor};
use wgllama_loaders::DType;

const T: usize = 512;

/// A model's linear layers: (name, N, K, count per layer), layers, vocabulary.
struct Model {
    name: &'static str,
    layers: usize,
    shapes: Vec<(&'static str, usize, usize, usize)>,
}

fn models(scale: usize) -> Vec<Model> {
    // Row lengths stay whole 256-blocks when scaled down.
    let k = |v: usize| (v / scale).next_multiple_of(256);
    let m = |name, layers, d: usize, ffn: usize, kv: usize| Model {
        name,
        layers,
        shapes: vec![
            ("q,o", d / scale, k(d), 2),
            ("k,v", kv / scale, k(d), 2),
            ("gate,up", ffn / scale, k(d), 2),
            ("down", d / scale, k(ffn), 1),
            ("vocab", 32000 / scale, k(d), 0),
        ],
    };
    vec![
        m("TinyLlama-1.1B", 22, 2048, 5632, 256),
        m("Llama-2-7B", 32, 4096, 11008, 4096),
    ]
}

/// Float weights from random bits (fast for the large ones): f16 values of magnitude
/// 2^-5 .. 2^1 and either sign; other types via `random_weight_bytes`.
fn weight(gpu: &Gpu, rng: &mut Rng, dtype: DType, n: usize, k: usize) -> Result<Tensor> {
    let bytes = if dtype == DType::F16 {
        (0..n * k)
            .flat_map(|_| {
                let r = rng.next_u64();
                let exp = 10 + (r % 7) as u16; // biased exponent 10..16
                let bits = ((r >> 8) as u16 & 0x83ff) | (exp << 10);
                bits.to_le_bytes()
            })
            .collect()
    } else {
        random_weight_bytes(rng, dtype, n * k)
    };
    gpu.upload_weight("w", dtype, &[n, k], &bytes)
}

/// Runs `d` back to back for about `ms` milliseconds (clock warm-up).
fn warm(gpu: &Gpu, d: &Dispatch, ms: u128) -> Result<()> {
    let start = Instant::now();
    while start.elapsed().as_millis() < ms {
        gpu.run(&vec![d.clone(); 20])?;
    }
    Ok(())
}

/// Seconds per dispatch of `d`: `reps` dispatches in a timed pass, after an untimed pass of
/// `reps / 2 + 1` in the same submit.
fn time_reps(gpu: &Gpu, d: &Dispatch, reps: u32) -> Result<f64> {
    let t = PassTimer::new(gpu).run_after(
        gpu,
        &|pass| {
            for _ in 0..reps / 2 + 1 {
                d.record(pass);
            }
        },
        &|pass| {
            for _ in 0..reps {
                d.record(pass);
            }
        },
    )?;
    Ok(t / reps as f64)
}

/// Seconds per dispatch, with enough repetitions for about 20 ms of timed work.
fn time(gpu: &Gpu, d: &Dispatch) -> Result<f64> {
    let once = time_reps(gpu, d, 2)?;
    let reps = ((0.02 / once) as u32).clamp(3, 200);
    time_reps(gpu, d, reps)
}

fn tflops(d: &Dispatch, s: f64) -> f64 {
    d.cost.flops as f64 / s * 1e-12
}

fn tile_name(t: &CoopTile) -> String {
    format!(
        "{}x{} sg {}x{} tiles bk{} s{} ({}x{})",
        t.sg_t,
        t.sg_n,
        t.tm,
        t.tn,
        t.bk,
        t.stages,
        t.tokens(),
        t.rows()
    )
}

/// Times every dispatch of `jobs` (built beforehand, so no pipeline compiles between timings)
/// after 300 ms of warm-up, twice over; returns each one's best seconds per dispatch.
fn time_all(gpu: &Gpu, jobs: &[Dispatch]) -> Result<Vec<f64>> {
    let Some(first) = jobs.first() else {
        return Ok(Vec::new());
    };
    warm(gpu, first, 300)?;
    let mut best = vec![f64::INFINITY; jobs.len()];
    for _ in 0..2 {
        for (b, d) in best.iter_mut().zip(jobs) {
            *b = b.min(time(gpu, d)?);
        }
    }
    Ok(best)
}

fn main() -> Result<()> {
    let mode = std::env::args().nth(1).unwrap_or_else(|| "models".into());
    let scale: usize = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let gpu = Gpu::new(&GpuOptions::default())?;
    println!("adapter: {}", gpu.describe());
    println!("caps:    {:?}", gpu.caps);
    for p in gpu.adapter.cooperative_matrix_properties() {
        println!(
            "coop:    {}x{}x{} {:?} -> {:?}{}",
            p.m_size,
            p.n_size,
            p.k_size,
            p.ab_type,
            p.cr_type,
            if p.saturating_accumulation {
                " sat"
            } else {
                ""
            }
        );
    }
    if !coop_available(&gpu) {
        println!("no cooperative matrices on this device: nothing to time");
        return Ok(());
    }
    let mut rng = Rng::new(7);
    let mut best = None;
    if mode == "sweep" || mode == "all" {
        best = Some(sweep(&gpu, &mut rng, scale)?);
    }
    if mode == "multi" {
        multi(&gpu, &mut rng)?;
        return Ok(());
    }
    if mode == "big" {
        // The picked tile against tiles of 16 subgroups (512 lanes) of LARGE's 4 x 2 blocks,
        // 128 x 256 and 256 x 128 (a quarter less staging traffic a multiplication): on the
        // H100 2-2.5x slower than LARGE (128 registers a lane at 512 lanes;
        // benches/results/2026-11-24-h100-s11/big/).
        let big = |sg_t, sg_n, bk| CoopTile {
            sg_t,
            sg_n,
            bk,
            ..CoopTile::LARGE
        };
        let tiles = [None, Some(big(2, 8, 32)), Some(big(4, 4, 32))];
        for (i, tile) in tiles.iter().enumerate() {
            let name = tile.map_or("picked per shape".into(), |t| tile_name(&t));
            println!("coop{i}: {name}");
        }
        model_table(&gpu, &mut rng, scale, &tiles, false)?;
        return Ok(());
    }
    if mode == "exp" {
        exp(&gpu, &mut rng, scale)?;
        return Ok(());
    }
    if mode == "prompt" {
        // Candidate indices (comma-separated) in place of SCALE.
        let picks: Vec<usize> = std::env::args()
            .nth(2)
            .unwrap_or_default()
            .split(',')
            .filter_map(|s| s.parse().ok())
            .collect();
        prompt(&gpu, &mut rng, &picks)?;
        return Ok(());
    }
    if mode == "models" || mode == "all" {
        // None: the tile `matmul_coop` picks per shape.
        let mut tiles = vec![None];
        tiles.extend(best.map(Some));
        for (i, tile) in tiles.iter().enumerate() {
            let name = tile.map_or("picked per shape".into(), |t| tile_name(&t));
            println!("coop{i}: {name}");
        }
        model_table(&gpu, &mut rng, scale, &tiles, true)?;
    }
    Ok(())
}

/// Every layer shape of both models for Q4_K, Q6_K and F16: coop with each tile, tiled.
fn model_table(
    gpu: &Gpu,
    rng: &mut Rng,
    scale: usize,
    tiles: &[Option<CoopTile>],
    with_tiled: bool,
) -> Result<()> {
    let t = T / scale;
    // (model, dtype, shape) rows, each with its dispatches: coop per tile, then tiled.
    let mut rows = Vec::new();
    let mut jobs = Vec::new();
    let mut keep = Vec::new(); // tensors stay alive until timed
    for (mi, model) in models(scale).iter().enumerate() {
        for dtype in [DType::Q4K, DType::Q6K, DType::F16] {
            for (si, &(_, n, k, _)) in model.shapes.iter().enumerate() {
                let w = weight(gpu, rng, dtype, n, k)?;
                // f16 x, as the prompt pass feeds the tensor-core GEMMs (the tiled f32
                // kernel takes f32 x).
                let xv = rng.normal_vec(t * k, 1.0);
                let x = gpu.upload_f32("x", &xv, &[t, k])?;
                let xh = gpu.upload_f16("x", &xv, &[t, k])?;
                let y = gpu.zeros_f32("y", &[t, n])?;
                for tile in tiles {
                    let tile = tile.unwrap_or(CoopTile::pick(t, n, !dtype.is_quantized()));
                    jobs.push(matmul_coop_with(gpu, &xh, &w, &y, false, tile)?);
                }
                if with_tiled {
                    jobs.push(matmul_tiled(gpu, &x, &w, &y, false)?);
                }
                rows.push((mi, dtype, si));
                keep.push((w, x, xh, y));
            }
        }
    }
    let secs = time_all(gpu, &jobs)?;
    let per_row = tiles.len() + with_tiled as usize;
    let models = models(scale);
    let mut layer = vec![0.0; per_row];
    for (r, &(mi, dtype, si)) in rows.iter().enumerate() {
        let model = &models[mi];
        let (name, n, k, count) = model.shapes[si];
        let mut line = format!(
            "{:15} {:5} {name:8} N={n:6} K={k:6} T={t}:",
            model.name,
            dtype.name()
        );
        for i in 0..per_row {
            let (d, s) = (&jobs[r * per_row + i], secs[r * per_row + i]);
            layer[i] += count as f64 * s;
            let what = if i == tiles.len() {
                " tiled".to_string()
            } else {
                format!(" coop{i}")
            };
            line += &format!("{what} {:8.1} us {:6.1} TFLOP/s", s * 1e6, tflops(d, s));
        }
        println!("{line}");
        if si + 1 == model.shapes.len() {
            let proj = |s: f64| t as f64 / (model.layers as f64 * s);
            let mut line = format!(
                "{:15} {:5} GEMMs per layer at T={t}:",
                model.name,
                dtype.name()
            );
            for (i, s) in layer.iter().enumerate() {
                let what = if i == tiles.len() {
                    " tiled".to_string()
                } else {
                    format!(" coop{i}")
                };
                line += &format!("{what} {:.0} us (GEMM-only {:.0} t/s)", s * 1e6, proj(*s));
            }
            println!("{line}");
            layer = vec![0.0; per_row];
        }
    }
    Ok(())
}

/// The F16 prompt pass's four GEMMs a layer as the graph calls them at T = 512 (q/k/v in one
/// `matmul_coop_multi`, Wo accumulating, gate/up as `matmul_coop_glu`, down accumulating) for
/// both models, with the picked tiles and with each candidate `picks` (by index; the SwiGLU
/// GEMM keeps the picked tile where the candidate does not `glu_fits`): us a call, TFLOP/s,
/// and the layer's sum.
fn prompt(gpu: &Gpu, rng: &mut Rng, picks: &[usize]) -> Result<()> {
    let all = CoopTile::candidates();
    let mut tiles = vec![None];
    for &i in picks {
        let Some(tile) = all.get(i) else {
            println!("no candidate {i}");
            continue;
        };
        tiles.push(Some(*tile));
    }
    for (i, tile) in tiles.iter().enumerate() {
        let name = tile.map_or("picked per shape".into(), |t| tile_name(&t));
        let bytes = tile.map_or(String::new(), |t| {
            format!(
                ", {} / {} B",
                t.workgroup_bytes(false),
                t.workgroup_bytes(true)
            )
        });
        println!("prompt{i}: {name}{bytes}");
    }
    let sg = gpu.caps.subgroup_size.1;
    let mut jobs = Vec::new();
    let mut rows = Vec::new();
    let mut keep = Vec::new();
    for (name, d, ffn, kv) in [
        ("TinyLlama-1.1B", 2048, 5632, 256),
        ("Llama-2-7B", 4096, 11008, 4096),
    ] {
        let w = |rng: &mut Rng, n, k| weight(gpu, rng, DType::F16, n, k);
        let (wq, wk, wv, wo) = (w(rng, d, d)?, w(rng, kv, d)?, w(rng, kv, d)?, w(rng, d, d)?);
        let (wg, wu, wd) = (w(rng, ffn, d)?, w(rng, ffn, d)?, w(rng, d, ffn)?);
        let xd = gpu.upload_f16("x", &rng.normal_vec(T * d, 1.0), &[T, d])?;
        let xf = gpu.upload_f16("act", &rng.normal_vec(T * ffn, 1.0), &[T, ffn])?;
        let (q, k, v) = (
            gpu.zeros_f32("q", &[T, d])?,
            gpu.zeros_f32("k", &[T, kv])?,
            gpu.zeros_f32("v", &[T, kv])?,
        );
        let h = gpu.zeros_f32("h", &[T, d])?;
        let act = gpu.zeros_f16("act", &[T, ffn])?;
        for tile in &tiles {
            let pick = |n| CoopTile::pick(T, n, true);
            let t_qkv = tile.unwrap_or(pick(d + 2 * kv));
            let t_o = tile.unwrap_or(pick(d));
            let t_glu = tile.filter(|t| glu_fits(t, sg)).unwrap_or(pick(2 * ffn));
            jobs.push(matmul_coop_multi_with(
                gpu,
                &xd,
                &[&wq, &wk, &wv],
                &[&q, &k, &v],
                t_qkv,
            )?);
            jobs.push(matmul_coop_with(gpu, &xd, &wo, &h, true, t_o)?);
            jobs.push(matmul_coop_glu_with(gpu, &xd, &wg, &wu, &act, t_glu)?);
            jobs.push(matmul_coop_with(gpu, &xf, &wd, &h, true, t_o)?);
            rows.push(name);
        }
        keep.push((wq, wk, wv, wo, wg, wu, wd, xd, xf, q, k, v, h, act));
    }
    let secs = time_all(gpu, &jobs)?;
    for (r, name) in rows.iter().enumerate() {
        let mut line = format!("{name:15} prompt{}:", r % tiles.len());
        let mut sum = 0.0;
        for (what, i) in [("qkv", 0), ("o", 1), ("glu", 2), ("down", 3)] {
            let (d, s) = (&jobs[4 * r + i], secs[4 * r + i]);
            sum += s;
            line += &format!(" {what} {:7.1} us {:5.1}", s * 1e6, tflops(d, s));
        }
        let flops: u64 = (0..4).map(|i| jobs[4 * r + i].cost.flops).sum();
        line += &format!(
            " | layer {:7.1} us {:5.1} TFLOP/s",
            sum * 1e6,
            flops as f64 / sum * 1e-12
        );
        println!("{line}");
    }
    Ok(())
}

/// TFLOP/s of every candidate tile on the large shapes; returns the tile with the best
/// geometric mean.
fn sweep(gpu: &Gpu, rng: &mut Rng, scale: usize) -> Result<CoopTile> {
    let t = T / scale;
    let shapes = [
        (2048, 2048),
        (5632, 2048),
        (2048, 5632),
        (4096, 4096),
        (11008, 4096),
        (4096, 11008),
    ]
    .map(|(n, k): (usize, usize)| (n / scale, (k / scale).next_multiple_of(256)));
    let tiles = CoopTile::candidates();
    let mut rows = Vec::new();
    let mut jobs = Vec::new();
    let mut keep = Vec::new();
    for dtype in [DType::Q4K, DType::Q6K, DType::F16] {
        for &(n, k) in &shapes {
            let w = weight(gpu, rng, dtype, n, k)?;
            // f16 x, as the prompt pass feeds the tensor-core GEMMs.
            let x = gpu.upload_f16("x", &rng.normal_vec(t * k, 1.0), &[t, k])?;
            let y = gpu.zeros_f32("y", &[t, n])?;
            for tile in &tiles {
                jobs.push(matmul_coop_with(gpu, &x, &w, &y, false, *tile)?);
            }
            rows.push((dtype, n, k));
            keep.push((w, x, y));
        }
    }
    let secs = time_all(gpu, &jobs)?;
    let mut logsum = vec![0.0f64; tiles.len()];
    for (r, &(dtype, n, k)) in rows.iter().enumerate() {
        let mut line = format!("sweep {:5} N={n:6} K={k:6} TFLOP/s:", dtype.name());
        for i in 0..tiles.len() {
            let (d, s) = (&jobs[r * tiles.len() + i], secs[r * tiles.len() + i]);
            logsum[i] += tflops(d, s).ln();
            line += &format!(" [{i}] {:.1}", tflops(d, s));
        }
        println!("{line}");
    }
    let mut best = 0;
    for (i, tile) in tiles.iter().enumerate() {
        let g = (logsum[i] / rows.len() as f64).exp();
        println!(
            "sweep [{i:2}] {:32} geomean {g:.1} TFLOP/s",
            tile_name(tile)
        );
        if logsum[i] > logsum[best] {
            best = i;
        }
    }
    println!("sweep best: [{best}] {}", tile_name(&tiles[best]));
    Ok(tiles[best])
}

/// (depth, f16 x) variants compared by "exp"; (0, false) is the first kernel.
const VARIANTS: [(u32, bool); 3] = [(0, false), (1, false), (1, true)];

/// The tile pick of the first kernel: the largest of LARGE, MEDIUM, SMALL that makes at least
/// 96 workgroups, at depth 0.
fn first_pick(t: usize, n: usize) -> CoopTile {
    let tile = [old(CoopTile::LARGE), old(CoopTile::MEDIUM)]
        .into_iter()
        .find(|tile| tile.workgroups(t, n) >= 96)
        .unwrap_or(old(CoopTile::SMALL));
    CoopTile { depth: 0, ..tile }
}

/// A preset's layout as the session-3 experiment had it: bk 32, double-buffered.
fn old(tile: CoopTile) -> CoopTile {
    CoopTile {
        bk: 32,
        stages: 2,
        ..tile
    }
}

fn variant_name(depth: u32, x_f16: bool) -> String {
    format!("d{depth}{}", if x_f16 { "h" } else { "f" })
}

/// The variants x tiles on the large shapes, then the model shapes with the picked tiles.
fn exp(gpu: &Gpu, rng: &mut Rng, scale: usize) -> Result<()> {
    let t = T / scale;
    let tile = |sg_t, sg_n, tm, tn| CoopTile {
        sg_t,
        sg_n,
        tm,
        tn,
        bk: 32,
        depth: 0,
        stages: 2,
        park: 0,
    };
    let tiles = [
        old(CoopTile::SMALL),
        old(CoopTile::MEDIUM),
        old(CoopTile::LARGE),
        tile(4, 4, 2, 2), // 128 x 128, 16 subgroups of 2 x 2
        tile(2, 2, 2, 4), // 64 x 128, 4 subgroups
        tile(2, 2, 4, 2), // 128 x 64, 4 subgroups
        tile(2, 2, 1, 1), // 32 x 32
        CoopTile {
            bk: 64,
            ..old(CoopTile::SMALL)
        },
    ];
    for (i, tl) in tiles.iter().enumerate() {
        println!("exp tile [{i}] {}", tile_name(tl));
    }
    let shapes = [
        (256, 2048),
        (2048, 2048),
        (5632, 2048),
        (2048, 5632),
        (4096, 4096),
        (11008, 4096),
        (4096, 11008),
    ]
    .map(|(n, k): (usize, usize)| (n / scale, (k / scale).next_multiple_of(256)));
    let per_row = VARIANTS.len() * tiles.len();
    let mut rows = Vec::new();
    let mut jobs = Vec::new();
    let mut keep = Vec::new(); // tensors stay alive until timed
    for dtype in [DType::Q4K, DType::Q6K, DType::F16] {
        for &(n, k) in &shapes {
            let w = weight(gpu, rng, dtype, n, k)?;
            let xv = rng.normal_vec(t * k, 1.0);
            let x32 = gpu.upload_f32("x", &xv, &[t, k])?;
            let x16 = gpu.upload_f16("x", &xv, &[t, k])?;
            let y = gpu.zeros_f32("y", &[t, n])?;
            for &(depth, x_f16) in &VARIANTS {
                let x = if x_f16 { &x16 } else { &x32 };
                for tl in &tiles {
                    let tl = CoopTile { depth, ..*tl };
                    jobs.push(matmul_coop_with(gpu, x, &w, &y, false, tl)?);
                }
            }
            rows.push((dtype, n, k));
            keep.push((w, x32, x16, y));
        }
    }
    let secs = time_all(gpu, &jobs)?;
    // Geometric means per (variant, tile) over all rows.
    let mut logsum = vec![0.0f64; per_row];
    for (r, &(dtype, n, k)) in rows.iter().enumerate() {
        for (v, &(depth, x_f16)) in VARIANTS.iter().enumerate() {
            let mut line = format!(
                "exp {:5} N={n:6} K={k:6} {}:",
                dtype.name(),
                variant_name(depth, x_f16)
            );
            for i in 0..tiles.len() {
                let j = r * per_row + v * tiles.len() + i;
                let f = tflops(&jobs[j], secs[j]);
                logsum[v * tiles.len() + i] += f.ln();
                line += &format!(" [{i}] {f:6.1}");
            }
            println!("{line}");
        }
    }
    for (v, &(depth, x_f16)) in VARIANTS.iter().enumerate() {
        let mut line = format!("exp geomean {}:", variant_name(depth, x_f16));
        for i in 0..tiles.len() {
            let g = (logsum[v * tiles.len() + i] / rows.len() as f64).exp();
            line += &format!(" [{i}] {g:6.1}");
        }
        println!("{line}");
    }
    drop((jobs, keep));

    // Model shapes, CoopTile::pick's tile with each variant's depth and x type.
    let mut rows = Vec::new();
    let mut jobs = Vec::new();
    let mut keep = Vec::new();
    for (mi, model) in models(scale).iter().enumerate() {
        for dtype in [DType::Q4K, DType::Q6K, DType::F16] {
            for (si, &(_, n, k, _)) in model.shapes.iter().enumerate() {
                let w = weight(gpu, rng, dtype, n, k)?;
                let xv = rng.normal_vec(t * k, 1.0);
                let x32 = gpu.upload_f32("x", &xv, &[t, k])?;
                let x16 = gpu.upload_f16("x", &xv, &[t, k])?;
                let y = gpu.zeros_f32("y", &[t, n])?;
                for &(depth, x_f16) in &VARIANTS {
                    let x = if x_f16 { &x16 } else { &x32 };
                    let tl = if depth == 0 {
                        first_pick(t, n)
                    } else {
                        CoopTile {
                            depth,
                            ..old(CoopTile::pick(t, n, false))
                        }
                    };
                    jobs.push(matmul_coop_with(gpu, x, &w, &y, false, tl)?);
                }
                rows.push((mi, dtype, si));
                keep.push((w, x32, x16, y));
            }
        }
    }
    let secs = time_all(gpu, &jobs)?;
    let models = models(scale);
    let nv = VARIANTS.len();
    let mut layer = vec![0.0; nv];
    for (r, &(mi, dtype, si)) in rows.iter().enumerate() {
        let model = &models[mi];
        let (name, n, k, count) = model.shapes[si];
        let mut line = format!(
            "{:15} {:5} {name:8} N={n:6} K={k:6} T={t}:",
            model.name,
            dtype.name()
        );
        for (v, &(depth, x_f16)) in VARIANTS.iter().enumerate() {
            let (d, s) = (&jobs[r * nv + v], secs[r * nv + v]);
            layer[v] += count as f64 * s;
            line += &format!(
                " {} {:7.1} us {:5.1}",
                variant_name(depth, x_f16),
                s * 1e6,
                tflops(d, s)
            );
        }
        println!("{line}");
        if si + 1 == model.shapes.len() {
            let mut line = format!(
                "{:15} {:5} GEMMs per layer at T={t}:",
                model.name,
                dtype.name()
            );
            for (v, &(depth, x_f16)) in VARIANTS.iter().enumerate() {
                let s = layer[v];
                line += &format!(
                    " {} {:.0} us ({:.0} t/s)",
                    variant_name(depth, x_f16),
                    s * 1e6,
                    t as f64 / (model.layers as f64 * s)
                );
            }
            println!("{line}");
            layer = vec![0.0; nv];
        }
    }
    Ok(())
}

/// q/k/v and gate/up of both models at T = 512 (f16 x): one `matmul_coop_multi` dispatch
/// against the single GEMMs one after another (each with its picked tile), in microseconds.
fn multi(gpu: &Gpu, rng: &mut Rng) -> Result<()> {
    let groups: [(&str, &[usize], usize); 4] = [
        ("TinyLlama q,k,v", &[2048, 256, 256], 2048),
        ("TinyLlama gate,up", &[5632, 5632], 2048),
        ("Llama-2-7B q,k,v", &[4096, 4096, 4096], 4096),
        ("Llama-2-7B gate,up", &[11008, 11008], 4096),
    ];
    for dtype in [DType::Q4K, DType::F16] {
        for (name, ns, k) in groups {
            let x = gpu.upload_f16("x", &rng.normal_vec(T * k, 1.0), &[T, k])?;
            let ws = ns
                .iter()
                .map(|&n| weight(gpu, rng, dtype, n, k))
                .collect::<Result<Vec<_>>>()?;
            let ys = ns
                .iter()
                .map(|&n| gpu.zeros_f32("y", &[T, n]))
                .collect::<Result<Vec<_>>>()?;
            let wr: Vec<&Tensor> = ws.iter().collect();
            let yr: Vec<&Tensor> = ys.iter().collect();
            let mut jobs = vec![matmul_coop_multi(gpu, &x, &wr, &yr)?];
            for (w, y) in ws.iter().zip(&ys) {
                jobs.push(matmul_coop(gpu, &x, w, y, false)?);
            }
            let secs = time_all(gpu, &jobs)?;
            let singles: f64 = secs[1..].iter().sum();
            let flops: u64 = jobs[1..].iter().map(|d| d.cost.flops).sum();
            println!(
                "multi {:5} {name:20} fused {:7.1} us ({:5.1} TFLOP/s) singles {:7.1} us ({:5.1})",
                dtype.name(),
                secs[0] * 1e6,
                flops as f64 / secs[0] * 1e-12,
                singles * 1e6,
                flops as f64 / singles * 1e-12
            );
        }
    }
    Ok(())
}
