//! Device acquisition, kept apart from execution so tests and tools can inject a device.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::error::{EngineError, Result};

/// How to pick an adapter. `adapter` is a case-insensitive substring of the adapter name or
/// the backend ("vulkan", "llvmpipe", "H100"); `WGLLAMA_ADAPTER` supplies it when unset.
#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    pub adapter: Option<String>,
    /// Directory of the on-disk pipeline cache (`pipeline_cache.rs`); `None` disables it.
    pub pipeline_cache: Option<std::path::PathBuf>,
}

/// Optional capabilities the kernels may use; every kernel has a path without each one.
#[derive(Clone, Copy, Debug, Default)]
pub struct Caps {
    pub shader_f16: bool,
    pub subgroups: bool,
    pub timestamps: bool,
    pub timestamps_in_passes: bool,
    pub pipeline_cache: bool,
    /// EXPERIMENTAL_COOPERATIVE_MATRIX is enabled on the device.
    pub cooperative_matrix: bool,
    /// The adapter lists 16x16x16 cooperative matrices with f16 inputs and f32 accumulators,
    /// subgroup scope (what matmul_coop.wgsl uses).
    pub coop_16x16x16_f16_f32: bool,
    /// Lanes per subgroup the adapter reports (min, max); 0 when unknown.
    pub subgroup_size: (u32, u32),
    /// Storage buffers may be declared `@coherent` (MEMORY_DECORATION_COHERENT: SPIR-V's
    /// Coherent decoration on Vulkan): their plain loads skip caches that are not coherent
    /// across workgroups. Whether that makes another workgroup's writes in the same dispatch
    /// visible also depends on the backend's barriers (`attention_decode::fold_supported`).
    pub coherent: bool,
}

/// An open device: the adapter's own limits (not wgpu's defaults) and the features it has.
pub struct Gpu {
    pub adapter: wgpu::Adapter,
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub caps: Caps,
    /// Compiled pipelines by (shader, entry point, override constants): each variant compiles once.
    pub(crate) pipelines: Mutex<HashMap<String, wgpu::ComputePipeline>>,
    pub(crate) modules: Mutex<HashMap<&'static str, wgpu::ShaderModule>>,
    pub(crate) pipeline_cache: Mutex<Option<crate::pipeline_cache::PipelineCacheFile>>,
}

impl Drop for Gpu {
    fn drop(&mut self) {
        // Best effort: a cache that cannot be written only costs the next start-up time.
        let _ = self.save_pipeline_cache();
    }
}

impl Gpu {
    /// Opens the adapter chosen by `opts` (or `WGLLAMA_ADAPTER`), else the first
    /// discrete/integrated GPU, else whatever exists (lavapipe on CPU-only machines).
    pub fn new(opts: &GpuOptions) -> Result<Gpu> {
        // GL is not probed unless asked for (WGPU_BACKEND=gl): it cannot run these kernels well,
        // fails on the H100 box, and its probe prints EGL noise on headless machines.
        let backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::PRIMARY);
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        desc.backends = backends;
        let instance = wgpu::Instance::new(desc);
        let adapters = pollster::block_on(instance.enumerate_adapters(backends));
        let wanted = opts
            .adapter
            .clone()
            .or_else(|| std::env::var("WGLLAMA_ADAPTER").ok());
        let adapter = pick_adapter(adapters, wanted.as_deref())?;
        let gpu = Self::from_adapter(adapter)?;
        if let Some(dir) = &opts.pipeline_cache {
            gpu.use_pipeline_cache(dir);
        }
        Ok(gpu)
    }

    /// Requests a device on `adapter` with all of its limits and the optional features it has.
    pub fn from_adapter(adapter: wgpu::Adapter) -> Result<Gpu> {
        let info = adapter.get_info();
        let have = adapter.features();
        let optional = wgpu::Features::SHADER_F16
            | wgpu::Features::SUBGROUP
            | wgpu::Features::TIMESTAMP_QUERY
            | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES
            | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS
            | wgpu::Features::PIPELINE_CACHE
            | wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX
            | wgpu::Features::MEMORY_DECORATION_COHERENT;
        let features = have & optional;
        let experimental_features =
            if features.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX) {
                // SAFETY: wgpu asks callers of experimental features to accept that its
                // implementation of them may still have bugs. The only experimental feature
                // requested is cooperative matrices, used by matmul_coop.wgsl alone (an opt-in
                // op whose results the op tests check against the CPU reference).
                unsafe { wgpu::ExperimentalFeatures::enabled() }
            } else {
                wgpu::ExperimentalFeatures::disabled()
            };
        let limits = adapter.limits();
        let desc = wgpu::DeviceDescriptor {
            label: Some("wgllama"),
            required_features: features,
            required_limits: limits.clone(),
            experimental_features,
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        };
        let (device, queue) =
            pollster::block_on(adapter.request_device(&desc)).map_err(|source| {
                EngineError::RequestDevice {
                    adapter: info.name.clone(),
                    source,
                }
            })?;
        Ok(Self::from_parts(adapter, device, queue))
    }

    /// Wraps a device the caller already opened (tests, embedding applications).
    pub fn from_parts(adapter: wgpu::Adapter, device: wgpu::Device, queue: wgpu::Queue) -> Gpu {
        let info = adapter.get_info();
        let f = device.features();
        let cooperative_matrix = f.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX);
        let coop_16x16x16_f16_f32 = cooperative_matrix
            && adapter.cooperative_matrix_properties().iter().any(|p| {
                use wgpu::CooperativeScalarType as S;
                (p.m_size, p.n_size, p.k_size) == (16, 16, 16)
                    && p.ab_type == S::F16
                    && p.cr_type == S::F32
            });
        let caps = Caps {
            shader_f16: f.contains(wgpu::Features::SHADER_F16),
            subgroups: f.contains(wgpu::Features::SUBGROUP),
            timestamps: f.contains(wgpu::Features::TIMESTAMP_QUERY),
            timestamps_in_passes: f.contains(wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES),
            pipeline_cache: f.contains(wgpu::Features::PIPELINE_CACHE),
            cooperative_matrix,
            coop_16x16x16_f16_f32,
            subgroup_size: (info.subgroup_min_size, info.subgroup_max_size),
            coherent: f.contains(wgpu::Features::MEMORY_DECORATION_COHERENT),
        };
        Gpu {
            limits: device.limits(),
            adapter,
            device,
            queue,
            info,
            caps,
            pipelines: Mutex::new(HashMap::new()),
            modules: Mutex::new(HashMap::new()),
            pipeline_cache: Mutex::new(None),
        }
    }

    /// One line naming the adapter, as printed by every command that runs kernels.
    pub fn describe(&self) -> String {
        let i = &self.info;
        format!(
            "{} ({:?}, {:?}, driver {} {})",
            i.name, i.backend, i.device_type, i.driver, i.driver_info
        )
    }

    /// Largest buffer a single storage binding may cover on this adapter.
    pub fn max_binding(&self) -> u64 {
        self.limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
    }

    /// Blocks until all submitted work has finished.
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| EngineError::Gpu {
                context: "poll".into(),
                message: e.to_string(),
            })
    }
}

fn describe_adapter(a: &wgpu::Adapter) -> String {
    let i = a.get_info();
    format!("{} ({:?}, {:?})", i.name, i.backend, i.device_type)
}

fn pick_adapter(adapters: Vec<wgpu::Adapter>, wanted: Option<&str>) -> Result<wgpu::Adapter> {
    let usable = adapters;
    if usable.is_empty() {
        return Err(EngineError::NoAdapter {
            hint: String::new(),
        });
    }
    if let Some(w) = wanted {
        let w = w.to_lowercase();
        let names: Vec<String> = usable.iter().map(describe_adapter).collect();
        return match usable
            .into_iter()
            .find(|a| describe_adapter(a).to_lowercase().contains(&w))
        {
            Some(a) => Ok(a),
            None => Err(EngineError::AdapterNotFound {
                wanted: w,
                found: names.join("; "),
            }),
        };
    }
    let rank = |a: &wgpu::Adapter| match a.get_info().device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    };
    let mut usable = usable;
    usable.sort_by_key(rank);
    Ok(usable.remove(0))
}
