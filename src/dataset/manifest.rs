//! The dataset's NeMo-style JSONL manifest: one line per segment. Lines for one input are
//! appended with a single write at an offset the journal recorded first, then synced, so a
//! crash leaves at most a tail that start-up truncates away (see `Journal::dataset_begin`).
//! Reading reports every line that does not parse, with its number: nothing is skipped
//! silently.

use std::fs::OpenOptions;
use std::io::{BufRead, Seek, SeekFrom, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::sinks::local::{AtomicFile, WriteError};

/// The manifest's name in a dataset's folder and in each run's.
pub const FILE_NAME: &str = "manifest.jsonl";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Line {
    pub audio_filepath: String,
    /// Seconds, from the decoded audio.
    pub duration: f64,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<f64>,
    /// The input the segment was cut from.
    pub source: String,
    /// sha256 of that input.
    pub sha256: String,
    /// Who wrote `text`: the model (`machine`) or a person (`human`). Absent in manifests
    /// written before labels were recorded (those are all machine labels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<Label>,
    /// sha256 of the model that produced a machine label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_sha256: Option<String>,
    /// The model's confidence in a machine label: its segments' token-weighted mean
    /// log-probability, their highest no-speech probability, and the text's compression
    /// ratio (the figures `[[dataset]]` filters on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avg_logprob: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_speech_prob: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression_ratio: Option<f32>,
    /// Where the piece lies in `source`, in seconds (what lays a corrected transcript onto
    /// the pieces). Absent in manifests written before corrections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_start: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_end: Option<f64>,
    /// Who speaks in the piece, when one speaker does and is known: diarization's name, or
    /// a split channel's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speaker: Option<String>,
    /// Every speaker in the piece, in order, when several do (then `speaker` is absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speakers: Option<Vec<String>>,
}

/// Where a manifest line's text came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Label {
    Machine,
    Human,
}

#[derive(Debug, PartialEq)]
pub struct BadLine {
    /// 1-based.
    pub line: usize,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct Contents {
    pub lines: Vec<Line>,
    pub bad: Vec<BadLine>,
}

impl Contents {
    pub fn seconds(&self) -> f64 {
        self.lines.iter().map(|l| l.duration).sum()
    }
}

/// Every line of the manifest at `path` (none if it does not exist yet).
pub fn read(path: &Path) -> std::io::Result<Contents> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Contents::default()),
        Err(e) => return Err(e),
    };
    let mut out = Contents::default();
    let mut reader = std::io::BufReader::new(file);
    let mut buf = Vec::new();
    let mut n = 0;
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        n += 1;
        let complete = buf.last() == Some(&b'\n');
        let text = String::from_utf8_lossy(&buf);
        let text = text.trim_end();
        if text.is_empty() && complete {
            continue;
        }
        match serde_json::from_str::<Line>(text) {
            Ok(_) if !complete => out.bad.push(BadLine {
                line: n,
                reason: "the last line has no newline: an append was cut short".into(),
            }),
            Ok(line) if !line.duration.is_finite() || line.duration < 0.0 => {
                out.bad.push(BadLine {
                    line: n,
                    reason: format!("duration {} is not a length of time", line.duration),
                })
            }
            Ok(line) => out.lines.push(line),
            Err(e) => out.bad.push(BadLine {
                line: n,
                reason: if complete {
                    format!("not a manifest line: {e}")
                } else {
                    format!("truncated (no newline at the end of the file): {e}")
                },
            }),
        }
    }
    Ok(out)
}

/// The manifest's length: where the next append goes.
pub fn len(path: &Path) -> std::io::Result<u64> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(m.len()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

/// Writes `lines` at byte `at` (dropping anything after it: the tail of an append that a
/// crash cut short) in one write, then syncs.
pub fn append_at(path: &Path, at: u64, lines: &[Line]) -> std::io::Result<()> {
    let mut bytes = Vec::new();
    for l in lines {
        serde_json::to_writer(&mut bytes, l)?;
        bytes.push(b'\n');
    }
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)?;
    let at = at.min(f.metadata()?.len());
    f.set_len(at)?;
    if at > 0 {
        // A line someone else left without its newline must not swallow our first line.
        let mut last = [0u8; 1];
        f.seek(SeekFrom::Start(at - 1))?;
        std::io::Read::read_exact(&mut f, &mut last)?;
        if last[0] != b'\n' {
            bytes.insert(0, b'\n');
        }
    }
    f.seek(SeekFrom::Start(at))?;
    f.write_all(&bytes)?;
    f.sync_data()
}

/// Rewrites the manifest with input `sha256`'s lines replaced by `with`, placed where its
/// first line was (at the end if it had none). Every other line is kept byte for byte. The
/// new manifest replaces the old with a rename, so a crash leaves one or the other whole.
/// Returns how many lines were replaced.
pub fn replace_input(path: &Path, sha256: &str, with: &[Line]) -> Result<usize, WriteError> {
    let err = |source| WriteError {
        path: path.to_path_buf(),
        source,
    };
    let old = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(err(e)),
    };
    let mut new_lines = Vec::new();
    for l in with {
        serde_json::to_writer(&mut new_lines, l).map_err(|e| err(e.into()))?;
        new_lines.push(b'\n');
    }
    let mut out = Vec::with_capacity(old.len() + new_lines.len());
    let mut replaced = 0;
    for raw in old.split_inclusive(|&b| b == b'\n') {
        let ours =
            serde_json::from_slice::<Line>(raw.trim_ascii_end()).is_ok_and(|l| l.sha256 == sha256);
        if !ours {
            out.extend_from_slice(raw);
            continue;
        }
        if replaced == 0 {
            out.extend_from_slice(&new_lines);
        }
        replaced += 1;
    }
    if replaced == 0 {
        if out.last().is_some_and(|&b| b != b'\n') {
            out.push(b'\n');
        }
        out.extend_from_slice(&new_lines);
    }
    rewrite(path, &out)?;
    Ok(replaced)
}

/// Rewrites the manifest without the lines of the inputs in `sha256s`, every other line kept
/// byte for byte, in one rename. Returns how many lines each of them had.
pub fn remove_inputs(
    path: &Path,
    sha256s: &std::collections::HashSet<String>,
) -> Result<std::collections::HashMap<String, usize>, WriteError> {
    let old = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
        Err(source) => {
            return Err(WriteError {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let mut out = Vec::with_capacity(old.len());
    let mut removed = std::collections::HashMap::new();
    for raw in old.split_inclusive(|&b| b == b'\n') {
        match serde_json::from_slice::<Line>(raw.trim_ascii_end()) {
            Ok(l) if sha256s.contains(&l.sha256) => *removed.entry(l.sha256).or_insert(0) += 1,
            _ => out.extend_from_slice(raw),
        }
    }
    if !removed.is_empty() {
        rewrite(path, &out)?;
    }
    Ok(removed)
}

/// Replaces the manifest with `bytes` through a rename, keeping its permissions (whoever
/// reads it, a trainer under another user, still may).
fn rewrite(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let err = |source| WriteError {
        path: path.to_path_buf(),
        source,
    };
    let file = AtomicFile::create(path)?;
    if let Ok(meta) = std::fs::metadata(path) {
        file.as_file()
            .set_permissions(meta.permissions())
            .map_err(err)?;
    }
    file.as_file().write_all(bytes).map_err(err)?;
    file.commit()
}

/// Drops everything from byte `at` on (start-up recovery of an interrupted append).
pub fn truncate(path: &Path, at: u64) -> std::io::Result<()> {
    match OpenOptions::new().write(true).open(path) {
        Ok(f) => {
            if f.metadata()?.len() > at {
                f.set_len(at)?;
                f.sync_data()?;
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(n: u32) -> Line {
        Line {
            audio_filepath: format!("/d/audio/{n}.wav"),
            duration: 2.5,
            text: format!("line {n}"),
            offset: None,
            source: "in.wav".into(),
            sha256: "ab".into(),
            label: Some(Label::Machine),
            model_sha256: Some("cd".into()),
            avg_logprob: Some(-0.25),
            no_speech_prob: Some(0.01),
            compression_ratio: Some(1.1),
            source_start: Some(f64::from(n)),
            source_end: Some(f64::from(n) + 2.5),
            ..Line::default()
        }
    }

    #[test]
    fn lines_written_before_labels_and_confidence_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("manifest.jsonl");
        std::fs::write(&m, b"{\"audio_filepath\":\"/d/a.wav\",\"duration\":2.0,\"text\":\"old\",\"source\":\"s\",\"sha256\":\"h\"}\n").unwrap();
        let c = read(&m).unwrap();
        assert!(c.bad.is_empty(), "{:?}", c.bad);
        assert_eq!((c.lines[0].label, c.lines[0].avg_logprob), (None, None));
        // New lines name their label as users script against it.
        let json = serde_json::to_value(line(1)).unwrap();
        assert_eq!(json["label"], "machine");
        assert_eq!(json["model_sha256"], "cd");
    }

    #[test]
    fn appends_at_an_offset_replace_a_cut_short_tail() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("manifest.jsonl");
        append_at(&m, 0, &[line(1), line(2)]).unwrap();
        let at = len(&m).unwrap();
        // A crash in the middle of the next append leaves half a line…
        let mut f = OpenOptions::new().append(true).open(&m).unwrap();
        f.write_all(b"{\"audio_filepath\": \"/d/au").unwrap();
        let c = read(&m).unwrap();
        assert_eq!(c.lines.len(), 2);
        assert_eq!(c.bad.len(), 1);
        assert_eq!(c.bad[0].line, 3);
        assert!(c.bad[0].reason.contains("truncated"), "{:?}", c.bad);
        // …which the replay of that append overwrites.
        append_at(&m, at, &[line(3)]).unwrap();
        let c = read(&m).unwrap();
        assert!(c.bad.is_empty());
        assert_eq!(c.lines, vec![line(1), line(2), line(3)]);
        assert_eq!(c.seconds(), 7.5);
    }

    #[test]
    fn replacing_an_inputs_lines_keeps_every_other_line_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("manifest.jsonl");
        let other = |n| Line {
            sha256: "ef".into(),
            ..line(n)
        };
        append_at(&m, 0, &[other(1), line(2), line(3)]).unwrap();
        // A line written by hand (other key order, spaces) stays byte for byte.
        let by_hand = b"{ \"sha256\": \"ef\", \"duration\": 1.0, \"text\": \"x\", \"source\": \"s\", \"audio_filepath\": \"/a.wav\" }\n";
        let mut f = OpenOptions::new().append(true).open(&m).unwrap();
        f.write_all(by_hand).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&m, std::fs::Permissions::from_mode(0o640)).unwrap();
        let human = Line {
            text: "fixed".into(),
            label: Some(Label::Human),
            ..line(2)
        };
        assert_eq!(
            replace_input(&m, "ab", std::slice::from_ref(&human)).unwrap(),
            2
        );
        let c = read(&m).unwrap();
        assert_eq!(c.lines.len(), 3);
        assert_eq!((&c.lines[0], &c.lines[1]), (&other(1), &human));
        assert!(std::fs::read(&m).unwrap().ends_with(by_hand));
        let mode = std::fs::metadata(&m).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640, "the manifest keeps its mode");
        // Again: the same manifest (a replay after a crash changes nothing).
        let before = std::fs::read(&m).unwrap();
        assert_eq!(
            replace_input(&m, "ab", std::slice::from_ref(&human)).unwrap(),
            1
        );
        assert_eq!(std::fs::read(&m).unwrap(), before);
    }

    #[test]
    fn bad_lines_are_reported_with_their_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("manifest.jsonl");
        append_at(&m, 0, &[line(1)]).unwrap();
        let mut f = OpenOptions::new().append(true).open(&m).unwrap();
        f.write_all(b"not json\n\n{\"audio_filepath\":\"x\",\"duration\":-1,\"text\":\"\",\"source\":\"s\",\"sha256\":\"h\"}\n").unwrap();
        append_at(&m, len(&m).unwrap(), &[line(2)]).unwrap();
        let c = read(&m).unwrap();
        assert_eq!(c.lines.len(), 2);
        let at: Vec<usize> = c.bad.iter().map(|b| b.line).collect();
        assert_eq!(at, vec![2, 4]);
        // A line left without its newline does not swallow the next append.
        let mut f = OpenOptions::new().append(true).open(&m).unwrap();
        f.write_all(b"{\"audio_fi").unwrap();
        append_at(&m, len(&m).unwrap(), &[line(3)]).unwrap();
        let c = read(&m).unwrap();
        assert_eq!(c.lines.last(), Some(&line(3)));
        assert_eq!(c.bad.last().map(|b| b.line), Some(6));
        truncate(&m, 0).unwrap();
        assert!(read(&m).unwrap().lines.is_empty());
    }
}
