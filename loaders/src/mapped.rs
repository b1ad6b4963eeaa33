//! The bytes of a model file: a read-only memory map, or an owned buffer (for parsing
//! from memory, e.g. in the fuzzers).

use std::fs::File;
use std::ops::Deref;
use std::path::Path;

use memmap2::Mmap;

use crate::LoadError;

pub(crate) enum Bytes {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

impl Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

/// Maps `path` read-only. An empty file is refused here because there is nothing to map
/// (and mmap of length 0 fails with an unhelpful EINVAL).
pub(crate) fn map_file(path: &Path) -> Result<Bytes, LoadError> {
    let io = |source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(LoadError::Malformed {
            path: path.to_path_buf(),
            problem: "not a regular file".into(),
        });
    }
    if meta.len() == 0 {
        return Err(LoadError::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    // SAFETY: the map is read-only and never handed out mutably. Like every mmap-based
    // loader we rely on the file not being truncated or rewritten while it is open;
    // weights files are written once and then only read.
    let map = unsafe { Mmap::map(&file) }.map_err(io)?;
    Ok(Bytes::Mapped(map))
}

/// Reads a small text file (JSON configs, indexes), refusing sizes no config has, so a
/// wrong path cannot make us read gigabytes into memory.
pub(crate) fn read_small_file(
    path: &Path,
    max_bytes: u64,
    what: &'static str,
) -> Result<Vec<u8>, LoadError> {
    let io = |source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::NotFound {
            LoadError::MissingFile {
                path: path.to_path_buf(),
                what,
            }
        } else {
            LoadError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    };
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > max_bytes {
        return Err(LoadError::Malformed {
            path: path.to_path_buf(),
            problem: format!("{len} bytes is too large for {what} (limit {max_bytes})"),
        });
    }
    std::fs::read(path).map_err(io)
}
