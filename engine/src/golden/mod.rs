//! Checks against golden files made by independent references (golden/ has the scripts).

pub mod kernels;
pub mod model;

use std::path::Path;

use crate::error::{EngineError, Result};

/// Reads a golden safetensors file whole (they are small).
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| EngineError::Golden(format!("{}: {e}", path.display())))
}

pub(crate) fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<safetensors::SafeTensors<'a>> {
    safetensors::SafeTensors::deserialize(bytes).map_err(|e| {
        EngineError::Golden(format!("{}: not a safetensors file: {e}", path.display()))
    })
}

/// A tensor of the golden file as f32 / i32 / raw bytes, with its shape.
pub(crate) fn f32s(
    st: &safetensors::SafeTensors<'_>,
    path: &Path,
    name: &str,
) -> Result<(Vec<f32>, Vec<usize>)> {
    let t = tensor(st, path, name, safetensors::Dtype::F32)?;
    Ok((bytemuck::pod_collect_to_vec(t.data()), t.shape().to_vec()))
}

pub(crate) fn i32s(st: &safetensors::SafeTensors<'_>, path: &Path, name: &str) -> Result<Vec<i32>> {
    let t = tensor(st, path, name, safetensors::Dtype::I32)?;
    Ok(bytemuck::pod_collect_to_vec(t.data()))
}

pub(crate) fn tensor<'a>(
    st: &safetensors::SafeTensors<'a>,
    path: &Path,
    name: &str,
    dtype: safetensors::Dtype,
) -> Result<safetensors::tensor::TensorView<'a>> {
    let t = st
        .tensor(name)
        .map_err(|e| EngineError::Golden(format!("{}: tensor {name}: {e}", path.display())))?;
    if t.dtype() != dtype {
        return Err(EngineError::Golden(format!(
            "{}: tensor {name} is {:?}, expected {dtype:?}",
            path.display(),
            t.dtype()
        )));
    }
    Ok(t)
}
