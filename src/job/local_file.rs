//! An input that is a local file: in a watched folder (finished by moving, keeping or
//! deleting it; rejected into `failed/` with `NAME.error.json` beside it), or named on the
//! command line (left where it is either way).
//!
//! A folder's file is opened without following links, and must be the file that was
//! journaled (its inode) at the path it was journaled under, with no symbolic link on the
//! way: a file swapped for a link, or for another file, between the stability check and
//! the open is refused and left where it is (the new file is an input of its own).

use std::path::{Path, PathBuf};

use super::failure::{Failure, Stage};
use super::input::{Body, FinishError, Finished, Input, Opened, Sha256};
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
    /// A media library's file (`output = "beside"`): a failure leaves it where it is.
    pub in_place: bool,
    /// `max_file_size`: larger files are rejected without being read.
    pub max_size: u64,
    /// The inode of the version that was journaled.
    pub inode: Option<u64>,
    /// The device it was on (`None` for inputs journaled before devices were kept).
    pub device: Option<u64>,
    /// The journaled length and mtime (ns), which vouch for a file whose device number
    /// changed with a remount or a reboot (NFS, btrfs, overlayfs renumber devices).
    pub len_mtime: Option<(u64, i128)>,
}

impl InFolder {
    /// Whether `meta` is the journaled file: the same inode on the same device, or, where
    /// the device number changed, with the journaled length and mtime to the nanosecond.
    fn is_journaled(&self, meta: &std::fs::Metadata) -> bool {
        use std::os::unix::fs::MetadataExt;
        let mtime_ns = i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
        let unchanged = self.len_mtime == Some((meta.len(), mtime_ns));
        self.inode.is_none_or(|ino| ino == meta.ino())
            && (self.device.is_none_or(|dev| dev == meta.dev()) || unchanged)
    }
}

pub struct LocalFile {
    path: PathBuf,
    name: String,
    folder: Option<InFolder>,
    sha256: Option<String>,
    /// What is at the path now is not the journaled file (a link, another file): a rejection
    /// leaves it where it is.
    not_ours: bool,
    /// The folder's file, opened and checked once: hashed, then decoded from the start.
    opened: Option<std::fs::File>,
}

impl LocalFile {
    /// A file named on the command line.
    pub fn standalone(path: &Path) -> LocalFile {
        LocalFile {
            path: path.to_path_buf(),
            name: path.display().to_string(),
            folder: None,
            sha256: None,
            not_ours: false,
            opened: None,
        }
    }

    pub fn in_folder(folder: InFolder) -> LocalFile {
        let path = folder.root.join(&folder.rel);
        LocalFile {
            name: path.display().to_string(),
            path,
            folder: Some(folder),
            sha256: None,
            not_ours: false,
            opened: None,
        }
    }

    /// Refuses what is at the path now: it is not the journaled file.
    fn not_ours(&mut self, why: &str) -> Failure {
        self.not_ours = true;
        Failure::permanent(Stage::Validate, why)
    }

    /// Opens a folder's file without following links and checks that it is the file that
    /// was journaled, where it was journaled.
    fn open_checked(&mut self, folder: &InFolder) -> Result<std::fs::File, Failure> {
        use std::os::unix::fs::OpenOptionsExt;
        use std::os::unix::io::AsRawFd;
        // O_NONBLOCK: a FIFO put in its place must not block the open.
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&self.path);
        let file = match opened {
            Ok(f) => f,
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(self.not_ours(SWAPPED_FOR_LINK));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Failure::permanent(Stage::Validate, VANISHED));
            }
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                return Err(Failure::permanent(
                    Stage::Validate,
                    format!("cannot open {}: {e}; make it readable by the daemon's user, then `hotfolderd retry` it", self.name),
                ));
            }
            Err(e) => {
                return Err(Failure::transient(
                    Stage::Fetch,
                    format!("cannot open {}: {e}", self.name),
                ))
            }
        };
        let meta = file.metadata().map_err(|e| {
            Failure::transient(Stage::Fetch, format!("cannot stat {}: {e}", self.name))
        })?;
        if !folder.is_journaled(&meta) {
            return Err(self.not_ours(
                "the file was replaced by another between the stability check and the read; the new file is an input of its own",
            ));
        }
        // The path it really has: a link on the way (a folder swapped for a link to
        // somewhere else) shows here.
        let real = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()));
        let expected = std::fs::canonicalize(&folder.root).map(|r| r.join(&folder.rel));
        if let (Ok(real), Ok(expected)) = (real, expected) {
            if real != expected {
                return Err(self.not_ours(&format!(
                    "it lies behind a symbolic link (it is really {}), which could point outside the watched folder; copy or move the file itself in",
                    real.display()
                )));
            }
        }
        Ok(file)
    }

    /// Whether the file at the path is still the journaled one (not replaced meanwhile), so
    /// it may be moved, deleted or quarantined.
    fn still_journaled(&self, folder: &InFolder) -> bool {
        match std::fs::symlink_metadata(&self.path) {
            Ok(m) if m.file_type().is_file() => folder.is_journaled(&m),
            _ => false,
        }
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
        let max_size = folder.max_size;
        let size = match std::fs::symlink_metadata(&self.path) {
            Ok(m) if m.file_type().is_symlink() => return Err(self.not_ours(SWAPPED_FOR_LINK)),
            Ok(m) if m.is_file() => m.len(),
            _ => return Err(Failure::permanent(Stage::Validate, VANISHED)),
        };
        if size > max_size {
            return Err(Failure::permanent(
                Stage::Validate,
                format!(
                    "{} is {size} bytes, over max_file_size {} (raise it in [[watch]] if this is expected)",
                    self.name, max_size
                ),
            ));
        }
        Ok(())
    }

    async fn sha256_first(&mut self, _spool_dir: &Path) -> Result<Option<String>, Failure> {
        let Some(folder) = self.folder.clone() else {
            let path = self.path.clone();
            // Unreadable: no dedup, and the decoder says what is wrong with the file.
            let sha = tokio::task::spawn_blocking(move || crate::hash::sha256_file(&path))
                .await
                .ok()
                .and_then(Result::ok);
            self.sha256.clone_from(&sha);
            return Ok(sha);
        };
        // The file that is hashed (and dedup trusts) is the one that is checked and decoded.
        let file = self.open_checked(&folder)?;
        let name = self.name.clone();
        let hashed = tokio::task::spawn_blocking(move || {
            use std::io::{Seek, SeekFrom};
            let mut file = file;
            let sha = crate::hash::sha256_reader(&mut file)?;
            file.seek(SeekFrom::Start(0))?;
            Ok::<_, std::io::Error>((file, sha))
        })
        .await
        .map_err(|e| Failure::transient(Stage::Hash, format!("hashing ended abnormally: {e}")))?
        .map_err(|e| Failure::transient(Stage::Hash, format!("cannot read {name}: {e}")))?;
        let (file, sha) = hashed;
        self.opened = Some(file);
        self.sha256 = Some(sha.clone());
        Ok(Some(sha))
    }

    async fn open(&mut self, _spool_dir: &Path) -> Result<Opened, Failure> {
        let sha256 = match self.sha256.take() {
            Some(s) => Sha256::Known(s),
            None => Sha256::OfFile(self.path.clone()),
        };
        let body = match self.folder.clone() {
            Some(folder) => {
                let file = match self.opened.take() {
                    Some(f) => f,
                    None => self.open_checked(&folder)?,
                };
                Body::Opened {
                    file,
                    path: self.path.clone(),
                }
            }
            None => Body::File(self.path.clone()),
        };
        Ok(Opened { body, sha256 })
    }

    async fn close(&mut self, _decode_failed: bool) -> Result<(), Failure> {
        Ok(())
    }

    async fn finish(&self) -> Result<Finished, FinishError> {
        match &self.folder {
            Some(f) if !self.still_journaled(f) => Ok(Some((
                "left",
                "the file at its path is no longer the one transcribed (replaced meanwhile); it is an input of its own".into(),
            ))),
            Some(f) => after_done(f).map_err(|source| FinishError::Local {
                path: self.path.clone(),
                source,
            }),
            None => Ok(None),
        }
    }

    async fn reject(&self, stage: Stage, reason: &str, attempts: i64) -> State {
        let Some(folder) = &self.folder else {
            return State::Failed;
        };
        if self.not_ours || !self.still_journaled(folder) {
            tracing::warn!(file = %self.name, %stage, %reason, "failed; what is at its path now is left alone");
            return State::Failed;
        }
        if folder.in_place {
            tracing::warn!(file = %self.name, %stage, %reason, "failed; left where it is (a media library's file)");
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

const VANISHED: &str = "input vanished before it was processed";
const SWAPPED_FOR_LINK: &str = "the file was replaced by a symbolic link, which could point outside the watched folder; copy or move the file itself in";

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    /// A folder with `rel` in it (journaled as it is now) and a file outside the folder.
    fn folder(rel: &str) -> (tempfile::TempDir, InFolder, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("inbox");
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"RIFF journaled").unwrap();
        let outside = dir.path().join("secret.wav");
        std::fs::write(&outside, b"RIFF not yours").unwrap();
        let f = InFolder {
            root,
            rel: PathBuf::from(rel),
            after: After::Move,
            in_place: false,
            max_size: 1 << 20,
            inode: Some(std::fs::metadata(&path).unwrap().ino()),
            device: Some(std::fs::metadata(&path).unwrap().dev()),
            len_mtime: None,
        };
        (dir, f, outside)
    }

    /// Runs admit and open; on a failure, the rejection too. The reason and the state.
    fn open(f: &InFolder) -> Result<(), (String, State)> {
        block_on(async {
            let mut input = LocalFile::in_folder(f.clone());
            let opened = match input.admit().await {
                Ok(()) => input.open(Path::new("/tmp")).await.map(|_| ()),
                Err(e) => Err(e),
            };
            match opened {
                Ok(()) => Ok(()),
                Err(e) => Err((e.reason(), input.reject(Stage::Validate, "x", 1).await)),
            }
        })
    }

    #[test]
    fn the_journaled_file_opens() {
        let (_d, f, _) = folder("a.wav");
        assert!(open(&f).is_ok());
    }

    #[test]
    fn a_file_swapped_for_a_link_is_refused_and_left_alone() {
        let (_d, f, outside) = folder("a.wav");
        let path = f.root.join(&f.rel);
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&outside, &path).unwrap();
        let (why, state) = open(&f).unwrap_err();
        assert!(why.contains("replaced by a symbolic link"), "{why}");
        assert_eq!(state, State::Failed);
        assert!(std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_symlink());
        assert!(!f.root.join("failed").exists(), "nothing was moved");
    }

    #[test]
    fn a_file_swapped_for_another_is_refused_and_left_alone() {
        let (_d, f, _) = folder("a.wav");
        let path = f.root.join(&f.rel);
        let other = f.root.join("other");
        std::fs::write(&other, b"RIFF a newer file").unwrap();
        std::fs::rename(&other, &path).unwrap();
        let (why, state) = open(&f).unwrap_err();
        assert!(why.contains("replaced by another"), "{why}");
        assert_eq!(state, State::Failed);
        assert!(path.exists() && !f.root.join("failed").exists());
    }

    /// An inode number means something only on its file system: the same number on another
    /// device (a file system mounted over the folder meanwhile) is another file.
    #[test]
    fn the_same_inode_on_another_device_is_another_file() {
        let (_d, mut f, _) = folder("a.wav");
        let path = f.root.join(&f.rel);
        f.device = f.device.map(|d| d + 1);
        let (why, state) = open(&f).unwrap_err();
        assert!(why.contains("replaced by another"), "{why}");
        assert_eq!(state, State::Failed);
        assert!(path.exists() && !f.root.join("failed").exists());
        // A remount renumbered the device, and the file is unchanged to the nanosecond.
        let m = std::fs::metadata(&path).unwrap();
        f.len_mtime = Some((
            m.len(),
            i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        ));
        assert!(open(&f).is_ok());
    }

    #[test]
    fn a_file_behind_a_linked_folder_is_refused() {
        let (d, mut f, _) = folder("real/a.wav");
        let elsewhere = d.path().join("elsewhere");
        std::fs::create_dir_all(&elsewhere).unwrap();
        std::fs::write(elsewhere.join("a.wav"), b"RIFF outside").unwrap();
        std::os::unix::fs::symlink(&elsewhere, f.root.join("linked")).unwrap();
        f.rel = PathBuf::from("linked/a.wav");
        f.inode = Some(std::fs::metadata(elsewhere.join("a.wav")).unwrap().ino());
        let (why, state) = open(&f).unwrap_err();
        assert!(why.contains("lies behind a symbolic link"), "{why}");
        assert_eq!(state, State::Failed);
        assert!(elsewhere.join("a.wav").exists(), "the outside file stays");
    }

    /// A file replaced at its path after it was opened (a user re-dropping a corrected
    /// file) is the new file's own input: finishing or rejecting the old job leaves it.
    #[test]
    fn a_file_replaced_during_its_job_is_not_moved_or_quarantined() {
        let (_d, f, _) = folder("a.wav");
        let path = f.root.join(&f.rel);
        let (finished, rejected) = block_on(async {
            let mut input = LocalFile::in_folder(f.clone());
            input.admit().await.unwrap();
            input.sha256_first(Path::new("/nonexistent")).await.unwrap();
            input.open(Path::new("/tmp")).await.unwrap();
            let newer = f.root.join("newer");
            std::fs::write(&newer, b"RIFF the corrected file").unwrap();
            std::fs::rename(&newer, &path).unwrap();
            (
                input.finish().await.unwrap(),
                input.reject(Stage::Decode, "x", 1).await,
            )
        });
        assert_eq!(finished.map(|n| n.0), Some("left"));
        assert_eq!(rejected, State::Failed);
        assert_eq!(std::fs::read(&path).unwrap(), b"RIFF the corrected file");
        assert!(!f.root.join("done").exists() && !f.root.join("failed").exists());
    }
}
