//! `[daemon] min_free_disk`: new jobs wait while the journal's disk or an output folder's
//! disk has less free space than that, so a filling disk pauses work (said once in the log,
//! shown by `/readyz` and `/metrics`) instead of failing jobs or corrupting the journal, and
//! work resumes by itself when space returns.

use std::path::{Path, PathBuf};

use super::Shared;

/// Free bytes for an unprivileged writer on the file system holding `path` (its nearest
/// existing ancestor, for a folder not made yet).
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    let mut p = path;
    while !p.exists() {
        match p.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => p = parent,
            _ => break,
        }
    }
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut s = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a valid NUL-terminated path and `s` a writable statvfs buffer.
    let rc = unsafe { libc::statvfs(c.as_ptr(), s.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it filled the buffer.
    let s = unsafe { s.assume_init() };
    // The field types differ between platforms (u32 on some 32-bit ones).
    #[allow(clippy::unnecessary_cast)]
    Ok((s.f_bavail as u64).saturating_mul(s.f_frsize as u64))
}

/// The folders whose disks must keep `min_free_disk` free.
fn watched_dirs(shared: &Shared) -> Vec<PathBuf> {
    // The spool folder sits beside the journal: its disk is the journal's.
    let mut dirs = vec![shared.spool.clone()];
    let folders = shared.folders.read().unwrap_or_else(|p| p.into_inner());
    dirs.extend(folders.values().map(|f| f.output.clone()));
    dirs
}

/// Why new jobs must wait now, if they must.
pub(super) fn too_full(shared: &Shared) -> Option<String> {
    too_full_with(shared, &[])
}

/// The same, with more folders whose disks must keep the floor (a dataset's, for a run).
pub(super) fn too_full_with(shared: &Shared, more: &[&Path]) -> Option<String> {
    let min = shared.min_free_disk?;
    let mut dirs = watched_dirs(shared);
    dirs.extend(more.iter().map(|p| p.to_path_buf()));
    for dir in dirs {
        match free_bytes(&dir) {
            Ok(free) if free < min => {
                return Some(format!(
                    "{} has {} MiB free, below [daemon] min_free_disk {} MiB",
                    dir.display(),
                    free >> 20,
                    min >> 20
                ))
            }
            Ok(_) => {}
            // A folder that cannot be inspected is the job's problem, not a full disk.
            Err(_) => {}
        }
    }
    None
}

/// Checks the floor, records the verdict for `/readyz` and `/metrics`, and logs a change
/// once. `true`: jobs may start.
pub(super) fn room_to_work(shared: &Shared) -> bool {
    if shared.min_free_disk.is_none() {
        return true;
    }
    let verdict = too_full(shared);
    let mut low = shared.disk_low.lock().unwrap_or_else(|p| p.into_inner());
    match (&verdict, low.is_some()) {
        (Some(why), false) => {
            tracing::warn!(%why, "disk nearly full: new jobs wait until space returns")
        }
        (None, true) => tracing::info!("disk space back above min_free_disk; jobs resume"),
        _ => {}
    }
    crate::metrics::metrics()
        .disk_paused
        .set(i64::from(verdict.is_some()));
    *low = verdict;
    low.is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_space_is_read_for_missing_folders_too() {
        let dir = tempfile::tempdir().unwrap();
        let here = free_bytes(dir.path()).unwrap();
        assert!(here > 0);
        let deeper = free_bytes(&dir.path().join("not/yet/made")).unwrap();
        // The same file system; other writers may change it a little meanwhile.
        assert!(deeper.abs_diff(here) < 1 << 30);
    }
}
