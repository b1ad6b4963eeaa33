//! `matmul.wgsl`: linear layers y[T, N] = x[T, K] · W[N, K]^T (+ y with `accumulate`), for
//! weights of every `DType` in the layout of `weights.rs`.

use wgllama_loaders::DType;

use crate::dispatch::{grid, Cost, Dispatch};
use crate::error::{EngineError, Result};
use crate::gpu::Gpu;
use crate::ops::expect;
use crate::tensor::{Elem, Tensor};

/// Mirrors `Params` in matmul.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct MatmulParams {
    pub n: u32,
    pub k: u32,
    pub t: u32,
    pub nb: u32,
}

/// The mat-vec kernel's shape: lanes per workgroup (a power of two, 32..=256) and weight
/// rows per workgroup (1..=8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatvecShape {
    pub lanes: u32,
    pub rows: u32,
}

impl MatvecShape {
    /// Enough lanes for one 16-value chunk each of a row of `k` (up to 256), 4 rows.
    pub fn for_k(k: usize) -> MatvecShape {
        let chunks = k.div_ceil(16).clamp(32, 256) as u32;
        MatvecShape {
            lanes: chunks.next_power_of_two().min(256),
            rows: 4,
        }
    }
}

/// The subgroup mat-vec's shape: subgroups per workgroup (each of the adapter's largest
/// subgroup size) and rows each subgroup computes together (sharing x loads). A workgroup
/// owns `subgroups * rows_per_subgroup` rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubgroupShape {
    pub subgroups: u32,
    pub rows_per_subgroup: u32,
}

impl SubgroupShape {
    /// 4 subgroups; 2 rows per subgroup for block types (more independent loads per lane
    /// on the small quant words), 1 for float weights (each chunk already 32-64 bytes).
    pub fn for_dtype(dtype: DType) -> SubgroupShape {
        SubgroupShape {
            subgroups: 4,
            rows_per_subgroup: if dtype.is_quantized() { 2 } else { 1 },
        }
    }
}

/// Which decode kernel `matmul` uses for T == 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatvecKind {
    /// matvec.wgsl (`ops::matvec`): per-type inner loops, many lanes per row for float weights.
    Family,
    /// matvec_subgroup.wgsl: a subgroup per row, `subgroupAdd`.
    Subgroup(SubgroupShape),
    /// matmul.wgsl's `matvec`: workgroup-memory reduction, no optional feature.
    Workgroup(MatvecShape),
}

impl MatvecKind {
    /// Per weight type, the kernel that was fastest in chains of dependent calls on the H100
    /// (2026-11-23, benches/results/2026-11-23-h100/matvec_family_run2.txt): the matvec.wgsl
    /// family for F16/BF16 (128 lanes per row: 2.6-3.0 TB/s on the 4096-wide shapes, against
    /// 2.2-2.9 for the subgroup kernel), the subgroup kernel for the block types (q4_K level with
    /// the family, q6_K and q8_0 ahead of it; ahead of the workgroup kernel on most shapes), the
    /// workgroup kernel where the device has no subgroups or rows are not whole chunks.
    pub fn pick(gpu: &Gpu, dtype: DType, k: usize) -> MatvecKind {
        let sg = gpu.caps.subgroups && k.is_multiple_of(16);
        match dtype {
            DType::F16 | DType::BF16 if sg => MatvecKind::Family,
            _ if sg => MatvecKind::Subgroup(SubgroupShape::for_dtype(dtype)),
            _ => MatvecKind::Workgroup(MatvecShape::for_k(k)),
        }
    }
}

/// Tile of the prefill kernel (matmul.wgsl's BT, BN).
const TILE_T: usize = 32;
const TILE_N: usize = 64;

/// y = x · w^T, or y += x · w^T with `accumulate`. x: f32 [T, K] (any shape whose last
/// dimension is K), w: weight [N, K], y: f32 [T, N]. Uses the mat-vec kernel for T == 1 and
/// the tiled kernel otherwise; T is fixed when the dispatch is built.
pub fn matmul(gpu: &Gpu, x: &Tensor, w: &Tensor, y: &Tensor, accumulate: bool) -> Result<Dispatch> {
    let s = check("matmul", x, w, y)?;
    if s.t == 1 {
        match MatvecKind::pick(gpu, s.dtype, s.k) {
            MatvecKind::Family => crate::ops::matvec::matvec(gpu, x, w, y, accumulate),
            MatvecKind::Subgroup(shape) => matvec_subgroup(gpu, x, w, y, accumulate, shape),
            MatvecKind::Workgroup(shape) => matvec_with(gpu, x, w, y, accumulate, shape),
        }
    } else {
        matmul_tiled(gpu, x, w, y, accumulate)
    }
}

/// The decode kernel for one token (T must be 1), with an explicit workgroup shape.
pub fn matvec_with(
    gpu: &Gpu,
    x: &Tensor,
    w: &Tensor,
    y: &Tensor,
    accumulate: bool,
    shape: MatvecShape,
) -> Result<Dispatch> {
    let s = check("matvec", x, w, y)?;
    if s.t != 1 {
        return Err(EngineError::Shape {
            op: "matvec",
            detail: format!("x: one token wanted, got {:?}", x.shape),
        });
    }
    let MatvecShape { lanes, rows } = shape;
    if !lanes.is_power_of_two() || !(32..=256).contains(&lanes) || !(1..=8).contains(&rows) {
        return Err(EngineError::Shape {
            op: "matvec",
            detail: format!(
                "workgroup shape {shape:?}: lanes a power of two in 32..=256, rows 1..=8"
            ),
        });
    }
    let pipeline = gpu.pipeline(
        &wgllama_shaders::MATMUL,
        "matvec",
        &[
            ("DT", s.dtype.ggml_id() as f64),
            ("W_ALIGNED", aligned(s.k)),
            ("ACC", accumulate as u32 as f64),
            ("WG", lanes as f64),
            ("R", rows as f64),
        ],
    )?;
    let workgroups = grid(gpu, (s.n as u32).div_ceil(rows));
    let label = variant_label("matvec_wg", s.dtype);
    dispatch(gpu, label, pipeline, workgroups, x, w, y, &s, accumulate)
}

/// The subgroup decode kernel for one token (T must be 1): needs the device's subgroups and
/// K a multiple of 16.
pub fn matvec_subgroup(
    gpu: &Gpu,
    x: &Tensor,
    w: &Tensor,
    y: &Tensor,
    accumulate: bool,
    shape: SubgroupShape,
) -> Result<Dispatch> {
    let s = check("matvec", x, w, y)?;
    let bad = |detail: String| EngineError::Shape {
        op: "matvec",
        detail,
    };
    if s.t != 1 {
        return Err(bad(format!("x: one token wanted, got {:?}", x.shape)));
    }
    if !gpu.caps.subgroups {
        return Err(bad("subgroup kernel: the device has no subgroups".into()));
    }
    if !s.k.is_multiple_of(16) {
        return Err(bad(format!(
            "subgroup kernel: K = {} is not a multiple of 16",
            s.k
        )));
    }
    // Whole subgroups of the largest size the adapter may use (unknown: assume 32), so
    // subgroups are full; the shader copes with any size, only the lane count depends on it.
    let sg_size = match gpu.caps.subgroup_size.1 {
        0 => 32,
        n => n,
    };
    let SubgroupShape {
        subgroups,
        rows_per_subgroup: rs,
    } = shape;
    let lanes = subgroups * sg_size;
    if subgroups == 0
        || lanes > gpu.limits.max_compute_invocations_per_workgroup
        || lanes > gpu.limits.max_compute_workgroup_size_x
        || !(1..=4).contains(&rs)
    {
        return Err(bad(format!(
            "subgroup shape {shape:?}: 1..=4 rows per subgroup, at most {} lanes (subgroups of {sg_size})",
            gpu.limits.max_compute_invocations_per_workgroup
        )));
    }
    let rows = subgroups * rs;
    let pipeline = gpu.pipeline(
        &wgllama_shaders::MATVEC_SUBGROUP,
        "matvec_sg",
        &[
            ("DT", s.dtype.ggml_id() as f64),
            ("ACC", accumulate as u32 as f64),
            ("WG", lanes as f64),
            ("R", rows as f64),
            ("RS", rs as f64),
        ],
    )?;
    let workgroups = grid(gpu, (s.n as u32).div_ceil(rows));
    let label = variant_label("matvec_sg", s.dtype);
    dispatch(gpu, label, pipeline, workgroups, x, w, y, &s, accumulate)
}

/// The tiled prefill kernel, for any T (also T == 1, for tests).
pub fn matmul_tiled(
    gpu: &Gpu,
    x: &Tensor,
    w: &Tensor,
    y: &Tensor,
    accumulate: bool,
) -> Result<Dispatch> {
    let s = check("matmul", x, w, y)?;
    let pipeline = gpu.pipeline(
        &wgllama_shaders::MATMUL,
        "matmul",
        &[
            ("DT", s.dtype.ggml_id() as f64),
            ("W_ALIGNED", aligned(s.k)),
            ("ACC", accumulate as u32 as f64),
        ],
    )?;
    let tiles = s.t.div_ceil(TILE_T) * s.n.div_ceil(TILE_N);
    let workgroups = grid(gpu, tiles as u32);
    let label = variant_label("matmul", s.dtype);
    dispatch(gpu, label, pipeline, workgroups, x, w, y, &s, accumulate)
}

/// The dispatch label: kernel and (first) weight type ("matvec_sg q4_K"), so profiles split
/// by both. One place for every linear-layer kernel (matmul.wgsl, matvec_subgroup.wgsl,
/// matmul_coop.wgsl and the matvec.wgsl family). Static strings keep `Dispatch` cheap to clone
/// and free of allocation.
pub(crate) fn variant_label(kernel: &str, dtype: DType) -> &'static str {
    macro_rules! by_dtype {
        ($k:literal) => {
            match dtype {
                DType::F32 => concat!($k, " f32"),
                DType::F16 => concat!($k, " f16"),
                DType::BF16 => concat!($k, " bf16"),
                DType::Q8_0 => concat!($k, " q8_0"),
                DType::Q4_0 => concat!($k, " q4_0"),
                DType::Q5_0 => concat!($k, " q5_0"),
                DType::Q4K => concat!($k, " q4_K"),
                DType::Q5K => concat!($k, " q5_K"),
                DType::Q6K => concat!($k, " q6_K"),
            }
        };
    }
    match kernel {
        "matvec_wg" => by_dtype!("matvec_wg"),
        "matvec_sg" => by_dtype!("matvec_sg"),
        "matmul_coop" => by_dtype!("matmul_coop"),
        "matmul_coop_multi" => by_dtype!("matmul_coop_multi"),
        "matmul_coop_glu" => by_dtype!("matmul_coop_glu"),
        "dequant_f16" => by_dtype!("dequant_f16"),
        "matvec" => by_dtype!("matvec"),
        "matvec_multi" => by_dtype!("matvec_multi"),
        "matvec_glu" => by_dtype!("matvec_glu"),
        "matvec_i8" => by_dtype!("matvec_i8"),
        "matvec_i8_norm" => by_dtype!("matvec_i8_norm"),
        "matvec_norm" => by_dtype!("matvec_norm"),
        "matvec_multi_i8" => by_dtype!("matvec_multi_i8"),
        "matvec_glu_i8" => by_dtype!("matvec_glu_i8"),
        "matvec_swiglu" => by_dtype!("matvec_swiglu"),
        "matvec_swiglu_i8" => by_dtype!("matvec_swiglu_i8"),
        _ => {
            debug_assert_eq!(kernel, "matmul", "no label for kernel {kernel}");
            by_dtype!("matmul")
        }
    }
}

/// Sizes of one linear layer, checked.
#[derive(Clone, Copy)]
pub(crate) struct Sizes {
    pub(crate) dtype: DType,
    pub(crate) t: usize,
    pub(crate) n: usize,
    pub(crate) k: usize,
}

/// The weight type of `w`, if it is a weight (or a plain f32/f16 tensor, laid out the same).
pub(crate) fn weight_dtype(w: &Tensor) -> Option<DType> {
    match w.elem {
        Elem::Weight(dt) => Some(dt),
        Elem::F32 => Some(DType::F32),
        Elem::F16 => Some(DType::F16),
        Elem::U32 => None,
    }
}

/// Checks a [rows, k] weight: its type, rank, whole blocks per row and u32-sized indices.
pub(crate) fn check_weight(
    op: &'static str,
    what: &str,
    w: &Tensor,
) -> Result<(DType, usize, usize)> {
    let bad = |detail: String| EngineError::Shape {
        op,
        detail: format!("{what}: {detail}"),
    };
    let dtype = weight_dtype(w).ok_or_else(|| bad(format!("not a weight: {:?}", w.elem)))?;
    let &[n, k] = w.shape.as_slice() else {
        return Err(bad(format!("want a [rows, k] matrix, got {:?}", w.shape)));
    };
    if n == 0 || k == 0 || !k.is_multiple_of(dtype.block_size()) {
        return Err(bad(format!(
            "{} {:?}: rows must be non-empty whole blocks of {}",
            dtype.name(),
            w.shape,
            dtype.block_size()
        )));
    }
    if n.checked_mul(k).is_none_or(|v| v > u32::MAX as usize) && !dtype.is_quantized() {
        return Err(bad(format!(
            "{:?}: too many values for u32 indices",
            w.shape
        )));
    }
    Ok((dtype, n, k))
}

pub(crate) fn check(op: &'static str, x: &Tensor, w: &Tensor, y: &Tensor) -> Result<Sizes> {
    check_x(op, x, w, y, Elem::F32)
}

/// `check` with x of element type `x_elem` (f32, or f16 for `matmul_coop`).
pub(crate) fn check_x(
    op: &'static str,
    x: &Tensor,
    w: &Tensor,
    y: &Tensor,
    x_elem: Elem,
) -> Result<Sizes> {
    check_xy(op, x, w, y, x_elem, Elem::F32)
}

/// `check_x` with y of element type `y_elem` (f16 for `matmul_coop_glu`'s output).
pub(crate) fn check_xy(
    op: &'static str,
    x: &Tensor,
    w: &Tensor,
    y: &Tensor,
    x_elem: Elem,
    y_elem: Elem,
) -> Result<Sizes> {
    let (dtype, n, k) = check_weight(op, "w", w)?;
    if x.shape.last() != Some(&k) {
        return Err(EngineError::Shape {
            op,
            detail: format!("x: last dimension must be K = {k}, got {:?}", x.shape),
        });
    }
    let t = x.numel() / k;
    expect(op, "x", x, x_elem, t * k)?;
    expect(op, "y", y, y_elem, t * n)?;
    if y.shape.last() != Some(&n) {
        return Err(EngineError::Shape {
            op,
            detail: format!("y: last dimension must be N = {n}, got {:?}", y.shape),
        });
    }
    if t == 0 || t * n > u32::MAX as usize || t * k > u32::MAX as usize {
        return Err(EngineError::Shape {
            op,
            detail: format!(
                "x {:?}, y {:?}: empty or too large for u32 indices",
                x.shape, y.shape
            ),
        });
    }
    Ok(Sizes { dtype, t, n, k })
}

/// The kernels' fast path reads whole 16-value chunks; other row lengths (float weights
/// only) take a per-value path.
pub(crate) fn aligned(k: usize) -> f64 {
    k.is_multiple_of(16) as u32 as f64
}

/// The dispatch of a kernel with matmul.wgsl's bindings (params, w, x, y).
#[allow(clippy::too_many_arguments)]
pub(crate) fn dispatch(
    gpu: &Gpu,
    label: &'static str,
    pipeline: wgpu::ComputePipeline,
    workgroups: [u32; 3],
    x: &Tensor,
    w: &Tensor,
    y: &Tensor,
    s: &Sizes,
    accumulate: bool,
) -> Result<Dispatch> {
    let params = MatmulParams {
        n: s.n as u32,
        k: s.k as u32,
        t: s.t as u32,
        nb: ((s.n * s.k) / s.dtype.block_size()) as u32,
    };
    let u = gpu.uniform("matmul.params", &params);
    let bind_group = gpu.bind(label, &pipeline, &[&u, &w.buffer, &x.buffer, &y.buffer]);
    let (t, n, k) = (s.t as u64, s.n as u64, s.k as u64);
    let weight_bytes = crate::weights::gpu_bytes(s.dtype, n * k);
    let y_bytes = 4 * t * n * if accumulate { 2 } else { 1 };
    Ok(Dispatch {
        label,
        idle_keys: 0,
        pipeline,
        bind_group,
        workgroups,
        cost: Cost {
            bytes: weight_bytes + 4 * t * k + y_bytes,
            flops: 2 * t * n * k,
        },
    })
}
