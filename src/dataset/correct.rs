//! Correction files in a dataset's `corrections/` folder: each is laid onto the pieces of
//! the input it names (see `correction`), the manifest is rewritten with the person's text
//! (`"label": "human"`), the journal records it, and the file moves to `corrections/done/`.
//! A file that cannot be used moves to `corrections/failed/` with `NAME.error.json` saying
//! why and what to do, as an input in a watched folder would. A file naming an input the
//! dataset does not hold yet waits for it: every waiting file is tried again after each
//! input the dataset takes.
//!
//! Which input: a file named `<sha256>.EXT` (the input's content, as its json output and the
//! manifest say), else a json transcript's own `sha256`, else the input whose file name
//! matches (`talk.srt` or `talk.wav.srt` for `…/talk.wav`) when exactly one content has it.
//!
//! Replaying a correction gives the same manifest, so a crash anywhere in between is mended
//! by applying the file again (it stays in `corrections/` until the end).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use super::correction::{self, CorrectionError, MAX_BYTES};
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
    /// It names an input the dataset does not hold yet (by content, or by file name): it
    /// waits for it.
    Waiting { input: String },
    /// Moved to `failed/` with the reason beside it.
    Rejected { reason: String },
    /// Not a correction (a folder, a temporary file) or already taken by another call.
    Ignored,
}

/// Why the file names no input, or not one input.
#[derive(Debug, thiserror::Error)]
enum Unmatched {
    /// No input of that name yet: the file waits.
    #[error("no input named {0:?} is in this dataset yet")]
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

    /// Applies the correction file at `path` (in [`Dataset::corrections_dir`]), which the
    /// caller knows to be whole (closed after writing, renamed in, or there at start-up).
    pub fn apply_correction(
        &self,
        journal: &Mutex<Journal>,
        path: &Path,
    ) -> Result<Outcome, DatasetError> {
        // One at a time, and the waiting set changes with the outcome under the same lock:
        // an input added meanwhile finds the file in the set, or the file finds the input.
        let _one_at_a_time = self.lock();
        let outcome = self.apply_one(journal, path);
        let mut waiting = self
            .waiting_corrections
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match &outcome {
            Ok(Outcome::Waiting { .. }) => {
                waiting.insert(path.to_path_buf());
            }
            Ok(_) => {
                waiting.remove(path);
            }
            Err(_) => {}
        }
        outcome
    }

    fn apply_one(&self, journal: &Mutex<Journal>, path: &Path) -> Result<Outcome, DatasetError> {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            return Ok(Outcome::Ignored);
        };
        if name.starts_with('.') || is_own_temp(name) {
            return Ok(Outcome::Ignored);
        }
        // Not followed: a link could point anywhere, and moving it would not move its file.
        let meta = match std::fs::symlink_metadata(path) {
            Ok(m) if m.is_symlink() => {
                return self.reject(
                    path,
                    "a symbolic link: put a copy of the file itself in the corrections folder",
                )
            }
            Ok(m) if m.is_file() => m,
            Ok(_) => return Ok(Outcome::Ignored),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Outcome::Ignored),
            Err(e) => return Err(io("read", path)(e)),
        };
        let (stem, ext) = split_name(name);
        if meta.len() > MAX_BYTES {
            return self.reject(path, &CorrectionError::TooBig(meta.len()).to_string());
        }
        // Read no more than the limit even if the file grew after the check.
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_BYTES + 1).read_to_end(&mut bytes))
            .map_err(io("read", path))?;
        let parsed = match correction::parse(ext, &bytes) {
            Ok(p) => p,
            Err(e) => return self.reject(path, &e.to_string()),
        };
        let contents = manifest::read(&self.manifest()).map_err(io("read", &self.manifest()))?;
        let sha256 = match which_input(stem, parsed.names_sha256.as_deref(), &contents.lines) {
            Ok(sha) => sha,
            Err(Unmatched::None(name)) => return Ok(Outcome::Waiting { input: name }),
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
            return Ok(Outcome::Waiting { input: sha256 });
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

    /// After an input was added: the corrections that were waiting and now apply (or fail).
    /// Every waiting file is tried, as one may name the input by its file name or by the
    /// `sha256` inside it; only files seen whole before (a file still being copied in is
    /// not). Those still waiting are left out.
    pub fn apply_waiting_corrections(
        &self,
        journal: &Mutex<Journal>,
    ) -> Vec<(PathBuf, Result<Outcome, DatasetError>)> {
        let waiting: Vec<PathBuf> = self
            .waiting_corrections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect();
        waiting
            .into_iter()
            .map(|p| {
                let r = self.apply_correction(journal, &p);
                (p, r)
            })
            .filter(|(_, r)| !matches!(r, Ok(Outcome::Waiting { .. })))
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
            // Links too, so they are told why they are not used.
            .filter(|e| e.file_type().is_ok_and(|t| !t.is_dir()))
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
        Ok(Outcome::Waiting { input }) => {
            tracing::info!(%dataset, correction = %file, %input,
            "correction waits: its input is not in the dataset yet (it is tried again after each input the dataset takes)")
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
    fn corrections_for_inputs_not_yet_here_wait_and_links_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = crate::dataset::feed::test_dataset(dir.path(), "");
        let journal = Mutex::new(Journal::open(&dir.path().join("j.sqlite")).unwrap());
        let folder = d.corrections_dir();
        std::fs::create_dir_all(&folder).unwrap();
        let by_name = folder.join("talk.txt");
        std::fs::write(&by_name, "Words.").unwrap();
        let by_content = folder.join(format!("{}.TXT", "a".repeat(64)));
        std::fs::write(&by_content, "Words.").unwrap();
        let json = folder.join("whatever.json");
        let named = serde_json::json!({"sha256": "b".repeat(64), "segments": [
            {"start": 0.0, "end": 1.0, "text": "Words."}]});
        std::fs::write(&json, named.to_string()).unwrap();
        let link = folder.join("link.srt");
        std::os::unix::fs::symlink(&by_name, &link).unwrap();
        let waiting = |input: String| Outcome::Waiting { input };
        assert_eq!(
            d.apply_correction(&journal, &by_name).unwrap(),
            waiting("talk".into())
        );
        assert_eq!(
            d.apply_correction(&journal, &by_content).unwrap(),
            waiting("a".repeat(64))
        );
        assert_eq!(
            d.apply_correction(&journal, &json).unwrap(),
            waiting("b".repeat(64))
        );
        let Outcome::Rejected { reason } = d.apply_correction(&journal, &link).unwrap() else {
            panic!("a link is refused")
        };
        assert!(reason.contains("symbolic link"), "{reason}");
        assert!(folder.join("failed/link.srt.error.json").is_file());
        // After an input arrives, those still waiting are not reported again; a file not
        // seen whole yet (still being copied in) is not among them.
        std::fs::write(folder.join("copying.txt"), "Wor").unwrap();
        assert_eq!(d.waiting_corrections.lock().unwrap().len(), 3);
        assert!(d.apply_waiting_corrections(&journal).is_empty());
        assert!(folder.join("copying.txt").is_file());
        assert!(!d
            .waiting_corrections
            .lock()
            .unwrap()
            .contains(&folder.join("copying.txt")));
        assert!(by_name.is_file() && by_content.is_file() && json.is_file());
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
        assert!(matches!(
            which_input("lecture", None, &lines),
            Err(Unmatched::None(n)) if n == "lecture"
        ));
    }
}
