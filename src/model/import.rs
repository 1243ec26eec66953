//! CTranslate2 `WhisperSpec` → ggml Whisper: names, fused-tensor splits, types, hparams.
//!
//! CTranslate2 fuses self-attention Q|K|V into one `linear_0` and cross-attention K|V into
//! `linear_1`; whisper.cpp wants them apart. Whisper's key projection has no bias (CTranslate2
//! stores zeros) — and a key bias only adds a per-query constant before softmax, so dropping
//! it is exact.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use half::f16;

use super::ct2::Ct2Model;
use super::ggml::{self, Hparams, TensorType};
use super::whisper_names::Kind;
use super::{mel, quantize, vocab, ModelError};
use crate::sinks::local::AtomicFile;

const GGML_QNT_VERSION: i32 = 2;

/// How the large weight matrices are stored in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WeightType {
    F32,
    F16,
    #[value(name = "q8_0")]
    Q8_0,
    #[value(name = "q5_1")]
    Q5_1,
}

impl WeightType {
    /// How ggml model `path` stores its weights: a model made to replace it is stored alike.
    pub fn of_model(path: &Path) -> Result<WeightType, ModelError> {
        let model = super::ggml::GgmlModel::open(path)?;
        Ok(match model.hparams.ftype % 1000 {
            0 => WeightType::F32,
            7 => WeightType::Q8_0,
            9 => WeightType::Q5_1,
            _ => WeightType::F16,
        })
    }

    pub(super) fn ftype(self) -> i32 {
        match self {
            WeightType::F32 => 0,
            WeightType::F16 => 1,
            WeightType::Q8_0 => 7 + GGML_QNT_VERSION * 1000,
            WeightType::Q5_1 => 9 + GGML_QNT_VERSION * 1000,
        }
    }
}

/// One output tensor: rows `[row0, row0 + rows)` of a source variable.
struct Plan {
    name: String,
    source: String,
    row0: usize,
    rows: Option<usize>,
    /// Output shape in numpy order (outermost first).
    shape: Vec<usize>,
    kind: Kind,
}

#[derive(Debug, serde::Serialize)]
pub struct ImportSummary {
    pub output: PathBuf,
    pub multilingual: bool,
    pub n_vocab: usize,
    pub audio_layers: usize,
    pub text_layers: usize,
    pub state: usize,
    pub tensors: usize,
    pub bytes: u64,
    pub weight_type: String,
}

pub fn import_ct2(dir: &Path, out: &Path, wtype: WeightType) -> Result<ImportSummary, ModelError> {
    let mut model = Ct2Model::open_dir(dir)?;
    let invalid = |reason: String| ModelError::Invalid {
        path: dir.to_path_buf(),
        reason,
    };
    if model.spec != "WhisperSpec" {
        return Err(invalid(format!(
            "model spec is {:?}, not a Whisper model (WhisperSpec)",
            model.spec
        )));
    }
    let vocab_path = dir.join("vocabulary.txt");
    let vocab_text = std::fs::read_to_string(&vocab_path).map_err(|source| ModelError::Io {
        path: vocab_path.clone(),
        source,
    })?;
    let tokens = vocab::decode_vocabulary(&vocab_text).map_err(|reason| ModelError::Invalid {
        path: vocab_path.clone(),
        reason,
    })?;

    let emb = model.dims("decoder/embeddings/weight")?;
    let enc_pos = model.dims("encoder/position_encodings/encodings")?;
    let dec_pos = model.dims("decoder/position_encodings/encodings")?;
    let conv1 = model.dims("encoder/conv1/weight")?;
    let (n_vocab, n_state) = match emb.as_slice() {
        [v, s] => (*v, *s),
        _ => return Err(invalid(format!("token embedding has shape {emb:?}"))),
    };
    let n_mels = conv1.get(1).copied().unwrap_or(0);
    let n_audio_layer = count_layers(&model, "encoder/");
    let n_text_layer = count_layers(&model, "decoder/");
    if n_audio_layer == 0 || n_text_layer == 0 || n_mels == 0 {
        return Err(invalid("no encoder or decoder layers found".into()));
    }
    if n_state % quantize::BLOCK != 0 && matches!(wtype, WeightType::Q8_0 | WeightType::Q5_1) {
        return Err(invalid(format!(
            "width {n_state} is not a multiple of {}: cannot quantize",
            quantize::BLOCK
        )));
    }
    let hparams = Hparams {
        n_vocab: to_i32(n_vocab)?,
        n_audio_ctx: to_i32(enc_pos.first().copied().unwrap_or(0))?,
        n_audio_state: to_i32(n_state)?,
        n_audio_head: to_i32(model.read_scalar_int("encoder/num_heads")? as usize)?,
        n_audio_layer: to_i32(n_audio_layer)?,
        n_text_ctx: to_i32(dec_pos.first().copied().unwrap_or(0))?,
        n_text_state: to_i32(n_state)?,
        n_text_head: to_i32(model.read_scalar_int("decoder/num_heads")? as usize)?,
        n_text_layer: to_i32(n_text_layer)?,
        n_mels: to_i32(n_mels)?,
        ftype: wtype.ftype(),
    };

    let plans = plan(n_state, n_audio_layer, n_text_layer);
    let mut w = WhisperWriter::create(out, &hparams, &tokens, wtype)?;
    for p in &plans {
        let values = model.read_f32(&p.source)?;
        let src_dims = model.dims(&p.source)?;
        let row_len: usize = src_dims.iter().skip(1).product::<usize>().max(1);
        let rows = p.rows.unwrap_or(src_dims.first().copied().unwrap_or(1));
        let (start, end) = (p.row0 * row_len, (p.row0 + rows) * row_len);
        let shape: Vec<usize> = if p.shape.is_empty() {
            let mut d = src_dims.clone();
            if let (Some(first), Some(r)) = (d.first_mut(), p.rows) {
                *first = r;
            }
            d
        } else {
            let dims = p.shape.iter().enumerate();
            dims.map(|(i, &d)| {
                if d == 0 {
                    src_dims.get(i).copied().unwrap_or(0)
                } else {
                    d
                }
            })
            .collect()
        };
        let expected: usize = shape.iter().product();
        let slice = values
            .get(start..end)
            .filter(|s| s.len() == expected)
            .ok_or_else(|| {
                invalid(format!(
                    "{} (from {}) expects {expected} values, source has shape {src_dims:?}",
                    p.name, p.source
                ))
            })?;
        w.tensor(&p.name, &shape, p.kind, slice)?;
    }
    let size = w.finish()?;
    Ok(ImportSummary {
        output: out.to_path_buf(),
        multilingual: n_vocab >= 51865,
        n_vocab,
        audio_layers: n_audio_layer,
        text_layers: n_text_layer,
        state: n_state,
        tensors: plans.len(),
        bytes: size,
        weight_type: format!("{wtype:?}").to_lowercase(),
    })
}

/// A ggml Whisper file being written (atomically): the header with the mel filterbank and
/// vocabulary, then tensors stored per their kind and the model's weight type.
pub(super) struct WhisperWriter {
    out: PathBuf,
    file: AtomicFile,
    wtype: WeightType,
    bytes: Vec<u8>,
}

impl WhisperWriter {
    pub(super) fn create(
        out: &Path,
        hparams: &Hparams,
        tokens: &[Vec<u8>],
        wtype: WeightType,
    ) -> Result<WhisperWriter, ModelError> {
        let file = AtomicFile::create(out).map_err(|e| io_error(out, e.source))?;
        let filters = mel::filterbank(16_000, 400, hparams.n_mels.max(0) as usize);
        let mut w = BufWriter::new(file.as_file());
        ggml::write_header(&mut w, hparams, &filters, 201, tokens)
            .and_then(|()| w.flush())
            .map_err(|e| io_error(out, e))?;
        drop(w);
        Ok(WhisperWriter {
            out: out.to_path_buf(),
            file,
            wtype,
            bytes: Vec::new(),
        })
    }

    /// Appends tensor `name` of `shape` (numpy order).
    pub(super) fn tensor(
        &mut self,
        name: &str,
        shape: &[usize],
        kind: Kind,
        values: &[f32],
    ) -> Result<(), ModelError> {
        let ttype = encode(values, kind, self.wtype, &mut self.bytes);
        let ne: Vec<usize> = shape.iter().rev().copied().collect();
        let mut w = BufWriter::new(self.file.as_file());
        ggml::write_tensor(&mut w, name, &ne, ttype, &self.bytes)
            .and_then(|()| w.flush())
            .map_err(|e| io_error(&self.out, e))
    }

    /// Puts the file in place; returns its size.
    pub(super) fn finish(self) -> Result<u64, ModelError> {
        let size = self
            .file
            .as_file()
            .metadata()
            .map_err(|e| io_error(&self.out, e))?
            .len();
        self.file
            .commit()
            .map_err(|e| io_error(&self.out, e.source))?;
        Ok(size)
    }
}

fn io_error(path: &Path, source: std::io::Error) -> ModelError {
    ModelError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn to_i32(v: usize) -> Result<i32, ModelError> {
    i32::try_from(v).map_err(|_| ModelError::Invalid {
        path: PathBuf::new(),
        reason: format!("dimension {v} does not fit the ggml header"),
    })
}

/// Counts `prefix + "layer_<digits>/"` groups (a bare `layer_` also matches `layer_norm`).
fn count_layers(model: &Ct2Model, prefix: &str) -> usize {
    let mut max = None;
    for name in model.names() {
        let Some(rest) = name
            .strip_prefix(prefix)
            .and_then(|r| r.strip_prefix("layer_"))
        else {
            continue;
        };
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if !digits.is_empty() && rest[digits.len()..].starts_with('/') {
            if let Ok(n) = digits.parse::<usize>() {
                max = Some(max.map_or(n, |m: usize| m.max(n)));
            }
        }
    }
    max.map_or(0, |m| m + 1)
}

/// Stores `values` per kind and model weight type; returns the ggml type written.
fn encode(values: &[f32], kind: Kind, wtype: WeightType, out: &mut Vec<u8>) -> TensorType {
    out.clear();
    let f32_out = |out: &mut Vec<u8>| {
        out.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        TensorType::F32
    };
    let f16_out = |out: &mut Vec<u8>| {
        out.extend(values.iter().flat_map(|v| f16::from_f32(*v).to_le_bytes()));
        TensorType::F16
    };
    match (kind, wtype) {
        (Kind::Float | Kind::ConvBias, _) | (_, WeightType::F32) => f32_out(out),
        (Kind::Conv, _) | (Kind::Matrix, WeightType::F16) => f16_out(out),
        (Kind::Matrix, WeightType::Q8_0) => {
            quantize::q8_0(values, out);
            TensorType::Q8_0
        }
        (Kind::Matrix, WeightType::Q5_1) => {
            quantize::q5_1(values, out);
            TensorType::Q5_1
        }
    }
}

fn plan(n: usize, audio_layers: usize, text_layers: usize) -> Vec<Plan> {
    let mut plans = Vec::new();
    let mut add = |name: String, source: String, row0, rows, shape: Vec<usize>, kind| {
        plans.push(Plan {
            name,
            source,
            row0,
            rows,
            shape,
            kind,
        })
    };
    // Encoder stem. Conv biases are stored as [n, 1] (ggml [1, n]) as whisper.cpp declares them.
    whisper_stem(&mut add, n);
    for i in 0..audio_layers {
        block(
            &mut add,
            &format!("encoder.blocks.{i}"),
            &format!("encoder/layer_{i}"),
            n,
            false,
        );
    }
    layer_norm(&mut add, "encoder.ln_post", "encoder/layer_norm", n);

    // Decoder.
    add(
        "decoder.token_embedding.weight".into(),
        "decoder/embeddings/weight".into(),
        0,
        None,
        vec![0, n],
        Kind::Matrix,
    );
    for i in 0..text_layers {
        block(
            &mut add,
            &format!("decoder.blocks.{i}"),
            &format!("decoder/layer_{i}"),
            n,
            true,
        );
    }
    layer_norm(&mut add, "decoder.ln", "decoder/layer_norm", n);
    add(
        "decoder.positional_embedding".into(),
        "decoder/position_encodings/encodings".into(),
        0,
        None,
        vec![0, n],
        Kind::Float,
    );
    plans
}

type Add<'a> = dyn FnMut(String, String, usize, Option<usize>, Vec<usize>, Kind) + 'a;

fn whisper_stem(add: &mut Add, n: usize) {
    add(
        "encoder.positional_embedding".into(),
        "encoder/position_encodings/encodings".into(),
        0,
        None,
        vec![0, n],
        Kind::Float,
    );
    for c in ["conv1", "conv2"] {
        add(
            format!("encoder.{c}.weight"),
            format!("encoder/{c}/weight"),
            0,
            None,
            vec![],
            Kind::Conv,
        );
        add(
            format!("encoder.{c}.bias"),
            format!("encoder/{c}/bias"),
            0,
            None,
            vec![n, 1],
            Kind::Float,
        );
    }
}

/// One transformer block: self-attention, cross-attention (decoder only), MLP.
fn block(add: &mut Add, dst: &str, src: &str, n: usize, cross: bool) {
    layer_norm(
        add,
        &format!("{dst}.attn_ln"),
        &format!("{src}/self_attention/layer_norm"),
        n,
    );
    fused_qkv(
        add,
        &format!("{dst}.attn"),
        &format!("{src}/self_attention"),
        n,
    );
    if cross {
        let (cdst, csrc) = (format!("{dst}.cross_attn"), format!("{src}/attention"));
        layer_norm(
            add,
            &format!("{dst}.cross_attn_ln"),
            &format!("{csrc}/layer_norm"),
            n,
        );
        linear(
            add,
            &format!("{cdst}.query"),
            &format!("{csrc}/linear_0"),
            0,
            n,
            true,
        );
        linear(
            add,
            &format!("{cdst}.key"),
            &format!("{csrc}/linear_1"),
            0,
            n,
            false,
        );
        linear(
            add,
            &format!("{cdst}.value"),
            &format!("{csrc}/linear_1"),
            n,
            n,
            true,
        );
        linear(
            add,
            &format!("{cdst}.out"),
            &format!("{csrc}/linear_2"),
            0,
            n,
            true,
        );
    }
    layer_norm(
        add,
        &format!("{dst}.mlp_ln"),
        &format!("{src}/ffn/layer_norm"),
        n,
    );
    ffn(add, dst, &format!("{src}/ffn"));
}

fn layer_norm(add: &mut Add, dst: &str, src: &str, n: usize) {
    add(
        format!("{dst}.weight"),
        format!("{src}/gamma"),
        0,
        None,
        vec![n],
        Kind::Float,
    );
    add(
        format!("{dst}.bias"),
        format!("{src}/beta"),
        0,
        None,
        vec![n],
        Kind::Float,
    );
}

/// Rows `[row0, row0 + n)` of `src/weight` (and of `src/bias` when `bias`).
fn linear(add: &mut Add, dst: &str, src: &str, row0: usize, n: usize, bias: bool) {
    add(
        format!("{dst}.weight"),
        format!("{src}/weight"),
        row0,
        Some(n),
        vec![n, 0],
        Kind::Matrix,
    );
    if bias {
        add(
            format!("{dst}.bias"),
            format!("{src}/bias"),
            row0,
            Some(n),
            vec![n],
            Kind::Float,
        );
    }
}

fn fused_qkv(add: &mut Add, dst: &str, src: &str, n: usize) {
    linear(
        add,
        &format!("{dst}.query"),
        &format!("{src}/linear_0"),
        0,
        n,
        true,
    );
    linear(
        add,
        &format!("{dst}.key"),
        &format!("{src}/linear_0"),
        n,
        n,
        false,
    );
    linear(
        add,
        &format!("{dst}.value"),
        &format!("{src}/linear_0"),
        2 * n,
        n,
        true,
    );
    linear(
        add,
        &format!("{dst}.out"),
        &format!("{src}/linear_1"),
        0,
        n,
        true,
    );
}

fn ffn(add: &mut Add, dst: &str, src: &str) {
    for (i, j) in [(0, 0), (2, 1)] {
        add(
            format!("{dst}.mlp.{i}.weight"),
            format!("{src}/linear_{j}/weight"),
            0,
            None,
            vec![],
            Kind::Matrix,
        );
        add(
            format!("{dst}.mlp.{i}.bias"),
            format!("{src}/linear_{j}/bias"),
            0,
            None,
            vec![],
            Kind::Float,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ct2_plan_writes_the_tensors_of_the_shared_table_in_its_order() {
        let planned: Vec<(String, bool)> = plan(384, 4, 4)
            .into_iter()
            .map(|p| (p.name, p.kind == Kind::Matrix))
            .collect();
        let table: Vec<(String, bool)> = super::super::whisper_names::tensors(4, 4)
            .into_iter()
            .map(|t| (t.ggml, t.kind == Kind::Matrix))
            .collect();
        assert_eq!(planned, table);
    }
}
