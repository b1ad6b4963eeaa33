//! GPU tensors: a storage buffer, what its elements are, and a shape (outermost first).

use crate::error::{EngineError, Result};
use crate::gpu::Gpu;
use wgllama_loaders::DType;

/// What a GPU buffer holds. Weights keep their stored type; quantised types whose ggml block
/// is not 4-byte aligned are repacked at upload (see `weights`), so `Weight(dt)` names the
/// logical type, not the byte layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem {
    F32,
    /// Two halves per u32 word (little end first), read with `unpack2x16float`.
    F16,
    U32,
    Weight(DType),
}

#[derive(Clone, Debug)]
pub struct Tensor {
    pub buffer: wgpu::Buffer,
    pub elem: Elem,
    /// Outermost first: a weight is [out_features, in_features], activations [tokens, dim].
    pub shape: Vec<usize>,
}

impl Tensor {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Buffers are padded to 16 bytes so kernels may read whole vec4<u32> words at the end.
fn padded(bytes: u64) -> u64 {
    bytes.div_ceil(16).max(1) * 16
}

const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_DST)
    .union(wgpu::BufferUsages::COPY_SRC);

impl Gpu {
    /// An uninitialised storage buffer, checked against the adapter's binding limit.
    pub fn storage(&self, label: &str, bytes: u64) -> Result<wgpu::Buffer> {
        let size = padded(bytes);
        if size > self.max_binding() {
            return Err(EngineError::TooLarge {
                what: label.to_string(),
                needed: size,
                limit: self.max_binding(),
                adapter: self.info.name.clone(),
            });
        }
        Ok(self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: STORAGE,
            mapped_at_creation: false,
        }))
    }

    /// Copies `data` to a new buffer in chunks, so a large weight never needs a second full
    /// host copy in wgpu's staging memory.
    pub fn upload_bytes(&self, label: &str, data: &[u8]) -> Result<wgpu::Buffer> {
        let buffer = self.storage(label, data.len() as u64)?;
        const CHUNK: usize = 64 << 20;
        for (i, chunk) in data.chunks(CHUNK).enumerate() {
            let tail = chunk.len() % 4;
            let offset = (i * CHUNK) as u64;
            if tail == 0 {
                self.queue.write_buffer(&buffer, offset, chunk);
            } else {
                // write_buffer wants multiples of 4 bytes: pad the last chunk.
                let mut v = chunk.to_vec();
                v.resize(chunk.len() + 4 - tail, 0);
                self.queue.write_buffer(&buffer, offset, &v);
            }
            if data.len() > CHUNK {
                // Flush each chunk so staging memory stays bounded.
                self.queue.submit([]);
            }
        }
        Ok(buffer)
    }

    pub fn upload_f32(&self, label: &str, data: &[f32], shape: &[usize]) -> Result<Tensor> {
        check_numel(label, data.len(), shape)?;
        Ok(Tensor {
            buffer: self.upload_bytes(label, bytemuck::cast_slice(data))?,
            elem: Elem::F32,
            shape: shape.to_vec(),
        })
    }

    /// An `Elem::F16` tensor of `data` rounded to f16 (to nearest, ties to even).
    pub fn upload_f16(&self, label: &str, data: &[f32], shape: &[usize]) -> Result<Tensor> {
        check_numel(label, data.len(), shape)?;
        let halves: Vec<half::f16> = data.iter().map(|&v| half::f16::from_f32(v)).collect();
        Ok(Tensor {
            buffer: self.upload_bytes(label, bytemuck::cast_slice(&halves))?,
            elem: Elem::F16,
            shape: shape.to_vec(),
        })
    }

    pub fn upload_u32(&self, label: &str, data: &[u32], shape: &[usize]) -> Result<Tensor> {
        check_numel(label, data.len(), shape)?;
        Ok(Tensor {
            buffer: self.upload_bytes(label, bytemuck::cast_slice(data))?,
            elem: Elem::U32,
            shape: shape.to_vec(),
        })
    }

    /// An f32 tensor filled with NaN, so a test sees every element a kernel fails to write.
    pub fn poisoned_f32(&self, label: &str, shape: &[usize]) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        self.upload_f32(label, &vec![f32::NAN; n], shape)
    }

    /// A zero-filled f32 tensor (wgpu zero-initialises new buffers).
    pub fn zeros_f32(&self, label: &str, shape: &[usize]) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        Ok(Tensor {
            buffer: self.storage(label, n as u64 * 4)?,
            elem: Elem::F32,
            shape: shape.to_vec(),
        })
    }

    /// An f16 tensor (contents unspecified until a kernel writes it).
    pub fn zeros_f16(&self, label: &str, shape: &[usize]) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        Ok(Tensor {
            buffer: self.storage(label, (n as u64 * 2).next_multiple_of(4))?,
            elem: Elem::F16,
            shape: shape.to_vec(),
        })
    }

    /// Reads a buffer back (tests, `logits`, golden checks; never in the decode loop).
    pub fn read_bytes(&self, buffer: &wgpu::Buffer, bytes: u64) -> Result<Vec<u8>> {
        let size = bytes.div_ceil(4) * 4;
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: size.max(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = self.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(buffer, 0, &staging, 0, size);
        self.queue.submit([enc.finish()]);
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        rx.recv()
            .map_err(|e| EngineError::Gpu {
                context: "readback".into(),
                message: e.to_string(),
            })?
            .map_err(|e| EngineError::Gpu {
                context: "readback".into(),
                message: e.to_string(),
            })?;
        let view = staging.get_mapped_range(..).map_err(|e| EngineError::Gpu {
            context: "readback".into(),
            message: e.to_string(),
        })?;
        let out = view[..bytes as usize].to_vec();
        drop(view);
        staging.unmap();
        Ok(out)
    }

    pub fn read_f32(&self, t: &Tensor) -> Result<Vec<f32>> {
        let bytes = self.read_bytes(&t.buffer, t.numel() as u64 * 4)?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    pub fn read_u32(&self, t: &Tensor) -> Result<Vec<u32>> {
        let bytes = self.read_bytes(&t.buffer, t.numel() as u64 * 4)?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }
}

fn check_numel(label: &str, n: usize, shape: &[usize]) -> Result<()> {
    let want: usize = shape.iter().product();
    if n != want {
        return Err(EngineError::Shape {
            op: "upload",
            detail: format!("{label}: {n} values for shape {shape:?} ({want})"),
        });
    }
    Ok(())
}
