//! The audit log: every state change of every input, as JSON lines in a file an operator can
//! grep, ship or archive — `{"seq", "time", "job_id", "source", "key", "event", "detail"}`.
//! Training runs and the model registry have lines too: `job_id` is null there, and
//! `run_id` or `model_id` says what the line is about (`source` `dataset:NAME` or
//! `registry`; `key` the run id or the model's sha256). The journal's `events` table is the
//! source; lines are copied from it in order (`seq` is
//! the event's id), so the log and the journal always agree. The file is rotated by size
//! (`audit.jsonl` → `audit.jsonl.1` → …), keeping `keep` old files.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AuditLine {
    pub seq: i64,
    pub time: String,
    /// The input's id; null for a training run's or a model's line.
    pub job_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<i64>,
    pub source: String,
    pub key: String,
    pub event: String,
    pub detail: Option<String>,
}

pub struct AuditLog {
    path: PathBuf,
    max_size: u64,
    keep: u32,
    file: File,
    size: u64,
}

impl AuditLog {
    /// Opens (creating) the log; also returns the `seq` of its last line (0 if none), so
    /// copying resumes after it even if the journal's cursor lags behind.
    pub fn open(path: &Path, max_size: u64, keep: u32) -> std::io::Result<(AuditLog, i64)> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut last = last_seq(path)?;
        if last == 0 {
            last = last_seq(&rotated(path, 1))?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        let log = AuditLog {
            path: path.to_path_buf(),
            max_size,
            keep,
            file,
            size,
        };
        Ok((log, last))
    }

    /// Appends the lines and syncs them to disk, then rotates if the file is full.
    pub fn append(&mut self, lines: &[AuditLine]) -> std::io::Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        for l in lines {
            serde_json::to_writer(&mut buf, l)?;
            buf.push(b'\n');
        }
        self.file.write_all(&buf)?;
        self.file.sync_data()?;
        self.size += buf.len() as u64;
        if self.size >= self.max_size {
            self.rotate()?;
        }
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        let _ = std::fs::remove_file(rotated(&self.path, self.keep));
        for n in (1..self.keep).rev() {
            let from = rotated(&self.path, n);
            if from.exists() {
                std::fs::rename(&from, rotated(&self.path, n + 1))?;
            }
        }
        if self.keep == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            std::fs::rename(&self.path, rotated(&self.path, 1))?;
        }
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
        self.size = 0;
        Ok(())
    }
}

/// `audit.jsonl.N`.
pub fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(format!(".{n}"));
    PathBuf::from(p)
}

/// The `seq` of the last complete line of `path` (0 when there is none).
fn last_seq(path: &Path) -> std::io::Result<i64> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    let from = len.saturating_sub(64 * 1024);
    f.seek(SeekFrom::Start(from))?;
    let mut tail = Vec::new();
    f.take(64 * 1024).read_to_end(&mut tail)?;
    // A torn last line (a crash mid-write) does not parse and is skipped.
    Ok(tail
        .split(|b| *b == b'\n')
        .rev()
        .find_map(|l| serde_json::from_slice::<AuditLine>(l).ok())
        .map_or(0, |l| l.seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(seq: i64) -> AuditLine {
        AuditLine {
            seq,
            time: "t".into(),
            job_id: Some(1),
            run_id: None,
            model_id: None,
            source: "watch:/in".into(),
            key: "a.wav".into(),
            event: "seen".into(),
            detail: None,
        }
    }

    #[test]
    fn lines_resume_after_the_last_and_rotate_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let (mut log, last) = AuditLog::open(&path, 400, 2).unwrap();
        assert_eq!(last, 0);
        log.append(&[line(1), line(2)]).unwrap();
        drop(log);
        // A torn line at the end (crash mid-write) is ignored.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"seq\": 3, \"ti")
            .unwrap();
        let (mut log, last) = AuditLog::open(&path, 400, 2).unwrap();
        assert_eq!(last, 2);
        for seq in 3..20 {
            log.append(&[line(seq)]).unwrap();
        }
        assert!(rotated(&path, 1).exists() && rotated(&path, 2).exists());
        assert!(!rotated(&path, 3).exists(), "keeps only 2 old files");
        assert!(std::fs::metadata(&path).unwrap().len() < 400);
        drop(log);
        let (_, last) = AuditLog::open(&path, 400, 2).unwrap();
        assert_eq!(last, 19);
    }
}
