//! Pipelines (compiled once per variant) and recorded dispatches.
//!
//! A kernel family's module builds `Dispatch`es at load time: pipeline, bind group and grid
//! are fixed, so running a graph is only `set_pipeline / set_bind_group / dispatch` in one
//! compute pass. Values that change per token live in buffers the dispatches already bind.

use crate::error::{EngineError, Result};
use crate::gpu::Gpu;
use wgllama_shaders::Shader;

/// Bytes moved and arithmetic done by one dispatch, for the profiler's GB/s and GFLOP/s.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cost {
    pub bytes: u64,
    pub flops: u64,
}

/// One recorded kernel launch.
#[derive(Clone, Debug)]
pub struct Dispatch {
    pub label: &'static str,
    /// The dispatch does nothing in a pass whose tokens attend to at most this many keys
    /// (pos + t): `attention_decode`'s merge while one split covers every key. Recorders that
    /// know the count leave it out (`Graph::record`), saving the dispatch's launch and barrier
    /// in the decode chain. 0 for dispatches that always work.
    pub idle_keys: usize,
    pub pipeline: wgpu::ComputePipeline,
    pub bind_group: wgpu::BindGroup,
    pub workgroups: [u32; 3],
    pub cost: Cost,
}

impl Dispatch {
    /// Whether a pass attending to `keys` keys has work for this dispatch.
    pub fn works_at(&self, keys: usize) -> bool {
        keys > self.idle_keys
    }

    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        let [x, y, z] = self.workgroups;
        pass.dispatch_workgroups(x, y, z);
    }
}

/// Spreads `n` workgroups over x and y: one dimension holds at most 65535 (the vocab-sized
/// mat-vec needs more). Shaders rebuild the linear id as `wid.x + wid.y * nwg.x` and
/// return early past `n`.
pub fn grid(gpu: &Gpu, n: u32) -> [u32; 3] {
    let max = gpu.limits.max_compute_workgroups_per_dimension.max(1);
    if n <= max {
        [n.max(1), 1, 1]
    } else {
        let y = n.div_ceil(max);
        [n.div_ceil(y), y, 1]
    }
}

impl Gpu {
    /// The compute pipeline for `shader`'s `entry` with these override constants, compiled on
    /// first use and cached: every variant is built once per device.
    pub fn pipeline(
        &self,
        shader: &Shader,
        entry: &str,
        constants: &[(&str, f64)],
    ) -> Result<wgpu::ComputePipeline> {
        let key = format!("{}:{entry}:{constants:?}", shader.name);
        if let Some(p) = self.pipelines.lock().unwrap().get(&key) {
            return Ok(p.clone());
        }
        let module = self.module(shader)?;
        let cache = self.pipeline_cache_handle();
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(&key),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants,
                    // Kernels initialise the workgroup memory they read.
                    zero_initialize_workgroup_memory: false,
                },
                cache: cache.as_ref(),
            });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(EngineError::Gpu {
                context: format!("pipeline {key}"),
                message: e.to_string(),
            });
        }
        self.pipelines.lock().unwrap().insert(key, pipeline.clone());
        Ok(pipeline)
    }

    fn module(&self, shader: &Shader) -> Result<wgpu::ShaderModule> {
        if let Some(m) = self.modules.lock().unwrap().get(shader.name) {
            return Ok(m.clone());
        }
        let source = shader.source();
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(shader.name),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(EngineError::Gpu {
                context: format!("shader {}", shader.name),
                message: e.to_string(),
            });
        }
        self.modules
            .lock()
            .unwrap()
            .insert(shader.name, module.clone());
        Ok(module)
    }

    /// A bind group for `pipeline` binding `buffers` at 0, 1, 2, ... in order.
    pub fn bind(
        &self,
        label: &str,
        pipeline: &wgpu::ComputePipeline,
        buffers: &[&wgpu::Buffer],
    ) -> wgpu::BindGroup {
        let at: Vec<(u32, &wgpu::Buffer)> = (0..).zip(buffers.iter().copied()).collect();
        self.bind_at(label, pipeline, &at)
    }

    /// A bind group for `pipeline` binding each buffer at its binding number: for entry points
    /// whose layout leaves out bindings their module declares (a layout holds only the
    /// bindings the entry point uses).
    pub fn bind_at(
        &self,
        label: &str,
        pipeline: &wgpu::ComputePipeline,
        buffers: &[(u32, &wgpu::Buffer)],
    ) -> wgpu::BindGroup {
        let entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .map(|&(binding, b)| wgpu::BindGroupEntry {
                binding,
                resource: b.as_entire_binding(),
            })
            .collect();
        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(label),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        })
    }

    /// A uniform buffer holding `value` (a kernel's `bytemuck` params struct).
    pub fn uniform<T: bytemuck::Pod>(&self, label: &str, value: &T) -> wgpu::Buffer {
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (std::mem::size_of::<T>() as u64).div_ceil(16) * 16,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.queue
            .write_buffer(&buffer, 0, bytemuck::bytes_of(value));
        buffer
    }

    /// Records `dispatches` into one compute pass, submits, and waits. For tests and one-off
    /// work; the generation loop records its own passes.
    pub fn run(&self, dispatches: &[Dispatch]) -> Result<()> {
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let mut enc = self.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            for d in dispatches {
                d.record(&mut pass);
            }
        }
        self.queue.submit([enc.finish()]);
        if let Some(e) = pollster::block_on(scope.pop()) {
            let labels: Vec<_> = dispatches.iter().map(|d| d.label).collect();
            return Err(EngineError::Gpu {
                context: format!("dispatch {labels:?}"),
                message: e.to_string(),
            });
        }
        self.wait()
    }
}
