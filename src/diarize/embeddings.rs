//! Voice prints kept on disk while a file is diarized, so memory stays flat with its
//! length: 768 bytes per window (~3.7 MB per hour of speech) go to a private spool file, and
//! clustering reads back only the ones it needs.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::cluster::Embeddings;

/// Embeddings of one dimension, appended in window order.
pub struct EmbeddingSpool {
    out: BufWriter<File>,
    reader: File,
    dim: usize,
    len: usize,
    _path: tempfile::TempPath,
}

impl EmbeddingSpool {
    /// A new spool in `dir`, removed when dropped.
    pub fn create(dir: &Path, dim: usize) -> std::io::Result<EmbeddingSpool> {
        std::fs::create_dir_all(dir)?;
        let (file, path) = tempfile::Builder::new()
            .prefix(".hotfolderd-voices-")
            .tempfile_in(dir)?
            .into_parts();
        let reader = File::open(&path)?;
        Ok(EmbeddingSpool {
            out: BufWriter::with_capacity(1 << 16, file),
            reader,
            dim,
            len: 0,
            _path: path,
        })
    }

    pub fn push(&mut self, embedding: &[f32]) -> std::io::Result<()> {
        if embedding.len() != self.dim {
            return Err(std::io::Error::other(format!(
                "a voice print of {} values where {} were expected",
                embedding.len(),
                self.dim
            )));
        }
        for v in embedding {
            self.out.write_all(&v.to_le_bytes())?;
        }
        self.len += 1;
        Ok(())
    }

    /// Flushes what was pushed, so it can be read back.
    pub fn finish(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

impl Embeddings for EmbeddingSpool {
    fn len(&self) -> usize {
        self.len
    }

    fn get(&mut self, i: usize) -> std::io::Result<Vec<f32>> {
        let width = self.dim * 4;
        self.reader.seek(SeekFrom::Start((i * width) as u64))?;
        let mut bytes = vec![0u8; width];
        self.reader.read_exact(&mut bytes)?;
        Ok(bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_pushed_is_read_back_in_any_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = EmbeddingSpool::create(dir.path(), 3).unwrap();
        s.push(&[1.0, 2.0, 3.0]).unwrap();
        s.push(&[-4.0, 0.5, 6.0]).unwrap();
        assert!(s.push(&[1.0]).is_err());
        s.finish().unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s.get(1).unwrap(), [-4.0, 0.5, 6.0]);
        assert_eq!(s.get(0).unwrap(), [1.0, 2.0, 3.0]);
        assert!(s.get(2).is_err());
    }
}
