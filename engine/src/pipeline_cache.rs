//! The on-disk pipeline cache: compiled pipelines (the driver's machine code) kept between
//! runs, so start-up does not recompile every kernel variant (15-85 ms each on the H100).
//!
//! One file per adapter (`wgpu::util::pipeline_cache_key`: vendor and device ids) in a cache
//! directory. wgpu and the driver check the data's header against the device and driver
//! version and start empty when it does not match (`fallback`), so a stale or corrupt file
//! costs a recompile, never an error. The file is rewritten when the Gpu is dropped, if the
//! cache grew.

use std::path::{Path, PathBuf};

use crate::gpu::Gpu;

pub(crate) struct PipelineCacheFile {
    pub(crate) cache: wgpu::PipelineCache,
    path: PathBuf,
    /// Bytes of cache data last read or written: saving is skipped when nothing was added.
    saved_len: usize,
}

impl Gpu {
    /// Uses (and keeps up to date) the pipeline cache for this adapter in `dir`, creating the
    /// directory if needed. Returns the cache file's path, or `None` where the device has no
    /// `PIPELINE_CACHE` feature or the backend has no cache key (then nothing changes).
    /// Call before building pipelines: only pipelines created afterwards use it.
    pub fn use_pipeline_cache(&self, dir: &Path) -> Option<PathBuf> {
        if !self.caps.pipeline_cache {
            return None;
        }
        let key = wgpu::util::pipeline_cache_key(&self.info)?;
        let path = dir.join(format!("{key}.bin"));
        let data = std::fs::read(&path).ok();
        // SAFETY: wgpu requires `data` to come from `PipelineCache::get_data` of a compatible
        // adapter; it validates the header it wrote (adapter, driver, checksum) and with
        // `fallback: true` starts an empty cache when the data does not match.
        let cache = unsafe {
            self.device
                .create_pipeline_cache(&wgpu::PipelineCacheDescriptor {
                    label: Some("wgllama pipelines"),
                    data: data.as_deref(),
                    fallback: true,
                })
        };
        let saved_len = data.map_or(0, |d| d.len());
        *self.pipeline_cache.lock().unwrap() = Some(PipelineCacheFile {
            cache,
            path: path.clone(),
            saved_len,
        });
        Some(path)
    }

    /// Writes the pipeline cache to its file if it grew since it was read or last written.
    /// A failed write (read-only directory, full disk) only loses the speed-up: it is
    /// reported, not fatal.
    pub fn save_pipeline_cache(&self) -> std::io::Result<()> {
        let mut guard = self.pipeline_cache.lock().unwrap();
        let Some(file) = guard.as_mut() else {
            return Ok(());
        };
        let Some(data) = file.cache.get_data() else {
            return Ok(());
        };
        if data.len() == file.saved_len {
            return Ok(());
        }
        if let Some(parent) = file.path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        // Write then rename: a concurrent reader never sees a half-written file.
        let tmp = file
            .path
            .with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, &data)?;
        std::fs::rename(&tmp, &file.path)?;
        file.saved_len = data.len();
        Ok(())
    }

    pub(crate) fn pipeline_cache_handle(&self) -> Option<wgpu::PipelineCache> {
        self.pipeline_cache
            .lock()
            .unwrap()
            .as_ref()
            .map(|f| f.cache.clone())
    }
}

/// The default cache directory: `$WGLLAMA_CACHE_DIR`, else `$XDG_CACHE_HOME/wgllama`, else
/// `$HOME/.cache/wgllama`; `None` when none of them is set.
pub fn default_cache_dir() -> Option<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("WGLLAMA_CACHE_DIR")
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("wgllama")))
        .or_else(|| env("HOME").map(|d| d.join(".cache").join("wgllama")))
}
