//! A file uploaded to the HTTP API, as an [`Input`]: already whole on disk in the uploads
//! folder under a name the daemon chose (the job id), hashed while it arrived. Finishing it
//! deletes it (the outputs are what the client asked for); a rejected one is kept in
//! `quarantine/` beside it for whoever looks into the reason.

use std::path::{Path, PathBuf};

use super::failure::{Failure, Stage};
use super::input::{Body, FinishError, Finished, Input, Opened, Sha256};
use crate::journal::State;

/// Where a rejected upload is kept, under the uploads folder.
pub const QUARANTINE_DIR: &str = "quarantine";

pub struct Upload {
    /// `upload <job id> (<the client's file name>)`, for logs.
    name: String,
    path: PathBuf,
    sha256: Option<String>,
}

impl Upload {
    /// `path` is the upload's file; `filename` only names it in logs.
    pub fn new(path: PathBuf, job_id: &str, filename: &str, sha256: Option<String>) -> Upload {
        Upload {
            name: format!("upload {job_id} ({filename})"),
            path,
            sha256,
        }
    }

    fn quarantine(&self) -> std::io::Result<PathBuf> {
        let (Some(dir), Some(file)) = (self.path.parent(), self.path.file_name()) else {
            return Err(std::io::Error::other("the upload has no folder"));
        };
        let to_dir = dir.join(QUARANTINE_DIR);
        std::fs::create_dir_all(&to_dir)?;
        let to = to_dir.join(file);
        std::fs::rename(&self.path, &to)?;
        Ok(to)
    }
}

impl Input for Upload {
    fn name(&self) -> &str {
        &self.name
    }

    async fn admit(&mut self) -> Result<(), Failure> {
        match std::fs::symlink_metadata(&self.path) {
            Ok(m) if m.is_file() => Ok(()),
            _ => Err(Failure::permanent(
                Stage::Validate,
                format!(
                    "the uploaded file {} is gone from the uploads folder; upload it again",
                    self.path.display()
                ),
            )),
        }
    }

    async fn sha256_first(&mut self, _spool_dir: &Path) -> Result<Option<String>, Failure> {
        Ok(self.sha256.clone())
    }

    async fn open(&mut self, _spool_dir: &Path) -> Result<Opened, Failure> {
        let sha256 = match self.sha256.clone() {
            Some(s) => Sha256::Known(s),
            None => Sha256::OfFile(self.path.clone()),
        };
        Ok(Opened {
            body: Body::File(self.path.clone()),
            sha256,
        })
    }

    async fn close(&mut self, _decode_failed: bool) -> Result<(), Failure> {
        Ok(())
    }

    async fn finish(&self) -> Result<Finished, FinishError> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(Some((
                "removed",
                "the uploaded file (its outputs are kept)".into(),
            ))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(FinishError::Local {
                path: self.path.clone(),
                source,
            }),
        }
    }

    async fn reject(&self, stage: Stage, reason: &str, _attempts: i64) -> State {
        match self.quarantine() {
            Ok(to) => {
                tracing::warn!(file = %self.name, moved_to = %to.display(), %stage, %reason, "failed; quarantined");
                State::Quarantined
            }
            Err(e) => {
                tracing::error!(file = %self.name, error = %e, %stage, %reason, "failed, and the upload could not be moved to quarantine/");
                State::Failed
            }
        }
    }
}
