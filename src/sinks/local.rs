//! Local outputs appear whole or not at all: written to a uniquely named temporary file in
//! the destination directory, flushed to disk, then renamed over the final name (and the
//! directory synced so the rename itself survives a power cut).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {source}")]
pub struct WriteError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// A file being written under a temporary name beside its destination; [`commit`] makes it
/// appear whole under its real name. Dropped without committing, it disappears.
///
/// [`commit`]: AtomicFile::commit
pub struct AtomicFile {
    tmp: tempfile::NamedTempFile,
    path: PathBuf,
    dir: PathBuf,
}

impl AtomicFile {
    pub fn create(path: &Path) -> Result<AtomicFile, WriteError> {
        let err = |source| WriteError {
            path: path.to_path_buf(),
            source,
        };
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(err)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // 0666 less the umask, like any file a program creates (tempfile's default is 0600,
        // which would hide outputs from the people and services meant to read them).
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}{TEMP_MARK}"))
            .suffix(TEMP_SUFFIX)
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
            .tempfile_in(dir)
            .map_err(err)?;
        Ok(AtomicFile {
            tmp,
            path: path.to_path_buf(),
            dir: dir.to_path_buf(),
        })
    }

    pub fn as_file(&self) -> &File {
        self.tmp.as_file()
    }

    /// Syncs the data, renames it over the destination, and syncs the directory.
    pub fn commit(self) -> Result<(), WriteError> {
        let path = self.path;
        let err = |source| WriteError {
            path: path.clone(),
            source,
        };
        self.tmp.as_file().sync_all().map_err(err)?;
        self.tmp.persist(&path).map_err(|e| err(e.error))?;
        // Best effort: not every file system lets a directory be opened for syncing.
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), WriteError> {
    let file = AtomicFile::create(path)?;
    file.as_file()
        .write_all(contents)
        .map_err(|source| WriteError {
            path: path.to_path_buf(),
            source,
        })?;
    file.commit()
}

/// Temporary names are `.NAME.hotfolderd-XXXXXX.tmp`: nothing else matches, so cleaning up
/// never touches a user's own `.something.tmp`.
const TEMP_MARK: &str = ".hotfolderd-";
const TEMP_SUFFIX: &str = ".tmp";
/// tempfile's random part.
const TEMP_RANDOM: usize = 6;

/// Whether `name` is one of this module's temporary names.
pub fn is_own_temp(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(TEMP_SUFFIX) else {
        return false;
    };
    let Some((front, random)) = stem.rsplit_once(TEMP_MARK) else {
        return false;
    };
    front.len() > 1
        && front.starts_with('.')
        && random.len() == TEMP_RANDOM
        && random.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Removes temporary files `write_atomic` left under `dir` when the process was killed
/// mid-write, if last modified at least `older_than` ago (a write under way keeps its
/// file fresh). Returns how many.
pub fn remove_stale_temps(dir: &Path, older_than: std::time::Duration) -> usize {
    let mut removed = 0;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        match entry.file_type() {
            Ok(t) if t.is_dir() => removed += remove_stale_temps(&path, older_than),
            Ok(t)
                if t.is_file()
                    && is_own_temp(&name)
                    && age(&entry) >= older_than
                    && std::fs::remove_file(&path).is_ok() =>
            {
                removed += 1;
            }
            _ => {}
        }
    }
    removed
}

fn age(entry: &std::fs::DirEntry) -> std::time::Duration {
    entry
        .metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_its_own_temporary_names_count() {
        assert!(is_own_temp(".a.json.hotfolderd-Ab12Cd.tmp"));
        assert!(is_own_temp(".x.hotfolderd-y.hotfolderd-000000.tmp"));
        for user in [
            ".notes.tmp",
            ".a.json.Ab12Cd.tmp",
            "a.json.hotfolderd-Ab12Cd.tmp",
            ".a.json.hotfolderd-Ab12C.tmp",
            ".a.json.hotfolderd-Ab12Cd!.tmp",
            ".hotfolderd-Ab12Cd.tmp",
            ".a.json.hotfolderd-Ab12Cd.tmp.bak",
        ] {
            assert!(!is_own_temp(user), "{user}");
        }
    }

    #[test]
    fn writes_whole_file_and_leaves_no_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/out.txt");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("out.txt")]);
    }

    #[test]
    fn outputs_get_the_permissions_any_new_file_gets() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        write_atomic(&dir.path().join("ours.txt"), b"x").unwrap();
        std::fs::write(dir.path().join("plain.txt"), b"x").unwrap();
        let mode = |n: &str| {
            std::fs::metadata(dir.path().join(n))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("ours.txt"), mode("plain.txt"));
    }

    #[test]
    fn stale_temporaries_are_removed_and_outputs_kept() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a")).unwrap();
        std::fs::write(dir.path().join("a/.x.json.hotfolderd-Ab12Cd.tmp"), b"half").unwrap();
        std::fs::write(dir.path().join("a/x.json"), b"{}").unwrap();
        std::fs::write(dir.path().join("notes.tmp"), b"not ours").unwrap();
        std::fs::write(dir.path().join(".x.json.Ab12Cd.tmp"), b"not ours").unwrap();
        // Too fresh: it may be a write under way.
        let hour = std::time::Duration::from_secs(3600);
        assert_eq!(remove_stale_temps(dir.path(), hour), 0);
        assert_eq!(remove_stale_temps(dir.path(), std::time::Duration::ZERO), 1);
        for kept in ["a/x.json", "notes.tmp", ".x.json.Ab12Cd.tmp"] {
            assert!(dir.path().join(kept).exists(), "{kept}");
        }
    }

    #[test]
    fn unwritable_destination_is_an_error_naming_the_path() {
        let err = write_atomic(Path::new("/proc/hotfolderd-test/x.txt"), b"x").unwrap_err();
        assert!(err.to_string().contains("/proc/hotfolderd-test/x.txt"));
    }
}
