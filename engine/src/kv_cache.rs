//! Per-layer key and value caches: [ctx, n_kv_heads, head_dim] each, f32 or f16.

use crate::error::{EngineError, Result};
use crate::gpu::Gpu;
use crate::tensor::{Elem, Tensor};

/// Element type of the caches: f16 halves the memory and the bandwidth attention reads, at
/// ~3 decimal digits per cached value; f32 stores k and v exactly as computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvDtype {
    F32,
    F16,
}

impl KvDtype {
    pub fn elem(self) -> Elem {
        match self {
            KvDtype::F32 => Elem::F32,
            KvDtype::F16 => Elem::F16,
        }
    }
    pub fn bytes(self) -> usize {
        match self {
            KvDtype::F32 => 4,
            KvDtype::F16 => 2,
        }
    }
}

/// One layer's caches. Tensors of shape [ctx, n_kv_heads, head_dim], elem F32 or F16 (two
/// halves per u32 word, element 2i in the low half).
pub struct LayerCache {
    pub k: Tensor,
    pub v: Tensor,
}

pub struct KvCache {
    pub dtype: KvDtype,
    pub ctx: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub layers: Vec<LayerCache>,
}

impl KvCache {
    /// Allocates K and V caches for `n_layers` layers of `ctx` slots each (zero-filled). Each
    /// layer's cache is one storage binding, so it must fit the adapter's binding limit.
    pub fn new(
        gpu: &Gpu,
        n_layers: usize,
        ctx: usize,
        n_kv_heads: usize,
        head_dim: usize,
        dtype: KvDtype,
    ) -> Result<KvCache> {
        if ctx == 0 || n_kv_heads == 0 || head_dim == 0 || !head_dim.is_multiple_of(2) {
            return Err(EngineError::Shape {
                op: "kv_cache",
                detail: format!(
                    "ctx={ctx}, n_kv_heads={n_kv_heads}, head_dim={head_dim}: want all > 0, \
                     head_dim even"
                ),
            });
        }
        let bytes = (ctx * n_kv_heads * head_dim * dtype.bytes()) as u64;
        if bytes > gpu.max_binding() {
            let fits = gpu.max_binding() / (n_kv_heads * head_dim * dtype.bytes()) as u64;
            return Err(EngineError::TooLarge {
                what: format!(
                    "one layer's K cache ([ctx={ctx}, n_kv_heads={n_kv_heads}, \
                     head_dim={head_dim}] {dtype:?}; at most {fits} slots fit{})",
                    if dtype == KvDtype::F32 {
                        ", twice as many with an f16 cache"
                    } else {
                        ""
                    }
                ),
                needed: bytes,
                limit: gpu.max_binding(),
                adapter: gpu.info.name.clone(),
            });
        }
        let shape = vec![ctx, n_kv_heads, head_dim];
        let mut layers = Vec::with_capacity(n_layers);
        for l in 0..n_layers {
            let tensor = |what: &str| -> Result<Tensor> {
                Ok(Tensor {
                    buffer: gpu.storage(&format!("kv_cache.{l}.{what}"), bytes)?,
                    elem: dtype.elem(),
                    shape: shape.clone(),
                })
            };
            layers.push(LayerCache {
                k: tensor("k")?,
                v: tensor("v")?,
            });
        }
        Ok(KvCache {
            dtype,
            ctx,
            n_kv_heads,
            head_dim,
            layers,
        })
    }
}
