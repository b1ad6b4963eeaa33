//! `matmul_coop.wgsl`: linear layers on cooperative matrices (tensor cores),
//! y[T, N] = x[T, K] · W[N, K]^T (+ y with `accumulate`), for weights of every `DType`; up to
//! three weights sharing x in one dispatch (`matmul_coop_multi`), and SwiGLU's
//! silu(x · Wgate^T) * (x · Wup^T) straight to f16 (`matmul_coop_glu`).
//!
//! x and the decoded weights are rounded to f16 before the products (sums stay f32), so the
//! result differs from `matmul::matmul`'s by about 1e-3 of sum |x||w| per output: an opt-in
//! precision choice, not a drop-in replacement. Needs the device's cooperative matrices
//! (`coop_available`) and K a multiple of 16.

use crate::dispatch::{grid, Cost, Dispatch};
use crate::error::{EngineError, Result};
use crate::gpu::Gpu;
use crate::ops::matmul::{check_weight, check_x, check_xy, variant_label, Sizes};
use crate::tensor::{Elem, Tensor};

const OP: &str = "matmul_coop";

/// A workgroup's tile: `sg_t x sg_n` subgroups, each owning `tm x tn` accumulator tiles of
/// 16 x 16, so the workgroup computes `16 tm sg_t` tokens x `16 tn sg_n` weight rows; `bk`
/// values of k per step (16, 32 or 64). Each lane stages at most 2 weight chunks and 8 x
/// units (16-byte loads) per step (`lane_share`). `depth`: how the staging loads are
/// pipelined (the shader's DEPTH): 1 (every preset) carries the raw words of the next step
/// across the loop's back edge; 0, the first version, loads and decodes each step at the top
/// of the previous one (1.2-1.5x slower on the H100). `stages`: staging buffers (the shader's
/// STAGES): 2, double-buffered with one barrier a step; 1, one buffer and two barriers, half
/// the workgroup memory (room for bk 64 on a 128 x 128 tile). `park`: output tiles of 16 x 16
/// f32 an edge (or SwiGLU) workgroup parks in workgroup memory at once (the shader's
/// PARK_MAX), 0 for the default (4; SwiGLU 8): fewer parked tiles mean more rounds in the
/// epilogue but less workgroup memory, which on the H100 decides how many workgroups share an
/// SM (48 KiB an SM in all: two of at most 24 KiB each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoopTile {
    pub sg_t: u32,
    pub sg_n: u32,
    pub tm: u32,
    pub tn: u32,
    pub bk: u32,
    pub depth: u32,
    pub stages: u32,
    pub park: u32,
}

/// Below this many workgroups a layer leaves SMs idle (the H100 has 132), so `pick` takes a
/// smaller tile (quantised weights).
const MIN_WORKGROUPS: usize = 96;

/// Workgroups of LARGE or MEDIUM that run at once: the H100's 132 SMs, one each (both tiles
/// use over 24 KiB of workgroup memory, and its Vulkan driver, 580.159.04, was seen to give an
/// SM 48 KiB in all: examples/probe_resident.rs). wgpu does not report SMs; on other GPUs
/// `pick` is only as good as this guess (it now takes LARGE from about 67 LARGE workgroups,
/// where the rule before it took LARGE from 96).
const WAVE: usize = 132;

/// A LARGE workgroup does twice a MEDIUM one's work at ~1.3x its rate, so takes ~1.5x as long
/// (H100, T = 512, F16: LARGE 175-196 TFLOP/s on full waves, MEDIUM 122-147).
const LARGE_OVER_MEDIUM: f64 = 1.5;

impl CoopTile {
    /// 128 x 128 (8 subgroups of 4 x 2 tiles), 64 of k a step in one buffer: the fastest
    /// where it makes enough workgroups (H100, T = 512, f16 x, Llama-2-7B shapes: f16
    /// 164-196 TFLOP/s, q6_K 125-143, q4_K 121-136; double-buffered with bk 32, the preset
    /// until the ninth session: 127-142, 104-120, 120-138).
    pub const LARGE: CoopTile = CoopTile {
        sg_t: 2,
        sg_n: 4,
        tm: 4,
        tn: 2,
        bk: 64,
        depth: 1,
        stages: 1,
        park: 0,
    };
    /// 64 x 128 (8 subgroups of 2 x 2 tiles), bk 64, one buffer: float weights in layers too
    /// small for LARGE (H100, T = 512, f16, N = 2048: 126-147 TFLOP/s against SMALL's 120-131;
    /// quantised weights run faster on SMALL).
    pub const MEDIUM: CoopTile = CoopTile {
        sg_t: 2,
        sg_n: 4,
        tm: 2,
        tn: 2,
        bk: 64,
        depth: 1,
        stages: 1,
        park: 0,
    };
    /// 64 x 64 (4 subgroups of 2 x 2 tiles), bk 64, one buffer: quantised weights in layers
    /// too small for LARGE (H100, T = 512, N = 2048: q4_K 95-104 TFLOP/s, q6_K 82-90; the
    /// double-buffered bk 32 SMALL before: 82-92, 74-85).
    pub const SMALL: CoopTile = CoopTile {
        sg_t: 2,
        sg_n: 2,
        tm: 2,
        tn: 2,
        bk: 64,
        depth: 1,
        stages: 1,
        park: 0,
    };

    /// The tile `matmul_coop` uses for T x N outputs of a weight (float: F16, BF16 or F32).
    /// Float weights: LARGE or MEDIUM, whichever finishes first counting whole waves of
    /// workgroups (`WAVE` at a time, a LARGE one `LARGE_OVER_MEDIUM` times as long): on the H100
    /// at T = 512 TinyLlama's fused q/k/v (N = 2560) ran 51 us on LARGE's 80 workgroups (one
    /// wave) against 68 on MEDIUM's 160 (two), its Wo 35 us on MEDIUM against 51 on LARGE
    /// (benches/results/2026-11-24-h100-s17/). Quantised weights: LARGE where it makes at least
    /// MIN_WORKGROUPS workgroups, else SMALL (`bench_matmul_coop sweep`,
    /// benches/results/2026-11-24-h100-s9/tiles/).
    pub fn pick(t: usize, n: usize, float: bool) -> CoopTile {
        let waves = |tile: CoopTile| tile.workgroups(t, n).div_ceil(WAVE) as f64;
        let large = if float {
            waves(CoopTile::LARGE) * LARGE_OVER_MEDIUM <= waves(CoopTile::MEDIUM)
        } else {
            CoopTile::LARGE.workgroups(t, n) >= MIN_WORKGROUPS
        };
        match (large, float) {
            (true, _) => CoopTile::LARGE,
            (false, true) => CoopTile::MEDIUM,
            (false, false) => CoopTile::SMALL,
        }
    }

    /// Whether `pick` treats `w` as a float weight (anything but a quantised type).
    pub fn float_weight(w: &Tensor) -> bool {
        !matches!(w.elem, Elem::Weight(d) if d.is_quantized())
    }

    /// Workgroups for T x N outputs.
    pub fn workgroups(&self, t: usize, n: usize) -> usize {
        t.div_ceil(self.tokens() as usize) * n.div_ceil(self.rows() as usize)
    }

    /// Tokens per workgroup tile.
    pub fn tokens(&self) -> u32 {
        // Saturating: a tile with absurd counts is refused by the checks, not an overflow.
        16u32.saturating_mul(self.tm).saturating_mul(self.sg_t)
    }

    /// Weight rows per workgroup tile.
    pub fn rows(&self) -> u32 {
        16u32.saturating_mul(self.tn).saturating_mul(self.sg_n)
    }

    /// Weight chunks and x units (16-byte loads: 4 values of f32 x, 8 of f16 x) each lane
    /// stages per step, with subgroups of `sg` lanes.
    pub fn lane_share(&self, sg: u32, x_f16: bool) -> (u32, u32) {
        let lanes = sg
            .saturating_mul(self.sg_t)
            .saturating_mul(self.sg_n)
            .max(1);
        let w = self.rows().saturating_mul(self.bk) / 16;
        let x = self.tokens().saturating_mul(self.bk) / if x_f16 { 8 } else { 4 };
        (w.div_ceil(lanes), x.div_ceil(lanes))
    }

    /// Workgroup memory of `matmul_coop` (`glu`: of `matmul_coop_glu`): `stages` f16 stages of
    /// x and W (rows padded by 8 values) and the parked f32 16 x 16 output tiles (the shader's
    /// PARK).
    pub fn workgroup_bytes(&self, glu: bool) -> u64 {
        let stage = (self.tokens() as u64 + self.rows() as u64) * (self.bk as u64 + 8) * 2;
        self.stages as u64 * stage + self.parked(glu) as u64 * 1024
    }

    /// The shader's PARK_MAX: `park`, or the default for the entry (4; SwiGLU 8).
    fn park_max(&self, glu: bool) -> u32 {
        match (self.park, glu) {
            (0, false) => 4,
            (0, true) => 8,
            (p, _) => p,
        }
    }

    /// Output tiles parked at once (the shader's PARK): at most one a subgroup.
    fn parked(&self, glu: bool) -> u32 {
        self.sg_t.saturating_mul(self.sg_n).min(self.park_max(glu))
    }

    /// Candidate tiles for benchmark sweeps (each fits 48 KiB of workgroup memory and the
    /// lane shares with 32-lane subgroups and f32 x).
    pub fn candidates() -> Vec<CoopTile> {
        let t = |sg_t, sg_n, tm, tn, bk| CoopTile {
            sg_t,
            sg_n,
            tm,
            tn,
            bk,
            depth: 1,
            stages: 2,
            park: 0,
        };
        let one = |sg_t, sg_n, tm, tn, bk| CoopTile {
            stages: 1,
            ..t(sg_t, sg_n, tm, tn, bk)
        };
        let parking = |tile: CoopTile, park| CoopTile { park, ..tile };
        vec![
            one(2, 4, 4, 2, 64), // 128 x 128, one buffer
            one(2, 4, 4, 2, 32),
            one(2, 2, 2, 2, 64), // 64 x 64
            one(2, 4, 2, 2, 64), // 64 x 128
            one(2, 4, 4, 4, 32), // 128 x 256
            one(4, 2, 4, 4, 32), // 256 x 128
            t(2, 2, 2, 4, 32),   // 64 x 128, 128 lanes
            t(2, 2, 2, 4, 16),
            t(2, 2, 2, 2, 32), // 64 x 64
            t(2, 2, 2, 2, 64),
            t(2, 4, 2, 2, 32), // 64 x 128, 256 lanes
            t(2, 4, 2, 2, 16),
            t(1, 4, 4, 2, 32), // 64 x 128, 128 lanes
            t(2, 2, 4, 2, 32), // 128 x 64
            t(2, 2, 4, 4, 16), // 128 x 128, 128 lanes
            t(2, 4, 4, 2, 32), // 128 x 128, 256 lanes
            t(4, 2, 2, 4, 32),
            t(2, 4, 4, 2, 16),
            t(2, 4, 2, 4, 16), // 64 x 256
            t(4, 2, 4, 2, 16), // 256 x 64
            t(4, 4, 2, 2, 16), // 128 x 128, 512 lanes
            t(4, 4, 2, 2, 32),
            t(2, 2, 1, 1, 32), // 32 x 32
            t(2, 2, 1, 2, 32), // 32 x 64
            // The seventeenth session's: tiles of at most 24 KiB, so that two share an SM on
            // the H100 (48 KiB of workgroup memory an SM in all), and their neighbours.
            parking(one(2, 2, 4, 4, 32), 2), // 128 x 128, 4 subgroups of 4 x 4: 22 KiB
            parking(one(2, 2, 4, 4, 32), 4), // the same, 24 KiB
            parking(one(2, 4, 4, 2, 32), 1), // LARGE at bk 32: 21 KiB
            parking(one(2, 2, 4, 4, 16), 2), // 14 KiB
            parking(t(2, 2, 4, 4, 32), 2),   // two buffers: 42 KiB, one an SM
            parking(one(2, 4, 2, 2, 32), 1), // 64 x 128: 16 KiB
        ]
    }
}

/// Whether this device runs `matmul_coop`: cooperative matrices with 16x16x16 f16 inputs and
/// f32 accumulators, f16 shaders, subgroups of one fixed size (the kernel assigns tiles by
/// subgroup and counts a workgroup's lanes in whole subgroups).
pub fn coop_available(gpu: &Gpu) -> bool {
    let c = &gpu.caps;
    c.cooperative_matrix
        && c.coop_16x16x16_f16_f32
        && c.shader_f16
        && c.subgroups
        && c.subgroup_size.0 > 0
        && c.subgroup_size.0 == c.subgroup_size.1
}

/// y = x · w^T, or y += x · w^T with `accumulate`, on tensor cores with `CoopTile::pick`'s tile.
/// x: f32 or f16 (`Elem::F16`: half the bytes to stage, the same result since the kernel
/// rounds x to f16 anyway) [T, K] (any shape whose last dimension is K), w: weight [N, K]
/// with K % 16 == 0, y: f32 [T, N]. `EngineError::Unsupported` where `!coop_available(gpu)`.
pub fn matmul_coop(
    gpu: &Gpu,
    x: &Tensor,
    w: &Tensor,
    y: &Tensor,
    accumulate: bool,
) -> Result<Dispatch> {
    let (t, n) = match (x.shape.last(), w.shape.first()) {
        (Some(&k), Some(&n)) if k > 0 => (x.numel() / k, n),
        _ => (1, 1), // malformed: matmul_coop_with reports it
    };
    let tile = CoopTile::pick(t, n, CoopTile::float_weight(w));
    matmul_coop_with(gpu, x, w, y, accumulate, tile)
}

/// `matmul_coop` with an explicit tile.
pub fn matmul_coop_with(
    gpu: &Gpu,
    x: &Tensor,
    w: &Tensor,
    y: &Tensor,
    accumulate: bool,
    tile: CoopTile,
) -> Result<Dispatch> {
    coop_dispatch(gpu, x, &[w], &[y], accumulate, tile, None)
}

/// Several GEMMs sharing x in one dispatch: ys[i] = x · ws[i]^T for up to three weights of one
/// type and row length (q, k, v; gate, up), with `CoopTile::pick`'s tile for their rows
/// together. One dispatch fills the GPU where each alone would not (TinyLlama's k and v make
/// 32 workgroups each) and saves the dependent dispatches' ramps. Same rounding as
/// `matmul_coop`, output for output.
pub fn matmul_coop_multi(
    gpu: &Gpu,
    x: &Tensor,
    ws: &[&Tensor],
    ys: &[&Tensor],
) -> Result<Dispatch> {
    let t = x_rows(x);
    let n: usize = ws
        .iter()
        .map(|w| w.shape.first().copied().unwrap_or(1))
        .sum();
    let float = ws.first().is_some_and(|w| CoopTile::float_weight(w));
    coop_dispatch(gpu, x, ws, ys, false, CoopTile::pick(t, n, float), None)
}

/// `matmul_coop_multi` with an explicit tile.
pub fn matmul_coop_multi_with(
    gpu: &Gpu,
    x: &Tensor,
    ws: &[&Tensor],
    ys: &[&Tensor],
    tile: CoopTile,
) -> Result<Dispatch> {
    coop_dispatch(gpu, x, ws, ys, false, tile, None)
}

/// SwiGLU's activation in one tensor-core dispatch: act = silu(x · w_gate^T) * (x · w_up^T),
/// rounded to f16 (saturating), the down projection's input. Each workgroup multiplies x by
/// matching gate and up rows (half its tile each) and applies SiLU * up to its accumulators,
/// so the f32 gate and up outputs and a `silu_mul` dispatch are not needed. x: f32 or f16
/// [T, K]; w_gate, w_up: weights of one type [N, K] (K % 16 == 0, N even); act: f16 [T, N].
/// The tile is `CoopTile::pick`'s for 2N rows. Same roundings as `matmul_coop_multi` and
/// `elementwise::silu_mul` with an f16 output.
pub fn matmul_coop_glu(
    gpu: &Gpu,
    x: &Tensor,
    w_gate: &Tensor,
    w_up: &Tensor,
    act: &Tensor,
) -> Result<Dispatch> {
    let t = x_rows(x);
    let n = w_gate.shape.first().copied().unwrap_or(1);
    let tile = CoopTile::pick(t, 2 * n, CoopTile::float_weight(w_gate));
    matmul_coop_glu_with(gpu, x, w_gate, w_up, act, tile)
}

/// `matmul_coop_glu` with an explicit tile (its lanes must stage exactly two weight chunks a
/// step, sg_n be 2 or 4, and each round of parked tiles hold whole rows of subgroups:
/// `glu_fits`).
pub fn matmul_coop_glu_with(
    gpu: &Gpu,
    x: &Tensor,
    w_gate: &Tensor,
    w_up: &Tensor,
    act: &Tensor,
    tile: CoopTile,
) -> Result<Dispatch> {
    coop_dispatch(gpu, x, &[w_gate, w_up], &[], false, tile, Some(act))
}

/// Whether `tile` can run `matmul_coop_glu` with subgroups of `sg` lanes: each lane stages one
/// gate chunk and one up chunk a step (the shader's W_PER = 2 and WN = 2 WG), and a round of
/// parked tiles (up to 8 subgroups) holds whole rows of subgroups, so gate tiles meet their up
/// tiles.
pub fn glu_fits(tile: &CoopTile, sg: u32) -> bool {
    let lanes = sg.saturating_mul(tile.sg_t).saturating_mul(tile.sg_n);
    let chunks = tile.rows().saturating_mul(tile.bk) / 16;
    chunks == lanes.saturating_mul(2)
        && (tile.sg_n == 2 || tile.sg_n == 4)
        && tile.parked(true).is_multiple_of(tile.sg_n)
}

/// Whether the prompt pass should take `matmul_coop_glu` for T tokens and these weights on
/// `gpu`: cooperative matrices, float gate and up weights of one type and shape with N even,
/// and a picked tile that `glu_fits` (every preset does with 32-lane subgroups). Quantised
/// weights keep `matmul_coop_multi` (or single GEMMs) + `silu_mul`: on the H100 at T = 512
/// their fused form measured slower (TinyLlama Q4_K_M pp512 39.6-39.8k -> 38.1-39.4k,
/// Llama-2-7B Q4_K_M 9,740-9,789 -> 9,268-9,380), where float weights gained (TinyLlama F16
/// 48.9-50.3k -> 51.9k; benches/results/2026-11-24-h100-s11/ab-glu*).
pub fn glu_supported(gpu: &Gpu, t: usize, w_gate: &Tensor, w_up: &Tensor) -> bool {
    let Some(&n) = w_gate.shape.first() else {
        return false;
    };
    coop_available(gpu)
        && t > 0
        && CoopTile::float_weight(w_gate)
        && w_gate.elem == w_up.elem
        && w_gate.shape == w_up.shape
        && n.is_multiple_of(2)
        && glu_fits(&CoopTile::pick(t, 2 * n, true), gpu.caps.subgroup_size.1)
}

/// The sizes of a GLU dispatch: gate and up alike ([N, K], one type, N even), act f16 [T, N].
fn glu_sizes(x: &Tensor, ws: &[&Tensor], act: &Tensor, x_elem: Elem) -> Result<Vec<Sizes>> {
    let [gate, up] = ws else {
        return Err(EngineError::Shape {
            op: OP,
            detail: format!("SwiGLU: want a gate and an up weight, got {}", ws.len()),
        });
    };
    let s = check_xy(OP, x, gate, act, x_elem, Elem::F16)?;
    if check_weight(OP, "w_up", up)? != (s.dtype, s.n, s.k) || !s.n.is_multiple_of(2) {
        return Err(EngineError::Shape {
            op: OP,
            detail: format!(
                "SwiGLU: gate {:?} {:?} and up {:?} {:?} must match, with an even number of rows",
                gate.elem, gate.shape, up.elem, up.shape
            ),
        });
    }
    Ok(vec![s; 2])
}

/// x's rows (tokens) for the tile pick; 1 where x is malformed (`coop_dispatch` reports it).
fn x_rows(x: &Tensor) -> usize {
    match x.shape.last() {
        Some(&k) if k > 0 => x.numel() / k,
        _ => 1,
    }
}

/// Each output a buffer of its own: not another output's (the kernels write each output
/// from its start) and not a weight's (a buffer bound read-only and read-write in one dispatch
/// fails wgpu's validation).
fn check_outputs(op: &'static str, ws: &[&Tensor], outs: &[&Tensor]) -> Result<()> {
    for (i, o) in outs.iter().enumerate() {
        let whose = if outs[..i].iter().any(|p| p.buffer == o.buffer) {
            "another output's"
        } else if ws.iter().any(|w| w.buffer == o.buffer) {
            "a weight's"
        } else {
            continue;
        };
        return Err(EngineError::Shape {
            op,
            detail: format!("output {i} is {whose} buffer"),
        });
    }
    Ok(())
}

/// Params of matmul_coop.wgsl (its `Params`).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct CoopParams {
    n: u32,
    k: u32,
    t: u32,
    nb: u32,
    n1: u32,
    n2: u32,
    nb1: u32,
    nb2: u32,
    c1: u32,
    c2: u32,
    cols: u32,
    _pad: u32,
}

/// The dispatch of 1..=3 GEMMs sharing x (`ws[i]` into `ys[i]`), or with `glu` SwiGLU's
/// activation from `ws` = [gate, up] into that f16 tensor (`ys` empty), every check first.
fn coop_dispatch(
    gpu: &Gpu,
    x: &Tensor,
    ws: &[&Tensor],
    ys: &[&Tensor],
    accumulate: bool,
    tile: CoopTile,
    glu: Option<&Tensor>,
) -> Result<Dispatch> {
    let x_f16 = x.elem == Elem::F16;
    let x_elem = if x_f16 { Elem::F16 } else { Elem::F32 };
    let glu_sizes = glu.map(|act| glu_sizes(x, ws, act, x_elem)).transpose()?;
    if glu.is_none()
        && (ws.is_empty() || ws.len() > 3 || ws.len() != ys.len() || (accumulate && ws.len() > 1))
    {
        return Err(EngineError::Shape {
            op: OP,
            detail: format!(
                "{} weights and {} outputs: want 1 to 3 of each, one to one (accumulating: one)",
                ws.len(),
                ys.len()
            ),
        });
    }
    let sizes = match glu_sizes {
        Some(sizes) => sizes,
        None => ws
            .iter()
            .zip(ys)
            .map(|(w, y)| check_x(OP, x, w, y, x_elem))
            .collect::<Result<Vec<_>>>()?,
    };
    let s = &sizes[0];
    match glu {
        Some(act) => check_outputs(OP, ws, &[act])?,
        None => check_outputs(OP, ws, ys)?,
    }
    if let Some(o) = sizes.iter().find(|o| o.dtype != s.dtype) {
        return Err(EngineError::Shape {
            op: OP,
            detail: format!(
                "weights of one dispatch must share a type: {} and {}",
                s.dtype.name(),
                o.dtype.name()
            ),
        });
    }
    if !coop_available(gpu) {
        return Err(EngineError::Unsupported {
            op: OP,
            detail: format!(
                "needs cooperative matrices 16x16x16 f16 -> f32 (feature {}, shape listed {}), \
                 f16 shaders ({}), subgroups of one size ({:?})",
                gpu.caps.cooperative_matrix,
                gpu.caps.coop_16x16x16_f16_f32,
                gpu.caps.shader_f16,
                gpu.caps.subgroup_size
            ),
            adapter: gpu.info.name.clone(),
        });
    }
    if !s.k.is_multiple_of(16) {
        return Err(EngineError::Shape {
            op: OP,
            detail: format!("K = {} is not a multiple of 16", s.k),
        });
    }
    let sg = gpu.caps.subgroup_size.1;
    let lanes = sg.saturating_mul(tile.sg_t).saturating_mul(tile.sg_n);
    let CoopTile {
        sg_t,
        sg_n,
        tm,
        tn,
        bk,
        depth,
        stages,
        park,
    } = tile;
    let (w_share, x_share) = tile.lane_share(sg, x_f16);
    let bytes = tile.workgroup_bytes(glu.is_some());
    let lim = &gpu.limits;
    if sg_t == 0
        || sg_n == 0
        || !(1..=4).contains(&tm)
        || !(1..=4).contains(&tn)
        || ![16, 32, 64].contains(&bk)
        || depth > 1
        || !(1..=2).contains(&stages)
        || w_share > 2
        || x_share > 8
        || lanes > lim.max_compute_invocations_per_workgroup
        || lanes > lim.max_compute_workgroup_size_x
        || park > 8
        || bytes > lim.max_compute_workgroup_storage_size as u64
        || (glu.is_some() && !glu_fits(&tile, sg))
    {
        return Err(EngineError::Shape {
            op: OP,
            detail: format!(
                "tile {tile:?}: 1..=4 tiles per subgroup each way, bk 16/32/64, depth 0 or 1, 1 or 2 stages, at \
                 most 8 parked tiles, at most {} lanes (subgroups of {sg}), {} B of workgroup memory \
                 (needs {bytes}), 2 weight chunks and 8 x units per lane and step (needs {w_share}, \
                 {x_share}); SwiGLU: exactly 2 chunks a lane, sg_n 2 or 4 and whole rows of subgroups parked",
                lim.max_compute_invocations_per_workgroup,
                lim.max_compute_workgroup_storage_size,
            ),
        });
    }
    let pipeline = gpu.pipeline(
        &wgllama_shaders::MATMUL_COOP,
        "matmul_coop",
        &[
            ("DT", s.dtype.ggml_id() as f64),
            ("ACC", accumulate as u32 as f64),
            ("SG", sg as f64),
            ("SG_T", sg_t as f64),
            ("SG_N", sg_n as f64),
            ("TM", tm as f64),
            ("TN", tn as f64),
            ("BK", bk as f64),
            ("DEPTH", depth as f64),
            ("STAGES", stages as f64),
            ("XH", x_f16 as u32 as f64),
            ("NW", ws.len() as f64),
            // One loop per weight for float weights (H100, TinyLlama at T = 512: fused F16
            // GEMMs 10% faster, fused Q4_K ones 6% slower; benches/results/2026-11-24-h100-s9/split/).
            (
                "SPLIT",
                (!s.dtype.is_quantized() && glu.is_none()) as u32 as f64,
            ),
            ("GLU", glu.is_some() as u32 as f64),
            ("PARK_MAX", tile.park_max(glu.is_some()) as f64),
        ],
    )?;
    // SwiGLU: one region, each tile column half gate, half up rows.
    let cols: Vec<u32> = match glu {
        Some(_) => vec![s.n.div_ceil(tile.rows() as usize / 2) as u32],
        None => sizes
            .iter()
            .map(|o| o.n.div_ceil(tile.rows() as usize) as u32)
            .collect(),
    };
    let col = |i: usize| cols.get(i).copied().unwrap_or(0);
    let n_of = |i: usize| sizes.get(i).map_or(0, |o| o.n as u32);
    let nb_of = |i: usize| {
        sizes
            .get(i)
            .map_or(0, |o| (o.n * o.k / o.dtype.block_size()) as u32)
    };
    let params = CoopParams {
        n: n_of(0),
        k: s.k as u32,
        t: s.t as u32,
        nb: nb_of(0),
        n1: n_of(1),
        n2: n_of(2),
        nb1: nb_of(1),
        nb2: nb_of(2),
        c1: col(0),
        c2: col(0) + col(1),
        cols: cols.iter().sum(),
        _pad: 0,
    };
    let tiles = s.t.div_ceil(tile.tokens() as usize) * params.cols as usize;
    let workgroups = grid(gpu, tiles as u32);
    let u = gpu.uniform("matmul_coop.params", &params);
    // Unused weight and output slots bind weight 0 and y 0 (SwiGLU: its f16 output) again,
    // never read or written.
    let w_at = |i: usize| &ws.get(i).unwrap_or(&ws[0]).buffer;
    let y_at = |i: usize| match glu {
        Some(act) => &act.buffer,
        None => &ys.get(i).unwrap_or(&ys[0]).buffer,
    };
    let label = if glu.is_some() {
        variant_label("matmul_coop_glu", s.dtype)
    } else if ws.len() > 1 {
        variant_label("matmul_coop_multi", s.dtype)
    } else {
        variant_label(OP, s.dtype)
    };
    let bind_group = gpu.bind(
        label,
        &pipeline,
        &[
            &u,
            w_at(0),
            &x.buffer,
            y_at(0),
            w_at(1),
            w_at(2),
            y_at(1),
            y_at(2),
            y_at(0),
        ],
    );
    let (t, k) = (s.t as u64, s.k as u64);
    let x_bytes = if x_f16 { 2 } else { 4 } * t * k;
    let mut cost = Cost {
        bytes: x_bytes,
        flops: 0,
    };
    for o in &sizes {
        let n = o.n as u64;
        cost.bytes +=
            crate::weights::gpu_bytes(o.dtype, n * k) + 4 * t * n * if accumulate { 2 } else { 1 };
        cost.flops += 2 * t * n * k;
    }
    if glu.is_some() {
        // One f16 output for the two weights, not two f32 ones.
        cost.bytes -= 6 * t * s.n as u64;
    }
    Ok(Dispatch {
        label,
        idle_keys: 0,
        pipeline,
        bind_group,
        workgroups,
        cost,
    })
}

/// Lanes per workgroup of the shader's `dequant_f16` (DQ_WG).
const DQ_WG: usize = 256;

/// Decodes 1..=3 weights of one type into f16 copies, `outs[i]` = `ws[i]` as an F16 weight of
/// the same shape, with the GEMM's own staging decode, so `matmul_coop` over the copies gives
/// the same outputs as over the originals (checked bit for bit on the H100 by
/// `ops_matmul_coop`). Each out may be a view of a larger buffer (a scratch shared by several
/// weights); the first N K f16 values of its buffer are written. Needs cooperative matrices
/// (the decode lives in matmul_coop.wgsl) and K a multiple of 16.
pub fn dequant_f16(gpu: &Gpu, ws: &[&Tensor], outs: &[&Tensor]) -> Result<Dispatch> {
    const WHAT: &str = "matmul_coop.dequant_f16";
    let bad = |detail: String| EngineError::Shape { op: WHAT, detail };
    if ws.is_empty() || ws.len() > 3 || ws.len() != outs.len() {
        return Err(bad(format!(
            "{} weights and {} outputs: want 1 to 3 of each, one to one",
            ws.len(),
            outs.len()
        )));
    }
    let mut sizes = Vec::with_capacity(ws.len());
    for (i, (w, out)) in ws.iter().zip(outs).enumerate() {
        let (dtype, n, k) = check_weight(WHAT, &format!("weight {i}"), w)?;
        let need = 2 * (n * k) as u64;
        if out.elem != Elem::Weight(wgllama_loaders::DType::F16)
            || out.shape != w.shape
            || out.buffer.size() < need
        {
            return Err(bad(format!(
                "output {i}: want an F16 weight {:?} in at least {need} bytes, got {:?} {:?} \
                 in {} bytes",
                w.shape,
                out.elem,
                out.shape,
                out.buffer.size()
            )));
        }
        sizes.push((dtype, n, k));
    }
    check_outputs(WHAT, ws, outs)?;
    let (dtype, _, k) = sizes[0];
    if let Some(&(d, _, kk)) = sizes.iter().find(|s| s.0 != dtype || s.2 != k) {
        return Err(bad(format!(
            "weights of one dispatch share a type and row length: {} K = {k} and {} K = {kk}",
            dtype.name(),
            d.name()
        )));
    }
    if !k.is_multiple_of(16) {
        return Err(bad(format!("K = {k} is not a multiple of 16")));
    }
    let sg = gpu.caps.subgroup_size.1;
    if !coop_available(gpu) || !sg.is_multiple_of(2) || !(DQ_WG as u32).is_multiple_of(sg) {
        return Err(EngineError::Unsupported {
            op: WHAT,
            detail: format!(
                "its decode is matmul_coop's, which needs cooperative matrices, and its stores \
                 whole subgroups of an even size dividing {DQ_WG} (subgroups {:?})",
                gpu.caps.subgroup_size
            ),
            adapter: gpu.info.name.clone(),
        });
    }
    let chunks: Vec<u64> = sizes.iter().map(|&(_, n, k)| (n * k / 16) as u64).collect();
    let all: u64 = chunks.iter().sum();
    // The shader packs a chunk's index in its weight into 29 bits.
    if all > u32::MAX as u64 || chunks.iter().any(|&c| c >= 1 << 29) {
        return Err(bad(format!(
            "{chunks:?} chunks of 16 values: beyond the kernel's indices"
        )));
    }
    let at = |i: usize| sizes.get(i).copied();
    let n_of = |i: usize| at(i).map_or(0, |(_, n, _)| n as u32);
    let nb_of = |i: usize| at(i).map_or(0, |(d, n, k)| (n * k / d.block_size()) as u32);
    let chunk = |i: usize| chunks.get(i).copied().unwrap_or(0) as u32;
    let params = CoopParams {
        n: n_of(0),
        k: k as u32,
        t: 0,
        nb: nb_of(0),
        n1: n_of(1),
        n2: n_of(2),
        nb1: nb_of(1),
        nb2: nb_of(2),
        c1: chunk(0),
        c2: chunk(0) + chunk(1),
        cols: all as u32,
        _pad: 0,
    };
    let pipeline = gpu.pipeline(
        &wgllama_shaders::MATMUL_COOP,
        "dequant_f16",
        &[
            ("DT", dtype.ggml_id() as f64),
            ("NW", ws.len() as f64),
            ("DQ_WG", DQ_WG as f64),
        ],
    )?;
    let u = gpu.uniform("dequant_f16.params", &params);
    let w_at = |i: usize| &ws.get(i).unwrap_or(&ws[0]).buffer;
    let o_at = |i: usize| &outs.get(i).unwrap_or(&outs[0]).buffer;
    let label = variant_label("dequant_f16", dtype);
    let bind_group = gpu.bind_at(
        label,
        &pipeline,
        &[
            (0, &u),
            (1, w_at(0)),
            (4, w_at(1)),
            (5, w_at(2)),
            (9, o_at(0)),
            (10, o_at(1)),
            (11, o_at(2)),
        ],
    );
    let values: u64 = sizes.iter().map(|&(_, n, k)| (n * k) as u64).sum();
    let bytes: u64 = sizes
        .iter()
        .map(|&(d, n, k)| crate::weights::gpu_bytes(d, (n * k) as u64))
        .sum::<u64>()
        + 2 * values;
    Ok(Dispatch {
        label,
        idle_keys: 0,
        pipeline,
        bind_group,
        workgroups: grid(gpu, all.div_ceil(DQ_WG as u64) as u32),
        cost: Cost {
            bytes,
            flops: values,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::CoopTile;

    /// `pick` for float weights counts whole waves: TinyLlama's fused q/k/v (2560 rows) takes
    /// LARGE's one wave over MEDIUM's two, its 2048-row layers MEDIUM's one wave; Llama-2-7B's
    /// layers fill LARGE's waves; short prompts take MEDIUM; quantised weights keep the
    /// workgroup-count rule.
    #[test]
    fn pick_counts_waves_for_float_weights() {
        let (large, medium, small) = (CoopTile::LARGE, CoopTile::MEDIUM, CoopTile::SMALL);
        for (t, n, want) in [
            (512, 2048 + 2 * 256, large),
            (512, 2048, medium),
            (512, 2 * 5632, large),
            (512, 3 * 4096, large),
            (512, 4096, large),
            (512, 2 * 11008, large),
            (64, 2 * 11008, medium),
            (128, 256, medium),
            (2048, 2048, large),
        ] {
            assert_eq!(CoopTile::pick(t, n, true), want, "T={t} N={n}");
        }
        assert_eq!(CoopTile::pick(512, 2048 + 2 * 256, false), small);
        assert_eq!(CoopTile::pick(512, 4096, false), large);
    }
}
