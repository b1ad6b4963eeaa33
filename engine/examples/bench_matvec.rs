//! Times the decode mat-vec kernels on the decode shapes of TinyLlama-1.1B and Llama-2-7B:
//! GB/s of weight bytes and us per call, in a *chain* (REPS dispatches in one compute pass,
//! each waiting for the one before, as in decode), timed with GPU timestamps around the pass.
//!
//!     cargo run --release -p wgllama-engine --example bench_matvec [-- MODE [SCALE]]
//!
//! MODE: "sweep" (every lanes x rows variant of matvec.wgsl per type and shape, then the best),
//! "compare" (old kernels vs new, per call, fused variants, a whole layer), "all" (default:
//! both). SCALE divides every dimension (a quick run on lavapipe: 8). Environment: SGR=1
//! sweeps the default pick against subgroup-rows variants only; TYPES limits the types (e.g.
//! q4_K,f16); L2_BUST (MB, default 160) is how many bytes of weight copies a sweep chain cycles
//! through, so it streams from memory rather than the L2 cache.

use std::collections::BTreeMap;
use std::time::Duration;

use wgllama_engine::bench::warm_up;
use wgllama_engine::ops::elementwise::silu_mul;
use wgllama_engine::ops::matmul::{
    matvec_subgroup, matvec_with as old_matvec, MatvecShape, SubgroupShape,
};
use wgllama_engine::ops::matvec::{
    int8_words, matvec, matvec_glu, matvec_glu_int8, matvec_glu_with, matvec_int8, matvec_multi,
    matvec_multi_int8, matvec_multi_with, quantize_x8, MatvecKernel, Reduction,
};
use wgllama_engine::testing::pass_timer::PassTimer;
use wgllama_engine::testing::weights::random_weight_bytes;
use wgllama_engine::testing::Rng;
use wgllama_engine::{Dispatch, Gpu, GpuOptions, Result, Tensor};
use wgllama_loaders::DType;

const REPS: u32 = 100;

/// Seconds per repetition of `ds` (all recorded in order, REPS times, in one pass).
fn time(gpu: &Gpu, ds: &[&Dispatch]) -> Result<f64> {
    let t = PassTimer::new(gpu).run(gpu, true, &|pass| {
        for _ in 0..REPS {
            for d in ds {
                d.record(pass);
            }
        }
    })?;
    Ok(t / REPS as f64)
}

/// Keeps the GPU busy for `ms` so it leaves its idle clock.
fn warm(gpu: &Gpu, d: &Dispatch, ms: u64) -> Result<()> {
    warm_up(Duration::from_millis(ms), || time(gpu, &[d]).map(|_| ()))
}

/// Random weight bytes for `values` values: quantised types by the test generator, float
/// types by a fast one (values of magnitude 0.5..1, any sign).
fn weight_bytes(rng: &mut Rng, dtype: DType, values: usize) -> Vec<u8> {
    match dtype {
        DType::F16 | DType::BF16 => {
            let (mask, base) = if dtype == DType::F16 {
                (0x83ffu16, 0x3800u16)
            } else {
                (0x807f, 0x3f00)
            };
            let mut out = Vec::with_capacity(values * 2);
            while out.len() < values * 2 {
                let r = rng.next_u64();
                for i in 0..4 {
                    let h = ((r >> (16 * i)) as u16 & mask) | base;
                    out.extend_from_slice(&h.to_le_bytes());
                }
            }
            out.truncate(values * 2);
            out
        }
        DType::F32 => {
            let mut out = Vec::with_capacity(values * 4);
            for _ in 0..values {
                let r = rng.next_u64() as u32;
                out.extend_from_slice(&((r & 0x807f_ffff) | 0x3f00_0000).to_le_bytes());
            }
            out
        }
        _ => random_weight_bytes(rng, dtype, values),
    }
}

/// Weight bytes per type, generated once at the largest size; shapes upload a prefix.
struct Pool {
    bytes: BTreeMap<&'static str, Vec<u8>>,
    max_values: usize,
}

impl Pool {
    fn weight(&mut self, gpu: &Gpu, dtype: DType, n: usize, k: usize) -> Result<Tensor> {
        let max = self.max_values;
        let bytes = self.bytes.entry(dtype.name()).or_insert_with(|| {
            let mut rng = Rng::new(dtype.ggml_id() as u64 + 1);
            weight_bytes(&mut rng, dtype, max)
        });
        let len = n * k / dtype.block_size() * dtype.block_bytes();
        gpu.upload_weight("w", dtype, &[n, k], &bytes[..len])
    }
}

fn weight_bytes_of(dtype: DType, n: usize, k: usize) -> usize {
    n * k / dtype.block_size() * dtype.block_bytes()
}

/// Bytes of weights a sweep chain cycles through: L2_BUST (env, MB), default 160 (0: one copy).
fn l2_bust() -> usize {
    let mb = std::env::var("L2_BUST")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(160);
    (mb * 1_000_000).max(1)
}

fn gbs(d: &Dispatch, s: f64) -> f64 {
    d.cost.bytes as f64 / s * 1e-9
}

struct Model {
    name: &'static str,
    d: usize,
    ffn: usize,
    kv: usize,
    vocab: usize,
    layers: usize,
}

const MODELS: [Model; 2] = [
    Model {
        name: "TinyLlama-1.1B",
        d: 2048,
        ffn: 5632,
        kv: 256,
        vocab: 32000,
        layers: 22,
    },
    Model {
        name: "Llama-2-7B",
        d: 4096,
        ffn: 11008,
        kv: 4096,
        vocab: 32000,
        layers: 32,
    },
];

/// (what, N, K) of one layer's distinct mat-vecs and the output head.
fn shapes(m: &Model, scale: usize) -> Vec<(&'static str, usize, usize)> {
    let s = |v: usize| (v / scale).max(1);
    let kk = |v: usize| (v / scale).next_multiple_of(256);
    let mut out = vec![
        ("q/o", s(m.d), kk(m.d)),
        ("k/v", s(m.kv), kk(m.d)),
        ("gate/up", s(m.ffn), kk(m.d)),
        ("down", s(m.d), kk(m.ffn)),
        ("output", s(m.vocab), kk(m.d)),
    ];
    if m.kv == m.d {
        out.remove(1);
    }
    out
}

/// The best variant per (type, N, K) from the sweep.
type Best = BTreeMap<(&'static str, usize, usize), MatvecKernel>;

fn reduction(gpu: &Gpu) -> Reduction {
    if gpu.caps.subgroups {
        Reduction::Subgroup
    } else {
        Reduction::Workgroup
    }
}

/// Sweep variants: lanes x rows x unroll (x Q4_K offset, x int8 activations for the types
/// that have them). With SGR=1 (env): the default pick, then subgroup-rows variants only
/// (int8 activations for the quantised types).
fn sweep_variants(gpu: &Gpu, dtype: DType, rows: &[u32], k: usize) -> Vec<MatvecKernel> {
    let quant = matches!(dtype, DType::Q4K | DType::Q6K | DType::Q8_0);
    if std::env::var("SGR").is_ok_and(|v| v == "1") {
        let base = if quant {
            MatvecKernel::pick_int8(gpu, dtype, k)
        } else {
            MatvecKernel::pick(gpu, dtype, k)
        };
        let mut v = vec![base];
        if MatvecKernel::subgroup_rows_size(gpu).is_some() {
            for unroll in [1, 2, 4] {
                // One row per subgroup: two ran at half the bandwidth (matvec-sgr/).
                for lanes in [32, 64, 128, 256] {
                    v.push(MatvecKernel {
                        lanes,
                        rows: 1,
                        unroll,
                        subgroup_rows: true,
                        ..base
                    });
                }
            }
        }
        return v;
    }
    // (q4k_offset, int8_x)
    let modes: &[(bool, bool)] = match dtype {
        DType::Q4K => &[(false, false), (true, false), (false, true)],
        DType::Q6K | DType::Q8_0 => &[(false, false), (false, true)],
        _ => &[(false, false)],
    };
    let mut v = Vec::new();
    for &(q4k_offset, int8_x) in modes {
        for unroll in [1, 2] {
            for lanes in [32, 64, 128] {
                for &r in rows {
                    v.push(MatvecKernel {
                        lanes,
                        rows: r,
                        reduction: reduction(gpu),
                        unroll,
                        q4k_offset,
                        int8_x,
                        subgroup_rows: false,
                    });
                }
            }
        }
    }
    v
}

/// "lanes x rows", "u2" if unrolled, "o" for the Q4_K offset variant, "i8" for int8 x.
fn tag(kn: &MatvecKernel) -> String {
    format!(
        "{}x{}{}{}{}{}",
        kn.lanes,
        kn.rows,
        if kn.unroll > 1 {
            format!("u{}", kn.unroll)
        } else {
            String::new()
        },
        if kn.q4k_offset { "o" } else { "" },
        if kn.int8_x { "i8" } else { "" },
        if kn.subgroup_rows { "s" } else { "" }
    )
}

/// x [1, k] of 0.5 and its int8 form.
fn inputs(gpu: &Gpu, k: usize) -> Result<(Tensor, Tensor)> {
    let x = gpu.upload_f32("x", &vec![0.5; k], &[1, k])?;
    let xq = gpu.upload_u32("xq", &vec![0; int8_words(k)], &[int8_words(k)])?;
    gpu.run(&[quantize_x8(gpu, &x, &xq)?])?;
    Ok((x, xq))
}

/// The types the sweep covers: all four, or those named in TYPES (e.g. `TYPES=q6_K`).
fn sweep_types() -> Vec<DType> {
    let only = std::env::var("TYPES").unwrap_or_default();
    [DType::Q4K, DType::Q6K, DType::Q8_0, DType::F16]
        .into_iter()
        .filter(|d| only.is_empty() || only.split(',').any(|t| t == d.name()))
        .collect()
}

fn sweep(gpu: &Gpu, pool: &mut Pool, scale: usize, best: &mut Best) -> Result<()> {
    println!("== sweep: GB/s of weight bytes, chain of {REPS}; variants lanes x rows [u2 unrolled] [o Q4_K offset]");
    let mut all: Vec<(usize, usize)> = Vec::new();
    for m in &MODELS {
        for (_, n, k) in shapes(m, scale) {
            if !all.contains(&(n, k)) {
                all.push((n, k));
            }
        }
    }
    let mut totals: BTreeMap<(&'static str, String), f64> = BTreeMap::new();
    for dtype in sweep_types() {
        for &(n, k) in &all {
            // Copies of the weight, taken in turn, so the chain streams from memory rather
            // than the L2 cache (50 MB on the H100): at least L2_BUST bytes in all.
            let bytes = weight_bytes_of(dtype, n, k);
            let copies = l2_bust().div_ceil(bytes).clamp(1, 16);
            let ws = (0..copies)
                .map(|_| pool.weight(gpu, dtype, n, k))
                .collect::<Result<Vec<_>>>()?;
            let (x, xq) = inputs(gpu, k)?;
            let y = gpu.zeros_f32("y", &[1, n])?;
            let mut variants = Vec::new();
            for kn in sweep_variants(gpu, dtype, &[1, 2, 4], k) {
                let xin = if kn.int8_x { &xq } else { &x };
                let ds = ws
                    .iter()
                    .map(|w| matvec_multi_with(gpu, xin, &[w], &[&y], false, kn))
                    .collect::<Result<Vec<_>>>()?;
                variants.push((kn, ds));
            }
            warm(gpu, &variants[0].1[0], 200)?;
            let mut line = format!("{:5} N={n:6} K={k:6}:", dtype.name());
            // Best f32-activation variant (index 0) and best int8 one (index 1).
            let mut top = [(f64::MAX, usize::MAX); 2];
            for (i, (kn, ds)) in variants.iter().enumerate() {
                let d = &ds[0];
                let s = time(gpu, &ds.iter().collect::<Vec<_>>())? / ds.len() as f64;
                line += &format!(" {} {:.0}", tag(kn), gbs(d, s));
                *totals.entry((dtype.name(), tag(kn))).or_default() += s;
                let t = &mut top[kn.int8_x as usize];
                if s < t.0 {
                    *t = (s, i);
                }
            }
            println!("{line}");
            for (what, (s, i)) in ["best", "best int8"].iter().zip(top) {
                if let Some((kn, ds)) = variants.get(i) {
                    println!(
                        "      {what} {} {:.2} us {:.0} GB/s ({} copies)",
                        tag(kn),
                        s * 1e6,
                        gbs(&ds[0], s),
                        ds.len()
                    );
                }
            }
            if let Some((kn, _)) = variants.get(top[0].1) {
                best.insert((dtype.name(), n, k), *kn);
            }
        }
    }
    println!("== sweep totals (sum of us over all shapes, best 8 per type)");
    for dtype in sweep_types() {
        let mut v: Vec<_> = totals
            .iter()
            .filter(|((t, _), _)| *t == dtype.name())
            .map(|((_, tag), s)| (*s, tag.clone()))
            .collect();
        v.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
        let s: Vec<String> = v
            .iter()
            .take(8)
            .map(|(s, t)| format!("{t} {:.1}", s * 1e6))
            .collect();
        println!("{:5} {}", dtype.name(), s.join("  "));
    }
    Ok(())
}

/// Old kernels vs new per call; fused q/k/v and gate/up; a whole layer; per model and type.
fn compare(gpu: &Gpu, pool: &mut Pool, scale: usize, best: &Best) -> Result<()> {
    println!("== compare: us per call in a chain of {REPS} (GB/s of weights)");
    println!("   old wg = matmul.wgsl matvec (today's default), old sg = matvec_subgroup.wgsl,");
    println!("   new = matvec.wgsl default pick, best = best sweep variant for the shape");
    for m in &MODELS {
        for dtype in [
            DType::Q4K,
            DType::Q6K,
            DType::Q8_0,
            DType::F16,
            DType::BF16,
            DType::F32,
        ] {
            println!("-- {} {}", m.name, dtype.name());
            for (what, n, k) in shapes(m, scale) {
                let w = pool.weight(gpu, dtype, n, k)?;
                let (x, xq) = inputs(gpu, k)?;
                let y = gpu.zeros_f32("y", &[1, n])?;
                let int8 = matches!(dtype, DType::Q4K | DType::Q6K | DType::Q8_0);
                let new_i8 = if int8 {
                    Some(matvec_int8(gpu, &xq, &w, &y, false)?)
                } else {
                    None
                };
                let quant = quantize_x8(gpu, &x, &xq)?;
                let old = old_matvec(gpu, &x, &w, &y, false, MatvecShape::for_k(k))?;
                let old_sg = if gpu.caps.subgroups {
                    Some(matvec_subgroup(
                        gpu,
                        &x,
                        &w,
                        &y,
                        false,
                        SubgroupShape::for_dtype(dtype),
                    )?)
                } else {
                    None
                };
                let new = matvec(gpu, &x, &w, &y, false)?;
                let new_acc = matvec(gpu, &x, &w, &y, true)?;
                let best_d = match best.get(&(dtype.name(), n, k)) {
                    Some(&kn) => {
                        let xin = if kn.int8_x { &xq } else { &x };
                        Some((kn, matvec_multi_with(gpu, xin, &[&w], &[&y], false, kn)?))
                    }
                    None => None,
                };
                // Uploads and pipeline builds leave the GPU idle: back to its working clock.
                warm(gpu, &new, 100)?;
                let so = time(gpu, &[&old])?;
                let sn = time(gpu, &[&new])?;
                let sa = time(gpu, &[&new_acc])?;
                let mut line = format!(
                    "{what:8} N={n:6} K={k:6}  old wg {:7.2} us {:5.0}",
                    so * 1e6,
                    gbs(&old, so)
                );
                if let Some(d) = &old_sg {
                    let s = time(gpu, &[d])?;
                    line += &format!("  old sg {:7.2} us {:5.0}", s * 1e6, gbs(d, s));
                }
                line += &format!(
                    "  new {:7.2} us {:5.0}  new+acc {:7.2} us",
                    sn * 1e6,
                    gbs(&new, sn),
                    sa * 1e6
                );
                if let Some(d) = &new_i8 {
                    let s = time(gpu, &[d])?;
                    let sq = time(gpu, &[&quant])?;
                    line += &format!(
                        "  int8 {:7.2} us {:5.0} (+quantize {:.2} us)",
                        s * 1e6,
                        gbs(d, s),
                        sq * 1e6
                    );
                }
                if let Some((kn, d)) = &best_d {
                    let s = time(gpu, &[d])?;
                    line += &format!("  best {} {:7.2} us {:5.0}", tag(kn), s * 1e6, gbs(d, s));
                }
                println!("{line}");
            }
            if matches!(dtype, DType::BF16 | DType::F32) {
                continue;
            }
            layer(gpu, pool, m, dtype, scale)?;
        }
    }
    Ok(())
}

/// q/k/v fused vs separate, gate/up fused vs separate (+ silu_mul), and one whole layer's
/// mat-vecs: old (8 dispatches) vs new separate vs new fused (4 dispatches). With Q4_K the
/// layer mixes types as a Q4_K_M file does (attn_v and ffn_down Q6_K). Everything is built
/// before the GPU is warmed and timed.
fn layer(gpu: &Gpu, pool: &mut Pool, m: &Model, dtype: DType, scale: usize) -> Result<()> {
    let s = |v: usize| (v / scale).max(1);
    let kk = |v: usize| (v / scale).next_multiple_of(256);
    // Activations have the rows' length: d and ffn rounded to whole blocks.
    let (d, f, kv) = (kk(m.d), kk(m.ffn), s(m.kv));
    let (dv, ddown) = if dtype == DType::Q4K {
        (DType::Q6K, DType::Q6K)
    } else {
        (dtype, dtype)
    };
    let wq = pool.weight(gpu, dtype, d, d)?;
    let wk = pool.weight(gpu, dtype, kv, d)?;
    let wv = pool.weight(gpu, dv, kv, d)?;
    let wo = pool.weight(gpu, dtype, d, d)?;
    let wg = pool.weight(gpu, dtype, f, d)?;
    let wu = pool.weight(gpu, dtype, f, d)?;
    let wd = pool.weight(gpu, ddown, d, f)?;
    let h = gpu.upload_f32("h", &vec![0.5; d], &[1, d])?;
    let q = gpu.zeros_f32("q", &[1, d])?;
    let k = gpu.zeros_f32("k", &[1, kv])?;
    let v = gpu.zeros_f32("v", &[1, kv])?;
    let xr = gpu.zeros_f32("x", &[1, d])?;
    let g = gpu.zeros_f32("g", &[1, f])?;
    let u = gpu.zeros_f32("u", &[1, f])?;
    let a = gpu.zeros_f32("a", &[1, f])?;
    let old = |x: &Tensor, w: &Tensor, y: &Tensor, acc: bool| {
        old_matvec(gpu, x, w, y, acc, MatvecShape::for_k(w.shape[1]))
    };
    let old_qkv = [
        old(&h, &wq, &q, false)?,
        old(&h, &wk, &k, false)?,
        old(&h, &wv, &v, false)?,
    ];
    let new_qkv = [
        matvec(gpu, &h, &wq, &q, false)?,
        matvec(gpu, &h, &wk, &k, false)?,
        matvec(gpu, &h, &wv, &v, false)?,
    ];
    let multi = matvec_multi(gpu, &h, &[&wq, &wk, &wv], &[&q, &k, &v])?;
    let old_glu = [
        old(&h, &wg, &g, false)?,
        old(&h, &wu, &u, false)?,
        silu_mul(gpu, &g, &u, &a)?,
    ];
    let new_glu = [
        matvec(gpu, &h, &wg, &g, false)?,
        matvec(gpu, &h, &wu, &u, false)?,
        silu_mul(gpu, &g, &u, &a)?,
    ];
    let glu = matvec_glu(gpu, &h, &wg, &wu, &a)?;
    let old_o = old(&q, &wo, &xr, true)?;
    let old_down = old(&a, &wd, &xr, true)?;
    let new_o = matvec(gpu, &q, &wo, &xr, true)?;
    let new_down = matvec(gpu, &a, &wd, &xr, true)?;
    // int8 activations: each mat-vec input quantised first (h twice, as the graph has two
    // norms per layer).
    let int8 = matches!(dtype, DType::Q4K | DType::Q6K | DType::Q8_0);
    let xq_d = gpu.upload_u32("xq", &vec![0; int8_words(d)], &[int8_words(d)])?;
    let xq_f = gpu.upload_u32("xq", &vec![0; int8_words(f)], &[int8_words(f)])?;
    let layer_i8 = if int8 {
        Some([
            quantize_x8(gpu, &h, &xq_d)?,
            matvec_multi_int8(gpu, &xq_d, &[&wq, &wk, &wv], &[&q, &k, &v])?,
            quantize_x8(gpu, &q, &xq_d)?,
            matvec_int8(gpu, &xq_d, &wo, &xr, true)?,
            quantize_x8(gpu, &h, &xq_d)?,
            matvec_glu_int8(gpu, &xq_d, &wg, &wu, &a)?,
            quantize_x8(gpu, &a, &xq_f)?,
            matvec_int8(gpu, &xq_f, &wd, &xr, true)?,
        ])
    } else {
        None
    };
    let mut multis = Vec::new();
    let mut glus = Vec::new();
    for kn in sweep_variants(gpu, DType::F16, &[1, 2, 4], d) {
        multis.push((
            kn,
            matvec_multi_with(gpu, &h, &[&wq, &wk, &wv], &[&q, &k, &v], false, kn)?,
        ));
        glus.push((kn, matvec_glu_with(gpu, &h, &wg, &wu, &a, kn)?));
    }
    let r = |ds: &[&Dispatch]| time(gpu, ds);
    let gb = |b: u64, s: f64| b as f64 / s * 1e-9;
    warm(gpu, &multi, 200)?;
    let qkv_bytes: u64 = new_qkv.iter().map(|d| d.cost.bytes).sum();
    let t_old = r(&old_qkv.iter().collect::<Vec<_>>())?;
    let t_new = r(&new_qkv.iter().collect::<Vec<_>>())?;
    let t_multi = r(&[&multi])?;
    let glu_bytes = 2 * new_glu[0].cost.bytes;
    let g_old = r(&old_glu.iter().collect::<Vec<_>>())?;
    let g_new = r(&new_glu.iter().collect::<Vec<_>>())?;
    let g_glu = r(&[&glu])?;
    let old_layer: Vec<&Dispatch> = old_qkv
        .iter()
        .chain([&old_o])
        .chain(old_glu.iter())
        .chain([&old_down])
        .collect();
    let new_sep: Vec<&Dispatch> = new_qkv
        .iter()
        .chain([&new_o])
        .chain(new_glu.iter())
        .chain([&new_down])
        .collect();
    let fused = [&multi, &new_o, &glu, &new_down];
    let layer_bytes: u64 = new_sep.iter().map(|d| d.cost.bytes).sum();
    let lo = r(&old_layer)?;
    let ls = r(&new_sep)?;
    let lf = r(&fused)?;
    let li8 = match &layer_i8 {
        Some(ds) => Some(r(&ds.iter().collect::<Vec<_>>())?),
        None => None,
    };
    let mut mline = String::from("      multi (us):");
    for (kn, dm) in &multis {
        mline += &format!(" {} {:.2}", tag(kn), r(&[dm])? * 1e6);
    }
    let mut gline = String::from("      glu (us):");
    for (kn, dg) in &glus {
        gline += &format!(" {} {:.2}", tag(kn), r(&[dg])? * 1e6);
    }
    println!(
        "q/k/v ({}{}{}): old 3 calls {:7.2} us  new 3 calls {:7.2} us  multi {:7.2} us ({:.0} GB/s)",
        dtype.name(),
        if dv != dtype { "," } else { "" },
        if dv != dtype { dv.name() } else { "" },
        t_old * 1e6,
        t_new * 1e6,
        t_multi * 1e6,
        gb(qkv_bytes, t_multi)
    );
    println!("{mline}");
    println!(
        "gate/up: old 2 calls + silu_mul {:7.2} us  new 2 calls + silu_mul {:7.2} us  glu {:7.2} us ({:.0} GB/s)",
        g_old * 1e6,
        g_new * 1e6,
        g_glu * 1e6,
        gb(glu_bytes, g_glu)
    );
    println!("{gline}");
    println!(
        "layer ({} MB of weights): old 8 dispatches {:7.2} us  new 8 dispatches {:7.2} us  fused 4 dispatches {:7.2} us ({:.0} GB/s); x{} layers: {:.2} / {:.2} / {:.2} ms",
        layer_bytes / 1_000_000,
        lo * 1e6,
        ls * 1e6,
        lf * 1e6,
        gb(layer_bytes, lf),
        m.layers,
        lo * 1e3 * m.layers as f64,
        ls * 1e3 * m.layers as f64,
        lf * 1e3 * m.layers as f64
    );
    if let Some(t) = li8 {
        println!(
            "layer int8 (4 quantize + 4 fused mat-vec dispatches) {:7.2} us ({:.0} GB/s); x{} layers: {:.2} ms",
            t * 1e6,
            gb(layer_bytes, t),
            m.layers,
            t * 1e3 * m.layers as f64
        );
    }
    Ok(())
}

fn main() -> Result<()> {
    let mode = std::env::args().nth(1).unwrap_or_else(|| "all".into());
    let scale: usize = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let gpu = Gpu::new(&GpuOptions::default())?;
    println!("adapter: {}", gpu.describe());
    println!(
        "subgroups {} (size {:?}), timestamps {}",
        gpu.caps.subgroups, gpu.caps.subgroup_size, gpu.caps.timestamps
    );
    let mut pool = Pool {
        bytes: BTreeMap::new(),
        max_values: (32000 / scale) * (4096 / scale).next_multiple_of(256),
    };
    let mut best = Best::new();
    if mode == "sweep" || mode == "all" {
        sweep(&gpu, &mut pool, scale, &mut best)?;
    }
    if mode == "compare" || mode == "all" {
        compare(&gpu, &mut pool, scale, &best)?;
    }
    Ok(())
}
