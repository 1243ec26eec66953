//! `[[dataset]] teacher_model`: a bigger model than the one serving labels the dataset
//! (for example base labelling for a tiny.en student). It transcribes the job's decoded
//! audio again, from the spool the pieces are cut from, so its timestamps are the pieces'
//! and nothing is decoded or downloaded twice. It is loaded on first use and dropped after
//! `[asr] idle_unload` without work, like the serving model.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use super::pcm::spool_as_wav;
use crate::pipeline::cancel::Stopped;
use crate::pipeline::decode::AudioDecoder16k;
use crate::pipeline::idle_model::IdleModel;
use crate::pipeline::transcribe::{DecodeOptions, ModelOptions, TranscribeError, Transcriber};
use crate::pipeline::transcript::Transcript;

pub struct Teacher {
    pub path: PathBuf,
    model: IdleModel,
    sha256: OnceLock<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TeacherError {
    #[error("teacher model {}: cannot read it: {source}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("teacher model {}: cannot read the job's decoded audio: {source}", .path.display())]
    Spool {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("teacher model {}: {message}", .path.display())]
    Transcribe { path: PathBuf, message: String },
    /// The job's time limit or a shutdown stopped the teacher: the job's own outcome.
    #[error("teacher model {}: transcription {why}", .path.display())]
    Stopped { path: PathBuf, why: Stopped },
}

impl Teacher {
    /// Nothing is read until the first input is labelled. `idle_unload` zero: kept loaded.
    /// `options`: how the daemon loads models (`[asr]`: GPU device, DTW, flash attention).
    pub fn new(path: &Path, idle_unload: Duration, options: ModelOptions) -> Teacher {
        Teacher {
            path: path.to_path_buf(),
            model: IdleModel::unloaded(path.to_path_buf(), idle_unload).with_options(options),
            sha256: OnceLock::new(),
        }
    }

    /// The teacher file's sha256 (what its manifest lines name), hashed once.
    pub fn sha256(&self) -> Result<&str, TeacherError> {
        if let Some(s) = self.sha256.get() {
            return Ok(s);
        }
        let sha = crate::hash::sha256_file(&self.path).map_err(|source| TeacherError::Read {
            path: self.path.clone(),
            source,
        })?;
        Ok(self.sha256.get_or_init(|| sha))
    }

    /// The teacher's transcript of a job's audio spool `pcm`, decoded with the job's options.
    pub fn label(&self, pcm: &Path, opts: &DecodeOptions) -> Result<Transcript, TeacherError> {
        let spool = |source| TeacherError::Spool {
            path: self.path.clone(),
            source,
        };
        let stream = spool_as_wav(pcm).map_err(spool)?;
        let mut audio =
            AudioDecoder16k::open_stream(Box::new(stream), Some("wav")).map_err(|e| {
                TeacherError::Transcribe {
                    path: self.path.clone(),
                    message: e.to_string(),
                }
            })?;
        self.model
            .transcribe(&mut audio, opts)
            .map_err(|e| match e {
                TranscribeError::Stopped(why) => TeacherError::Stopped {
                    path: self.path.clone(),
                    why,
                },
                e => TeacherError::Transcribe {
                    path: self.path.clone(),
                    message: e.to_string(),
                },
            })
    }

    /// Drops the model if it has been idle long enough (called by the daemon's ticker).
    pub fn unload_if_idle(&self) -> bool {
        self.model.unload_if_idle()
    }
}
