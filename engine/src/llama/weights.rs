//! A Llama's weights uploaded to the GPU, each tensor in its stored type.

use wgllama_loaders::{DType, LlamaConfig, ModelFile, RopeLayout, TensorView, Weight};

use crate::error::Result;
use crate::gpu::Gpu;
use crate::ops::rope::RopeStyle;
use crate::tensor::Tensor;

/// One transformer block's weights. Matrices are [out_features, in_features].
pub struct LayerWeights {
    pub attn_norm: Tensor, // [D] f32
    pub wq: Tensor,        // [n_heads * head_dim, D]
    pub wk: Tensor,        // [n_kv_heads * head_dim, D]
    pub wv: Tensor,        // [n_kv_heads * head_dim, D]
    pub wo: Tensor,        // [D, n_heads * head_dim]
    pub ffn_norm: Tensor,  // [D] f32
    pub w_gate: Tensor,    // [F, D]
    pub w_up: Tensor,      // [F, D]
    pub w_down: Tensor,    // [D, F]
}

pub struct LlamaWeights {
    pub config: LlamaConfig,
    pub embed: Tensor, // [vocab, D]
    pub layers: Vec<LayerWeights>,
    pub out_norm: Tensor, // [D] f32
    /// The LM head [vocab, D]: the embedding itself when tied.
    pub output: Tensor,
    /// Inverse RoPE frequencies [head_dim / 2], scaling applied.
    pub inv_freq: Tensor,
    pub rope_style: RopeStyle,
    /// Bytes of weights on the GPU.
    pub bytes: u64,
}

impl LlamaWeights {
    /// Whether every layer's Wo, gate and up are F16 or BF16 (decode's L2 prefetch takes a
    /// larger budget for them: `prefetch::Budgets::for_model`).
    pub fn float_layers(&self) -> bool {
        let float = |t: &Tensor| {
            matches!(
                t.elem,
                crate::tensor::Elem::Weight(DType::F16 | DType::BF16)
            )
        };
        self.layers
            .iter()
            .all(|l| float(&l.wo) && float(&l.w_gate) && float(&l.w_up))
    }

    /// Uploads every tensor a Llama needs. `progress(done_bytes, total_bytes)` is called after
    /// each tensor, for a progress bar.
    pub fn load(
        gpu: &Gpu,
        model: &ModelFile,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<LlamaWeights> {
        model.check()?;
        let config = model.config().clone();
        let total = model.total_tensor_bytes();
        let mut done = 0u64;
        let mut upload = |w: Weight| -> Result<Tensor> {
            let view = model.weight(w)?;
            let t = if w.is_norm() {
                upload_f32(gpu, &view)?
            } else {
                upload_view(gpu, &view)?
            };
            done += view.data.len() as u64;
            progress(done, total);
            Ok(t)
        };
        let embed = upload(Weight::TokenEmbd)?;
        let mut layers = Vec::with_capacity(config.n_layers);
        for l in 0..config.n_layers {
            layers.push(LayerWeights {
                attn_norm: upload(Weight::AttnNorm(l))?,
                wq: upload(Weight::AttnQ(l))?,
                wk: upload(Weight::AttnK(l))?,
                wv: upload(Weight::AttnV(l))?,
                wo: upload(Weight::AttnOut(l))?,
                ffn_norm: upload(Weight::FfnNorm(l))?,
                w_gate: upload(Weight::FfnGate(l))?,
                w_up: upload(Weight::FfnUp(l))?,
                w_down: upload(Weight::FfnDown(l))?,
            });
        }
        let out_norm = upload(Weight::OutputNorm)?;
        let output = if config.tied_embeddings {
            embed.clone()
        } else {
            upload(Weight::Output)?
        };
        let inv_freq = model.rope_inv_freqs()?;
        let inv_freq = gpu.upload_f32("rope.inv_freq", &inv_freq, &[inv_freq.len()])?;
        let rope_style = match config.rope_layout {
            RopeLayout::Interleaved => RopeStyle::Interleaved,
            RopeLayout::RotateHalf => RopeStyle::RotateHalf,
        };
        let bytes = model.total_tensor_bytes();
        Ok(LlamaWeights {
            config,
            embed,
            layers,
            out_norm,
            output,
            inv_freq,
            rope_style,
            bytes,
        })
    }
}

/// Norm weights are tiny: convert whatever they are stored as to f32 once.
fn upload_f32(gpu: &Gpu, view: &TensorView<'_>) -> Result<Tensor> {
    let values = view.to_f32()?;
    gpu.upload_f32(&view.info.name, &values, &view.info.shape)
}

fn upload_view(gpu: &Gpu, view: &TensorView<'_>) -> Result<Tensor> {
    let dtype: DType = view.info.dtype;
    gpu.upload_weight(&view.info.name, dtype, &view.info.shape, view.data)
}
