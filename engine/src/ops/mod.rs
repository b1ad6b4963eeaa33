//! One module per WGSL kernel family (same name as its `.wgsl`), each with a `bytemuck`
//! params struct mirroring the WGSL one and functions that build `Dispatch`es.

pub mod attention;
pub mod attention_coop;
pub mod attention_decode;
pub mod attention_merge;
pub mod attention_prefill;
pub mod dequant;
pub mod elementwise;
pub mod embedding;
pub mod kvcache;
pub mod matmul;
pub mod matmul_coop;
pub mod matvec;
pub mod prefetch;
pub mod rmsnorm;
pub mod rope;
pub mod rope_kv;
pub mod sample;
pub mod smoke;
pub mod softmax;

use crate::error::{EngineError, Result};
use crate::gpu::Gpu;
use crate::tensor::{Elem, Tensor};

/// How the one-workgroup reductions (rmsnorm, the int8 quantisers) sum on this adapter:
/// subgroup operations where its subgroups have 8 to 64 lanes, a power of two (reduce_sg.wgsl
/// keeps 128 partials; the kernels' 64+ lanes are whole subgroups), else workgroup memory.
pub fn sg_reduction(gpu: &Gpu) -> matvec::Reduction {
    let (min, max) = gpu.caps.subgroup_size;
    if gpu.caps.subgroups && min >= 8 && max.is_power_of_two() && max <= 64 {
        matvec::Reduction::Subgroup
    } else {
        matvec::Reduction::Workgroup
    }
}

/// Checks a tensor's element type and size before binding it, naming the op and operand.
pub(crate) fn expect(
    op: &'static str,
    what: &str,
    t: &Tensor,
    elem: Elem,
    numel: usize,
) -> Result<()> {
    if t.elem != elem || t.numel() != numel {
        return Err(EngineError::Shape {
            op,
            detail: format!(
                "{what}: want {elem:?} x {numel}, got {:?} {:?}",
                t.elem, t.shape
            ),
        });
    }
    Ok(())
}
