//! ggml Whisper → a Hugging Face transformers folder (`WhisperForConditionalGeneration`):
//! `config.json`, `generation_config.json`, `preprocessor_config.json`, `model.safetensors`
//! (f32) and the tokenizer, so training starts from the weights the daemon serves.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::ggml::GgmlModel;
use super::hf_tokenizer;
use super::import::{import_ct2, WeightType};
use super::safetensors;
use super::whisper_names::{self, Kind};
use super::whisper_tokens::{SpecialTokens, LANGUAGES};
use super::ModelError;

#[derive(Debug, serde::Serialize)]
pub struct ExportSummary {
    pub output: PathBuf,
    pub tokenizer: PathBuf,
    pub tensors: usize,
    pub bytes: u64,
    pub multilingual: bool,
}

/// Exports `model` (a ggml file, or a CTranslate2 directory) into the new folder `out`.
/// The tokenizer is `tokenizer`, else the one found beside the model (see [`find_tokenizer`]).
pub fn export_hf(
    model: &Path,
    out: &Path,
    tokenizer: Option<&Path>,
) -> Result<ExportSummary, ModelError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ModelError::Io {
            path: path.clone(),
            source,
        }
    };
    if std::fs::read_dir(out).is_ok_and(|mut d| d.next().is_some()) {
        return Err(ModelError::Invalid {
            path: out.to_path_buf(),
            reason: "the folder exists and is not empty: export into a new folder".into(),
        });
    }
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    // Built beside its final place and renamed into it: a crash leaves no half folder.
    let work = tempfile::Builder::new()
        .prefix(".export-hf-")
        .tempdir_in(parent)
        .map_err(io(parent))?;
    let (ggml_path, tokenizer) = if model.is_dir() {
        // A CTranslate2 source: through ggml f32 first (exact), tokenizer.json beside it.
        let ggml = work.path().join("source.ggml");
        import_ct2(model, &ggml, WeightType::F32)?;
        let tok = tokenizer.map_or_else(|| model.join("tokenizer.json"), Path::to_path_buf);
        (ggml, tok)
    } else {
        let tok = match tokenizer {
            Some(t) => t.to_path_buf(),
            None => find_tokenizer(model)?,
        };
        (model.to_path_buf(), tok)
    };
    let folder = work.path().join("model");
    std::fs::create_dir(&folder).map_err(io(&folder))?;
    let summary = write_folder(&ggml_path, &tokenizer, &folder)?;
    std::fs::rename(&folder, out).map_err(io(out))?;
    Ok(ExportSummary {
        output: out.to_path_buf(),
        ..summary
    })
}

/// The tokenizer beside a ggml model: `tokenizer-NAME.json` for `ggml-NAME.bin` (what
/// `scripts/fetch-model.sh` and `model import-ct2` leave), or `tokenizer.json`.
pub fn find_tokenizer(model: &Path) -> Result<PathBuf, ModelError> {
    let dir = model.parent().unwrap_or(Path::new("."));
    let name = model.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let stem = name.strip_prefix("ggml-").unwrap_or(name);
    let stem = stem.strip_suffix(".bin").unwrap_or(stem);
    [dir.join(format!("tokenizer-{stem}.json")), dir.join("tokenizer.json")]
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| ModelError::Invalid {
            path: model.to_path_buf(),
            reason: format!(
                "no tokenizer beside it ({}/tokenizer-{stem}.json or tokenizer.json): pass \
                 --tokenizer FILE, the tokenizer.json of the model's CTranslate2 or Hugging Face source",
                dir.display()
            ),
        })
}

fn write_folder(ggml: &Path, tokenizer: &Path, folder: &Path) -> Result<ExportSummary, ModelError> {
    let mut model = GgmlModel::open(ggml)?;
    let h = model.hparams.clone();
    let invalid = |reason: String| ModelError::Invalid {
        path: ggml.to_path_buf(),
        reason,
    };
    let dim = |v: i32| usize::try_from(v).map_err(|_| invalid(format!("bad dimension {v}")));
    let n_vocab = dim(h.n_vocab)?;
    let specials = SpecialTokens::for_vocab(n_vocab)
        .ok_or_else(|| invalid(format!("{n_vocab} tokens is not a Whisper vocabulary")))?;
    if h.n_audio_state != h.n_text_state {
        return Err(invalid("encoder and decoder widths differ".into()));
    }

    let tok_invalid = |reason: String| ModelError::Invalid {
        path: tokenizer.to_path_buf(),
        reason,
    };
    let text = std::fs::read(tokenizer).map_err(|source| ModelError::Io {
        path: tokenizer.to_path_buf(),
        source,
    })?;
    let mut tok: Value = serde_json::from_slice(&text)
        .map_err(|e| tok_invalid(format!("not a tokenizer.json: {e}")))?;
    hf_tokenizer::check_matches(&tok, &model.vocab, specials.eot).map_err(|why| {
        tok_invalid(format!(
            "this tokenizer does not belong to {}: {why}",
            ggml.display()
        ))
    })?;
    hf_tokenizer::complete_specials(&mut tok, &specials, n_vocab);

    let table = whisper_names::tensors(dim(h.n_audio_layer)?, dim(h.n_text_layer)?);
    let mut shapes = Vec::with_capacity(table.len());
    for t in &table {
        let mut shape = model_shape(&model, &t.ggml)?;
        if t.kind == Kind::ConvBias {
            shape.retain(|d| *d != 1);
        }
        shapes.push((t.hf.clone(), shape));
    }
    let ffn = shapes
        .iter()
        .find(|(n, _)| n.ends_with("encoder.layers.0.fc1.weight"))
        .and_then(|(_, s)| s.first().copied())
        .ok_or_else(|| invalid("no encoder MLP found".into()))?;
    let weights = folder.join("model.safetensors");
    let bytes = safetensors::write_f32(&weights, &shapes, |i| {
        model.read_f32(&table[i].ggml).map(|(_, v)| v)
    })?;

    let write_json = |name: &str, value: &Value| -> Result<(), ModelError> {
        let path = folder.join(name);
        let text = serde_json::to_vec_pretty(value).unwrap_or_default();
        std::fs::write(&path, text).map_err(|source| ModelError::Io { path, source })
    };
    let (eot, sot) = (specials.eot, specials.sot);
    write_json(
        "config.json",
        &json!({
            "architectures": ["WhisperForConditionalGeneration"],
            "model_type": "whisper",
            "vocab_size": n_vocab,
            "num_mel_bins": h.n_mels,
            "d_model": h.n_audio_state,
            "encoder_layers": h.n_audio_layer,
            "encoder_attention_heads": h.n_audio_head,
            "decoder_layers": h.n_text_layer,
            "decoder_attention_heads": h.n_text_head,
            "encoder_ffn_dim": ffn,
            "decoder_ffn_dim": ffn,
            "max_source_positions": h.n_audio_ctx,
            "max_target_positions": h.n_text_ctx,
            "activation_function": "gelu",
            "scale_embedding": false,
            "tie_word_embeddings": true,
            "dropout": 0.0,
            "attention_dropout": 0.0,
            "activation_dropout": 0.0,
            "pad_token_id": eot,
            "bos_token_id": eot,
            "eos_token_id": eot,
            "decoder_start_token_id": sot,
            "begin_suppress_tokens": [220, eot],
            "suppress_tokens": [],
            "use_cache": true,
            "dtype": "float32",
        }),
    )?;
    let mut generation = json!({
        "decoder_start_token_id": sot,
        "bos_token_id": eot,
        "eos_token_id": eot,
        "pad_token_id": eot,
        "max_length": h.n_text_ctx,
        // What whisper.cpp suppresses by default: a blank or end-of-text first token only.
        "begin_suppress_tokens": [220, eot],
        "suppress_tokens": [],
        "no_timestamps_token_id": specials.no_timestamps,
        "prev_sot_token_id": specials.start_of_prev,
        "is_multilingual": specials.multilingual,
    });
    if specials.multilingual {
        let langs: serde_json::Map<String, Value> = LANGUAGES
            .iter()
            .take(specials.languages)
            .enumerate()
            .map(|(i, c)| (format!("<|{c}|>"), json!(sot + 1 + i)))
            .collect();
        generation["lang_to_id"] = Value::Object(langs);
        generation["task_to_id"] =
            json!({"transcribe": specials.transcribe, "translate": specials.translate});
    }
    write_json("generation_config.json", &generation)?;
    write_json(
        "preprocessor_config.json",
        &json!({
            "feature_extractor_type": "WhisperFeatureExtractor",
            "processor_class": "WhisperProcessor",
            "feature_size": h.n_mels,
            "sampling_rate": 16000,
            "hop_length": 160,
            "chunk_length": 30,
            "n_fft": 400,
            "n_samples": 480000,
            "nb_max_frames": 3000,
            "padding_side": "right",
            "padding_value": 0.0,
            "return_attention_mask": false,
        }),
    )?;
    write_json("tokenizer.json", &tok)?;
    let special = "<|endoftext|>";
    write_json(
        "tokenizer_config.json",
        &json!({
            "tokenizer_class": "WhisperTokenizer",
            "processor_class": "WhisperProcessor",
            "model_max_length": 1024,
            "errors": "replace",
            "add_prefix_space": false,
            "clean_up_tokenization_spaces": true,
            "bos_token": special,
            "eos_token": special,
            "unk_token": special,
            "pad_token": special,
        }),
    )?;
    write_json(
        "special_tokens_map.json",
        &json!({"bos_token": special, "eos_token": special, "unk_token": special, "pad_token": special}),
    )?;
    Ok(ExportSummary {
        output: folder.to_path_buf(),
        tokenizer: tokenizer.to_path_buf(),
        tensors: table.len(),
        bytes,
        multilingual: specials.multilingual,
    })
}

fn model_shape(model: &GgmlModel, name: &str) -> Result<Vec<usize>, ModelError> {
    model
        .shape(name)
        .map(<[usize]>::to_vec)
        .ok_or_else(|| ModelError::Invalid {
            path: model.path().to_path_buf(),
            reason: format!("tensor {name} is missing"),
        })
}
