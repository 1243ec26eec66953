//! The safetensors format (Hugging Face's weights file): an 8-byte header length, a JSON
//! header naming each tensor's dtype, shape and byte range, then the raw little-endian data.
//! Read one tensor at a time and written streaming, so a model is never held twice.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use half::{bf16, f16};

use super::ModelError;
use crate::sinks::local::AtomicFile;

const MAX_HEADER: u64 = 100 * 1024 * 1024;

#[derive(serde::Deserialize, serde::Serialize)]
struct Entry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: [u64; 2],
}

/// A tensor's shape (outermost first) and its values.
pub type Tensor = (Vec<usize>, Vec<f32>);

pub struct SafeTensors {
    path: PathBuf,
    file: File,
    data_start: u64,
    len: u64,
    entries: BTreeMap<String, Entry>,
}

impl SafeTensors {
    pub fn open(path: &Path) -> Result<Self, ModelError> {
        let invalid = |reason: String| ModelError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        let io = |source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let mut n = [0u8; 8];
        file.read_exact(&mut n).map_err(io)?;
        let header_len = u64::from_le_bytes(n);
        if header_len > MAX_HEADER || 8 + header_len > len {
            return Err(invalid(format!(
                "safetensors header of {header_len} bytes does not fit the file"
            )));
        }
        let mut header = vec![0u8; header_len as usize];
        file.read_exact(&mut header).map_err(io)?;
        let mut raw: BTreeMap<String, serde_json::Value> = serde_json::from_slice(&header)
            .map_err(|e| invalid(format!("bad safetensors header: {e}")))?;
        raw.remove("__metadata__");
        let mut entries = BTreeMap::new();
        for (name, value) in raw {
            let e: Entry = serde_json::from_value(value)
                .map_err(|e| invalid(format!("tensor {name}: {e}")))?;
            entries.insert(name, e);
        }
        Ok(SafeTensors {
            path: path.to_path_buf(),
            file,
            data_start: 8 + header_len,
            len,
            entries,
        })
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.entries.get(name).map(|e| e.shape.as_slice())
    }

    /// Tensor `name` as f32 values (F32, F16 and BF16 are read; others are an error), with
    /// its shape; `None` when the file has no such tensor.
    pub fn read_f32(&mut self, name: &str) -> Result<Option<Tensor>, ModelError> {
        let invalid = |reason: String| ModelError::Invalid {
            path: self.path.clone(),
            reason,
        };
        let Some(e) = self.entries.get(name) else {
            return Ok(None);
        };
        let width = match e.dtype.as_str() {
            "F32" => 4,
            "F16" | "BF16" => 2,
            other => {
                return Err(invalid(format!(
                    "tensor {name:?} is {other}: only F32, F16 and BF16 weights can be read"
                )))
            }
        };
        let [start, end] = e.data_offsets;
        let count: usize = e.shape.iter().product();
        if end < start || end - start != (count * width) as u64 || self.data_start + end > self.len
        {
            return Err(invalid(format!("tensor {name:?} has inconsistent offsets")));
        }
        let (shape, dtype) = (e.shape.clone(), e.dtype.clone());
        let mut bytes = vec![0u8; count * width];
        let io = |source| ModelError::Io {
            path: self.path.clone(),
            source,
        };
        self.file
            .seek(SeekFrom::Start(self.data_start + start))
            .map_err(io)?;
        self.file.read_exact(&mut bytes).map_err(io)?;
        let values = match dtype.as_str() {
            "F32" => bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            "F16" => bytes
                .chunks_exact(2)
                .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            _ => bytes
                .chunks_exact(2)
                .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
        };
        Ok(Some((shape, values)))
    }
}

/// Writes f32 tensors to a new safetensors file at `out` (atomically). `tensors` gives each
/// tensor's name and shape in file order; `data(i)` produces tensor `i`'s values when its
/// turn comes, so only one is in memory at a time.
pub fn write_f32(
    out: &Path,
    tensors: &[(String, Vec<usize>)],
    mut data: impl FnMut(usize) -> Result<Vec<f32>, ModelError>,
) -> Result<u64, ModelError> {
    let io = |source| ModelError::Io {
        path: out.to_path_buf(),
        source,
    };
    let mut header: BTreeMap<&str, serde_json::Value> = BTreeMap::new();
    header.insert("__metadata__", serde_json::json!({ "format": "pt" }));
    let mut offset = 0u64;
    for (name, shape) in tensors {
        let bytes = shape.iter().product::<usize>() as u64 * 4;
        let entry = Entry {
            dtype: "F32".into(),
            shape: shape.clone(),
            data_offsets: [offset, offset + bytes],
        };
        header.insert(name, serde_json::to_value(entry).unwrap_or_default());
        offset += bytes;
    }
    let mut json = serde_json::to_vec(&header).map_err(|e| io(std::io::Error::other(e)))?;
    // The data starts 8-aligned (the format pads the header with spaces).
    while json.len() % 8 != 0 {
        json.push(b' ');
    }
    let file = AtomicFile::create(out).map_err(|e| io(e.source))?;
    let mut w = BufWriter::new(file.as_file());
    w.write_all(&(json.len() as u64).to_le_bytes())
        .map_err(io)?;
    w.write_all(&json).map_err(io)?;
    for (i, (name, shape)) in tensors.iter().enumerate() {
        let values = data(i)?;
        if values.len() != shape.iter().product::<usize>() {
            return Err(ModelError::Invalid {
                path: out.to_path_buf(),
                reason: format!("tensor {name}: {} values for shape {shape:?}", values.len()),
            });
        }
        for v in values {
            w.write_all(&v.to_le_bytes()).map_err(io)?;
        }
    }
    w.flush().map_err(io)?;
    drop(w);
    let size = file.as_file().metadata().map_err(io)?.len();
    file.commit().map_err(|e| io(e.source))?;
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let tensors = vec![("b".to_string(), vec![2, 3]), ("a".to_string(), vec![3])];
        let values = [vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.5], vec![-1.0, 0.0, 0.25]];
        write_f32(&path, &tensors, |i| Ok(values[i].clone())).unwrap();
        let mut st = SafeTensors::open(&path).unwrap();
        assert_eq!(st.names().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(
            st.read_f32("b").unwrap(),
            Some((vec![2, 3], values[0].clone()))
        );
        assert_eq!(
            st.read_f32("a").unwrap(),
            Some((vec![3], values[1].clone()))
        );
        assert_eq!(st.read_f32("c").unwrap(), None);
    }
}
