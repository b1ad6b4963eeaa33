/// Errors of the GPU runtime. Messages name the adapter, tensor or limit involved.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("no GPU adapter found (wgpu saw none{hint}); on a machine without a GPU install lavapipe: apt-get install -y mesa-vulkan-drivers libvulkan1")]
    NoAdapter { hint: String },
    #[error("no adapter matches {wanted:?}; adapters found: {found}")]
    AdapterNotFound { wanted: String, found: String },
    #[error("request_device on {adapter}: {source}")]
    RequestDevice {
        adapter: String,
        #[source]
        source: wgpu::RequestDeviceError,
    },
    #[error("{what} needs {needed} bytes in one buffer binding, over this adapter's limit of {limit} bytes ({adapter})")]
    TooLarge {
        what: String,
        needed: u64,
        limit: u64,
        adapter: String,
    },
    #[error("GPU error in {context}: {message}")]
    Gpu { context: String, message: String },
    #[error("shape mismatch in {op}: {detail}")]
    Shape { op: &'static str, detail: String },
    #[error("{op} is not available on this device ({adapter}): {detail}")]
    Unsupported {
        op: &'static str,
        detail: String,
        adapter: String,
    },
    #[error("{name}={value:?}: expected {expected}")]
    Setting {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("golden check: {0}")]
    Golden(String),
    #[error(transparent)]
    Load(#[from] wgllama_loaders::LoadError),
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;
