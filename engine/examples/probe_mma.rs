//! Probe: how fast do cooperative-matrix multiply-adds run through wgpu on this adapter, with
//! their operands in registers, loaded from workgroup memory as `matmul_coop`'s inner loop
//! loads them, and with a workgroup barrier every BK/16 of those loads?
//!
//!     cargo run --release -p wgllama-engine --example probe_mma
//!
//! The prompt GEMM (`matmul_coop`) stops at 160-200 TFLOP/s on the H100 even where its staging
//! is cheap (F16 weights). This separates the ceiling of the tensor-core path as naga and the
//! driver compile it (MODE 0: A and B tiles loaded once, then only multiply-adds) from the
//! cost of the inner loop's cooperative loads (MODE 1) and of the step barriers (MODE 2), for
//! several per-subgroup accumulator blocks (TM x TN tiles of 16 x 16) and workgroup sizes.
//! Times are GPU time of one dispatch (pass timestamps), best of 5, after a warm-up.
//!
//! On the H100 (benches/results/2026-11-24-h100-s11/probe-mma.txt): registers only 597-628
//! TFLOP/s for 8 subgroups of 4 x 2 tiles (LARGE's block), 551-582 for 4 of 4 x 4, 251-259 for
//! 1 x 1; with the cooperative loads 506-530 (4 x 2, 8 subgroups); with the step barriers too
//! 411-430. The workgroups a SM barely matter (1 to 16 a SM: within 10%).

use wgllama_engine::testing::pass_timer::PassTimer;
use wgllama_engine::testing::probe::{storage, wgsl_module};
use wgllama_engine::{Gpu, GpuOptions, Result};

const SRC: &str = r#"
enable f16;
enable wgpu_cooperative_matrix;

@group(0) @binding(0) var<storage, read_write> out: array<f32>;   // [workgroups * 256]

override MODE: u32 = 0u;   // 0: registers only; 1: coopLoads from workgroup memory; 2: + barriers
override TM: u32 = 4u;
override TN: u32 = 2u;
override SUBGROUPS: u32 = 8u;
override WG: u32 = 32u * SUBGROUPS;
override ITER: u32 = 1024u;   // 16-deep k steps
override BK: u32 = 64u;
override LDS: u32 = BK + 8u;
override XS_LEN: u32 = 128u * LDS / 4u;

var<workgroup> xs: array<vec4<f16>, XS_LEN>;   // 128 rows of A
var<workgroup> ws: array<vec4<f16>, XS_LEN>;   // 128 rows of B^T

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32,
        @builtin(subgroup_id) sg: u32) {
    for (var i = lid; i < XS_LEN; i += WG) {
        let v = f16(f32(i % 7u) * 0.001);
        xs[i] = vec4<f16>(v);
        ws[i] = vec4<f16>(-v);
    }
    workgroupBarrier();
    var c00: coop_mat16x16<f32, C>; var c01: coop_mat16x16<f32, C>;
    var c02: coop_mat16x16<f32, C>; var c03: coop_mat16x16<f32, C>;
    var c10: coop_mat16x16<f32, C>; var c11: coop_mat16x16<f32, C>;
    var c12: coop_mat16x16<f32, C>; var c13: coop_mat16x16<f32, C>;
    var c20: coop_mat16x16<f32, C>; var c21: coop_mat16x16<f32, C>;
    var c22: coop_mat16x16<f32, C>; var c23: coop_mat16x16<f32, C>;
    var c30: coop_mat16x16<f32, C>; var c31: coop_mat16x16<f32, C>;
    var c32: coop_mat16x16<f32, C>; var c33: coop_mat16x16<f32, C>;
    var a0: coop_mat16x16<f16, A>; var a1: coop_mat16x16<f16, A>;
    var a2: coop_mat16x16<f16, A>; var a3: coop_mat16x16<f16, A>;
    var b0: coop_mat16x16<f16, B>; var b1: coop_mat16x16<f16, B>;
    var b2: coop_mat16x16<f16, B>; var b3: coop_mat16x16<f16, B>;
    // This subgroup's rows of A and B (wrapping inside the 128 staged rows).
    let xb = ((sg * 16u * TM) % 128u) * LDS;
    let wb = ((sg * 16u * TN) % 128u) * LDS;
    a0 = coopLoadT<coop_mat16x16<f16, A>>(&xs[xb / 4u], LDS / 4u);
    a1 = coopLoadT<coop_mat16x16<f16, A>>(&xs[(xb + 16u * LDS) / 4u], LDS / 4u);
    a2 = coopLoadT<coop_mat16x16<f16, A>>(&xs[(xb + 32u * LDS) / 4u], LDS / 4u);
    a3 = coopLoadT<coop_mat16x16<f16, A>>(&xs[(xb + 48u * LDS) / 4u], LDS / 4u);
    b0 = coopLoad<coop_mat16x16<f16, B>>(&ws[wb / 4u], LDS / 4u);
    b1 = coopLoad<coop_mat16x16<f16, B>>(&ws[(wb + 16u * LDS) / 4u], LDS / 4u);
    b2 = coopLoad<coop_mat16x16<f16, B>>(&ws[(wb + 32u * LDS) / 4u], LDS / 4u);
    b3 = coopLoad<coop_mat16x16<f16, B>>(&ws[(wb + 48u * LDS) / 4u], LDS / 4u);
    for (var it = 0u; it < ITER; it += 1u) {
        let kk = (it % (BK / 16u)) * 16u;
        if (MODE >= 1u) {
            let xa = xb + kk;
            let xw = wb + kk;
            a0 = coopLoadT<coop_mat16x16<f16, A>>(&xs[(xa) / 4u], LDS / 4u);
            if (TM > 1u) { a1 = coopLoadT<coop_mat16x16<f16, A>>(&xs[(xa + 16u * LDS) / 4u], LDS / 4u); }
            if (TM > 2u) { a2 = coopLoadT<coop_mat16x16<f16, A>>(&xs[(xa + 32u * LDS) / 4u], LDS / 4u); }
            if (TM > 3u) { a3 = coopLoadT<coop_mat16x16<f16, A>>(&xs[(xa + 48u * LDS) / 4u], LDS / 4u); }
            b0 = coopLoad<coop_mat16x16<f16, B>>(&ws[(xw) / 4u], LDS / 4u);
            if (TN > 1u) { b1 = coopLoad<coop_mat16x16<f16, B>>(&ws[(xw + 16u * LDS) / 4u], LDS / 4u); }
            if (TN > 2u) { b2 = coopLoad<coop_mat16x16<f16, B>>(&ws[(xw + 32u * LDS) / 4u], LDS / 4u); }
            if (TN > 3u) { b3 = coopLoad<coop_mat16x16<f16, B>>(&ws[(xw + 48u * LDS) / 4u], LDS / 4u); }
        }
        c00 = coopMultiplyAdd(a0, b0, c00);
        if (TN > 1u) { c01 = coopMultiplyAdd(a0, b1, c01); }
        if (TN > 2u) { c02 = coopMultiplyAdd(a0, b2, c02); }
        if (TN > 3u) { c03 = coopMultiplyAdd(a0, b3, c03); }
        if (TM > 1u) { c10 = coopMultiplyAdd(a1, b0, c10); }
        if ((TM > 1u) & (TN > 1u)) { c11 = coopMultiplyAdd(a1, b1, c11); }
        if ((TM > 1u) & (TN > 2u)) { c12 = coopMultiplyAdd(a1, b2, c12); }
        if ((TM > 1u) & (TN > 3u)) { c13 = coopMultiplyAdd(a1, b3, c13); }
        if (TM > 2u) { c20 = coopMultiplyAdd(a2, b0, c20); }
        if ((TM > 2u) & (TN > 1u)) { c21 = coopMultiplyAdd(a2, b1, c21); }
        if ((TM > 2u) & (TN > 2u)) { c22 = coopMultiplyAdd(a2, b2, c22); }
        if ((TM > 2u) & (TN > 3u)) { c23 = coopMultiplyAdd(a2, b3, c23); }
        if (TM > 3u) { c30 = coopMultiplyAdd(a3, b0, c30); }
        if ((TM > 3u) & (TN > 1u)) { c31 = coopMultiplyAdd(a3, b1, c31); }
        if ((TM > 3u) & (TN > 2u)) { c32 = coopMultiplyAdd(a3, b2, c32); }
        if ((TM > 3u) & (TN > 3u)) { c33 = coopMultiplyAdd(a3, b3, c33); }
        if (MODE == 2u && kk == BK - 16u) {
            workgroupBarrier();
            workgroupBarrier();
        }
    }
    let s = c00 + c01 + c02 + c03 + c10 + c11 + c12 + c13 + c20 + c21 + c22 + c23 + c30 + c31 + c32 + c33;
    let at = wid.x * 256u;
    coopStoreT(s, &out[at], 16u);
}
"#;

fn main() -> Result<()> {
    let gpu = Gpu::new(&GpuOptions::default())?;
    println!("adapter: {}", gpu.describe());
    if !gpu.caps.coop_16x16x16_f16_f32 {
        println!("no 16x16x16 f16/f32 cooperative matrices: nothing to probe");
        return Ok(());
    }
    let module = wgsl_module(&gpu, "probe_mma", SRC);
    let timer = PassTimer::new(&gpu);
    let max_wgs = 132 * 16;
    let out = storage(&gpu, "out", (max_wgs * 256 * 4) as u64);
    let iter = 2048u32;
    // (TM, TN, subgroups a workgroup)
    let shapes = [
        (4u32, 2u32, 8u32),
        (4, 2, 4),
        (4, 4, 4),
        (4, 4, 2),
        (2, 2, 8),
        (2, 2, 4),
        (2, 4, 4),
        (1, 1, 8),
    ];
    for mode in 0..3u32 {
        for &(tm, tn, sgs) in &shapes {
            let pipe = gpu
                .device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some("probe_mma"),
                    layout: None,
                    module: &module,
                    entry_point: Some("main"),
                    compilation_options: wgpu::PipelineCompilationOptions {
                        constants: &[
                            ("MODE", mode as f64),
                            ("TM", tm as f64),
                            ("TN", tn as f64),
                            ("SUBGROUPS", sgs as f64),
                            ("ITER", iter as f64),
                        ],
                        ..Default::default()
                    },
                    cache: None,
                });
            let bg = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &pipe.get_bind_group_layout(0),
                entries: &[wgpu::BindGroupEntry {
                    binding: 0,
                    resource: out.as_entire_binding(),
                }],
            });
            let mut line = format!(
                "mode {} ({:<15}) TM {} TN {} subgroups {}:",
                mode,
                ["registers", "coopLoads", "loads+barriers"][mode as usize],
                tm,
                tn,
                sgs
            );
            for per_sm in [1u32, 2, 4, 8, 16] {
                let wgs = 132 * per_sm;
                let best = timer.best(&gpu, 150, 5, &|pass| {
                    pass.set_pipeline(&pipe);
                    pass.set_bind_group(0, &bg, &[]);
                    pass.dispatch_workgroups(wgs, 1, 1);
                })?;
                let flop = 2.0 * 4096.0 * (wgs * sgs * tm * tn) as f64 * iter as f64;
                line += &format!(" {}/SM {:.0}", per_sm, flop / best * 1e-12);
            }
            println!("{line} TFLOP/s");
        }
    }
    Ok(())
}
