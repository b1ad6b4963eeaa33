//! How many workgroups of a kernel the adapter keeps resident at once, against workgroup
//! memory, lanes and cooperative-matrix use: each workgroup counts itself in and out with
//! atomics and records the peak.
//!
//!     cargo run --release -p wgllama-engine --example probe_resident
use wgllama_engine::{Gpu, GpuOptions, Result};

// What both kernels share: the sizes, the bindings, the workgroup memory of WORDS floats
// (written, then read across lanes after a barrier, so the driver keeps it) and the live count.
macro_rules! common {
    () => {
        r#"
override WORDS: u32 = 1u;
override WG: u32 = 128u;
override SPIN: u32 = 4000u;
@group(0) @binding(0) var<storage, read_write> occ: array<atomic<u32>>;
@group(0) @binding(1) var<storage, read_write> sink: array<f32>;
var<workgroup> buf: array<f32, WORDS>;

// Counts this workgroup in (and records the most live at once) and fills buf.
fn enter(lid: u32) {
    if (lid == 0u) { let live = atomicAdd(&occ[0], 1u) + 1u; atomicMax(&occ[1], live); }
    buf[lid % WORDS] = f32(lid);
    workgroupBarrier();
}

// Counts this workgroup out once every lane is done.
fn leave(lid: u32) {
    workgroupBarrier();
    if (lid == 0u) { atomicSub(&occ[0], 1u); }
}
"#
    };
}

/// Spins on workgroup-memory loads.
const PLAIN: &str = concat!(
    common!(),
    r#"
@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    enter(lid);
    var acc = 0.0;
    for (var i = 0u; i < SPIN; i = i + 1u) { acc = acc * 0.999 + buf[(lid + i) % WORDS]; }
    sink[wid.x * WG + lid] = acc;
    leave(lid);
}
"#
);

/// Spins on cooperative-matrix products (1 KiB more workgroup memory for their operands).
const COOP: &str = concat!(
    "enable f16;\nenable wgpu_cooperative_matrix;\n",
    common!(),
    r#"
var<workgroup> hb: array<f16, 512>;
@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    enter(lid);
    for (var i = lid; i < 512u; i = i + WG) { hb[i] = f16(buf[(i + 3u) % WORDS] * 0.001); }
    workgroupBarrier();
    var c: coop_mat16x16<f32, C>;
    let a = coopLoad<coop_mat16x16<f16, A>>(&hb[0], 16u);
    let b = coopLoad<coop_mat16x16<f16, B>>(&hb[256], 16u);
    for (var i = 0u; i < SPIN / 8u; i = i + 1u) { c = coopMultiplyAdd(a, b, c); }
    let cc = c;
    let at = wid.x * 256u;
    coopStore(cc, &sink[at], 16u);
    leave(lid);
}
"#
);

fn peak(gpu: &Gpu, src: &str, words: u32, wg: u32, groups: u32) -> Result<u32> {
    let module = gpu
        .device
        .create_shader_module(wgpu::ShaderModuleDescriptor {
            label: None,
            source: wgpu::ShaderSource::Wgsl(src.into()),
        });
    let constants = [("WORDS", words as f64), ("WG", wg as f64)];
    let pipeline = gpu
        .device
        .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: None,
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &constants,
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        });
    let occ = gpu.storage("occ", 16)?;
    let sink = gpu.storage("sink", groups as u64 * 256.max(wg) as u64 * 4)?;
    let bg = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[
            wgpu::BindGroupEntry {
                binding: 0,
                resource: occ.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 1,
                resource: sink.as_entire_binding(),
            },
        ],
    });
    let mut enc = gpu.device.create_command_encoder(&Default::default());
    {
        let mut pass = enc.begin_compute_pass(&Default::default());
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bg, &[]);
        pass.dispatch_workgroups(groups, 1, 1);
    }
    gpu.queue.submit([enc.finish()]);
    let b = gpu.read_bytes(&occ, 8)?;
    Ok(bytemuck::cast_slice::<u8, u32>(&b)[1])
}

fn main() -> Result<()> {
    let gpu = Gpu::new(&GpuOptions::default())?;
    println!("adapter: {}", gpu.describe());
    // 32 workgroups for each of the H100's 132 SMs: more than ever fit at once.
    let groups = 132 * 32;
    let limit = gpu.limits.max_compute_workgroup_storage_size;
    for (name, src, extra) in [("plain", PLAIN, 0), ("coop", COOP, 1)] {
        if extra > 0 && !gpu.caps.cooperative_matrix {
            println!("coop: skipped, no cooperative matrices on this adapter");
            continue;
        }
        for wg in [128u32, 256] {
            for kib in [0u32, 4, 8, 16, 24, 32, 40, 47] {
                if (kib + extra) << 10 > limit {
                    continue;
                }
                let words = (kib * 256).max(1);
                let p = peak(&gpu, src, words, wg, groups)?;
                println!(
                    "{name} lanes={wg} workgroup memory {} KiB: peak resident {p} ({:.2} per SM of 132)",
                    kib + extra,
                    p as f64 / 132.0
                );
            }
        }
    }
    Ok(())
}
