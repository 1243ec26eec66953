//! The folder source: inotify events (through `notify`) plus reconcile scans feed the
//! stability gate; files it hands on become candidates. A scan runs at start, every
//! `rescan_every`, and whenever notify reports that events were lost, so nothing is missed on
//! queue overflow or on file systems without events (NFS, some FUSE).

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify::{Event, EventKind, RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};

use super::names::{classify, has_extension, marked_input, Skip};
use super::stability::{FileMeta, StabilityGate};

/// Most events handled before the gate's timer is looked at again.
const EVENT_BURST: usize = 4096;

/// One watched folder's settings.
#[derive(Debug, Clone)]
pub struct FolderSpec {
    pub root: PathBuf,
    pub stable_for: Duration,
    pub rescan_every: Duration,
    /// Process `x.wav` only once `x.wav<marker>` exists.
    pub marker: Option<String>,
    /// Only files with these extensions are inputs (`None`: all).
    pub extensions: Option<Vec<String>>,
}

/// A complete file, ready to be journaled and processed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub root: PathBuf,
    /// Path relative to the root: outputs mirror it.
    pub rel: PathBuf,
    pub meta: FileMeta,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot watch {path}: {source}")]
    Watch {
        path: PathBuf,
        #[source]
        source: notify::Error,
    },
    #[error("cannot create watched folder {path}: {source}")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn meta_of(m: &std::fs::Metadata) -> FileMeta {
    FileMeta {
        len: m.len(),
        mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        inode: m.ino(),
        device: m.dev(),
    }
}

/// Regular files only: a symlink could point outside the watched root.
pub fn stat(path: &Path) -> Option<FileMeta> {
    let m = std::fs::symlink_metadata(path).ok()?;
    m.file_type().is_file().then(|| meta_of(&m))
}

/// Why a path with an input's name is not taken (`None`: a regular file, a folder, or gone).
fn not_a_file(path: &Path) -> Option<&'static str> {
    let t = std::fs::symlink_metadata(path).ok()?.file_type();
    if t.is_symlink() {
        Some("it is a symbolic link, which could point outside the watched folder; copy or move the file itself in")
    } else if t.is_file() || t.is_dir() {
        None
    } else {
        Some("it is not a regular file (a pipe, socket or device)")
    }
}

struct Folder {
    spec: FolderSpec,
    gate: StabilityGate,
    started: Instant,
    /// Paths already reported as skipped, so each is logged once, not at every scan.
    reported: HashSet<PathBuf>,
}

impl Folder {
    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// The path relative to the root, if it is a candidate name.
    fn relevant(&self, path: &Path) -> Option<PathBuf> {
        let rel = path.strip_prefix(&self.spec.root).ok()?;
        match classify(rel, self.spec.marker.as_deref()) {
            Ok(()) => Some(rel.to_path_buf()),
            Err(Skip::Hidden | Skip::Temporary | Skip::Marker | Skip::Internal) => None,
        }
    }

    /// The path relative to the root, if it is a candidate file name (its extension too).
    fn relevant_file(&self, path: &Path) -> Option<PathBuf> {
        self.relevant(path)
            .filter(|rel| has_extension(rel, self.spec.extensions.as_deref()))
    }

    /// With a marker configured, a file is invisible to the gate until its marker exists.
    fn marked(&self, path: &Path) -> bool {
        match &self.spec.marker {
            Some(m) => {
                let mut with = path.as_os_str().to_owned();
                with.push(m);
                Path::new(&with).exists()
            }
            None => true,
        }
    }

    fn observe(&mut self, path: &Path) {
        if let Some(input) = self
            .spec
            .marker
            .as_deref()
            .and_then(|m| marked_input(path, m))
        {
            // A marker arrived (or went): look at the input it completes.
            return self.observe(&input);
        }
        if self.relevant_file(path).is_none() {
            return;
        }
        if !self.marked(path) {
            self.gate.removed(path);
            return;
        }
        let now = self.now();
        match stat(path) {
            Some(meta) => self.gate.observe(path, meta, now),
            None => {
                self.gate.removed(path);
                if let Some(why) = not_a_file(path) {
                    if self.reported.insert(path.to_path_buf()) {
                        tracing::warn!(path = %path.display(), "skipped: {why}");
                    }
                }
            }
        }
    }

    fn on_event(&mut self, event: Event) -> bool {
        let now = self.now();
        match event.kind {
            EventKind::Modify(ModifyKind::Name(RenameMode::From)) | EventKind::Remove(_) => {
                for p in &event.paths {
                    self.gate.removed(p);
                }
            }
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {
                if let [from, to] = event.paths.as_slice() {
                    self.gate.removed(from);
                    self.observe(to);
                }
            }
            EventKind::Modify(ModifyKind::Data(_)) => {
                for p in &event.paths {
                    self.observe(p);
                    self.gate.written(p, now);
                }
            }
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => {
                for p in &event.paths {
                    self.observe(p);
                    self.gate.closed(p);
                }
            }
            EventKind::Create(_) | EventKind::Modify(_) => {
                for p in &event.paths {
                    if p.is_dir() {
                        // A folder moved in whole brings files no event announced.
                        return true;
                    }
                    self.observe(p);
                }
            }
            _ => {}
        }
        event.need_rescan()
    }

    /// Walks the whole tree: observes every candidate file, forgets vanished ones.
    fn scan(&mut self) {
        let mut seen = Vec::new();
        let mut stack = vec![self.spec.root.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if self.relevant(&path).is_none() {
                    continue;
                }
                match entry.file_type() {
                    Ok(t) if t.is_dir() => stack.push(path),
                    Ok(t) if t.is_file() => {
                        if self.relevant_file(&path).is_none() {
                            continue;
                        }
                        self.observe(&path);
                        if self.marked(&path) {
                            seen.push(path);
                        }
                    }
                    _ => self.observe(&path),
                }
            }
        }
        self.gate.retain_only(&seen);
    }

    /// Hands on what is stable now.
    async fn hand_on(&mut self, tx: &mpsc::Sender<Candidate>) -> bool {
        let now = self.now();
        for path in self.gate.due(now) {
            if self.gate.confirm(&path, stat(&path), now) {
                let (Some(rel), Some(meta)) = (self.relevant_file(&path), stat(&path)) else {
                    continue;
                };
                let candidate = Candidate {
                    root: self.spec.root.clone(),
                    rel,
                    meta,
                };
                if tx.send(candidate).await.is_err() {
                    return false;
                }
            }
        }
        true
    }
}

/// Watches one folder until `shutdown` turns true (or the receiver is dropped).
pub async fn watch_folder(
    spec: FolderSpec,
    tx: mpsc::Sender<Candidate>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), SourceError> {
    std::fs::create_dir_all(&spec.root).map_err(|source| SourceError::Create {
        path: spec.root.clone(),
        source,
    })?;
    let (ev_tx, mut ev_rx) = mpsc::channel::<notify::Result<Event>>(4096);
    let overflowed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = overflowed.clone();
    let handler = move |res| {
        // Never block inotify's thread: when the channel is full, remember to rescan.
        if ev_tx.try_send(res).is_err() {
            flag.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    };
    // Never into a linked folder: it could be anywhere.
    let config = notify::Config::default().with_follow_symlinks(false);
    let mut watcher =
        notify::RecommendedWatcher::new(handler, config).map_err(|source| SourceError::Watch {
            path: spec.root.clone(),
            source,
        })?;
    watcher
        .watch(&spec.root, RecursiveMode::Recursive)
        .map_err(|source| SourceError::Watch {
            path: spec.root.clone(),
            source,
        })?;
    let mut folder = Folder {
        gate: StabilityGate::new(spec.stable_for),
        spec,
        started: Instant::now(),
        reported: HashSet::new(),
    };
    folder.scan();
    let mut rescan = tokio::time::interval(folder.spec.rescan_every);
    rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let wake = folder
            .gate
            .next_deadline()
            .map(|d| d.saturating_sub(folder.now()))
            .unwrap_or(Duration::from_secs(3600));
        let mut need_scan = false;
        tokio::select! {
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    return Ok(());
                }
            }
            ev = ev_rx.recv() => {
                let Some(first) = ev else { return Ok(()) };
                // Take the whole burst before looking at the timer and the gate again.
                let mut next = Some(first);
                let mut taken = 0;
                while let Some(ev) = next {
                    match ev {
                        Ok(event) => need_scan |= folder.on_event(event),
                        Err(e) => {
                            tracing::warn!(root = %folder.spec.root.display(), error = %e, "watch error; rescanning");
                            need_scan = true;
                        }
                    }
                    taken += 1;
                    next = if taken < EVENT_BURST { ev_rx.try_recv().ok() } else { None };
                }
            }
            _ = rescan.tick() => need_scan = true,
            _ = tokio::time::sleep(wake) => {}
        }
        if overflowed.swap(false, std::sync::atomic::Ordering::Relaxed) {
            need_scan = true;
        }
        if need_scan {
            folder.scan();
        }
        if !folder.hand_on(&tx).await {
            return Ok(());
        }
    }
}
