//! Hugging Face checkpoints: one `model.safetensors`, or shards listed by
//! `model.safetensors.index.json`, next to `config.json`.
//!
//! A safetensors file is `u64 header_len`, a JSON header
//! `{name: {dtype, shape, data_offsets: [start, end]}}` and the data; offsets are relative
//! to the end of the header. The `safetensors` crate validates the header (offsets
//! contiguous, sizes agreeing with shapes, the data filling the file exactly); we keep
//! only names, types, shapes and absolute byte ranges so the views can borrow the map.

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::path::{Component, Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors};

use crate::mapped::{map_file, read_small_file, Bytes};
use crate::{DType, LoadError};

pub const SINGLE_FILE: &str = "model.safetensors";
pub const INDEX_FILE: &str = "model.safetensors.index.json";
pub const CONFIG_FILE: &str = "config.json";
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// Index files list one line per tensor; even a 1000-layer model's is a few MB.
const MAX_INDEX_BYTES: u64 = 64 << 20;

/// One tensor of a safetensors file.
#[derive(Clone, Debug)]
pub(crate) struct StTensor {
    pub name: String,
    pub dtype: DType,
    /// Outermost first, as stored.
    pub shape: Vec<usize>,
    /// Absolute byte range in the file.
    pub range: Range<usize>,
}

/// A mapped safetensors file and its parsed header.
pub(crate) struct StFile {
    pub path: PathBuf,
    pub bytes: Bytes,
    /// In data order (which is file order).
    pub tensors: Vec<StTensor>,
}

/// Parses a whole safetensors file held in `bytes`.
pub(crate) fn parse_safetensors(bytes: &[u8], path: &Path) -> Result<Vec<StTensor>, LoadError> {
    if bytes.is_empty() {
        return Err(LoadError::EmptyFile { path: path.into() });
    }
    let bad = |problem: String| LoadError::BadSafetensors {
        path: path.into(),
        problem,
    };
    let (header_len, metadata) =
        SafeTensors::read_metadata(bytes).map_err(|e| bad(e.to_string()))?;
    let data_start = 8 + header_len;
    let mut tensors = Vec::new();
    // offset_keys() lists names in data order.
    for name in metadata.offset_keys() {
        let info = metadata
            .info(&name)
            .expect("offset_keys names a tensor of the header");
        let dtype = match info.dtype {
            Dtype::F32 => DType::F32,
            Dtype::F16 => DType::F16,
            Dtype::BF16 => DType::BF16,
            other => {
                return Err(LoadError::UnsupportedTensorType {
                    path: path.into(),
                    tensor: name,
                    type_name: format!("{other:?}"),
                })
            }
        };
        let (start, end) = info.data_offsets;
        // read_metadata checked that the data fills the file exactly, so these cannot
        // overflow or pass the end; re-check anyway since we slice with them later.
        let range = data_start
            .checked_add(start)
            .zip(data_start.checked_add(end))
            .filter(|(s, e)| s <= e && *e <= bytes.len())
            .map(|(s, e)| s..e)
            .ok_or_else(|| bad(format!("tensor `{name}` lies outside the file")))?;
        tensors.push(StTensor {
            name,
            dtype,
            shape: info.shape.clone(),
            range,
        });
    }
    Ok(tensors)
}

pub(crate) fn open_safetensors(path: &Path) -> Result<StFile, LoadError> {
    let bytes = map_file(path)?;
    let tensors = parse_safetensors(&bytes, path)?;
    Ok(StFile {
        path: path.into(),
        bytes,
        tensors,
    })
}

/// Parses `model.safetensors.index.json`: the shard file of each tensor. Shard names
/// must be plain file names in the same folder.
pub fn parse_shard_index(json: &[u8], path: &Path) -> Result<BTreeMap<String, String>, LoadError> {
    let bad_json = |problem: String| LoadError::BadJson {
        path: path.into(),
        problem,
    };
    let value: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| bad_json(e.to_string()))?;
    let map = value
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| bad_json("no `weight_map` object".into()))?;
    let mut out = BTreeMap::new();
    for (tensor, shard) in map {
        let shard = shard
            .as_str()
            .ok_or_else(|| bad_json(format!("shard of `{tensor}` is not a string")))?;
        if !is_plain_file_name(shard) {
            return Err(LoadError::Malformed {
                path: path.into(),
                problem: format!(
                    "shard `{shard}` of `{tensor}` is not a file name in the model folder"
                ),
            });
        }
        out.insert(tensor.clone(), shard.to_string());
    }
    Ok(out)
}

/// True for `name.ext`-like names: one normal path component (no `..`, `/`, root).
fn is_plain_file_name(name: &str) -> bool {
    let mut parts = Path::new(name).components();
    matches!(
        (parts.next(), parts.next()),
        (Some(Component::Normal(_)), None)
    ) && !name.contains(['/', '\\'])
}

/// Opens every shard of a checkpoint folder: per the index if there is one, else the
/// single file. Shards come back sorted by file name, which is the order
/// `model-00001-of-00004.safetensors`... numbering gives.
pub(crate) fn open_folder(dir: &Path) -> Result<Vec<StFile>, LoadError> {
    let index_path = dir.join(INDEX_FILE);
    if !index_path.exists() {
        let single = dir.join(SINGLE_FILE);
        if !single.exists() {
            return Err(LoadError::MissingFile {
                path: single,
                what: "model.safetensors or model.safetensors.index.json",
            });
        }
        return Ok(vec![open_safetensors(&single)?]);
    }

    let index_json = read_small_file(&index_path, MAX_INDEX_BYTES, "the shard index")?;
    let weight_map = parse_shard_index(&index_json, &index_path)?;
    let shard_names: std::collections::BTreeSet<&String> = weight_map.values().collect();
    let mut shards = Vec::new();
    for name in shard_names {
        let shard_path = dir.join(name);
        if !shard_path.exists() {
            return Err(LoadError::MissingFile {
                path: shard_path,
                what: "shard listed in model.safetensors.index.json",
            });
        }
        shards.push(open_safetensors(&shard_path)?);
    }

    // Every tensor the index lists must be in the shard it names.
    for (tensor, shard_name) in &weight_map {
        let shard = shards
            .iter()
            .find(|s| s.path.file_name().is_some_and(|f| f == shard_name.as_str()))
            .expect("a shard was opened for every name in the index");
        if !shard.tensors.iter().any(|t| &t.name == tensor) {
            return Err(LoadError::MissingTensor {
                path: shard.path.clone(),
                name: tensor.clone(),
            });
        }
    }
    // A tensor stored twice would make lookups ambiguous.
    let mut seen = HashSet::new();
    for shard in &shards {
        for t in &shard.tensors {
            if !seen.insert(t.name.as_str()) {
                return Err(LoadError::Malformed {
                    path: shard.path.clone(),
                    problem: format!("tensor `{}` is also stored in another shard", t.name),
                });
            }
        }
    }
    Ok(shards)
}
