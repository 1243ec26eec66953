//! Silero VAD (PyPI `silero-vad`, `silero_vad_16k.safetensors`) → the ggml VAD model
//! whisper.cpp loads for `--vad`. The safetensors file carries the STFT basis, four
//! convolutions, the LSTM cell and the output convolution; whisper.cpp's graph for them is
//! fixed, so this is renaming and storing as the loader expects (convolution kernels f16,
//! everything else f32).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use half::f16;

use super::ggml::{write_tensor, TensorType, MAGIC};
use super::ModelError;
use crate::sinks::local::AtomicFile;

const MAX_HEADER: u64 = 16 * 1024 * 1024;

#[derive(serde::Deserialize)]
struct Entry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: [u64; 2],
}

struct SafeTensors {
    file: File,
    data_start: u64,
    len: u64,
    entries: BTreeMap<String, Entry>,
}

impl SafeTensors {
    fn open(path: &Path) -> Result<Self, ModelError> {
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
            file,
            data_start: 8 + header_len,
            len,
            entries,
        })
    }

    fn shape(&self, name: &str) -> Option<&[usize]> {
        self.entries.get(name).map(|e| e.shape.as_slice())
    }

    fn read_f32(&mut self, name: &str, path: &Path) -> Result<(Vec<usize>, Vec<f32>), ModelError> {
        let invalid = |reason: String| ModelError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        let e = self.entries.get(name).ok_or_else(|| {
            invalid(format!(
                "tensor {name:?} is missing: is this Silero VAD v5/v6?"
            ))
        })?;
        if e.dtype != "F32" {
            return Err(invalid(format!(
                "tensor {name:?} is {}, expected F32",
                e.dtype
            )));
        }
        let [start, end] = e.data_offsets;
        let count: usize = e.shape.iter().product();
        if end < start || end - start != count as u64 * 4 || self.data_start + end > self.len {
            return Err(invalid(format!("tensor {name:?} has inconsistent offsets")));
        }
        let shape = e.shape.clone();
        let mut bytes = vec![0u8; count * 4];
        let io = |source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        };
        self.file
            .seek(SeekFrom::Start(self.data_start + start))
            .map_err(io)?;
        self.file.read_exact(&mut bytes).map_err(io)?;
        let values = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Ok((shape, values))
    }
}

pub fn import_silero(input: &Path, out: &Path) -> Result<usize, ModelError> {
    let mut st = SafeTensors::open(input)?;
    let invalid = |reason: String| ModelError::Invalid {
        path: input.to_path_buf(),
        reason,
    };
    let dim = |st: &SafeTensors, name: &str, i: usize| -> Result<i32, ModelError> {
        st.shape(name)
            .and_then(|s| s.get(i).copied())
            .and_then(|d| i32::try_from(d).ok())
            .ok_or_else(|| {
                invalid(format!(
                    "tensor {name:?} is missing or has an unexpected shape"
                ))
            })
    };
    let io = |source| ModelError::Io {
        path: out.to_path_buf(),
        source,
    };
    let file = AtomicFile::create(out).map_err(|e| io(e.source))?;
    let mut w = BufWriter::new(file.as_file());
    let model_type = b"silero-16k";
    let mut header: Vec<i32> = vec![model_type.len() as i32];
    let mut ints = vec![6, 2, 3, 512, 64, 4]; // version 6.2.3, n_window, n_context, layers
    for i in 1..=4 {
        let name = format!("conv{i}.weight");
        ints.extend([
            dim(&st, &name, 1)?,
            dim(&st, &name, 0)?,
            dim(&st, &name, 2)?,
        ]);
    }
    ints.extend([
        dim(&st, "lstm_cell.weight_ih", 1)?,
        dim(&st, "lstm_cell.weight_hh", 1)?,
        dim(&st, "final_conv.weight", 1)?,
        dim(&st, "final_conv.weight", 0)?,
    ]);
    w.write_all(&MAGIC.to_le_bytes()).map_err(io)?;
    w.write_all(&header.remove(0).to_le_bytes()).map_err(io)?;
    w.write_all(model_type).map_err(io)?;
    for v in ints {
        w.write_all(&v.to_le_bytes()).map_err(io)?;
    }
    // (source, ggml name, stored as f16)
    let mut plan: Vec<(String, String, bool)> = vec![(
        "stft_conv.weight".into(),
        "_model.stft.forward_basis_buffer".into(),
        true,
    )];
    for i in 0..4 {
        plan.push((
            format!("conv{}.weight", i + 1),
            format!("_model.encoder.{i}.reparam_conv.weight"),
            true,
        ));
        plan.push((
            format!("conv{}.bias", i + 1),
            format!("_model.encoder.{i}.reparam_conv.bias"),
            false,
        ));
    }
    for p in ["weight_ih", "weight_hh", "bias_ih", "bias_hh"] {
        plan.push((
            format!("lstm_cell.{p}"),
            format!("_model.decoder.rnn.{p}"),
            false,
        ));
    }
    plan.push((
        "final_conv.weight".into(),
        "_model.decoder.decoder.2.weight".into(),
        true,
    ));
    plan.push((
        "final_conv.bias".into(),
        "_model.decoder.decoder.2.bias".into(),
        false,
    ));
    let mut bytes = Vec::new();
    for (src, dst, half) in &plan {
        let (mut shape, values) = st.read_f32(src, input)?;
        if src == "final_conv.weight" {
            // [1, in, 1] is a pointwise convolution: whisper.cpp holds it as [1, in].
            shape.retain(|d| *d != 1);
            shape.insert(0, 1);
        }
        bytes.clear();
        let ttype = if *half {
            bytes.extend(values.iter().flat_map(|v| f16::from_f32(*v).to_le_bytes()));
            TensorType::F16
        } else {
            bytes.extend(values.iter().flat_map(|v| v.to_le_bytes()));
            TensorType::F32
        };
        let ne: Vec<usize> = shape.iter().rev().copied().collect();
        write_tensor(&mut w, dst, &ne, ttype, &bytes).map_err(io)?;
    }
    w.flush().map_err(io)?;
    drop(w);
    file.commit().map_err(|e| io(e.source))?;
    Ok(plan.len())
}
