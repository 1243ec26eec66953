//! Writer for whisper.cpp's legacy ggml model file: magic, hparams, mel filters, vocabulary,
//! then tensors (`n_dims, name_len, type, ne[..], name, data`), all little-endian.

use std::io::{self, Write};

pub const MAGIC: u32 = 0x6767_6d6c; // "ggml"

/// ggml tensor types used here (ggml.h `enum ggml_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorType {
    F32 = 0,
    F16 = 1,
    Q5_1 = 7,
    Q8_0 = 8,
}

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
