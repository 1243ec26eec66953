//! The speaker model on disk: `hotfolderd model import-speaker` reads CAM++'s PyTorch
//! checkpoint, checks every weight against the network, and stores them as safetensors
//! (f32), which diarization loads.

use std::path::Path;

use super::campplus::{CamPlus, Weights};
use crate::model::safetensors::{write_f32, SafeTensors};
use crate::model::ModelError;

/// The file name setup imports to, beside the Whisper models.
pub const FILE_NAME: &str = "speaker-campplus.safetensors";

/// Converts `checkpoint` to `out`; the number of tensors written.
pub fn import(checkpoint: &Path, out: &Path) -> Result<usize, ModelError> {
    let weights: Weights = crate::model::torch_pt::read_state_dict(checkpoint)?;
    CamPlus::load(&weights).map_err(|e| ModelError::Invalid {
        path: checkpoint.to_path_buf(),
        reason: format!("not the CAM++ network diarization runs: {e}"),
    })?;
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

/// Loads the network from an imported file.
pub fn load(path: &Path) -> Result<CamPlus, ModelError> {
    let mut st = SafeTensors::open(path)?;
    let names: Vec<String> = st.names().map(str::to_string).collect();
    let mut weights = Weights::new();
    for name in names {
        if let Some(t) = st.read_f32(&name)? {
            weights.insert(name, t);
        }
    }
    CamPlus::load(&weights).map_err(|e| ModelError::Invalid {
        path: path.to_path_buf(),
        reason: format!("{e}; import it again with `hotfolderd model import-speaker`"),
    })
}
