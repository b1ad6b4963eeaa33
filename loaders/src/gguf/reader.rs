//! GGUF parsing from a byte slice (normally a memory map of the whole file).
//!
//! Layout (all little-endian; v2 and v3 are identical for little-endian files):
//! ```text
//! "GGUF" u32:version u64:n_tensors u64:n_kv
//! n_kv ×      { string:key  u32:value_type  value }
//! n_tensors × { string:name u32:n_dims u64:ne[n_dims] u32:ggml_type u64:offset }
//! padding to `general.alignment` (default 32)
//! data section: each tensor at data_start + offset
//! ```
//! `string` is a u64 byte length and UTF-8 bytes; an array value is u32 element type,
//! u64 count and the elements. Nothing here trusts a count: each one is compared with the
//! bytes that remain before anything is allocated for it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::value::{GgufArray, GgufMetadata, GgufValue, GgufValueType};
use crate::{DType, LoadError};

pub const GGUF_MAGIC: &[u8; 4] = b"GGUF";
pub const GGUF_DEFAULT_ALIGNMENT: u64 = 32;
/// ggml tensors have at most 4 dimensions.
pub const GGUF_MAX_DIMS: usize = 4;
/// Nested arrays deeper than this are refused: real files nest at most once, and an
/// unbounded depth would let a small file overflow the stack through recursion.
const MAX_ARRAY_DEPTH: usize = 8;

/// One entry of the tensor-info table.
#[derive(Clone, Debug, PartialEq)]
pub struct GgufTensorInfo {
    pub name: String,
    /// ggml's `ne[]`: the innermost (contiguous) dimension first, so a weight matrix
    /// is `[in_features, out_features]`. Reverse it for PyTorch order.
    pub ne: Vec<u64>,
    pub dtype: DType,
    /// Byte offset from the start of the data section (a multiple of the alignment).
    pub offset: u64,
    /// Bytes the data takes: whole blocks of `dtype`.
    pub n_bytes: u64,
}

impl GgufTensorInfo {
    pub fn n_elements(&self) -> u64 {
        // Cannot overflow: the reader checked the product when it computed n_bytes.
        self.ne.iter().product()
    }

    /// Shape outermost first (PyTorch order).
    pub fn shape(&self) -> Vec<usize> {
        self.ne.iter().rev().map(|&d| d as usize).collect()
    }
}

/// A parsed GGUF header: metadata, tensor table, and where the data section starts.
#[derive(Clone, Debug, PartialEq)]
pub struct GgufFile {
    pub version: u32,
    pub metadata: GgufMetadata,
    pub tensors: Vec<GgufTensorInfo>,
    pub alignment: u64,
    /// Absolute file offset of the data section.
    pub data_offset: u64,
}

impl GgufFile {
    /// Parses and validates `bytes` (the whole file). `path` is only used in messages.
    /// Every tensor's byte range is checked to lie inside `bytes`, so
    /// [`GgufFile::tensor_bytes`] cannot go out of range afterwards.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<GgufFile, LoadError> {
        Parser {
            bytes,
            pos: 0,
            path,
        }
        .parse_file()
    }

    /// Absolute byte range of a tensor's data within the file.
    pub fn tensor_range(&self, tensor: &GgufTensorInfo) -> std::ops::Range<usize> {
        let start = (self.data_offset + tensor.offset) as usize;
        start..start + tensor.n_bytes as usize
    }

    /// The tensor's data within `bytes` (the same bytes that were parsed).
    pub fn tensor_bytes<'a>(&self, bytes: &'a [u8], tensor: &GgufTensorInfo) -> &'a [u8] {
        &bytes[self.tensor_range(tensor)]
    }
}

struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Parser<'a> {
    fn path(&self) -> PathBuf {
        self.path.to_path_buf()
    }

    fn malformed(&self, problem: impl Into<String>) -> LoadError {
        LoadError::Malformed {
            path: self.path(),
            problem: problem.into(),
        }
    }

    fn remaining(&self) -> u64 {
        (self.bytes.len() - self.pos) as u64
    }

    /// Takes `n` bytes or reports what was being read when the file ran out.
    fn take(&mut self, n: u64, what: impl FnOnce() -> String) -> Result<&'a [u8], LoadError> {
        if n > self.remaining() {
            return Err(LoadError::Truncated {
                path: self.path(),
                what: what(),
                offset: self.pos as u64,
                needed: n,
                len: self.bytes.len() as u64,
            });
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.bytes[start..self.pos])
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N], LoadError> {
        let b = self.take(N as u64, what)?;
        Ok(b.try_into().expect("take returned N bytes"))
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32, LoadError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64, LoadError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn string(&mut self, what: &dyn Fn() -> String) -> Result<String, LoadError> {
        let len = self.u64(&|| format!("length of {}", what()))?;
        let start = self.pos;
        let raw = self.take(len, what)?;
        match std::str::from_utf8(raw) {
            Ok(s) => Ok(s.to_owned()),
            Err(e) => Err(self.malformed(format!(
                "{} at offset {start} is not valid UTF-8 ({e})",
                what()
            ))),
        }
    }

    /// Refuses a count whose elements could not possibly fit in the rest of the file.
    fn check_count(
        &self,
        count: u64,
        min_size: u64,
        what: &dyn Fn() -> String,
    ) -> Result<usize, LoadError> {
        let fits = count
            .checked_mul(min_size)
            .is_some_and(|need| need <= self.remaining());
        if !fits {
            return Err(self.malformed(format!(
                "{} claims {count} entries, more than the {} bytes left in the file can hold",
                what(),
                self.remaining()
            )));
        }
        Ok(count as usize)
    }

    fn parse_file(mut self) -> Result<GgufFile, LoadError> {
        if self.bytes.is_empty() {
            return Err(LoadError::EmptyFile { path: self.path() });
        }
        let magic = self.take(4, || "GGUF magic".into())?;
        if magic != GGUF_MAGIC {
            return Err(LoadError::BadMagic {
                path: self.path(),
                found: magic.to_vec(),
            });
        }
        let version = self.u32(&|| "GGUF version".into())?;
        match version {
            2 | 3 => {}
            1 => {
                return Err(LoadError::UnsupportedVersion {
                    path: self.path(),
                    version,
                    why: "GGUF v1 used 32-bit counts and is obsolete; re-convert the model",
                })
            }
            // A big-endian file (allowed since v3) shows its version byte-swapped.
            v if matches!(v.swap_bytes(), 2 | 3) => {
                return Err(LoadError::UnsupportedVersion {
                    path: self.path(),
                    version: v.swap_bytes(),
                    why: "the file is big-endian; only little-endian GGUF is supported",
                })
            }
            _ => {
                return Err(LoadError::UnsupportedVersion {
                    path: self.path(),
                    version,
                    why: "unknown version; versions 2 and 3 are supported",
                })
            }
        }
        let n_tensors = self.u64(&|| "tensor count".into())?;
        let n_kv = self.u64(&|| "metadata count".into())?;
        // Smallest possible metadata entry: empty key (8) + type (4) + a u8 value (1).
        let n_kv = self.check_count(n_kv, 8 + 4 + 1, &|| "the metadata count".into())?;
        let mut metadata = GgufMetadata::new();
        let mut seen_keys = HashSet::new();
        for i in 0..n_kv {
            let key = self.string(&|| format!("metadata key #{i}"))?;
            let value_type = self.value_type(&key)?;
            let value = self.value(value_type, &key, 0)?;
            if !seen_keys.insert(key.clone()) {
                return Err(self.malformed(format!("metadata key `{key}` appears twice")));
            }
            metadata.push_unchecked(key, value);
        }

        let alignment = match metadata.get("general.alignment") {
            None => GGUF_DEFAULT_ALIGNMENT,
            Some(v) => match v.as_u64() {
                Some(a) if a.is_power_of_two() && a <= u32::MAX as u64 => a,
                _ => {
                    return Err(
                        self.malformed(format!("general.alignment = {v} is not a power of two"))
                    )
                }
            },
        };

        // Smallest possible tensor info: empty name (8) + n_dims (4) + type (4) + offset (8).
        let n_tensors =
            self.check_count(n_tensors, 8 + 4 + 4 + 8, &|| "the tensor count".into())?;
        let mut tensors = Vec::with_capacity(n_tensors);
        let mut seen_names = HashSet::new();
        for i in 0..n_tensors {
            let info = self.tensor_info(i, alignment)?;
            if !seen_names.insert(info.name.clone()) {
                return Err(self.malformed(format!("tensor `{}` appears twice", info.name)));
            }
            tensors.push(info);
        }

        let file_len = self.bytes.len() as u64;
        let data_offset = (self.pos as u64).next_multiple_of(alignment);
        for t in &tensors {
            let end = data_offset
                .checked_add(t.offset)
                .and_then(|start| start.checked_add(t.n_bytes));
            if end.is_none_or(|end| end > file_len) {
                return Err(LoadError::Truncated {
                    path: self.path(),
                    what: format!("data of tensor `{}`", t.name),
                    offset: data_offset.saturating_add(t.offset),
                    needed: t.n_bytes,
                    len: file_len,
                });
            }
        }

        Ok(GgufFile {
            version,
            metadata,
            tensors,
            alignment,
            data_offset,
        })
    }

    fn value_type(&mut self, key: &str) -> Result<GgufValueType, LoadError> {
        let id = self.u32(&|| format!("type of metadata `{key}`"))?;
        GgufValueType::from_id(id)
            .ok_or_else(|| self.malformed(format!("metadata `{key}` has unknown value type {id}")))
    }

    fn value(
        &mut self,
        ty: GgufValueType,
        key: &str,
        depth: usize,
    ) -> Result<GgufValue, LoadError> {
        let what = || format!("value of metadata `{key}`");
        Ok(match ty {
            GgufValueType::U8 => GgufValue::U8(u8::from_le_bytes(self.array(&what)?)),
            GgufValueType::I8 => GgufValue::I8(i8::from_le_bytes(self.array(&what)?)),
            GgufValueType::U16 => GgufValue::U16(u16::from_le_bytes(self.array(&what)?)),
            GgufValueType::I16 => GgufValue::I16(i16::from_le_bytes(self.array(&what)?)),
            GgufValueType::U32 => GgufValue::U32(u32::from_le_bytes(self.array(&what)?)),
            GgufValueType::I32 => GgufValue::I32(i32::from_le_bytes(self.array(&what)?)),
            GgufValueType::F32 => GgufValue::F32(f32::from_le_bytes(self.array(&what)?)),
            GgufValueType::U64 => GgufValue::U64(u64::from_le_bytes(self.array(&what)?)),
            GgufValueType::I64 => GgufValue::I64(i64::from_le_bytes(self.array(&what)?)),
            GgufValueType::F64 => GgufValue::F64(f64::from_le_bytes(self.array(&what)?)),
            GgufValueType::Bool => GgufValue::Bool(self.bool(key)?),
            GgufValueType::String => GgufValue::String(self.string(&what)?),
            GgufValueType::Array => GgufValue::Array(self.array_value(key, depth)?),
        })
    }

    fn bool(&mut self, key: &str) -> Result<bool, LoadError> {
        let [b] = self.array::<1>(&|| format!("bool in metadata `{key}`"))?;
        match b {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(self.malformed(format!(
                "metadata `{key}`: bool byte {b} is neither 0 nor 1"
            ))),
        }
    }

    fn array_value(&mut self, key: &str, depth: usize) -> Result<GgufArray, LoadError> {
        if depth >= MAX_ARRAY_DEPTH {
            return Err(self.malformed(format!(
                "metadata `{key}`: arrays nested deeper than {MAX_ARRAY_DEPTH} levels"
            )));
        }
        let elem = self.value_type(key)?;
        let count = self.u64(&|| format!("array length of metadata `{key}`"))?;
        let n = self.check_count(count, elem.min_encoded_size(), &|| format!("array `{key}`"))?;

        // Fixed-size elements: the count check above guarantees the bytes are there.
        macro_rules! fixed {
            ($variant:ident, $t:ty) => {{
                const SIZE: usize = std::mem::size_of::<$t>();
                let raw = self.take((n * SIZE) as u64, || format!("array `{key}`"))?;
                GgufArray::$variant(
                    raw.chunks_exact(SIZE)
                        .map(|c| <$t>::from_le_bytes(c.try_into().expect("chunk of SIZE")))
                        .collect(),
                )
            }};
        }
        Ok(match elem {
            GgufValueType::U8 => fixed!(U8, u8),
            GgufValueType::I8 => fixed!(I8, i8),
            GgufValueType::U16 => fixed!(U16, u16),
            GgufValueType::I16 => fixed!(I16, i16),
            GgufValueType::U32 => fixed!(U32, u32),
            GgufValueType::I32 => fixed!(I32, i32),
            GgufValueType::F32 => fixed!(F32, f32),
            GgufValueType::U64 => fixed!(U64, u64),
            GgufValueType::I64 => fixed!(I64, i64),
            GgufValueType::F64 => fixed!(F64, f64),
            GgufValueType::Bool => {
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.bool(key)?);
                }
                GgufArray::Bool(v)
            }
            GgufValueType::String => {
                let mut v = Vec::with_capacity(n);
                for i in 0..n {
                    v.push(self.string(&|| format!("string #{i} of array `{key}`"))?);
                }
                GgufArray::String(v)
            }
            GgufValueType::Array => {
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.array_value(key, depth + 1)?);
                }
                GgufArray::Array(v)
            }
        })
    }

    fn tensor_info(&mut self, index: usize, alignment: u64) -> Result<GgufTensorInfo, LoadError> {
        let name = self.string(&|| format!("name of tensor #{index}"))?;
        let n_dims = self.u32(&|| format!("dimension count of tensor `{name}`"))?;
        if n_dims as usize > GGUF_MAX_DIMS {
            return Err(self.malformed(format!(
                "tensor `{name}` has {n_dims} dimensions (at most {GGUF_MAX_DIMS})"
            )));
        }
        let mut ne = Vec::with_capacity(n_dims as usize);
        for d in 0..n_dims {
            ne.push(self.u64(&|| format!("dimension {d} of tensor `{name}`"))?);
        }
        let type_id = self.u32(&|| format!("type of tensor `{name}`"))?;
        let offset = self.u64(&|| format!("data offset of tensor `{name}`"))?;

        let dtype = DType::from_ggml_id(type_id).map_err(|e| match e {
            LoadError::UnsupportedDType(type_name) => LoadError::UnsupportedTensorType {
                path: self.path(),
                tensor: name.clone(),
                type_name,
            },
            other => other,
        })?;
        // ggml keeps element counts in int64.
        let n_elements = ne
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .filter(|&n| n <= i64::MAX as u64)
            .ok_or_else(|| {
                self.malformed(format!("tensor `{name}`: dimensions {ne:?} overflow"))
            })?;
        // Quantised rows must be whole blocks: a block never straddles two rows.
        let row = ne.first().copied().unwrap_or(1);
        if row % dtype.block_size() as u64 != 0 {
            return Err(self.malformed(format!(
                "tensor `{name}`: rows of {row} values are not a whole number of {} blocks ({} values)",
                dtype.name(),
                dtype.block_size()
            )));
        }
        let n_bytes = dtype
            .bytes_for(n_elements)
            .ok_or_else(|| self.malformed(format!("tensor `{name}`: byte size overflows")))?;
        if offset % alignment != 0 {
            return Err(self.malformed(format!(
                "tensor `{name}`: data offset {offset} is not a multiple of the alignment {alignment}"
            )));
        }
        Ok(GgufTensorInfo {
            name,
            ne,
            dtype,
            offset,
            n_bytes,
        })
    }
}
