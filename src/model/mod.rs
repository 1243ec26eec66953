//! Model files: import CTranslate2 Whisper models (faster-whisper's format) into the ggml
//! format whisper.cpp loads, and move weights between ggml and Hugging Face transformers
//! (export for training, import of the trained model).

pub mod ct2;
pub mod export_hf;
pub mod ggml;
mod hf_tokenizer;
pub mod import;
pub mod import_hf;
mod mel;
mod multipart;
mod quantize;
pub(crate) mod safetensors;
pub mod silero;
pub mod torch_pt;
mod vocab;
mod whisper_names;
mod whisper_tokens;

use std::path::PathBuf;

pub use export_hf::{export_hf, ExportSummary};
pub use import::{import_ct2, ImportSummary, WeightType};
pub use import_hf::import_hf;

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
