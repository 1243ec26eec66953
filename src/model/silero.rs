//! Silero VAD (PyPI `silero-vad`, `silero_vad_16k.safetensors`) → the ggml VAD model
//! whisper.cpp loads for `--vad`. The safetensors file carries the STFT basis, four
//! convolutions, the LSTM cell and the output convolution; whisper.cpp's graph for them is
//! fixed, so this is renaming and storing as the loader expects (convolution kernels f16,
//! everything else f32).

use std::io::{BufWriter, Write};
use std::path::Path;

use half::f16;

use super::ggml::{write_tensor, TensorType, MAGIC};
use super::safetensors::SafeTensors;
use super::ModelError;
use crate::sinks::local::AtomicFile;

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
        let (mut shape, values) = st.read_f32(src)?.ok_or_else(|| {
            invalid(format!(
                "tensor {src:?} is missing: is this Silero VAD v5/v6?"
            ))
        })?;
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
