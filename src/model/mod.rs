//! Model files: import CTranslate2 Whisper models (faster-whisper's format) into the ggml
//! format whisper.cpp loads.

pub mod ct2;
pub mod ggml;
pub mod import;
mod mel;
mod multipart;
mod quantize;
pub mod silero;
mod vocab;

use std::path::PathBuf;

pub use import::{import_ct2, ImportSummary, WeightType};

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}
