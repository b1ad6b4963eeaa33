//! A small GGUF writer: metadata of every value type and tensors placed at the alignment.
//! [`GgufWriter`] holds everything in memory (tests, small files); [`GgufStreamWriter`]
//! writes the header from the tensor table first and then each tensor's bytes as they
//! are produced, so `quantize` / `synth` never hold a whole model.

use std::borrow::Cow;
use std::io::{self, Write};
use std::path::Path;

use super::reader::{GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GGUF_MAX_DIMS};
use super::value::{GgufArray, GgufMetadata, GgufValue};
use crate::{DType, LoadError};

struct PendingTensor<'a> {
    name: String,
    dtype: DType,
    /// ggml order (innermost first).
    ne: Vec<u64>,
    data: Cow<'a, [u8]>,
}

/// Builds a GGUF v3 file in memory order: header, metadata, tensor infos, aligned data.
/// Tensor data may be borrowed (e.g. straight from another file's memory map).
pub struct GgufWriter<'a> {
    version: u32,
    alignment: u64,
    metadata: GgufMetadata,
    tensors: Vec<PendingTensor<'a>>,
}

impl Default for GgufWriter<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a> GgufWriter<'a> {
    pub fn new() -> Self {
        GgufWriter {
            version: 3,
            alignment: GGUF_DEFAULT_ALIGNMENT,
            metadata: GgufMetadata::new(),
            tensors: Vec::new(),
        }
    }

    /// 2 or 3; the two are byte-identical for little-endian files.
    pub fn set_version(&mut self, version: u32) {
        self.version = version;
    }

    /// Sets the data alignment (a power of two) and records it as `general.alignment`.
    pub fn set_alignment(&mut self, alignment: u32) {
        assert!(
            alignment.is_power_of_two(),
            "GGUF alignment must be a power of two"
        );
        self.alignment = alignment as u64;
        self.metadata
            .set("general.alignment", GgufValue::U32(alignment));
    }

    pub fn set(&mut self, key: impl Into<String>, value: GgufValue) -> &mut Self {
        self.metadata.set(key, value);
        self
    }

    pub fn set_str(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.set(key, GgufValue::String(value.into()))
    }

    pub fn set_u32(&mut self, key: impl Into<String>, value: u32) -> &mut Self {
        self.set(key, GgufValue::U32(value))
    }

    pub fn set_f32(&mut self, key: impl Into<String>, value: f32) -> &mut Self {
        self.set(key, GgufValue::F32(value))
    }

    pub fn set_array(&mut self, key: impl Into<String>, value: GgufArray) -> &mut Self {
        self.set(key, GgufValue::Array(value))
    }

    /// Adds a tensor. `shape` is outermost first (PyTorch order, `[out, in]` for a
    /// weight); it is stored reversed as ggml's `ne[]`. `data` must be exactly the
    /// bytes of `shape` in `dtype`, rows a whole number of blocks.
    pub fn add_tensor(
        &mut self,
        name: impl Into<String>,
        dtype: DType,
        shape: &[usize],
        data: impl Into<Cow<'a, [u8]>>,
    ) -> Result<&mut Self, LoadError> {
        let name = name.into();
        let data = data.into();
        let bad = |problem: String| LoadError::BadData {
            dtype: dtype.name(),
            problem: format!("tensor `{name}`: {problem}"),
        };
        if shape.len() > GGUF_MAX_DIMS {
            return Err(bad(format!(
                "{} dimensions (at most {GGUF_MAX_DIMS})",
                shape.len()
            )));
        }
        let row = shape.last().copied().unwrap_or(1);
        if row % dtype.block_size() != 0 {
            return Err(bad(format!("rows of {row} values are not whole blocks")));
        }
        let n: u64 = shape.iter().map(|&d| d as u64).product();
        if dtype.bytes_for(n) != Some(data.len() as u64) {
            return Err(bad(format!(
                "{} bytes given for shape {shape:?}, expected {:?}",
                data.len(),
                dtype.bytes_for(n)
            )));
        }
        if self.tensors.iter().any(|t| t.name == name) {
            return Err(bad("added twice".into()));
        }
        self.tensors.push(PendingTensor {
            name,
            dtype,
            ne: shape.iter().rev().map(|&d| d as u64).collect(),
            data,
        });
        Ok(self)
    }

    /// Writes the whole file.
    pub fn write(&self, out: &mut impl Write) -> io::Result<()> {
        let table: Vec<(&str, DType, &[u64], u64)> = self
            .tensors
            .iter()
            .map(|t| {
                (
                    t.name.as_str(),
                    t.dtype,
                    t.ne.as_slice(),
                    t.data.len() as u64,
                )
            })
            .collect();
        let header = encode_header(self.version, self.alignment, &self.metadata, &table);
        out.write_all(&header)?;

        let mut written = 0u64;
        for t in &self.tensors {
            out.write_all(&t.data)?;
            written += t.data.len() as u64;
            let padded = written.next_multiple_of(self.alignment);
            out.write_all(&vec![0u8; (padded - written) as usize])?;
            written = padded;
        }
        Ok(())
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&mut out).expect("writing to a Vec cannot fail");
        out
    }

    pub fn write_file(&self, path: &Path) -> Result<(), LoadError> {
        let io_err = |source| LoadError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::create(path).map_err(io_err)?;
        let mut out = io::BufWriter::new(file);
        self.write(&mut out).map_err(io_err)?;
        out.flush().map_err(io_err)
    }
}

/// Header, metadata and tensor infos for tensors `(name, dtype, ne, n_bytes)` laid out
/// in order at `alignment`, padded to the start of the data.
fn encode_header(
    version: u32,
    alignment: u64,
    metadata: &GgufMetadata,
    tensors: &[(&str, DType, &[u64], u64)],
) -> Vec<u8> {
    let mut header = Vec::new();
    header.extend_from_slice(GGUF_MAGIC);
    header.extend_from_slice(&version.to_le_bytes());
    header.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    header.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
    for (key, value) in metadata.iter() {
        write_string(&mut header, key);
        header.extend_from_slice(&value.value_type().id().to_le_bytes());
        write_value(&mut header, value);
    }
    let mut offset = 0u64;
    for &(name, dtype, ne, n_bytes) in tensors {
        write_string(&mut header, name);
        header.extend_from_slice(&(ne.len() as u32).to_le_bytes());
        for d in ne {
            header.extend_from_slice(&d.to_le_bytes());
        }
        header.extend_from_slice(&dtype.ggml_id().to_le_bytes());
        header.extend_from_slice(&offset.to_le_bytes());
        offset = (offset + n_bytes).next_multiple_of(alignment);
    }
    pad_to(&mut header, alignment);
    header
}

/// One entry of a [`GgufStreamWriter`]'s tensor table.
#[derive(Clone, Debug)]
pub struct GgufTensorSpec {
    pub name: String,
    pub dtype: DType,
    /// Outermost first (PyTorch order), as for [`GgufWriter::add_tensor`].
    pub shape: Vec<usize>,
}

impl GgufTensorSpec {
    /// Bytes of the tensor's data, or `None` if its rows are not whole blocks.
    pub fn n_bytes(&self) -> Option<u64> {
        let row = self.shape.last().copied().unwrap_or(1);
        if !row.is_multiple_of(self.dtype.block_size()) {
            return None;
        }
        self.dtype
            .bytes_for(self.shape.iter().map(|&d| d as u64).product())
    }
}

/// Writes a GGUF file whose tensor table is known up front and whose tensor data comes
/// later, tensor by tensor in table order, in pieces of any size.
pub struct GgufStreamWriter<W: Write> {
    out: W,
    alignment: u64,
    /// Bytes each tensor needs, in order.
    sizes: Vec<u64>,
    /// Index of the tensor being written and bytes of it written so far.
    current: usize,
    written: u64,
}

impl<W: Write> GgufStreamWriter<W> {
    /// Writes the header (GGUF v3, default alignment 32) and returns the writer for the data.
    pub fn new(
        mut out: W,
        metadata: &GgufMetadata,
        tensors: &[GgufTensorSpec],
    ) -> Result<Self, LoadError> {
        let mut sizes = Vec::with_capacity(tensors.len());
        let mut ne = Vec::with_capacity(tensors.len());
        for t in tensors {
            if t.shape.len() > GGUF_MAX_DIMS {
                return Err(LoadError::BadData {
                    dtype: t.dtype.name(),
                    problem: format!("tensor `{}`: more than {GGUF_MAX_DIMS} dimensions", t.name),
                });
            }
            sizes.push(t.n_bytes().ok_or_else(|| LoadError::BadData {
                dtype: t.dtype.name(),
                problem: format!(
                    "tensor `{}`: rows of shape {:?} are not whole blocks",
                    t.name, t.shape
                ),
            })?);
            ne.push(
                t.shape
                    .iter()
                    .rev()
                    .map(|&d| d as u64)
                    .collect::<Vec<u64>>(),
            );
        }
        let table: Vec<(&str, DType, &[u64], u64)> = tensors
            .iter()
            .zip(&ne)
            .zip(&sizes)
            .map(|((t, ne), &n)| (t.name.as_str(), t.dtype, ne.as_slice(), n))
            .collect();
        let alignment = GGUF_DEFAULT_ALIGNMENT;
        let header = encode_header(3, alignment, metadata, &table);
        out.write_all(&header).map_err(stream_io)?;
        Ok(GgufStreamWriter {
            out,
            alignment,
            sizes,
            current: 0,
            written: 0,
        })
    }

    /// Appends bytes of the current tensor; when it is complete, pads to the alignment
    /// and moves on to the next. Refuses more bytes than the table declared.
    pub fn write_data(&mut self, bytes: &[u8]) -> io::Result<()> {
        let Some(&size) = self.sizes.get(self.current) else {
            return Err(io::Error::other(
                "GGUF stream: more tensor data than the table declares",
            ));
        };
        if self.written + bytes.len() as u64 > size {
            return Err(io::Error::other(format!(
                "GGUF stream: tensor {} is {size} bytes, got more",
                self.current
            )));
        }
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        if self.written == size {
            let padded = size.next_multiple_of(self.alignment);
            self.out.write_all(&vec![0u8; (padded - size) as usize])?;
            self.current += 1;
            self.written = 0;
        }
        Ok(())
    }

    /// Checks every declared tensor was written in full and flushes; returns the sink.
    pub fn finish(mut self) -> io::Result<W> {
        // Zero-sized tensors complete without a write.
        while self.sizes.get(self.current) == Some(&0) {
            self.current += 1;
        }
        if self.current != self.sizes.len() {
            return Err(io::Error::other(format!(
                "GGUF stream: {} of {} tensors written",
                self.current,
                self.sizes.len()
            )));
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

fn stream_io(e: io::Error) -> LoadError {
    LoadError::BadData {
        dtype: "gguf",
        problem: format!("writing the header: {e}"),
    }
}

fn pad_to(buf: &mut Vec<u8>, alignment: u64) {
    let len = buf.len() as u64;
    buf.resize(len.next_multiple_of(alignment) as usize, 0);
}

fn write_string(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u64).to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
}

fn write_value(buf: &mut Vec<u8>, value: &GgufValue) {
    match value {
        GgufValue::U8(v) => buf.extend_from_slice(&v.to_le_bytes()),
        GgufValue::I8(v) => buf.extend_from_slice(&v.to_le_bytes()),
        GgufValue::U16(v) => buf.extend_from_slice(&v.to_le_bytes()),
        GgufValue::I16(v) => buf.extend_from_slice(&v.to_le_bytes()),
        GgufValue::U32(v) => buf.extend_from_slice(&v.to_le_bytes()),
        GgufValue::I32(v) => buf.extend_from_slice(&v.to_le_bytes()),
        GgufValue::F32(v) => buf.extend_from_slice(&v.to_le_bytes()),
        GgufValue::Bool(v) => buf.push(*v as u8),
        GgufValue::String(s) => write_string(buf, s),
        GgufValue::Array(a) => write_array(buf, a),
        GgufValue::U64(v) => buf.extend_from_slice(&v.to_le_bytes()),
        GgufValue::I64(v) => buf.extend_from_slice(&v.to_le_bytes()),
        GgufValue::F64(v) => buf.extend_from_slice(&v.to_le_bytes()),
    }
}

fn write_array(buf: &mut Vec<u8>, array: &GgufArray) {
    buf.extend_from_slice(&array.element_type().id().to_le_bytes());
    buf.extend_from_slice(&(array.len() as u64).to_le_bytes());
    macro_rules! each {
        ($v:expr) => {
            for x in $v {
                buf.extend_from_slice(&x.to_le_bytes());
            }
        };
    }
    match array {
        GgufArray::U8(v) => buf.extend_from_slice(v),
        GgufArray::I8(v) => each!(v),
        GgufArray::U16(v) => each!(v),
        GgufArray::I16(v) => each!(v),
        GgufArray::U32(v) => each!(v),
        GgufArray::I32(v) => each!(v),
        GgufArray::F32(v) => each!(v),
        GgufArray::Bool(v) => buf.extend(v.iter().map(|&b| b as u8)),
        GgufArray::String(v) => v.iter().for_each(|s| write_string(buf, s)),
        GgufArray::Array(v) => v.iter().for_each(|a| write_array(buf, a)),
        GgufArray::U64(v) => each!(v),
        GgufArray::I64(v) => each!(v),
        GgufArray::F64(v) => each!(v),
    }
}
