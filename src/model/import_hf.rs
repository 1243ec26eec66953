//! A Hugging Face Whisper folder (a full fine-tune, or a PEFT LoRA adapter over one) → a
//! ggml model file for whisper.cpp: the way back from training to serving.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::ggml::Hparams;
use super::hf_tokenizer;
use super::import::{ImportSummary, WeightType, WhisperWriter};
use super::safetensors::SafeTensors;
use super::whisper_names::{self, Kind};
use super::whisper_tokens::SpecialTokens;
use super::{quantize, ModelError};

/// Converts the model in `dir` to ggml at `out`. When `dir` holds a LoRA adapter
/// (`adapter_config.json`), it is merged into its base: `base`, else the adapter's
/// `base_model_name_or_path` when that is a local folder.
pub fn import_hf(
    dir: &Path,
    out: &Path,
    wtype: WeightType,
    base: Option<&Path>,
) -> Result<ImportSummary, ModelError> {
    let adapter = Adapter::open(dir)?;
    let model_dir = match (&adapter, base) {
        (None, None) => dir.to_path_buf(),
        (_, Some(b)) => b.to_path_buf(),
        (Some(a), None) => a.base_dir(dir)?,
    };
    let invalid = |path: &Path, reason: String| ModelError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let config: Value = read_json(&model_dir.join("config.json"))?;
    let field = |name: &str| -> Result<usize, ModelError> {
        config
            .get(name)
            .and_then(Value::as_u64)
            .map(|v| v as usize)
            .ok_or_else(|| invalid(&model_dir.join("config.json"), format!("no {name}")))
    };
    let (n_vocab, n_state) = (field("vocab_size")?, field("d_model")?);
    let (audio_layers, text_layers) = (field("encoder_layers")?, field("decoder_layers")?);
    let specials = SpecialTokens::for_vocab(n_vocab).ok_or_else(|| {
        invalid(
            &model_dir,
            format!("vocab_size {n_vocab} is not a Whisper vocabulary"),
        )
    })?;
    if n_state % quantize::BLOCK != 0 && matches!(wtype, WeightType::Q8_0 | WeightType::Q5_1) {
        return Err(invalid(
            &model_dir,
            format!(
                "width {n_state} is not a multiple of {}: cannot quantize",
                quantize::BLOCK
            ),
        ));
    }
    let i32_of = |v: usize| {
        i32::try_from(v).map_err(|_| invalid(&model_dir, format!("{v} does not fit ggml")))
    };
    let n_mels = field("num_mel_bins")?;
    let hparams = Hparams {
        n_vocab: i32_of(n_vocab)?,
        n_audio_ctx: i32_of(field("max_source_positions")?)?,
        n_audio_state: i32_of(n_state)?,
        n_audio_head: i32_of(field("encoder_attention_heads")?)?,
        n_audio_layer: i32_of(audio_layers)?,
        n_text_ctx: i32_of(field("max_target_positions")?)?,
        n_text_state: i32_of(n_state)?,
        n_text_head: i32_of(field("decoder_attention_heads")?)?,
        n_text_layer: i32_of(text_layers)?,
        n_mels: i32_of(n_mels)?,
        ftype: wtype.ftype(),
    };
    // The tokenizer travels with the trained folder (the recipe saves it), else with the base.
    let tok_path = [dir.join("tokenizer.json"), model_dir.join("tokenizer.json")]
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| invalid(dir, "no tokenizer.json in the folder or its base".into()))?;
    let tokens = hf_tokenizer::ordinary_tokens(&read_json(&tok_path)?, specials.eot)
        .map_err(|why| invalid(&tok_path, why))?;

    let mut weights = Weights::open(&model_dir)?;
    let mut adapter = adapter;
    let table = whisper_names::tensors(audio_layers, text_layers);
    let mut w = WhisperWriter::create(out, &hparams, &tokens, wtype)?;
    for t in &table {
        let (mut shape, mut values) = weights.read(&t.hf)?;
        if let Some(a) = adapter.as_mut() {
            a.merge_into(&t.hf, &shape, &mut values)?;
        }
        if t.kind == Kind::ConvBias {
            shape.push(1);
        }
        w.tensor(&t.ggml, &shape, t.kind, &values)?;
    }
    if let Some(a) = &adapter {
        a.check_all_used()?;
    }
    let size = w.finish()?;
    Ok(ImportSummary {
        output: out.to_path_buf(),
        multilingual: specials.multilingual,
        n_vocab,
        audio_layers,
        text_layers,
        state: n_state,
        tensors: table.len(),
        bytes: size,
        weight_type: format!("{wtype:?}").to_lowercase(),
    })
}

fn read_json(path: &Path) -> Result<Value, ModelError> {
    let text = std::fs::read(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&text).map_err(|e| ModelError::Invalid {
        path: path.to_path_buf(),
        reason: format!("not valid JSON: {e}"),
    })
}

/// A model's weights: `model.safetensors`, or the shards a `model.safetensors.index.json`
/// names. Tensor names may carry transformers' `model.` prefix or not (`WhisperModel`).
struct Weights {
    dir: PathBuf,
    files: Vec<SafeTensors>,
}

impl Weights {
    fn open(dir: &Path) -> Result<Weights, ModelError> {
        let index = dir.join("model.safetensors.index.json");
        let names: Vec<String> = if index.is_file() {
            let map = read_json(&index)?;
            let mut shards: Vec<String> = map
                .get("weight_map")
                .and_then(Value::as_object)
                .map(|m| {
                    m.values()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            shards.sort();
            shards.dedup();
            shards
        } else {
            vec!["model.safetensors".into()]
        };
        let files = names
            .iter()
            .map(|n| SafeTensors::open(&dir.join(n)))
            .collect::<Result<_, _>>()?;
        Ok(Weights {
            dir: dir.to_path_buf(),
            files,
        })
    }

    fn read(&mut self, name: &str) -> Result<(Vec<usize>, Vec<f32>), ModelError> {
        let bare = name.strip_prefix("model.").unwrap_or(name);
        for f in &mut self.files {
            for candidate in [name, bare] {
                if let Some(found) = f.read_f32(candidate)? {
                    return Ok(found);
                }
            }
        }
        Err(ModelError::Invalid {
            path: self.dir.clone(),
            reason: format!("tensor {name} is missing: is this a Whisper model?"),
        })
    }
}

/// A PEFT LoRA adapter: `W += scale · B·A` for each adapted weight.
struct Adapter {
    dir: PathBuf,
    config: Value,
    weights: SafeTensors,
    scale: f32,
    /// Adapter tensors (`…lora_A.weight` / `…lora_B.weight`) not merged yet.
    unused: BTreeSet<String>,
}

impl Adapter {
    fn open(dir: &Path) -> Result<Option<Adapter>, ModelError> {
        let config_path = dir.join("adapter_config.json");
        if !config_path.is_file() {
            return Ok(None);
        }
        let config = read_json(&config_path)?;
        let invalid = |reason: String| ModelError::Invalid {
            path: config_path.clone(),
            reason,
        };
        let kind = config
            .get("peft_type")
            .and_then(Value::as_str)
            .unwrap_or("LORA");
        if kind != "LORA" {
            return Err(invalid(format!(
                "peft_type {kind}: only LORA adapters can be merged"
            )));
        }
        if config.get("use_dora").and_then(Value::as_bool) == Some(true) {
            return Err(invalid("DoRA adapters cannot be merged here".into()));
        }
        if config.get("fan_in_fan_out").and_then(Value::as_bool) == Some(true) {
            return Err(invalid(
                "fan_in_fan_out adapters are not Whisper's layout".into(),
            ));
        }
        let r = config.get("r").and_then(Value::as_f64).unwrap_or(0.0);
        let alpha = config
            .get("lora_alpha")
            .and_then(Value::as_f64)
            .unwrap_or(r);
        if r <= 0.0 {
            return Err(invalid("no positive rank r".into()));
        }
        let rslora = config.get("use_rslora").and_then(Value::as_bool) == Some(true);
        let scale = if rslora { alpha / r.sqrt() } else { alpha / r } as f32;
        let weights = SafeTensors::open(&dir.join("adapter_model.safetensors"))?;
        let unused = weights.names().map(String::from).collect();
        Ok(Some(Adapter {
            dir: dir.to_path_buf(),
            config,
            weights,
            scale,
            unused,
        }))
    }

    fn base_dir(&self, dir: &Path) -> Result<PathBuf, ModelError> {
        let named = self
            .config
            .get("base_model_name_or_path")
            .and_then(Value::as_str)
            .unwrap_or("");
        let candidate = dir.join(named);
        if !named.is_empty() && candidate.join("config.json").is_file() {
            return Ok(candidate);
        }
        Err(ModelError::Invalid {
            path: dir.to_path_buf(),
            reason: format!(
                "a LoRA adapter whose base {named:?} is not a local folder: pass --base DIR \
                 (the Hugging Face folder it was trained from)"
            ),
        })
    }

    /// Adds this adapter's update to weight `hf_name` (shape `[out, in]`), if it adapts it.
    fn merge_into(
        &mut self,
        hf_name: &str,
        shape: &[usize],
        values: &mut [f32],
    ) -> Result<(), ModelError> {
        let Some(stem) = hf_name.strip_suffix(".weight") else {
            return Ok(());
        };
        let key = |part: &str| format!("base_model.model.{stem}.{part}.weight");
        let (a_key, b_key) = (key("lora_A"), key("lora_B"));
        let invalid = |reason: String| ModelError::Invalid {
            path: self.dir.clone(),
            reason,
        };
        let (Some((a_shape, a)), Some((b_shape, b))) = (
            self.weights.read_f32(&a_key)?,
            self.weights.read_f32(&b_key)?,
        ) else {
            return Ok(());
        };
        let (&[rows, cols], &[r, a_cols], &[b_rows, b_r]) =
            (shape, a_shape.as_slice(), b_shape.as_slice())
        else {
            return Err(invalid(format!(
                "{stem}: an adapter over a tensor of shape {shape:?}"
            )));
        };
        if a_cols != cols || b_rows != rows || b_r != r {
            return Err(invalid(format!(
                "{stem}: A {a_shape:?} and B {b_shape:?} do not fit the weight {shape:?}"
            )));
        }
        for i in 0..rows {
            let row = &mut values[i * cols..(i + 1) * cols];
            for k in 0..r {
                let bik = b[i * r + k] * self.scale;
                if bik == 0.0 {
                    continue;
                }
                for (w, a) in row.iter_mut().zip(&a[k * cols..(k + 1) * cols]) {
                    *w += bik * a;
                }
            }
        }
        self.unused.remove(&a_key);
        self.unused.remove(&b_key);
        Ok(())
    }

    /// An adapter tensor that fits no weight would be silently lost: refuse instead.
    fn check_all_used(&self) -> Result<(), ModelError> {
        match self.unused.iter().next() {
            None => Ok(()),
            Some(name) => Err(ModelError::Invalid {
                path: self.dir.clone(),
                reason: format!(
                    "adapter tensor {name} adapts no Whisper weight ({} such): only LoRA on \
                     linear layers can be merged",
                    self.unused.len()
                ),
            }),
        }
    }
}
