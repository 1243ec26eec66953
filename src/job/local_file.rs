//! An input that is a local file: in a watched folder (finished by moving, keeping or
//! deleting it; rejected into `failed/` with `NAME.error.json` beside it), or named on the
//! command line (left where it is either way).

use std::path::{Path, PathBuf};

use super::failure::{Failure, Stage};
use super::input::{Body, Finished, Input, Opened, Sha256};
use crate::config::After;
use crate::journal::State;
use crate::sinks::local::write_atomic;
use crate::sources::names::{DONE_DIR, FAILED_DIR};

/// The watched folder an input lies in, and what happens to it when it is finished.
#[derive(Debug, Clone)]
pub struct InFolder {
    pub root: PathBuf,
    /// The input's path under `root`.
    pub rel: PathBuf,
    pub after: After,
    /// `max_file_size`: larger files are rejected without being read.
    pub max_size: u64,
}

pub struct LocalFile {
    path: PathBuf,
    name: String,
    folder: Option<InFolder>,
    sha256: Option<String>,
}

impl LocalFile {
    /// A file named on the command line.
    pub fn standalone(path: &Path) -> LocalFile {
        LocalFile {
            path: path.to_path_buf(),
            name: path.display().to_string(),
            folder: None,
            sha256: None,
        }
    }

    pub fn in_folder(folder: InFolder) -> LocalFile {
        let path = folder.root.join(&folder.rel);
        LocalFile {
            name: path.display().to_string(),
            path,
            folder: Some(folder),
            sha256: None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Input for LocalFile {
    fn name(&self) -> &str {
        &self.name
    }

    async fn admit(&mut self) -> Result<(), Failure> {
        // On the command line a missing file is the decoder's to explain.
        let Some(folder) = &self.folder else {
            return Ok(());
        };
        let size = match std::fs::metadata(&self.path) {
            Ok(m) if m.is_file() => m.len(),
            _ => {
                return Err(Failure::permanent(
                    Stage::Validate,
                    "input vanished before it was processed",
                ))
            }
        };
        if size > folder.max_size {
            return Err(Failure::permanent(
                Stage::Validate,
                format!(
                    "{} is {size} bytes, over max_file_size {} (raise it in [[watch]] if this is expected)",
                    self.name, folder.max_size
                ),
            ));
        }
        Ok(())
    }

    async fn sha256_first(&mut self) -> Result<Option<String>, Failure> {
        let path = self.path.clone();
        // Unreadable: no dedup, and the decoder says what is wrong with the file.
        let sha = tokio::task::spawn_blocking(move || crate::hash::sha256_file(&path))
            .await
            .ok()
            .and_then(Result::ok);
        self.sha256.clone_from(&sha);
        Ok(sha)
    }

    async fn open(&mut self, _spool_dir: &Path) -> Result<Opened, Failure> {
        let sha256 = match self.sha256.take() {
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

    async fn finish(&self) -> Result<Finished, String> {
        match &self.folder {
            Some(f) => after_done(f).map_err(|e| e.to_string()),
            None => Ok(None),
        }
    }

    async fn reject(&self, stage: Stage, reason: &str, attempts: i64) -> State {
        let Some(folder) = &self.folder else {
            return State::Failed;
        };
        if !self.path.exists() {
            return State::Failed;
        }
        match quarantine(folder, stage, reason, attempts) {
            Ok(to) => {
                tracing::warn!(file = %self.name, moved_to = %to.display(), %stage, %reason, "failed; quarantined");
                State::Quarantined
            }
            Err(e) => {
                tracing::error!(file = %self.name, error = %e, %stage, %reason, "failed, and could not be moved to failed/");
                State::Failed
            }
        }
    }
}

/// The folder's `after` action for a finished input, and the note for its trail.
pub fn after_done(f: &InFolder) -> std::io::Result<Finished> {
    match f.after {
        After::Keep => Ok(None),
        After::Delete => {
            std::fs::remove_file(f.root.join(&f.rel))?;
            Ok(Some((
                "removed",
                "the input, as after = \"delete\" asks".to_string(),
            )))
        }
        After::Move => {
            let to = move_under(&f.root, DONE_DIR, &f.rel)?;
            Ok(Some(("moved", format!("to {}", to.display()))))
        }
    }
}

/// A permanent failure: the input goes to `failed/<rel>` with `<name>.error.json` beside it.
fn quarantine(f: &InFolder, stage: Stage, reason: &str, attempts: i64) -> std::io::Result<PathBuf> {
    let moved = move_under(&f.root, FAILED_DIR, &f.rel)?;
    let mut name = moved.file_name().unwrap_or_default().to_os_string();
    name.push(".error.json");
    let report = serde_json::json!({
        "input": f.root.join(&f.rel).display().to_string(),
        "stage": stage.as_str(),
        "reason": reason,
        "attempts": attempts,
        "time": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        "what_to_do": "fix or replace the file, then drop it into the watched folder again",
    });
    let text = serde_json::to_vec_pretty(&report).unwrap_or_default();
    write_atomic(&moved.with_file_name(name), &text).map_err(|e| e.source)?;
    Ok(moved)
}

fn move_under(root: &Path, dir: &str, rel: &Path) -> std::io::Result<PathBuf> {
    let to = root.join(dir).join(rel);
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::rename(root.join(rel), &to)?;
    Ok(to)
}
