//! Reader for CTranslate2's `model.bin` (binary format versions 5 and 6).
//!
//! Layout: `u32 version`, `string spec`, `u32 revision`, `u32 n_vars`, then per variable
//! `string name`, `u8 rank`, `u32 dims[rank]`, `u8 dtype`, `u32 n_bytes`, data; then
//! `u32 n_aliases` and `(string alias, string target)` pairs. Strings are a `u16` length
//! that counts a trailing NUL. A model file is untrusted input: every count and size is
//! checked against the file length before anything is allocated.

use std::collections::BTreeMap;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use half::{bf16, f16};

use super::multipart::MultiPartFile;
use super::ModelError;

const MAX_VARIABLES: u32 = 100_000;
const MAX_RANK: u8 = 8;

/// Element type of a stored variable, as CTranslate2 numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F32,
    I8,
    I16,
    I32,
    F16,
    BF16,
}

impl DType {
    fn from_id(id: u8) -> Option<Self> {
        Some(match id {
            0 => DType::F32,
            1 => DType::I8,
            2 => DType::I16,
            3 => DType::I32,
            4 => DType::F16,
            5 => DType::BF16,
            _ => return None,
        })
    }

    pub fn size(self) -> usize {
        match self {
            DType::I8 => 1,
            DType::I16 | DType::F16 | DType::BF16 => 2,
            DType::F32 | DType::I32 => 4,
        }
    }
}

/// Where one variable's bytes are in the file, and what they are.
#[derive(Debug, Clone)]
pub struct Variable {
    pub dims: Vec<usize>,
    pub dtype: DType,
    offset: u64,
    n_bytes: usize,
}

impl Variable {
    pub fn n_elements(&self) -> usize {
        self.dims.iter().product()
    }
}

/// An opened CTranslate2 model: the variable index; data is read on demand.
pub struct Ct2Model {
    path: PathBuf,
    pub spec: String,
    pub revision: u32,
    pub version: u32,
    variables: BTreeMap<String, Variable>,
    aliases: BTreeMap<String, String>,
    file: BufReader<MultiPartFile>,
}

impl Ct2Model {
    /// Opens `model.bin` in `dir`, or its split parts `model.bin.part1`, `model.bin.part2`, …
    pub fn open_dir(dir: &Path) -> Result<Self, ModelError> {
        let file = MultiPartFile::open_model_bin(dir)?;
        let path = dir.join("model.bin");
        Self::from_file(path, file)
    }

    fn from_file(path: PathBuf, file: MultiPartFile) -> Result<Self, ModelError> {
        let file_len = file.len();
        let mut r = Reader {
            inner: BufReader::new(file),
            pos: 0,
            len: file_len,
            path: &path,
        };
        let version = r.u32()?;
        if !(5..=6).contains(&version) {
            return Err(r.bad(format!(
                "unsupported CTranslate2 binary version {version} (supported: 5, 6)"
            )));
        }
        let spec = r.string()?;
        let revision = r.u32()?;
        let n_vars = r.u32()?;
        if n_vars > MAX_VARIABLES {
            return Err(r.bad(format!(
                "{n_vars} variables is more than any real model has"
            )));
        }
        let mut variables = BTreeMap::new();
        for _ in 0..n_vars {
            let name = r.string()?;
            let rank = r.u8()?;
            if rank > MAX_RANK {
                return Err(r.bad(format!("variable {name:?} has rank {rank}")));
            }
            let mut dims = Vec::with_capacity(rank as usize);
            for _ in 0..rank {
                dims.push(r.u32()? as usize);
            }
            let dtype_id = r.u8()?;
            let dtype = DType::from_id(dtype_id).ok_or_else(|| {
                r.bad(format!(
                    "variable {name:?} has unknown data type {dtype_id}"
                ))
            })?;
            let n_bytes = r.u32()? as usize;
            let n_elements = dims
                .iter()
                .try_fold(1usize, |acc, &d| acc.checked_mul(d))
                .ok_or_else(|| r.bad(format!("variable {name:?}: shape {dims:?} overflows")))?;
            if n_elements.checked_mul(dtype.size()) != Some(n_bytes) {
                return Err(r.bad(format!(
                    "variable {name:?}: shape {dims:?} of {dtype:?} needs {} bytes, header says {n_bytes}",
                    n_elements.saturating_mul(dtype.size())
                )));
            }
            let offset = r.pos;
            r.skip(n_bytes as u64)?;
            variables.insert(
                name,
                Variable {
                    dims,
                    dtype,
                    offset,
                    n_bytes,
                },
            );
        }
        let mut aliases = BTreeMap::new();
        if version >= 3 && r.pos < r.len {
            let n_aliases = r.u32()?;
            if n_aliases > MAX_VARIABLES {
                return Err(r.bad(format!(
                    "{n_aliases} aliases is more than any real model has"
                )));
            }
            for _ in 0..n_aliases {
                let alias = r.string()?;
                let target = r.string()?;
                aliases.insert(alias, target);
            }
        }
        let inner = r.inner;
        Ok(Ct2Model {
            path,
            spec,
            revision,
            version,
            variables,
            aliases,
            file: inner,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.variables.keys().map(String::as_str)
    }

    /// Looks a variable up by name, following aliases.
    pub fn variable(&self, name: &str) -> Option<&Variable> {
        let target = self.aliases.get(name).map(String::as_str).unwrap_or(name);
        self.variables.get(target)
    }

    fn require(&self, name: &str) -> Result<Variable, ModelError> {
        self.variable(name)
            .cloned()
            .ok_or_else(|| ModelError::Invalid {
                path: self.path.clone(),
                reason: format!("required variable {name:?} is missing"),
            })
    }

    pub fn dims(&self, name: &str) -> Result<Vec<usize>, ModelError> {
        Ok(self.require(name)?.dims)
    }

    fn raw(&mut self, var: &Variable) -> Result<Vec<u8>, ModelError> {
        let mut buf = vec![0u8; var.n_bytes];
        self.file
            .seek(SeekFrom::Start(var.offset))
            .and_then(|_| self.file.read_exact(&mut buf))
            .map_err(|source| ModelError::Io {
                path: self.path.clone(),
                source,
            })?;
        Ok(buf)
    }

    /// Reads a floating-point variable as f32, whatever it is stored as. An int8 matrix is
    /// dequantized with its `<name>_scale` companion (CTranslate2 stores `q = round(w * scale)`
    /// with one scale per row).
    pub fn read_f32(&mut self, name: &str) -> Result<Vec<f32>, ModelError> {
        let var = self.require(name)?;
        let raw = self.raw(&var)?;
        match var.dtype {
            DType::F32 => Ok(raw
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()),
            DType::F16 => Ok(raw
                .chunks_exact(2)
                .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect()),
            DType::BF16 => Ok(raw
                .chunks_exact(2)
                .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect()),
            DType::I8 => {
                let scale_name = format!("{name}_scale");
                let scales = self.read_f32(&scale_name)?;
                let rows = var.dims.first().copied().unwrap_or(1).max(1);
                let cols = var.n_elements() / rows;
                if scales.len() != rows && scales.len() != 1 {
                    return Err(ModelError::Invalid {
                        path: self.path.clone(),
                        reason: format!(
                            "{scale_name} has {} values for {rows} rows of {name}",
                            scales.len()
                        ),
                    });
                }
                Ok(raw
                    .iter()
                    .enumerate()
                    .map(|(i, &q)| {
                        let s = if scales.len() == 1 {
                            scales[0]
                        } else {
                            scales[i / cols.max(1)]
                        };
                        if s == 0.0 {
                            0.0
                        } else {
                            f32::from(q as i8) / s
                        }
                    })
                    .collect())
            }
            DType::I16 | DType::I32 => Err(ModelError::Invalid {
                path: self.path.clone(),
                reason: format!(
                    "variable {name:?} is {:?}, expected floating point",
                    var.dtype
                ),
            }),
        }
    }

    /// Reads a scalar integer variable (such as `encoder/num_heads`).
    pub fn read_scalar_int(&mut self, name: &str) -> Result<i64, ModelError> {
        let var = self.require(name)?;
        let raw = self.raw(&var)?;
        let value = match (var.dtype, raw.as_slice()) {
            (DType::I8, [a]) => i64::from(*a as i8),
            (DType::I16, [a, b]) => i64::from(i16::from_le_bytes([*a, *b])),
            (DType::I32, [a, b, c, d]) => i64::from(i32::from_le_bytes([*a, *b, *c, *d])),
            _ => {
                return Err(ModelError::Invalid {
                    path: self.path.clone(),
                    reason: format!("variable {name:?} is not an integer scalar"),
                })
            }
        };
        Ok(value)
    }
}

/// Bounded sequential reader for the header walk.
struct Reader<'p> {
    inner: BufReader<MultiPartFile>,
    pos: u64,
    len: u64,
    path: &'p Path,
}

impl Reader<'_> {
    fn bad(&self, reason: String) -> ModelError {
        ModelError::Invalid {
            path: self.path.to_path_buf(),
            reason: format!("{reason} (at byte {})", self.pos),
        }
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], ModelError> {
        if self.pos + N as u64 > self.len {
            return Err(self.bad("file ends in the middle of the header".into()));
        }
        let mut buf = [0u8; N];
        self.fill(&mut buf)?;
        Ok(buf)
    }

    fn fill(&mut self, buf: &mut [u8]) -> Result<(), ModelError> {
        self.inner
            .read_exact(buf)
            .map_err(|source| ModelError::Io {
                path: self.path.to_path_buf(),
                source,
            })?;
        self.pos += buf.len() as u64;
        Ok(())
    }

    fn u8(&mut self) -> Result<u8, ModelError> {
        Ok(self.take::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, ModelError> {
        Ok(u32::from_le_bytes(self.take::<4>()?))
    }

    fn string(&mut self) -> Result<String, ModelError> {
        let len = u16::from_le_bytes(self.take::<2>()?) as u64;
        if self.pos + len > self.len {
            return Err(self.bad("file ends in the middle of a name".into()));
        }
        let mut buf = vec![0u8; len as usize];
        self.fill(&mut buf)?;
        if buf.last() == Some(&0) {
            buf.pop();
        }
        String::from_utf8(buf).map_err(|_| self.bad("a name is not UTF-8".into()))
    }

    fn skip(&mut self, n: u64) -> Result<(), ModelError> {
        if self.pos + n > self.len {
            return Err(self.bad(format!(
                "a variable claims {n} bytes but only {} remain (truncated file?)",
                self.len - self.pos
            )));
        }
        self.inner
            .seek_relative(n as i64)
            .map_err(|source| ModelError::Io {
                path: self.path.to_path_buf(),
                source,
            })?;
        self.pos += n;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a CTranslate2 file image: variables as (name, dims, dtype id, bytes).
    pub fn image(vars: &[(&str, &[u32], u8, Vec<u8>)], aliases: &[(&str, &str)]) -> Vec<u8> {
        fn string(out: &mut Vec<u8>, s: &str) {
            out.extend_from_slice(&((s.len() + 1) as u16).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
            out.push(0);
        }
        let mut out = Vec::new();
        out.extend_from_slice(&6u32.to_le_bytes());
        string(&mut out, "WhisperSpec");
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(vars.len() as u32).to_le_bytes());
        for (name, dims, dtype, data) in vars {
            string(&mut out, name);
            out.push(dims.len() as u8);
            for d in *dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.push(*dtype);
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(data);
        }
        out.extend_from_slice(&(aliases.len() as u32).to_le_bytes());
        for (a, t) in aliases {
            string(&mut out, a);
            string(&mut out, t);
        }
        out
    }

    fn open_image(bytes: &[u8]) -> Result<Ct2Model, ModelError> {
        let dir = tempfile::tempdir().map_err(|source| ModelError::Io {
            path: PathBuf::from("tempdir"),
            source,
        })?;
        std::fs::write(dir.path().join("model.bin"), bytes).map_err(|source| ModelError::Io {
            path: dir.path().to_path_buf(),
            source,
        })?;
        Ct2Model::open_dir(dir.path())
    }

    fn f16_bytes(values: &[f32]) -> Vec<u8> {
        values
            .iter()
            .flat_map(|v| f16::from_f32(*v).to_le_bytes())
            .collect()
    }

    #[test]
    fn reads_variables_aliases_and_scalars() {
        let img = image(
            &[
                ("a/weight", &[2, 2], 4, f16_bytes(&[1.0, -2.0, 0.5, 4.0])),
                ("a/num_heads", &[], 2, 6i16.to_le_bytes().to_vec()),
            ],
            &[("b/weight", "a/weight")],
        );
        let mut m = open_image(&img).unwrap();
        assert_eq!(m.spec, "WhisperSpec");
        assert_eq!(m.read_f32("b/weight").unwrap(), vec![1.0, -2.0, 0.5, 4.0]);
        assert_eq!(m.read_scalar_int("a/num_heads").unwrap(), 6);
        assert!(m.read_f32("missing").is_err());
    }

    #[test]
    fn dequantizes_int8_rows_with_their_scale() {
        let q: Vec<u8> = [127i8, -127, 64, 0].iter().map(|v| *v as u8).collect();
        let scales: Vec<u8> = [127.0f32, 12.7]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let img = image(&[("w", &[2, 2], 1, q), ("w_scale", &[2], 0, scales)], &[]);
        let mut m = open_image(&img).unwrap();
        let w = m.read_f32("w").unwrap();
        assert!((w[0] - 1.0).abs() < 1e-6 && (w[1] + 1.0).abs() < 1e-6);
        assert!((w[2] - 64.0 / 12.7).abs() < 1e-4 && w[3] == 0.0);
    }

    #[test]
    fn hostile_headers_are_rejected_without_allocating() {
        // A variable claiming 4 GiB in a file of a few bytes.
        let mut img = image(&[("x", &[65536, 32768], 4, vec![])], &[]);
        assert!(open_image(&img).is_err());
        // Truncated anywhere: never a panic.
        img = image(&[("x", &[2], 0, vec![0; 8])], &[]);
        for cut in 0..img.len() {
            let _ = open_image(&img[..cut]);
        }
        // Huge variable count.
        let mut bad = image(&[], &[]);
        bad[22..26].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(open_image(&bad).is_err());
    }
}
