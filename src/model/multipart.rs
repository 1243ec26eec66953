//! One logical file made of several parts on disk (`model.bin.part1`, `model.bin.part2`, …),
//! as some registries ship models too large for one package. Read and seek never copy the
//! parts together.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::ModelError;

pub struct MultiPartFile {
    parts: Vec<(File, u64)>,
    total: u64,
    pos: u64,
}

impl MultiPartFile {
    /// `dir/model.bin` if present, else `dir/model.bin.part1..N` in numeric order.
    pub fn open_model_bin(dir: &Path) -> Result<Self, ModelError> {
        let whole = dir.join("model.bin");
        if whole.is_file() {
            return Self::open(&[whole]);
        }
        let mut parts: Vec<(u32, PathBuf)> = Vec::new();
        let entries = std::fs::read_dir(dir).map_err(|source| ModelError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if let Some(n) = name
                .strip_prefix("model.bin.part")
                .and_then(|n| n.parse::<u32>().ok())
            {
                parts.push((n, entry.path()));
            }
        }
        parts.sort();
        let expected: Vec<u32> = (1..=parts.len() as u32).collect();
        let found: Vec<u32> = parts.iter().map(|(n, _)| *n).collect();
        if parts.is_empty() {
            return Err(ModelError::Invalid {
                path: dir.to_path_buf(),
                reason: "no model.bin (nor model.bin.part1, …) in this directory; \
                         point at a CTranslate2 model directory"
                    .into(),
            });
        }
        if found != expected {
            return Err(ModelError::Invalid {
                path: dir.to_path_buf(),
                reason: format!("model parts {found:?} are not a complete 1..N sequence"),
            });
        }
        let paths: Vec<PathBuf> = parts.into_iter().map(|(_, p)| p).collect();
        Self::open(&paths)
    }

    pub fn open(paths: &[PathBuf]) -> Result<Self, ModelError> {
        let mut parts = Vec::with_capacity(paths.len());
        let mut total = 0u64;
        for path in paths {
            let io_err = |source| ModelError::Io {
                path: path.clone(),
                source,
            };
            let file = File::open(path).map_err(io_err)?;
            let len = file.metadata().map_err(io_err)?.len();
            total += len;
            parts.push((file, len));
        }
        Ok(MultiPartFile {
            parts,
            total,
            pos: 0,
        })
    }

    pub fn len(&self) -> u64 {
        self.total
    }
}

impl Read for MultiPartFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut start = 0u64;
        for (file, len) in &mut self.parts {
            if self.pos < start + *len {
                let within = self.pos - start;
                file.seek(SeekFrom::Start(within))?;
                let max = ((*len - within) as usize).min(buf.len());
                let n = file.read(&mut buf[..max])?;
                self.pos += n as u64;
                return Ok(n);
            }
            start += *len;
        }
        Ok(0)
    }
}

impl Seek for MultiPartFile {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.total.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        let target = target.ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "seek before start of file")
        })?;
        self.pos = target;
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_read_as_one_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("model.bin.part2"), b"world").unwrap();
        std::fs::write(dir.path().join("model.bin.part1"), b"hello ").unwrap();
        let mut f = MultiPartFile::open_model_bin(dir.path()).unwrap();
        assert_eq!(f.len(), 11);
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello world");
        f.seek(SeekFrom::Start(4)).unwrap();
        let mut b = [0u8; 4];
        f.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"o wo");
    }

    #[test]
    fn a_missing_part_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("model.bin.part2"), b"x").unwrap();
        assert!(MultiPartFile::open_model_bin(dir.path()).is_err());
    }
}
