//! Correction files in a dataset's `corrections/` folder: each is laid onto the pieces of
//! the input it names (see `correction`), the manifest is rewritten with the person's text
//! (`"label": "human"`), the journal records it, and the file moves to `corrections/done/`.
//! A file that cannot be used moves to `corrections/failed/` with `NAME.error.json` saying
//! why and what to do, as an input in a watched folder would. A file named after an input
//! the dataset does not hold yet waits for it.
//!
//! Which input: a file named `<sha256>.EXT` (the input's content, as its json output and the
//! manifest say), else a json transcript's own `sha256`, else the input whose file name
//! matches (`talk.srt` or `talk.wav.srt` for `…/talk.wav`) when exactly one content has it.
//!
//! Replaying a correction gives the same manifest, so a crash anywhere in between is mended
//! by applying the file again (it stays in `corrections/` until the end).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use super::correction::{self, CorrectionError, EXTENSIONS, MAX_BYTES};
use super::feed::{io, lock, Dataset, DatasetError};
use super::manifest;
use crate::journal::{Corrected, Journal};
use crate::sinks::local::{is_own_temp, write_atomic};

/// The folder, in a dataset, that corrections are dropped into.
pub const DIR: &str = "corrections";
const DONE: &str = "done";
const FAILED: &str = "failed";

/// What became of one correction file.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    Applied {
        sha256: String,
        pieces: usize,
        /// Pieces the person left without words.
        dropped: usize,
        unused_cues: usize,
    },
    /// It names an input the dataset does not hold yet: it waits for it.
    Waiting { sha256: String },
    /// Moved to `failed/` with the reason beside it.
    Rejected { reason: String },
    /// Not a correction (a folder, a temporary file) or already taken by another call.
    Ignored,
}

/// Why the file names no input, or not one input.
#[derive(Debug, thiserror::Error)]
enum Unmatched {
    #[error(
        "no input named {0:?} is in this dataset: name the file after its input's sha256 \
         (as its json output says), or use `hotfolderd dataset correct INPUT FILE`"
    )]
    None(String),
    #[error(
        "{} different inputs are named {name:?} ({}): name the file after the one meant, \
         <sha256>.EXT", .shas.len(), .shas.join(", ")
    )]
    Many { name: String, shas: Vec<String> },
    #[error(
        "the dataset kept no audio of this input (its filters left all of it out), so there is \
         nothing to relabel"
    )]
    NoPieces,
}

impl Dataset {
    pub fn corrections_dir(&self) -> PathBuf {
        self.root.join(DIR)
    }

    /// Applies the correction file at `path` (in [`Dataset::corrections_dir`]).
    pub fn apply_correction(
        &self,
        journal: &Mutex<Journal>,
        path: &Path,
    ) -> Result<Outcome, DatasetError> {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            return Ok(Outcome::Ignored);
        };
        if name.starts_with('.') || is_own_temp(name) {
            return Ok(Outcome::Ignored);
        }
        let _one_at_a_time = self.lock();
        let meta = match std::fs::metadata(path) {
            Ok(m) if m.is_file() => m,
            Ok(_) => return Ok(Outcome::Ignored),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Outcome::Ignored),
            Err(e) => return Err(io("read", path)(e)),
        };
        let (stem, ext) = split_name(name);
        if meta.len() > MAX_BYTES {
            return self.reject(path, &CorrectionError::TooBig(meta.len()).to_string());
        }
        let bytes = std::fs::read(path).map_err(io("read", path))?;
        let parsed = match correction::parse(ext, &bytes) {
            Ok(p) => p,
            Err(e) => return self.reject(path, &e.to_string()),
        };
        let contents = manifest::read(&self.manifest()).map_err(io("read", &self.manifest()))?;
        let sha256 = match which_input(stem, parsed.names_sha256.as_deref(), &contents.lines) {
            Ok(sha) => sha,
            Err(e) => return self.reject(path, &e.to_string()),
        };
        let lines: Vec<_> = contents
            .lines
            .into_iter()
            .filter(|l| l.sha256 == sha256)
            .collect();
        if lines.is_empty() {
            if lock(journal).dataset_holds(&self.name, &sha256)? {
                return self.reject(path, &Unmatched::NoPieces.to_string());
            }
            return Ok(Outcome::Waiting { sha256 });
        }
        let relabelled = match correction::relabel(&lines, &parsed.correction) {
            Ok(r) => r,
            Err(e) => return self.reject(path, &e.to_string()),
        };
        manifest::replace_input(&self.manifest(), &sha256, &relabelled.lines)?;
        self.manifest_dirty
            .store(true, std::sync::atomic::Ordering::SeqCst);
        lock(journal).dataset_corrected(&Corrected {
            dataset: self.name.clone(),
            sha256: sha256.clone(),
            file: name.to_string(),
            file_sha256: hex::encode(Sha256::digest(&bytes)),
            pieces: relabelled.lines.len(),
            seconds: relabelled.lines.iter().map(|l| l.duration).sum(),
            unused_cues: relabelled.unused_cues,
            at: crate::journal::now_ms(),
        })?;
        move_into(path, DONE)?;
        Ok(Outcome::Applied {
            sha256,
            pieces: relabelled.lines.len(),
            dropped: relabelled.dropped_pieces,
            unused_cues: relabelled.unused_cues,
        })
    }

    /// After input `sha256` was added: the corrections that were waiting for it.
    pub fn apply_waiting_corrections(
        &self,
        journal: &Mutex<Journal>,
        sha256: &str,
    ) -> Vec<(PathBuf, Result<Outcome, DatasetError>)> {
        EXTENSIONS
            .iter()
            .map(|ext| self.corrections_dir().join(format!("{sha256}.{ext}")))
            .filter(|p| p.is_file())
            .map(|p| {
                let r = self.apply_correction(journal, &p);
                (p, r)
            })
            .collect()
    }

    /// Every file now in the corrections folder (start-up), oldest first.
    pub fn apply_all_corrections(
        &self,
        journal: &Mutex<Journal>,
    ) -> Vec<(PathBuf, Result<Outcome, DatasetError>)> {
        let Ok(entries) = std::fs::read_dir(self.corrections_dir()) else {
            return Vec::new();
        };
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| {
                let at = e.metadata().and_then(|m| m.modified());
                (at.unwrap_or(std::time::UNIX_EPOCH), e.path())
            })
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|(_, p)| {
                let r = self.apply_correction(journal, &p);
                (p, r)
            })
            .collect()
    }

    /// Moves the file to `failed/` with `NAME.error.json` beside it.
    fn reject(&self, path: &Path, reason: &str) -> Result<Outcome, DatasetError> {
        let moved = move_into(path, FAILED)?;
        let mut report_name = moved.file_name().unwrap_or_default().to_os_string();
        report_name.push(".error.json");
        let report = serde_json::json!({
            "correction": path.display().to_string(),
            "dataset": self.name,
            "reason": reason,
            "time": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            "what_to_do": "fix the file, then put it in the corrections folder again",
        });
        let text = serde_json::to_vec_pretty(&report).unwrap_or_default();
        write_atomic(&moved.with_file_name(report_name), &text)?;
        Ok(Outcome::Rejected {
            reason: reason.to_string(),
        })
    }
}

/// Logs what became of correction `path` in dataset `d`.
pub fn log(d: &Dataset, path: &Path, outcome: &Result<Outcome, DatasetError>) {
    let (dataset, file) = (&d.name, path.display());
    match outcome {
        Ok(Outcome::Applied {
            sha256,
            pieces,
            dropped,
            unused_cues,
        }) => {
            tracing::info!(%dataset, correction = %file, input = %sha256, pieces, dropped, unused_cues,
            "correction applied: the input's pieces now carry the person's text (label \"human\")")
        }
        Ok(Outcome::Waiting { sha256 }) => {
            tracing::info!(%dataset, correction = %file, input = %sha256,
            "correction waits: its input is not in the dataset yet")
        }
        Ok(Outcome::Rejected { reason }) => tracing::warn!(%dataset, correction = %file, %reason,
            "correction not used: moved to corrections/failed/ with the reason beside it"),
        Ok(Outcome::Ignored) => {}
        Err(e) => tracing::error!(%dataset, correction = %file, error = %e,
            "correction not applied yet: it stays and is tried again at the next start or change"),
    }
}

/// `talk.wav.srt` → (`talk.wav`, `srt`).
fn split_name(name: &str) -> (&str, &str) {
    name.rsplit_once('.').unwrap_or((name, ""))
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The input a correction named `stem` is for (see the module comment).
fn which_input(
    stem: &str,
    names_sha256: Option<&str>,
    lines: &[manifest::Line],
) -> Result<String, Unmatched> {
    if is_sha256(stem) {
        return Ok(stem.to_string());
    }
    if let Some(sha) = names_sha256.filter(|s| is_sha256(s)) {
        return Ok(sha.to_string());
    }
    let named = |source: &str| {
        let file = source.rsplit('/').next().unwrap_or(source);
        file == stem || split_name(file).0 == stem
    };
    let mut shas: Vec<String> = lines
        .iter()
        .filter(|l| named(&l.source))
        .map(|l| l.sha256.clone())
        .collect();
    shas.sort();
    shas.dedup();
    match shas.len() {
        0 => Err(Unmatched::None(stem.to_string())),
        1 => Ok(shas.remove(0)),
        _ => Err(Unmatched::Many {
            name: stem.to_string(),
            shas,
        }),
    }
}

/// Moves `path` into the folder `sub` beside it (replacing a file of the same name).
fn move_into(path: &Path, sub: &str) -> Result<PathBuf, DatasetError> {
    let dir = path.parent().unwrap_or(Path::new(".")).join(sub);
    std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
    let to = dir.join(path.file_name().unwrap_or_default());
    std::fs::rename(path, &to).map_err(io("move", path))?;
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::manifest::{Label, Line};

    fn line(sha: &str, source: &str, n: usize, start: f64, end: f64) -> Line {
        Line {
            audio_filepath: format!("/d/audio/{sha}-{n:04}.wav"),
            duration: end - start,
            text: format!("machine {n}"),
            source: source.into(),
            sha256: sha.into(),
            label: Some(Label::Machine),
            source_start: Some(start),
            source_end: Some(end),
            ..Line::default()
        }
    }

    #[test]
    fn a_correction_names_its_input_by_content_or_by_file_name() {
        let (a, b, c) = ("a".repeat(64), "b".repeat(64), "c".repeat(64));
        let lines = [
            line(&a, "/in/talk.wav", 0, 0.0, 5.0),
            line(&b, "s3://bucket/in/meeting.mp3", 0, 0.0, 5.0),
            line(&c, "/in/other/meeting.mp3", 0, 0.0, 5.0),
        ];
        assert_eq!(which_input(&b, None, &lines).unwrap(), b);
        assert_eq!(which_input("talk", Some(&c), &lines).unwrap(), c);
        assert_eq!(which_input("talk", None, &lines).unwrap(), a);
        assert_eq!(which_input("talk.wav", None, &lines).unwrap(), a);
        let many = which_input("meeting", None, &lines)
            .unwrap_err()
            .to_string();
        assert!(
            many.contains("2 different inputs") && many.contains(&b),
            "{many}"
        );
        let none = which_input("lecture", None, &lines)
            .unwrap_err()
            .to_string();
        assert!(
            none.contains("\"lecture\"") && none.contains("sha256"),
            "{none}"
        );
    }
}
