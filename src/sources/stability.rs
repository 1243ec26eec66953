//! The stability gate: a file is handed on only once it has stopped changing. A pure state
//! machine fed events and a clock (`now` is time since the daemon started), so it is tested
//! without sleeping; the folder source drives it with notify events, scans and a timer.
//!
//! A file is ready when its size, mtime and inode have not changed for `stable_for`, it is
//! still present when re-checked, and — where inotify reported writes — it was closed after
//! the last one. Each version of a file (a replacement under the same name has a new inode or
//! mtime) is handed on once.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What `stat` says about a file: enough to tell one version from the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMeta {
    pub len: u64,
    pub mtime_ns: i128,
    pub inode: u64,
    /// The file system it is on: an inode number means something only on its device. It is
    /// journaled beside the version (`inputs.device`), not in it, so versions journaled
    /// before it was kept still match.
    pub device: u64,
}

impl FileMeta {
    /// How the journal tells one version of a file from the next under the same name.
    pub fn version(&self) -> String {
        format!("{}:{}:{}", self.len, self.mtime_ns, self.inode)
    }
}

#[derive(Debug)]
struct Entry {
    meta: FileMeta,
    /// When `meta` last changed (or a write was reported).
    since: Duration,
    /// A write was reported and no close after it yet.
    open_for_write: bool,
    /// The version already handed on, if any.
    handed_on: Option<FileMeta>,
}

pub struct StabilityGate {
    stable_for: Duration,
    files: HashMap<PathBuf, Entry>,
    /// Files whose current version has not been handed on: the only ones the timer looks
    /// at, so thousands of finished files kept for recognition cost nothing per event.
    waiting: HashSet<PathBuf>,
}

impl StabilityGate {
    pub fn new(stable_for: Duration) -> Self {
        StabilityGate {
            stable_for,
            files: HashMap::new(),
            waiting: HashSet::new(),
        }
    }

    /// Keeps `waiting` in step with the entry at `path` after a change.
    fn track(&mut self, path: &Path) {
        match self.files.get(path) {
            Some(e) if e.handed_on != Some(e.meta) => {
                if !self.waiting.contains(path) {
                    self.waiting.insert(path.to_path_buf());
                }
            }
            _ => {
                self.waiting.remove(path);
            }
        }
    }

    /// A scan or an event saw the file with this metadata.
    pub fn observe(&mut self, path: &Path, meta: FileMeta, now: Duration) {
        match self.files.get_mut(path) {
            Some(e) if e.meta == meta => {}
            Some(e) => {
                e.meta = meta;
                e.since = now;
            }
            None => {
                self.files.insert(
                    path.to_path_buf(),
                    Entry {
                        meta,
                        since: now,
                        open_for_write: false,
                        handed_on: None,
                    },
                );
            }
        }
        self.track(path);
    }

    /// inotify reported a write (`IN_MODIFY`): the writer is active.
    pub fn written(&mut self, path: &Path, now: Duration) {
        if let Some(e) = self.files.get_mut(path) {
            e.open_for_write = true;
            e.since = now;
        }
    }

    /// inotify reported the writer closed the file (`IN_CLOSE_WRITE`).
    /// The quiet period still counts from the last change, not from the close.
    pub fn closed(&mut self, path: &Path) {
        if let Some(e) = self.files.get_mut(path) {
            e.open_for_write = false;
        }
    }

    /// After a full scan: forgets every file the scan did not find.
    pub fn retain_only(&mut self, present: &[PathBuf]) {
        let present: HashSet<&Path> = present.iter().map(PathBuf::as_path).collect();
        self.files.retain(|p, _| present.contains(p.as_path()));
        let files = &self.files;
        self.waiting.retain(|p| files.contains_key(p));
    }

    /// The file is gone (deleted, or renamed away): it produces no job.
    pub fn removed(&mut self, path: &Path) {
        self.files.remove(path);
        self.waiting.remove(path);
    }

    fn pending(e: &Entry) -> bool {
        e.handed_on != Some(e.meta) && !e.open_for_write
    }

    /// Files whose quiet period is over: the driver re-stats each and calls [`confirm`].
    ///
    /// [`confirm`]: StabilityGate::confirm
    pub fn due(&self, now: Duration) -> Vec<PathBuf> {
        let mut due: Vec<PathBuf> = self
            .waiting
            .iter()
            .filter(|p| {
                self.files
                    .get(p.as_path())
                    .is_some_and(|e| Self::pending(e) && now >= e.since + self.stable_for)
            })
            .cloned()
            .collect();
        due.sort();
        due
    }

    /// Re-check of a due file: `Some(meta)` from a fresh stat, `None` if it is gone. Returns
    /// true when the file is stable and is to be handed on now (once per version).
    pub fn confirm(&mut self, path: &Path, fresh: Option<FileMeta>, now: Duration) -> bool {
        let Some(meta) = fresh else {
            self.removed(path);
            return false;
        };
        let stable_for = self.stable_for;
        let Some(e) = self.files.get_mut(path) else {
            return false;
        };
        if e.meta != meta {
            e.meta = meta;
            e.since = now;
            self.track(path);
            return false;
        }
        if !Self::pending(e) || now < e.since + stable_for {
            return false;
        }
        e.handed_on = Some(meta);
        self.waiting.remove(path);
        true
    }

    /// When the next file may become due (for the driver's timer).
    pub fn next_deadline(&self) -> Option<Duration> {
        self.waiting
            .iter()
            .filter_map(|p| self.files.get(p))
            .filter(|e| Self::pending(e))
            .map(|e| e.since + self.stable_for)
            .min()
    }

    /// Files being watched (handed-on ones are kept to recognise a new version).
    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STABLE: Duration = Duration::from_secs(2);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn meta(len: u64, mtime: i128, inode: u64) -> FileMeta {
        FileMeta {
            device: 1,
            len,
            mtime_ns: mtime,
            inode,
        }
    }

    /// Drives the gate as the folder source does: every `step`, hand on whatever is due and
    /// still matches what the "disk" (`disk(now)`) says. Returns the times files were handed on.
    fn run(
        gate: &mut StabilityGate,
        until: Duration,
        step: Duration,
        mut disk: impl FnMut(Duration, &mut StabilityGate) -> Option<FileMeta>,
    ) -> Vec<Duration> {
        let mut handed = Vec::new();
        let mut now = Duration::ZERO;
        while now <= until {
            let on_disk = disk(now, gate);
            for p in gate.due(now) {
                if gate.confirm(&p, on_disk, now) {
                    handed.push(now);
                }
            }
            now += step;
        }
        handed
    }

    #[test]
    fn a_writer_adding_a_byte_a_second_is_never_picked_early() {
        let p = Path::new("/in/slow.wav");
        for with_events in [true, false] {
            let mut gate = StabilityGate::new(STABLE);
            let handed = run(&mut gate, Duration::from_secs(70), ms(100), |now, g| {
                let secs = now.as_secs().min(60);
                let m = meta(secs, i128::from(secs as u32) * 1_000_000_000, 7);
                let writing_tick = now.subsec_millis() == 0 && now.as_secs() <= 60;
                if with_events && writing_tick && now.as_secs() < 60 {
                    g.observe(p, m, now);
                    g.written(p, now);
                } else if with_events && writing_tick {
                    g.observe(p, m, now);
                    g.closed(p);
                } else if !with_events && now.as_millis() % 1000 == 0 {
                    // No events (NFS): the periodic scan is all the gate hears.
                    g.observe(p, m, now);
                }
                Some(m)
            });
            assert_eq!(handed.len(), 1, "events {with_events}: {handed:?}");
            assert!(
                handed[0] >= Duration::from_secs(60) + STABLE,
                "events {with_events}: picked at {:?}",
                handed[0]
            );
            assert!(
                handed[0] <= Duration::from_secs(60) + STABLE + ms(200),
                "events {with_events}: late {:?}",
                handed[0]
            );
        }
    }

    #[test]
    fn an_open_writer_blocks_even_when_quiet() {
        let p = Path::new("/in/paused.wav");
        let mut gate = StabilityGate::new(STABLE);
        gate.observe(p, meta(10, 1, 1), ms(0));
        gate.written(p, ms(0));
        // The writer pauses for a minute without closing: not stable.
        assert!(gate.due(Duration::from_secs(60)).is_empty());
        gate.closed(p);
        assert_eq!(gate.due(Duration::from_secs(60)), vec![p.to_path_buf()]);
        assert!(gate.confirm(p, Some(meta(10, 1, 1)), Duration::from_secs(60)));
    }

    #[test]
    fn a_file_deleted_before_it_is_stable_produces_no_job() {
        let p = Path::new("/in/gone.wav");
        let mut gate = StabilityGate::new(STABLE);
        gate.observe(p, meta(100, 1, 3), ms(0));
        gate.removed(p);
        assert!(gate.due(Duration::from_secs(10)).is_empty());
        assert!(gate.is_empty());
        // Deleted between the deadline and the re-check: the stat finds nothing.
        gate.observe(p, meta(100, 1, 3), ms(0));
        assert_eq!(gate.due(ms(2500)).len(), 1);
        assert!(!gate.confirm(p, None, ms(2500)));
        assert!(gate.due(Duration::from_secs(10)).is_empty());
    }

    #[test]
    fn a_change_seen_only_at_the_recheck_restarts_the_wait() {
        let p = Path::new("/in/a.wav");
        let mut gate = StabilityGate::new(STABLE);
        gate.observe(p, meta(100, 1, 3), ms(0));
        assert!(!gate.confirm(p, Some(meta(200, 2, 3)), ms(2000)));
        assert!(gate.due(ms(3999)).is_empty());
        assert!(gate.confirm(p, Some(meta(200, 2, 3)), ms(4000)));
    }

    #[test]
    fn each_version_is_handed_on_once_and_a_replacement_again() {
        let p = Path::new("/in/report.wav");
        let mut gate = StabilityGate::new(STABLE);
        let v1 = meta(100, 1, 3);
        gate.observe(p, v1, ms(0));
        assert!(gate.confirm(p, Some(v1), ms(2000)));
        // Rescans of the unchanged file hand nothing on again.
        gate.observe(p, v1, ms(60_000));
        assert!(gate.due(ms(120_000)).is_empty());
        assert!(!gate.confirm(p, Some(v1), ms(120_000)));
        // Replaced by a new file with the same name (same size even): a new version.
        let v2 = meta(100, 5, 9);
        gate.observe(p, v2, ms(130_000));
        assert!(gate.due(ms(131_000)).is_empty());
        assert_eq!(gate.next_deadline(), Some(ms(132_000)));
        assert!(gate.confirm(p, Some(v2), ms(132_000)));
        assert_eq!(gate.next_deadline(), None);
    }
}
