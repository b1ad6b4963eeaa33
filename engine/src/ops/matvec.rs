//! `matvec.wgsl`: the decode mat-vec family, one token, f32 activations and f32 accumulation.
//!
//! - [`matvec`]: y = W x, or y += W x (`accumulate`, fuses the residual add).
//! - [`matvec_multi`]: 1-3 weights sharing x (q/k/v), each with its own rows and type, into
//!   separate outputs, in one dispatch.
//! - [`matvec_glu`]: y = silu(W_gate x) * (W_up x) in one dispatch.
//!
//! A kernel variant ([`MatvecKernel`]) either shares each row among all lanes of a workgroup
//! or gives each subgroup rows of its own (`subgroup_rows`: one subgroupAdd per row, no
//! barrier, and flat one-row loops; the default on adapters with a fixed subgroup size).
//!
//! Weights are in the GPU layout of `weights.rs`; x is f32 [K] (any shape of K values), the
//! outputs f32 [N]. Q4_K, Q6_K, Q8_0, F16, BF16 and F32 have their own inner loops; Q4_0,
//! Q5_0, Q5_K and float rows that are not whole 16-value chunks share a generic one.
//!
//! Int8 activations (opt-in, inexact): [`quantize_x8`] turns x into int8 blocks of 32 values
//! (one scale each) and [`matvec_int8`], [`matvec_multi_int8`], [`matvec_glu_int8`] take that
//! for Q4_K, Q6_K and Q8_0 weights, with `dot4I8Packed` products (as llama.cpp's GPU back ends
//! do by default). The rounding of x moves outputs by about 0.5% (relative rms).
//!
//! RMSNorm folded into the mat-vecs around it (decode; matvec.wgsl "RMSNorm folded"):
//! [`matvec_norm`] (y += W x, then the next norm's input w * y, not yet divided by rms(y), with
//! each 32-value block's sum of y^2; int8 blocks or f32) and [`matvec_multi_normed`] (mat-vecs
//! of that input, divided by rms(y) themselves): no norm dispatch between them.
//!
//! SwiGLU folded into gate/up ([`matvec_swiglu`]): silu(W_gate x) * (W_up x) written by the
//! mat-vec, as int8 blocks for an int8 down projection or f32: no silu_mul dispatch.

use wgllama_loaders::DType;

use crate::dispatch::{grid, Cost, Dispatch};
use crate::error::{EngineError, Result};
use crate::gpu::Gpu;
use crate::ops::expect;
use crate::ops::matmul::{check_weight, variant_label as label};
use crate::tensor::{Elem, Tensor};

/// Mirrors `Params` in matvec.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct MatvecParams {
    pub k: u32,
    pub wg1: u32,
    pub wg2: u32,
    pub wg_end: u32,
    pub n: [u32; 4],
    pub nb: [u32; 4],
    /// NORM_IN: [eps, -, -, -].
    pub norm: [f32; 4],
}

/// How a workgroup sums its lanes' partial sums.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduction {
    /// `subgroupAdd` (matvec_reduce_sg.wgsl); needs the device's subgroups.
    Subgroup,
    /// A tree in workgroup memory (matvec_reduce_wg.wgsl); any device.
    Workgroup,
}

/// A kernel variant, shared by all weights of a dispatch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatvecKernel {
    /// Lanes per workgroup: a power of two in 8..=256.
    pub lanes: u32,
    /// Rows per workgroup: 1..=8 (`matvec_glu`: 1..=4 rows of gate and of up).
    pub rows: u32,
    pub reduction: Reduction,
    /// Units (one 16-byte quant load each) a lane handles per loop step: 1, 2 or 4
    /// (independent loads in flight).
    pub unroll: u32,
    /// Q4_K weights keep 16 + q and subtract 16 sum(x) per sub-block (fewer instructions,
    /// a few times the rounding error) instead of converting q exactly.
    pub q4k_offset: bool,
    /// x is int8 blocks from `quantize_x8` (Q4_K, Q6_K and Q8_0 weights only).
    pub int8_x: bool,
    /// Each subgroup owns `rows` rows of its own (summed by `subgroupAdd` alone, no barrier),
    /// so a workgroup owns `rows * lanes / subgroup size`; else all lanes share the workgroup's
    /// `rows`. Needs `Reduction::Subgroup` and a fixed subgroup size of at least 8 dividing `lanes`.
    pub subgroup_rows: bool,
}

/// Most rows per workgroup (matvec.wgsl's MAX_R); `matvec_glu` computes twice its rows.
pub const MAX_ROWS: u32 = 8;
const MAX_LANES: u32 = 256;

/// Values one lane handles per step (one 16-byte quant load): the kernel's unit per type
/// (Q6_K: 64 with f32 x, 32 with int8 x).
fn unit_values(dtype: DType, k: usize, int8_x: bool) -> usize {
    match dtype {
        DType::Q4K => 32,
        DType::Q6K if int8_x => 32,
        DType::Q6K => 64,
        DType::Q8_0 => 16,
        DType::F16 | DType::BF16 if k.is_multiple_of(16) => 8,
        DType::F32 if k.is_multiple_of(16) => 4,
        _ => 16,
    }
}

/// Preferred (lanes, rows, unroll) by type. From the first H100 sweep
/// (benches/results/2026-11-23-h100/matvec_family_run1.txt, an earlier build of the kernel):
/// one 32-lane subgroup per workgroup won on every type and shape; 2 rows per workgroup for
/// Q4_K, Q8_0 and the float types, 1 for Q6_K (its per-row registers); F32's small units are
/// unrolled. Not re-measured since the kernel's row loops were made constant-bounded.
/// (lanes, rows, unroll) per type: the best sums over the decode shapes of TinyLlama-1.1B and
/// Llama-2-7B in the H100 sweep of 2026-11-23 (benches/results/2026-11-23-h100/
/// matvec_family_run2.txt; q4_K's cheaper offset unpack gained ~1% and is left off).
fn preferred(dtype: DType) -> (u32, u32, u32) {
    match dtype {
        DType::Q4K => (32, 1, 2),
        DType::Q6K => (32, 1, 1),
        DType::Q8_0 => (64, 1, 1),
        DType::F16 | DType::BF16 => (128, 1, 1),
        DType::F32 => (32, 2, 2),
        _ => (32, 2, 1),
    }
}

impl MatvecKernel {
    /// The default variant for rows of `k` values of `dtype`: a row per subgroup where the
    /// device's subgroup size is fixed and `subgroup_rows_pick` has one, else `preferred`'s
    /// shared rows with subgroup reductions where the device has them, and no more lanes than a
    /// row has units (short rows leave no lane idle), at least 8.
    pub fn pick(gpu: &Gpu, dtype: DType, k: usize) -> MatvecKernel {
        let shared = MatvecKernel::with_preferred(gpu, dtype, k, preferred(dtype), false);
        shared.or_subgroup_rows(gpu, dtype, k)
    }

    /// The default variant for int8 activations: `pick`'s rules with `preferred_int8`.
    pub fn pick_int8(gpu: &Gpu, dtype: DType, k: usize) -> MatvecKernel {
        let shared = MatvecKernel::with_preferred(gpu, dtype, k, preferred_int8(k), true);
        shared.or_subgroup_rows(gpu, dtype, k)
    }

    fn or_subgroup_rows(self, gpu: &Gpu, dtype: DType, k: usize) -> MatvecKernel {
        match (
            MatvecKernel::subgroup_rows_size(gpu),
            subgroup_rows_pick(dtype, k, self.int8_x),
        ) {
            (Some(sg), Some((lanes, unroll))) => MatvecKernel {
                lanes: lanes.max(sg),
                rows: 1,
                unroll,
                subgroup_rows: true,
                ..self
            },
            _ => self,
        }
    }

    fn with_preferred(
        gpu: &Gpu,
        dtype: DType,
        k: usize,
        (lanes, rows, unroll): (u32, u32, u32),
        int8_x: bool,
    ) -> MatvecKernel {
        let units = k.div_ceil(unit_values(dtype, k, int8_x)).max(1) as u32;
        let fit = if units.is_power_of_two() {
            units
        } else {
            units.next_power_of_two() / 2
        };
        MatvecKernel {
            lanes: lanes.min(fit.max(8)),
            rows,
            reduction: if gpu.caps.subgroups {
                Reduction::Subgroup
            } else {
                Reduction::Workgroup
            },
            unroll,
            q4k_offset: false,
            int8_x,
            subgroup_rows: false,
        }
    }

    /// The fixed subgroup size, where subgroup rows are possible on `gpu` at all.
    pub fn subgroup_rows_size(gpu: &Gpu) -> Option<u32> {
        let (lo, hi) = gpu.caps.subgroup_size;
        (gpu.caps.subgroups && lo == hi && (8..=MAX_LANES).contains(&lo)).then_some(lo)
    }

    /// Lanes that share one row: the subgroup size with `subgroup_rows`, else all of them.
    fn row_lanes(&self, gpu: &Gpu) -> u32 {
        match (self.subgroup_rows, MatvecKernel::subgroup_rows_size(gpu)) {
            (true, Some(sg)) => sg,
            _ => self.lanes,
        }
    }

    /// Rows of each weight one workgroup computes.
    fn rows_per_workgroup(&self, gpu: &Gpu) -> u32 {
        self.rows * (self.lanes / self.row_lanes(gpu))
    }
}

/// (lanes, rows, unroll) with int8 activations, the same for every type: the best sums over the decode shapes
/// of TinyLlama-1.1B and Llama-2-7B in the H100 sweep of 2026-11-23 (third session,
/// benches/results/2026-11-23-h100-s3/matvec_int8.txt): one row per workgroup; 64 lanes for
/// Q4_K and Q8_0 (128 for rows of 8192+ values: 4096 x 11008 ran 6-18% faster). Q6_K, since
/// its int8 loop took 8 lanes per block, the same (fifth session's sweep,
/// benches/results/2026-11-24-h100-s5/: 64x1 best summed over the shapes, 128x1 at K = 11008).
fn preferred_int8(k: usize) -> (u32, u32, u32) {
    if k >= 8192 {
        (128, 1, 1)
    } else {
        (64, 1, 1)
    }
}

/// (lanes, unroll) of the subgroup-rows variant (one row per subgroup, the flat loops of
/// matvec.wgsl) where it beats the shared-row pick. From the H100 sweeps of the seventh session
/// on the decode shapes of TinyLlama-1.1B and Llama-2-7B, each chain cycling through >= 160 MB
/// of weight copies so it streams from memory, not the 50 MB L2
/// (benches/results/2026-11-24-h100-s7/matvec-l2bust/; matvec-flat/ for Q8_0, L2-resident):
/// - Q4_K x int8: 128 lanes (4 subgroups) for K = 2048 (+5-15%); one subgroup per workgroup
///   with two units a step from K = 4096 (11008 x 4096: 2077 GB/s, the shared row 1790).
/// - Q6_K x int8: 128 lanes up to K = 4096; 32 beyond (4096 x 11008: 1952 GB/s against 1642).
/// - Q8_0 x int8: 128 lanes, two units a step, up to K = 4096; the shared row beyond (-15%).
/// - F16/BF16: four units a step up to K = 8192 (2048 x 5632: 2083 GB/s against 1533; 11008 x
///   4096: 2812 against 2553); the shared row at K = 11008 in those isolated chains (2619 GB/s
///   against 2509), but in the model the subgroup rows win there too (below). One subgroup per
///   workgroup won the isolated chains, 128 lanes the model.
fn subgroup_rows_pick(dtype: DType, k: usize, int8_x: bool) -> Option<(u32, u32)> {
    match (dtype, int8_x) {
        (DType::Q4K, true) if k >= 4096 => Some((32, 2)),
        (DType::Q4K, true) => Some((128, 1)),
        (DType::Q6K, true) if k > 4096 => Some((32, 1)),
        (DType::Q6K, true) => Some((128, 1)),
        (DType::Q8_0, true) if k <= 4096 => Some((128, 2)),
        // 128 lanes (four subgroups, four rows) rather than one subgroup: in the decode chain
        // on the H100 the Llama-2-7B F16 pass went 6009 -> 5914 us, TinyLlama F16 1524 ->
        // 1514 (benches/results/2026-11-24-h100-s12/half-pick/; by our reading the 32-lane
        // workgroups hit the SM's limit of 32 resident workgroups, 1024 lanes). 8 units a
        // step (a trial half_flat, not kept) ran 2-5% slower at 32, 64 or 128 lanes; 128
        // lanes for the int8 Q4_K (K = 4096) and Q6_K (K > 4096) picks ran 3-4% and 0-1%
        // slower (half-pick/sgr/). Up to K = 16384 since the thirteenth session: Llama-2-7B's
        // F16 down projection (K = 11008) then takes it too, and with it both RMSNorm folds
        // (Folds::plan): the decode pass 5903 -> 5860 us (benches/results/2026-11-24-h100-s13/).
        (DType::F16 | DType::BF16, false) if k.is_multiple_of(16) && k <= 16384 => Some((128, 4)),
        _ => None,
    }
}

/// y = w · x, or y += w · x with `accumulate`. x: f32 [K] (any shape of K values, e.g.
/// [1, K]), w: weight [N, K], y: f32 [N].
pub fn matvec(gpu: &Gpu, x: &Tensor, w: &Tensor, y: &Tensor, accumulate: bool) -> Result<Dispatch> {
    let (dtype, _, k) = check_weight("matvec", "w", w)?;
    let kernel = MatvecKernel::pick(gpu, dtype, k);
    matvec_multi_with(gpu, x, &[w], &[y], accumulate, kernel)
}

/// ys[i] = ws[i] · x for 1-3 weights of any types and row counts sharing x (K values), in one
/// dispatch. The outputs must be distinct buffers. The kernel variant is the first weight's
/// pick.
pub fn matvec_multi(gpu: &Gpu, x: &Tensor, ws: &[&Tensor], ys: &[&Tensor]) -> Result<Dispatch> {
    let (dtype, k) = first_weight(ws)?;
    matvec_multi_with(gpu, x, ws, ys, false, MatvecKernel::pick(gpu, dtype, k))
}

/// y = silu(w_gate · x) * (w_up · x), element by element, in one dispatch. w_gate and w_up:
/// weights [N, K] (types may differ), x: f32 [K], y: f32 [N].
pub fn matvec_glu(
    gpu: &Gpu,
    x: &Tensor,
    w_gate: &Tensor,
    w_up: &Tensor,
    y: &Tensor,
) -> Result<Dispatch> {
    let (dtype, _, k) = check_weight("matvec_glu", "w_gate", w_gate)?;
    let mut kernel = MatvecKernel::pick(gpu, dtype, k);
    kernel.rows = kernel.rows.min(MAX_ROWS / 2);
    matvec_glu_with(gpu, x, w_gate, w_up, y, kernel)
}

/// Int8 activations pair only with Q4_K, Q6_K and Q8_0 weights.
fn check_int8_types(op: &'static str, kernel: MatvecKernel, dtypes: &[DType]) -> Result<()> {
    match dtypes
        .iter()
        .find(|d| !matches!(d, DType::Q4K | DType::Q6K | DType::Q8_0))
    {
        Some(d) if kernel.int8_x => Err(bad(
            op,
            format!(
                "int8 activations need Q4_K, Q6_K or Q8_0 weights, got {}",
                d.name()
            ),
        )),
        _ => Ok(()),
    }
}

/// y = w · x (+ y with `accumulate`) from int8 activations `xq` (`quantize_x8` of x [K]);
/// w: Q4_K, Q6_K or Q8_0 [N, K].
pub fn matvec_int8(
    gpu: &Gpu,
    xq: &Tensor,
    w: &Tensor,
    y: &Tensor,
    accumulate: bool,
) -> Result<Dispatch> {
    let (dtype, _, k) = check_weight("matvec", "w", w)?;
    let kernel = MatvecKernel::pick_int8(gpu, dtype, k);
    matvec_multi_with(gpu, xq, &[w], &[y], accumulate, kernel)
}

/// `matvec_multi` from int8 activations `xq` (`quantize_x8` of x [K]).
pub fn matvec_multi_int8(
    gpu: &Gpu,
    xq: &Tensor,
    ws: &[&Tensor],
    ys: &[&Tensor],
) -> Result<Dispatch> {
    let (dtype, k) = first_weight(ws)?;
    matvec_multi_with(
        gpu,
        xq,
        ws,
        ys,
        false,
        MatvecKernel::pick_int8(gpu, dtype, k),
    )
}

/// Type and row length of the first of `ws`, whose pick sets a multi-weight dispatch's variant.
fn first_weight(ws: &[&Tensor]) -> Result<(DType, usize)> {
    let w0 = ws
        .first()
        .ok_or_else(|| bad("matvec", "1 to 3 weights wanted, got none".into()))?;
    let (dtype, _, k) = check_weight("matvec", "w0", w0)?;
    Ok((dtype, k))
}

/// `matvec_glu` from int8 activations `xq` (`quantize_x8` of x [K]).
pub fn matvec_glu_int8(
    gpu: &Gpu,
    xq: &Tensor,
    w_gate: &Tensor,
    w_up: &Tensor,
    y: &Tensor,
) -> Result<Dispatch> {
    let (dtype, _, k) = check_weight("matvec_glu", "w_gate", w_gate)?;
    let mut kernel = MatvecKernel::pick_int8(gpu, dtype, k);
    kernel.rows = kernel.rows.min(MAX_ROWS / 2);
    matvec_glu_with(gpu, xq, w_gate, w_up, y, kernel)
}

fn bad(op: &'static str, detail: String) -> EngineError {
    EngineError::Shape { op, detail }
}

/// Checks the kernel variant and returns its pipeline constants shared by every entry.
fn kernel_constants(
    gpu: &Gpu,
    op: &'static str,
    kernel: MatvecKernel,
    k: usize,
) -> Result<Vec<(&'static str, f64)>> {
    let MatvecKernel {
        lanes,
        rows: _,
        reduction,
        unroll,
        q4k_offset,
        int8_x,
        subgroup_rows,
    } = kernel;
    if !lanes.is_power_of_two()
        || !(8..=MAX_LANES).contains(&lanes)
        || lanes > gpu.limits.max_compute_invocations_per_workgroup
        || lanes > gpu.limits.max_compute_workgroup_size_x
    {
        return Err(bad(
            op,
            format!("kernel {kernel:?}: lanes must be a power of two in 8..={MAX_LANES}"),
        ));
    }
    if ![1, 2, 4].contains(&unroll) {
        return Err(bad(
            op,
            format!("kernel {kernel:?}: unroll must be 1, 2 or 4"),
        ));
    }
    if reduction == Reduction::Subgroup && !gpu.caps.subgroups {
        return Err(bad(
            op,
            "subgroup reduction: the device has no subgroups".into(),
        ));
    }
    if subgroup_rows {
        let sg = MatvecKernel::subgroup_rows_size(gpu);
        if reduction != Reduction::Subgroup || sg.is_none_or(|sg| !lanes.is_multiple_of(sg)) {
            return Err(bad(
                op,
                format!(
                    "kernel {kernel:?}: subgroup rows need the subgroup reduction and a fixed \
                     subgroup size of at least 8 dividing the lanes (device: {:?})",
                    gpu.caps.subgroup_size
                ),
            ));
        }
    }
    Ok(vec![
        ("WG", lanes as f64),
        ("LPR", kernel.row_lanes(gpu) as f64),
        ("UNROLL", unroll as f64),
        ("Q4K_OFFSET", q4k_offset as u32 as f64),
        ("XQ", int8_x as u32 as f64),
        ("VEC_K", k.is_multiple_of(16) as u32 as f64),
    ])
}

fn shader(reduction: Reduction) -> &'static wgllama_shaders::Shader {
    match reduction {
        Reduction::Subgroup => &wgllama_shaders::MATVEC,
        Reduction::Workgroup => &wgllama_shaders::MATVEC_WG,
    }
}

/// u32 words of the int8 form of K activations (`quantize_x8`): K/4 of int8 values, a scale
/// per 32 values and an exact sum per 16 (layout: shaders/quantize_x8.wgsl).
pub fn int8_words(k: usize) -> usize {
    k / 4 + k / 32 + k / 16
}

/// Mirrors `Params` in quantize_x8.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct QuantizeParams {
    pub k: u32,
    pub eps: f32,
    pub _pad: [u32; 2],
}

/// Lanes per workgroup of quantize_x8 and silu_mul_x8 (one lane per 4 values).
const QX_WG: usize = 64;

/// K of a one-row activation `x` for the int8 quantisers: a multiple of 32.
fn one_row_k(op: &'static str, name: &str, x: &Tensor) -> Result<usize> {
    let k = *x.shape.last().unwrap_or(&0);
    if k == 0 || !k.is_multiple_of(32) || x.numel() != k {
        return Err(bad(
            op,
            format!(
                "{name}: one row of a multiple of 32 values wanted, got {:?}",
                x.shape
            ),
        ));
    }
    expect(op, name, x, Elem::F32, k)?;
    Ok(k)
}

/// What an int8 quantiser dispatch quantises (quantize_x8.wgsl's entry points). Every input
/// is one f32 row of K values, K a multiple of 32.
#[derive(Clone, Copy, Debug)]
pub enum X8Input<'a> {
    /// x itself (`quantize_x8`).
    Plain(&'a Tensor),
    /// rmsnorm(x) * w (`rmsnorm_x8`).
    RmsNorm {
        x: &'a Tensor,
        w: &'a Tensor,
        eps: f32,
    },
    /// silu(gate) * up (`silu_mul_x8`).
    SiluMul { gate: &'a Tensor, up: &'a Tensor },
}

/// How the quantisers combine a block's 8 lanes on this adapter (`ops::sg_reduction`):
/// subgroup shuffles where its subgroups allow them (at least 8 lanes, so a block's lanes
/// share one), else workgroup memory.
pub fn x8_reduction(gpu: &Gpu) -> Reduction {
    crate::ops::sg_reduction(gpu)
}

/// The int8 form of `input` into xq (u32 [`int8_words`(K)]) through `reduction`'s variant.
pub fn to_int8_with(
    gpu: &Gpu,
    input: X8Input<'_>,
    xq: &Tensor,
    reduction: Reduction,
) -> Result<Dispatch> {
    // (op, the inputs with their names, eps): one row of K values each.
    let (op, inputs, eps) = match input {
        X8Input::Plain(x) => ("quantize_x8", vec![("x", x)], 0.0),
        X8Input::RmsNorm { x, w, eps } => ("rmsnorm_x8", vec![("x", x), ("w", w)], eps),
        X8Input::SiluMul { gate, up } => ("silu_mul_x8", vec![("gate", gate), ("up", up)], 0.0),
    };
    let k = one_row_k(op, inputs[0].0, inputs[0].1)?;
    for &(name, t) in &inputs[1..] {
        expect(op, name, t, Elem::F32, k)?;
    }
    expect(op, "xq", xq, Elem::U32, int8_words(k))?;
    if reduction == Reduction::Subgroup && x8_reduction(gpu) != Reduction::Subgroup {
        return Err(bad(
            op,
            "subgroup variant: the device's subgroups do not fit".into(),
        ));
    }
    let (lanes, workgroups) = match input {
        X8Input::RmsNorm { .. } => (rmsnorm_lanes(gpu, k), 1),
        _ => (QX_WG, (k / 4).div_ceil(QX_WG)),
    };
    let shader = match reduction {
        Reduction::Subgroup => &wgllama_shaders::QUANTIZE_X8_SG,
        Reduction::Workgroup => &wgllama_shaders::QUANTIZE_X8_WG,
    };
    let pipeline = gpu.pipeline(shader, op, &[("WG", lanes as f64)])?;
    let params = QuantizeParams {
        k: k as u32,
        eps,
        _pad: [0; 2],
    };
    let u = gpu.uniform("quantize_x8.params", &params);
    let mut buffers = vec![&u, &inputs[0].1.buffer, &xq.buffer];
    if let Some((_, second)) = inputs.get(1) {
        buffers.push(&second.buffer);
    }
    let bind_group = gpu.bind(op, &pipeline, &buffers);
    Ok(Dispatch {
        label: op,
        idle_keys: 0,
        pipeline,
        bind_group,
        workgroups: grid(gpu, workgroups as u32),
        cost: Cost {
            bytes: 4 * (inputs.len() * k + int8_words(k)) as u64,
            flops: 4 * (inputs.len() * k) as u64,
        },
    })
}

/// rmsnorm_x8's lanes: one workgroup, a lane per 4 values up to 1024 lanes and the adapter's
/// limit (at least QX_WG = 64, so with shuffles whole subgroups of up to 64 lanes).
fn rmsnorm_lanes(gpu: &Gpu, k: usize) -> usize {
    let limit = gpu
        .limits
        .max_compute_invocations_per_workgroup
        .min(gpu.limits.max_compute_workgroup_size_x)
        .min(1024) as usize;
    let limit = if limit.is_power_of_two() {
        limit
    } else {
        limit.next_power_of_two() / 2
    };
    (k / 4).next_power_of_two().clamp(QX_WG, limit.max(QX_WG))
}

/// xq = x in int8 blocks of 32 values (q = round(x / d), d = max|x| / 127 per block) for the
/// int8 mat-vec path. x: f32 [K] (any shape of K values), K a multiple of 32; xq: u32
/// [`int8_words`(K)].
pub fn quantize_x8(gpu: &Gpu, x: &Tensor, xq: &Tensor) -> Result<Dispatch> {
    to_int8_with(gpu, X8Input::Plain(x), xq, x8_reduction(gpu))
}

/// xq = int8 blocks of rmsnorm(x) * w (decode's RMSNorm feeding int8 mat-vecs, in the one
/// dispatch the f32 RMSNorm would take). x, w: f32 [K] (one row), K a multiple of 32.
pub fn rmsnorm_x8(gpu: &Gpu, x: &Tensor, w: &Tensor, xq: &Tensor, eps: f32) -> Result<Dispatch> {
    to_int8_with(gpu, X8Input::RmsNorm { x, w, eps }, xq, x8_reduction(gpu))
}

/// xq = int8 blocks of silu(gate) * up (SwiGLU feeding an int8 down projection, in the one
/// dispatch the f32 silu_mul would take). gate, up: f32 [K] (one row), K a multiple of 32.
pub fn silu_mul_x8(gpu: &Gpu, gate: &Tensor, up: &Tensor, xq: &Tensor) -> Result<Dispatch> {
    to_int8_with(gpu, X8Input::SiluMul { gate, up }, xq, x8_reduction(gpu))
}

/// Checks x: f32 with K values, or its int8 form for `int8_x`.
fn check_x(op: &'static str, x: &Tensor, k: usize, int8_x: bool) -> Result<()> {
    if int8_x {
        return expect(
            op,
            "x (int8, from quantize_x8)",
            x,
            Elem::U32,
            int8_words(k),
        );
    }
    expect(op, "x", x, Elem::F32, k)?;
    if x.shape.last() != Some(&k) {
        return Err(bad(
            op,
            format!("x: last dimension must be K = {k}, got {:?}", x.shape),
        ));
    }
    Ok(())
}

/// `matvec_multi` (or `matvec` for one weight) with an explicit kernel variant and
/// `accumulate` (ys[i] += ws[i] · x).
pub fn matvec_multi_with(
    gpu: &Gpu,
    x: &Tensor,
    ws: &[&Tensor],
    ys: &[&Tensor],
    accumulate: bool,
    kernel: MatvecKernel,
) -> Result<Dispatch> {
    matvec_dispatch(gpu, x, ws, ys, accumulate, kernel, Norm::None)
}

/// The RMSNorm fold of a mat-vec dispatch (matvec.wgsl, "RMSNorm folded into the mat-vecs").
#[derive(Clone, Copy)]
enum Norm<'a> {
    None,
    /// x is `matvec_norm`'s output: outputs scaled by 1 / rms (eps).
    In(f32),
    /// After y += W x, `w` * y (int8 blocks with int8 x, else f32) and its sums of y^2 into
    /// `out`.
    Out {
        w: &'a Tensor,
        out: &'a Tensor,
    },
}

/// u32 words of `matvec_norm`'s int8 output for h of `n` values (n a multiple of 128; 32 for
/// `matvec_swiglu`, which shares the layout): the
/// int8 layout of `int8_words`, then a sum of h^2 per 32 values, a ticket per 32 values and
/// the n values of h staged for each block's last workgroup.
pub fn norm_int8_words(n: usize) -> usize {
    int8_words(n) + n / 32 + n / 32 + n
}

/// f32 elements of `matvec_norm`'s f32 output for h of `n` values (n a multiple of 128): w * h,
/// then a sum of h^2 per 32 values, a ticket per 32 values and h staged (matvec.wgsl).
pub fn norm_f32_len(n: usize) -> usize {
    n + n / 32 + n / 32 + n
}

/// Storage buffers `matvec_sgr_norm` binds (x, three weights, y0, xq, nt, nw).
const NORM_STORAGE_BUFFERS: u32 = 8;

/// The kernel variant a fold takes for weight type `dtype` and rows of `k`: `pick_int8` for
/// int8 activations, else `pick`.
fn fold_pick(gpu: &Gpu, dtype: DType, k: usize, int8: bool) -> MatvecKernel {
    if int8 {
        MatvecKernel::pick_int8(gpu, dtype, k)
    } else {
        MatvecKernel::pick(gpu, dtype, k)
    }
}

/// Whether a fold mat-vec over rows of `k` values of `dtype` has its loop: Q4_K, Q6_K and
/// Q8_0 with int8 activations; F16 and BF16 rows of whole 16-value chunks with f32 ones.
fn fold_type(dtype: DType, k: usize, int8: bool) -> bool {
    if int8 {
        matches!(dtype, DType::Q4K | DType::Q6K | DType::Q8_0)
    } else {
        matches!(dtype, DType::F16 | DType::BF16) && k.is_multiple_of(16)
    }
}

/// Whether matvec_sgr_norm runs `kernel` over a weight of `dtype` [N, K]: a type with its
/// loop, one row per subgroup (subgroup rows), a workgroup's rows dividing 32 (a block's
/// workgroups), at least 32 lanes (the block's last workgroup), N a multiple of 128, and the
/// device binds enough storage buffers. `norm_out_supported` and `matvec_norm` both ask it.
fn fold_out_fits(gpu: &Gpu, kernel: MatvecKernel, dtype: DType, n: usize, k: usize) -> bool {
    let rows = kernel.rows_per_workgroup(gpu) as usize;
    fold_type(dtype, k, kernel.int8_x)
        && kernel.subgroup_rows
        && kernel.rows == 1
        && kernel.lanes >= 32
        && 32 % rows == 0
        && n.is_multiple_of(128)
        && gpu.limits.max_storage_buffers_per_shader_stage >= NORM_STORAGE_BUFFERS
}

/// Whether matvec_sgr with NORM_IN runs `kernel` over rows of `k` values of `dtype`: a type
/// with its loop, subgroup rows, K a multiple of 128 (inv_rms's vec4 loads of the sums).
/// `normed_supported` and `matvec_multi_normed` both ask it.
fn fold_in_fits(kernel: MatvecKernel, dtype: DType, k: usize) -> bool {
    fold_type(dtype, k, kernel.int8_x) && kernel.subgroup_rows && k.is_multiple_of(128)
}

/// Whether `matvec_norm` can run for weight `w` [N, K] with int8 (`int8`) or f32 activations
/// on this device (`fold_out_fits` of its pick).
pub fn norm_out_supported(gpu: &Gpu, w: &Tensor, int8: bool) -> bool {
    let Ok((dtype, n, k)) = check_weight("matvec", "w", w) else {
        return false;
    };
    fold_out_fits(gpu, fold_pick(gpu, dtype, k, int8), dtype, n, k)
}

/// Whether `matvec_multi_normed` over `ws` (all [*, K]) can read a fold's output with int8
/// (`int8`) or f32 activations (`fold_in_fits` of their picks).
pub fn normed_supported(gpu: &Gpu, ws: &[&Tensor], int8: bool) -> bool {
    ws.iter().all(|w| match check_weight("matvec", "w", w) {
        Ok((dtype, _, k)) => fold_in_fits(fold_pick(gpu, dtype, k, int8), dtype, k),
        Err(_) => false,
    })
}

/// y += w · x (+ the residual y, as `matvec` / `matvec_int8` accumulating), then the next
/// RMSNorm's input in `out`: norm_w * y (f32 [N]) *not yet divided by rms(y)*, and each 32-value
/// block's sum of y^2, for `matvec_multi_normed`, which divides by rms(y) itself. Spares the
/// norm's dispatch between them. x is int8 blocks (u32 [`int8_words`(K)], Q4_K/Q6_K/Q8_0
/// weights; `out` u32 [`norm_int8_words`(N)], norm_w * y as int8 blocks) or f32 [K] (F16/BF16
/// weights; `out` f32 [`norm_f32_len`(N)]). Needs `norm_out_supported`. `out` must start zeroed
/// (a fresh buffer) and serve one such dispatch at a time: its tickets return to zero after each.
pub fn matvec_norm(
    gpu: &Gpu,
    x: &Tensor,
    w: &Tensor,
    y: &Tensor,
    norm_w: &Tensor,
    out: &Tensor,
) -> Result<Dispatch> {
    let (dtype, _, k) = check_weight("matvec_norm", "w", w)?;
    let kernel = fold_pick(gpu, dtype, k, x.elem == Elem::U32);
    let norm = Norm::Out { w: norm_w, out };
    matvec_dispatch(gpu, x, &[w], &[y], true, kernel, norm)
}

/// ys[i] = ws[i] · rmsnorm(h) from xn, `matvec_norm`'s output for h (u32 [`norm_int8_words`(K)]
/// with int8 activations, else f32 [`norm_f32_len`(K)]), with the RMSNorm's eps: `matvec_multi`
/// (`_int8`) dividing by rms(h) itself. Needs `normed_supported`.
pub fn matvec_multi_normed(
    gpu: &Gpu,
    xn: &Tensor,
    ws: &[&Tensor],
    ys: &[&Tensor],
    eps: f32,
) -> Result<Dispatch> {
    let (dtype, k) = first_weight(ws)?;
    let kernel = fold_pick(gpu, dtype, k, xn.elem == Elem::U32);
    matvec_dispatch(gpu, xn, ws, ys, false, kernel, Norm::In(eps))
}

fn matvec_dispatch(
    gpu: &Gpu,
    x: &Tensor,
    ws: &[&Tensor],
    ys: &[&Tensor],
    accumulate: bool,
    kernel: MatvecKernel,
    norm: Norm<'_>,
) -> Result<Dispatch> {
    let op = match norm {
        Norm::None => "matvec",
        Norm::In(_) => "matvec_normed",
        Norm::Out { .. } => "matvec_norm",
    };
    if ws.is_empty() || ws.len() > 3 || ys.len() != ws.len() {
        return Err(bad(
            op,
            format!(
                "1 to 3 weights with as many outputs, got {} weights, {} outputs",
                ws.len(),
                ys.len(),
            ),
        ));
    }
    let r = kernel.rows;
    if !(1..=MAX_ROWS).contains(&r) {
        return Err(bad(
            op,
            format!("rows per workgroup must be 1..={MAX_ROWS}, got {r}"),
        ));
    }
    let mut k = None;
    let mut params = MatvecParams {
        k: 0,
        wg1: 0,
        wg2: 0,
        wg_end: 0,
        n: [0; 4],
        nb: [0; 4],
        norm: [0.0; 4],
    };
    let mut constants = Vec::new();
    let mut weight_bytes = 0u64;
    let mut out_rows = 0u64;
    let mut starts = [0u32; 4];
    let mut dtypes = Vec::new();
    for (i, (w, y)) in ws.iter().zip(ys).enumerate() {
        let (dtype, n, kw) = check_weight(op, &format!("w{i}"), w)?;
        if *k.get_or_insert(kw) != kw {
            return Err(bad(
                op,
                format!("w{i}: rows of {kw} values, w0 has {}", k.unwrap()),
            ));
        }
        expect(op, &format!("y{i}"), y, Elem::F32, n)?;
        if y.buffer == x.buffer || ys[..i].iter().any(|o| o.buffer == y.buffer) {
            return Err(bad(
                op,
                format!("y{i} must be a buffer of its own (not x or another output)"),
            ));
        }
        params.n[i] = n as u32;
        params.nb[i] = (n * kw / dtype.block_size()) as u32;
        starts[i + 1] = starts[i] + (n as u32).div_ceil(kernel.rows_per_workgroup(gpu));
        constants.push((["DT0", "DT1", "DT2"][i], dtype.ggml_id() as f64));
        weight_bytes += crate::weights::gpu_bytes(dtype, (n * kw) as u64);
        out_rows += n as u64;
        dtypes.push(dtype);
    }
    let k = k.unwrap();
    if let Norm::In(_) = norm {
        if !dtypes.iter().all(|&dt| fold_in_fits(kernel, dt, k)) {
            return Err(bad(
                op,
                format!(
                    "needs weights with a fold loop (int8: Q4_K, Q6_K, Q8_0; f32: F16, BF16), a \
                     subgroup-rows kernel and K a multiple of 128 ({kernel:?}, K = {k})"
                ),
            ));
        }
        if kernel.int8_x {
            expect(
                op,
                "xn (int8, from matvec_norm)",
                x,
                Elem::U32,
                norm_int8_words(k),
            )?;
        } else {
            expect(
                op,
                "xn (f32, from matvec_norm)",
                x,
                Elem::F32,
                norm_f32_len(k),
            )?;
        }
    } else {
        check_x(op, x, k, kernel.int8_x)?;
    }
    check_int8_types(op, kernel, &dtypes)?;
    if let Norm::Out { w: nw, out } = norm {
        let n = params.n[0] as usize;
        if ws.len() != 1 || !accumulate || !fold_out_fits(gpu, kernel, dtypes[0], n, k) {
            return Err(bad(
                op,
                format!(
                    "needs one weight of N % 128 == 0 rows (int8: Q4_K, Q6_K, Q8_0; f32: F16, \
                     BF16), accumulating, a subgroup-rows kernel of one row per subgroup with \
                     a workgroup's rows dividing 32 and {NORM_STORAGE_BUFFERS} storage buffers \
                     per stage ({kernel:?}, N = {n})"
                ),
            ));
        }
        expect(op, "norm_w", nw, Elem::F32, n)?;
        if kernel.int8_x {
            expect(op, "out", out, Elem::U32, norm_int8_words(n))?;
        } else {
            expect(op, "out", out, Elem::F32, norm_f32_len(n))?;
        }
    }
    params.k = k as u32;
    if let Norm::In(eps) = norm {
        params.norm[0] = eps;
    }
    // Missing weights own no workgroups.
    let m = ws.len();
    params.wg1 = starts[1];
    params.wg2 = starts[2.min(m)];
    params.wg_end = starts[m];
    constants.extend(kernel_constants(gpu, op, kernel, k)?);
    constants.extend([
        ("R", r as f64),
        ("RL", r as f64),
        ("RT", r as f64),
        ("NW", m as f64),
        ("ACC", accumulate as u32 as f64),
        ("NORM_IN", matches!(norm, Norm::In(_)) as u32 as f64),
    ]);
    let entry = match (norm, kernel.subgroup_rows) {
        (Norm::Out { .. }, _) => "matvec_sgr_norm",
        (_, true) => "matvec_sgr",
        (_, false) => "matvec",
    };
    let pipeline = gpu.pipeline(shader(kernel.reduction), entry, &constants)?;
    let u = gpu.uniform("matvec.params", &params);
    let wb = |i: usize| &ws[i.min(m - 1)].buffer;
    let yb = |i: usize| if i < m { &ys[i].buffer } else { &ys[0].buffer };
    // Unused slots bind weight 0 / output 0 again (read-only, and never written).
    let w1 = if m > 1 { wb(1) } else { wb(0) };
    let w2 = if m > 2 { wb(2) } else { wb(0) };
    let label = label(
        match (m, kernel.int8_x, norm) {
            (_, false, Norm::Out { .. }) => "matvec_norm",
            (1, false, _) => "matvec",
            (_, false, _) => "matvec_multi",
            (_, true, Norm::Out { .. }) => "matvec_i8_norm",
            (1, true, _) => "matvec_i8",
            (_, true, _) => "matvec_multi_i8",
        },
        dtypes[0],
    );
    let buffers = [&u, &x.buffer, wb(0), w1, w2, yb(0), yb(1), yb(2), &x.buffer];
    let bind_group = match norm {
        // matvec_sgr_norm writes y0 only (no bindings 6, 7), and its int8 output and norm
        // weight are bindings 9 and 10.
        Norm::Out { w: nw, out } => {
            let mut at: Vec<(u32, &wgpu::Buffer)> = [0, 1, 2, 3, 4, 5, 8]
                .map(|i| (i, buffers[i as usize]))
                .to_vec();
            at.extend([(9, &out.buffer), (10, &nw.buffer)]);
            gpu.bind_at(label, &pipeline, &at)
        }
        _ => gpu.bind(label, &pipeline, &buffers),
    };
    let y_bytes = 4 * out_rows * if accumulate { 2 } else { 1 };
    Ok(Dispatch {
        label,
        idle_keys: 0,
        pipeline,
        bind_group,
        workgroups: grid(gpu, params.wg_end),
        cost: Cost {
            bytes: weight_bytes + 4 * k as u64 + y_bytes,
            flops: 2 * out_rows * k as u64,
        },
    })
}

/// Storage buffers `matvec_sgr_glu` binds (x, three weight slots, y0, xq, nt).
const SWIGLU_STORAGE_BUFFERS: u32 = 7;

/// The kernel `matvec_swiglu` runs for gate/up weights of `dtype` [N, K] with int8 (`int8`) or
/// f32 activations, read from a folded norm (`normed`) or plain: the fold's pick (one row per
/// subgroup) with twice its lanes, a subgroup for each of a row's two weights. None where that
/// does not fit: a type without its flat loop, no subgroup rows, fewer than 32 lanes (the
/// last workgroup of a block quantises it) or more than 256 or the device allows, more than
/// 32 rows a workgroup, int8 blocks split between workgroups (N % 32, rows not dividing
/// 32), a norm input of K not a multiple of 128, or too few storage buffers.
fn swiglu_kernel(
    gpu: &Gpu,
    dtype: DType,
    n: usize,
    k: usize,
    int8: bool,
    normed: bool,
) -> Option<MatvecKernel> {
    let kernel = fold_pick(gpu, dtype, k, int8);
    let sg = MatvecKernel::subgroup_rows_size(gpu)?;
    let pairs = (kernel.lanes / sg) as usize;
    let fits = fold_type(dtype, k, int8)
        && kernel.subgroup_rows
        && kernel.rows == 1
        && (32..=MAX_LANES).contains(&(2 * kernel.lanes))
        && 2 * kernel.lanes <= gpu.limits.max_compute_invocations_per_workgroup
        && 2 * kernel.lanes <= gpu.limits.max_compute_workgroup_size_x
        && pairs <= 32
        && (!int8 || (32 % pairs == 0 && n.is_multiple_of(32)))
        && (!normed || k.is_multiple_of(128))
        && gpu.limits.max_storage_buffers_per_shader_stage >= SWIGLU_STORAGE_BUFFERS;
    fits.then_some(MatvecKernel {
        lanes: 2 * kernel.lanes,
        ..kernel
    })
}

/// Whether `matvec_swiglu` runs for these gate and up weights with int8 (`int8`) or f32
/// activations, from a folded norm's output (`normed`) or plain ones.
pub fn swiglu_supported(
    gpu: &Gpu,
    w_gate: &Tensor,
    w_up: &Tensor,
    int8: bool,
    normed: bool,
) -> bool {
    let (Ok((dt_gate, n, k)), Ok((dt_up, n_up, k_up))) = (
        check_weight("matvec_swiglu", "w_gate", w_gate),
        check_weight("matvec_swiglu", "w_up", w_up),
    ) else {
        return false;
    };
    (n, k) == (n_up, k_up)
        && fold_type(dt_up, k, int8)
        && swiglu_kernel(gpu, dt_gate, n, k, int8, normed).is_some()
}

/// u32 words of `matvec_swiglu`'s int8 output for N values (N a multiple of 32):
/// `norm_int8_words`' layout (its sums of squares unused): the int8 form (`int8_words`(N), what the down projection reads),
/// then tickets and the staged rows. f32 output: N values.
pub fn swiglu_int8_words(n: usize) -> usize {
    norm_int8_words(n)
}

/// a = silu(w_gate · x) * (w_up · x), decode's SwiGLU straight from its mat-vec: no silu_mul
/// dispatch between gate/up and down. x: int8 activations (u32 [`int8_words`(K)], Q4_K / Q6_K /
/// Q8_0 weights) or f32 [K] (F16 / BF16 weights); with `eps` a folded norm's output instead
/// (`matvec_norm`'s: u32 [`norm_int8_words`(K)] or f32 [`norm_f32_len`(K)]), divided by its rms
/// here. out: with int8 x, a as int8 blocks for an int8 down projection, u32
/// [`swiglu_int8_words`(N)], zeroed when made and serving one such dispatch at a time (its
/// tickets return to zero after each; the down reads its first `int8_words`(N)); else f32
/// [N]. Needs `swiglu_supported`.
pub fn matvec_swiglu(
    gpu: &Gpu,
    x: &Tensor,
    w_gate: &Tensor,
    w_up: &Tensor,
    out: &Tensor,
    eps: Option<f32>,
) -> Result<Dispatch> {
    let op = "matvec_swiglu";
    let (dt_gate, n, k) = check_weight(op, "w_gate", w_gate)?;
    let (dt_up, n_up, k_up) = check_weight(op, "w_up", w_up)?;
    if (n_up, k_up) != (n, k) {
        return Err(bad(
            op,
            format!(
                "w_up {:?} must have w_gate's shape {:?}",
                w_up.shape, w_gate.shape
            ),
        ));
    }
    let int8 = x.elem == Elem::U32;
    let normed = eps.is_some();
    let kernel = swiglu_kernel(gpu, dt_gate, n, k, int8, normed)
        .filter(|_| fold_type(dt_up, k, int8))
        .ok_or_else(|| {
            bad(
                op,
                format!(
                    "no kernel for {} / {} [{n}, {k}] with {} activations{} on this device \
                     (int8: Q4_K, Q6_K, Q8_0 with N % 32 == 0; f32: F16, BF16 with K % 16 == 0; \
                     a subgroup-rows pick; a norm input needs K % 128 == 0)",
                    dt_gate.name(),
                    dt_up.name(),
                    if int8 { "int8" } else { "f32" },
                    if normed { " from a folded norm" } else { "" },
                ),
            )
        })?;
    match (int8, normed) {
        (true, true) => expect(
            op,
            "x (int8, from matvec_norm)",
            x,
            Elem::U32,
            norm_int8_words(k),
        )?,
        (false, true) => expect(
            op,
            "x (f32, from matvec_norm)",
            x,
            Elem::F32,
            norm_f32_len(k),
        )?,
        (_, false) => check_x(op, x, k, int8)?,
    }
    if int8 {
        expect(op, "out (int8)", out, Elem::U32, swiglu_int8_words(n))?;
    } else {
        expect(op, "out", out, Elem::F32, n)?;
    }
    if out.buffer == x.buffer {
        return Err(bad(op, "out must not be x".into()));
    }
    let mut constants = kernel_constants(gpu, op, kernel, k)?;
    constants.extend([
        ("DT0", dt_gate.ggml_id() as f64),
        ("DT1", dt_up.ggml_id() as f64),
        ("NW", 2.0),
        ("NORM_IN", normed as u32 as f64),
        // One row per subgroup (the flat loops); the row-loop constants are unused.
        ("R", 1.0),
        ("RL", 1.0),
        ("RT", 1.0),
    ]);
    let pipeline = gpu.pipeline(shader(kernel.reduction), "matvec_sgr_glu", &constants)?;
    // Each workgroup: a row of gate and the same row of up per pair of subgroups.
    let rows = kernel.lanes / kernel.row_lanes(gpu) / 2;
    let workgroups = (n as u32).div_ceil(rows);
    let params = MatvecParams {
        k: k as u32,
        wg1: workgroups,
        wg2: workgroups,
        wg_end: workgroups,
        n: [n as u32, n as u32, 0, 0],
        nb: [
            (n * k / dt_gate.block_size()) as u32,
            (n * k / dt_up.block_size()) as u32,
            0,
            0,
        ],
        norm: [eps.unwrap_or(0.0), 0.0, 0.0, 0.0],
    };
    let u = gpu.uniform("matvec_swiglu.params", &params);
    let label = label(
        if int8 {
            "matvec_swiglu_i8"
        } else {
            "matvec_swiglu"
        },
        dt_gate,
    );
    // y0 and nt are both `out`: the kernel writes y0 (f32) or nt (int8), never both.
    let bind_group = gpu.bind_at(
        label,
        &pipeline,
        &[
            (0, &u),
            (1, &x.buffer),
            (2, &w_gate.buffer),
            (3, &w_up.buffer),
            (4, &w_gate.buffer),
            (5, &out.buffer),
            (8, &x.buffer),
            (9, &out.buffer),
        ],
    );
    let weight_bytes = crate::weights::gpu_bytes(dt_gate, (n * k) as u64)
        + crate::weights::gpu_bytes(dt_up, (n * k) as u64);
    // x's words; the output, with int8 also its staged rows (written, then read once).
    let x_bytes = 4 * if int8 { int8_words(k) } else { k };
    let out_bytes = if int8 {
        4 * int8_words(n) + 8 * n
    } else {
        4 * n
    };
    Ok(Dispatch {
        label,
        idle_keys: 0,
        pipeline,
        bind_group,
        workgroups: grid(gpu, workgroups),
        cost: Cost {
            bytes: weight_bytes + (x_bytes + out_bytes) as u64,
            flops: 4 * (n * k) as u64,
        },
    })
}

/// `matvec_glu` with an explicit kernel variant (rows 1..=4: a workgroup computes that many
/// rows of gate and of up).
pub fn matvec_glu_with(
    gpu: &Gpu,
    x: &Tensor,
    w_gate: &Tensor,
    w_up: &Tensor,
    y: &Tensor,
    kernel: MatvecKernel,
) -> Result<Dispatch> {
    let rows = kernel.rows;
    let op = "matvec_glu";
    let (dt_gate, n, k) = check_weight(op, "w_gate", w_gate)?;
    let (dt_up, n_up, k_up) = check_weight(op, "w_up", w_up)?;
    if (n_up, k_up) != (n, k) {
        return Err(bad(
            op,
            format!(
                "w_up {:?} must have w_gate's shape {:?}",
                w_up.shape, w_gate.shape
            ),
        ));
    }
    check_x(op, x, k, kernel.int8_x)?;
    check_int8_types(op, kernel, &[dt_gate, dt_up])?;
    expect(op, "y", y, Elem::F32, n)?;
    if y.buffer == x.buffer {
        return Err(bad(op, "y must not be x".into()));
    }
    if !(1..=MAX_ROWS / 2).contains(&rows) {
        return Err(bad(
            op,
            format!(
                "rows per workgroup must be 1..={}, got {rows}",
                MAX_ROWS / 2
            ),
        ));
    }
    let mut constants = vec![
        ("DT0", dt_gate.ggml_id() as f64),
        ("DT1", dt_up.ggml_id() as f64),
        ("R", rows as f64),
        // One loop over both weights where they have one type.
        (
            "RL",
            (if dt_gate == dt_up { 2 * rows } else { rows }) as f64,
        ),
        ("RT", (2 * rows) as f64),
    ];
    constants.extend(kernel_constants(gpu, op, kernel, k)?);
    let entry = if kernel.subgroup_rows {
        "matvec_glu_sgr"
    } else {
        "matvec_glu"
    };
    let pipeline = gpu.pipeline(shader(kernel.reduction), entry, &constants)?;
    let workgroups = (n as u32).div_ceil(kernel.rows_per_workgroup(gpu));
    let params = MatvecParams {
        k: k as u32,
        wg1: workgroups,
        wg2: workgroups,
        wg_end: workgroups,
        n: [n as u32, n as u32, 0, 0],
        nb: [
            (n * k / dt_gate.block_size()) as u32,
            (n * k / dt_up.block_size()) as u32,
            0,
            0,
        ],
        norm: [0.0; 4],
    };
    let u = gpu.uniform("matvec_glu.params", &params);
    let label = label(
        if kernel.int8_x {
            "matvec_glu_i8"
        } else {
            "matvec_glu"
        },
        dt_gate,
    );
    // matvec_glu reads no y1, y2 (bindings 6, 7).
    let bind_group = gpu.bind_at(
        label,
        &pipeline,
        &[
            (0, &u),
            (1, &x.buffer),
            (2, &w_gate.buffer),
            (3, &w_up.buffer),
            (4, &w_gate.buffer),
            (5, &y.buffer),
            (8, &x.buffer),
        ],
    );
    let weight_bytes = crate::weights::gpu_bytes(dt_gate, (n * k) as u64)
        + crate::weights::gpu_bytes(dt_up, (n * k) as u64);
    Ok(Dispatch {
        label,
        idle_keys: 0,
        pipeline,
        bind_group,
        workgroups: grid(gpu, workgroups),
        cost: Cost {
            bytes: weight_bytes + 4 * k as u64 + 4 * n as u64,
            flops: 4 * (n * k) as u64,
        },
    })
}
