//! whisper.cpp's legacy ggml model file: magic, hparams, mel filters, vocabulary, then
//! tensors (`n_dims, name_len, type, ne[..], name, data`), all little-endian. Written by the
//! importers; read (an index of the tensors, then one tensor at a time) by `export-hf`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::quantize::{self, BLOCK};
use super::ModelError;

pub const MAGIC: u32 = 0x6767_6d6c; // "ggml"

/// ggml tensor types used here (ggml.h `enum ggml_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorType {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
}

impl TensorType {
    fn from_i32(v: i32) -> Option<TensorType> {
        Some(match v {
            0 => TensorType::F32,
            1 => TensorType::F16,
            2 => TensorType::Q4_0,
            3 => TensorType::Q4_1,
            6 => TensorType::Q5_0,
            7 => TensorType::Q5_1,
            8 => TensorType::Q8_0,
            _ => return None,
        })
    }

    /// Bytes that `count` values take.
    fn size_of(self, count: usize) -> Option<usize> {
        match self {
            TensorType::F32 => Some(count * 4),
            TensorType::F16 => Some(count * 2),
            t => (count % BLOCK == 0)
                .then(|| quantize::block_bytes(t).map(|b| count / BLOCK * b))
                .flatten(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hparams {
    pub n_vocab: i32,
    pub n_audio_ctx: i32,
    pub n_audio_state: i32,
    pub n_audio_head: i32,
    pub n_audio_layer: i32,
    pub n_text_ctx: i32,
    pub n_text_state: i32,
    pub n_text_head: i32,
    pub n_text_layer: i32,
    pub n_mels: i32,
    /// `ggml_ftype`, plus `GGML_QNT_VERSION * 1000` for quantized files.
    pub ftype: i32,
}

pub fn write_header(
    w: &mut impl Write,
    h: &Hparams,
    mel_filters: &[f32],
    n_fft_bins: i32,
    vocab: &[Vec<u8>],
) -> io::Result<()> {
    w.write_all(&MAGIC.to_le_bytes())?;
    for v in [
        h.n_vocab,
        h.n_audio_ctx,
        h.n_audio_state,
        h.n_audio_head,
        h.n_audio_layer,
        h.n_text_ctx,
        h.n_text_state,
        h.n_text_head,
        h.n_text_layer,
        h.n_mels,
        h.ftype,
    ] {
        w.write_all(&v.to_le_bytes())?;
    }
    w.write_all(&h.n_mels.to_le_bytes())?;
    w.write_all(&n_fft_bins.to_le_bytes())?;
    for f in mel_filters {
        w.write_all(&f.to_le_bytes())?;
    }
    w.write_all(&(vocab.len() as i32).to_le_bytes())?;
    for token in vocab {
        w.write_all(&(token.len() as u32).to_le_bytes())?;
        w.write_all(token)?;
    }
    Ok(())
}

/// `ne` is in ggml order (numpy's shape reversed).
pub fn write_tensor(
    w: &mut impl Write,
    name: &str,
    ne: &[usize],
    ttype: TensorType,
    data: &[u8],
) -> io::Result<()> {
    w.write_all(&(ne.len() as i32).to_le_bytes())?;
    w.write_all(&(name.len() as i32).to_le_bytes())?;
    w.write_all(&(ttype as i32).to_le_bytes())?;
    for &d in ne {
        w.write_all(&(d as i32).to_le_bytes())?;
    }
    w.write_all(name.as_bytes())?;
    w.write_all(data)
}

/// Where one tensor lies in a ggml file.
struct TensorAt {
    ttype: TensorType,
    /// numpy order (outermost first).
    shape: Vec<usize>,
    offset: u64,
    bytes: usize,
}

/// An open ggml Whisper model: its header, vocabulary and an index of its tensors.
pub struct GgmlModel {
    path: PathBuf,
    file: File,
    pub hparams: Hparams,
    /// The ordinary tokens (whisper.cpp adds the special ones itself), as raw bytes.
    pub vocab: Vec<Vec<u8>>,
    /// Tensor names in file order.
    pub order: Vec<String>,
    tensors: BTreeMap<String, TensorAt>,
}

/// Refuses lengths from a corrupt header before anything is allocated for them.
const MAX_COUNT: i32 = 1 << 24;

impl GgmlModel {
    pub fn open(path: &Path) -> Result<GgmlModel, ModelError> {
        let invalid = |reason: String| ModelError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        let io = |source: io::Error| ModelError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let mut r = BufReader::new(file);
        let int = |r: &mut BufReader<File>| -> Result<i32, ModelError> {
            let mut b = [0u8; 4];
            r.read_exact(&mut b).map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    invalid("the file ends inside its header: truncated?".into())
                } else {
                    io(e)
                }
            })?;
            Ok(i32::from_le_bytes(b))
        };
        if int(&mut r)? as u32 != MAGIC {
            return Err(invalid(
                "not a ggml Whisper model (no 'ggml' magic); GGUF files are not supported".into(),
            ));
        }
        let mut h = [0i32; 11];
        for v in &mut h {
            *v = int(&mut r)?;
        }
        let hparams = Hparams {
            n_vocab: h[0],
            n_audio_ctx: h[1],
            n_audio_state: h[2],
            n_audio_head: h[3],
            n_audio_layer: h[4],
            n_text_ctx: h[5],
            n_text_state: h[6],
            n_text_head: h[7],
            n_text_layer: h[8],
            n_mels: h[9],
            ftype: h[10],
        };
        let count = |v: i32, what: &str| -> Result<usize, ModelError> {
            if (0..MAX_COUNT).contains(&v) {
                Ok(v as usize)
            } else {
                Err(invalid(format!(
                    "{what} of {v} is not plausible: corrupt header?"
                )))
            }
        };
        let (mels, fft) = (
            count(int(&mut r)?, "mel bands")?,
            count(int(&mut r)?, "fft bins")?,
        );
        r.seek_relative((mels * fft * 4) as i64).map_err(io)?;
        let n_tokens = count(int(&mut r)?, "vocabulary size")?;
        let mut vocab = Vec::with_capacity(n_tokens);
        for _ in 0..n_tokens {
            let n = count(int(&mut r)?, "token length")?;
            let mut token = vec![0u8; n];
            r.read_exact(&mut token).map_err(io)?;
            vocab.push(token);
        }
        let (mut order, mut tensors) = (Vec::new(), BTreeMap::new());
        loop {
            let mut b = [0u8; 4];
            match r.read_exact(&mut b) {
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                other => other.map_err(io)?,
            }
            let n_dims = count(i32::from_le_bytes(b), "tensor rank")?;
            if n_dims > 4 {
                return Err(invalid(format!("a tensor of rank {n_dims}: corrupt file?")));
            }
            let name_len = count(int(&mut r)?, "tensor name length")?;
            let raw_type = int(&mut r)?;
            let ttype = TensorType::from_i32(raw_type)
                .ok_or_else(|| invalid(format!("tensor type {raw_type} is not supported")))?;
            let mut ne = Vec::with_capacity(n_dims);
            for _ in 0..n_dims {
                ne.push(count(int(&mut r)?, "tensor dimension")?);
            }
            let mut name = vec![0u8; name_len];
            r.read_exact(&mut name).map_err(io)?;
            let name = String::from_utf8_lossy(&name).into_owned();
            let values: usize = ne.iter().product();
            let bytes = ttype
                .size_of(values)
                .ok_or_else(|| invalid(format!("tensor {name}: {values} values as {ttype:?}")))?;
            let offset = r.stream_position().map_err(io)?;
            if offset + bytes as u64 > len {
                return Err(invalid(format!(
                    "tensor {name} runs past the end: truncated?"
                )));
            }
            r.seek_relative(bytes as i64).map_err(io)?;
            let shape = ne.into_iter().rev().collect();
            order.push(name.clone());
            tensors.insert(
                name,
                TensorAt {
                    ttype,
                    shape,
                    offset,
                    bytes,
                },
            );
        }
        Ok(GgmlModel {
            path: path.to_path_buf(),
            file: r.into_inner(),
            hparams,
            vocab,
            order,
            tensors,
        })
    }

    /// Tensor `name` in f32 (dequantized if need be) and its shape in numpy order.
    pub fn read_f32(&mut self, name: &str) -> Result<(Vec<usize>, Vec<f32>), ModelError> {
        let invalid = |reason: String| ModelError::Invalid {
            path: self.path.clone(),
            reason,
        };
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| invalid(format!("tensor {name} is missing")))?;
        let mut bytes = vec![0u8; t.bytes];
        let io = |source| ModelError::Io {
            path: self.path.clone(),
            source,
        };
        self.file.seek(SeekFrom::Start(t.offset)).map_err(io)?;
        self.file.read_exact(&mut bytes).map_err(io)?;
        let values = quantize::dequantize(t.ttype, &bytes)
            .map_err(|e| invalid(format!("tensor {name}: {e}")))?;
        Ok((t.shape.clone(), values))
    }

    /// Tensor `name`'s shape in numpy order.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.tensors.get(name).map(|t| t.shape.as_slice())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}
