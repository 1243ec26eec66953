//! Watches each dataset's `corrections/` folder and applies every correction dropped there
//! (see `dataset::correct`): those present at start-up, then each file as it is closed
//! after writing or renamed in, so a file still being copied is never read half-way.

use std::path::PathBuf;
use std::sync::Arc;

use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify::{Event, EventKind, RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};

use super::Shared;
use crate::dataset::correct;

pub async fn watch_loop(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let (tx, mut rx) = mpsc::channel::<(usize, PathBuf)>(1024);
    // Kept alive for as long as the loop runs; dropping one stops its watch.
    let mut watchers = Vec::new();
    for (i, d) in shared.datasets.iter().enumerate() {
        let dir = d.corrections_dir();
        if let Err(e) = std::fs::create_dir_all(&dir) {
            tracing::error!(dataset = %d.name, folder = %dir.display(), error = %e,
                "cannot create the corrections folder: corrections to this dataset are not watched");
            continue;
        }
        let tx = tx.clone();
        let handler = move |event: notify::Result<Event>| {
            for path in written(event) {
                // The receiver is gone only when the daemon stops.
                let _ = tx.blocking_send((i, path));
            }
        };
        let watching = notify::recommended_watcher(handler)
            .and_then(|mut w| w.watch(&dir, RecursiveMode::NonRecursive).map(|()| w));
        match watching {
            Ok(w) => watchers.push(w),
            Err(e) => tracing::error!(dataset = %d.name, folder = %dir.display(), error = %e,
                "cannot watch the corrections folder: its corrections are applied at the next start"),
        }
        let (s, d) = (shared.clone(), d.clone());
        let done = tokio::task::spawn_blocking(move || {
            for (path, outcome) in d.apply_all_corrections(&s.journal) {
                correct::log(&d, &path, &outcome);
            }
        });
        let _ = done.await;
    }
    drop(tx);
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            got = rx.recv() => {
                let Some((i, path)) = got else { break };
                let Some(d) = shared.datasets.get(i).cloned() else { continue };
                let s = shared.clone();
                let done = tokio::task::spawn_blocking(move || {
                    let outcome = d.apply_correction(&s.journal, &path);
                    correct::log(&d, &path, &outcome);
                });
                let _ = done.await;
            }
        }
    }
}

/// The files an event says were just written whole: closed after writing, or renamed in.
fn written(event: notify::Result<Event>) -> Vec<PathBuf> {
    let Ok(event) = event else {
        return Vec::new();
    };
    match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write))
        | EventKind::Modify(ModifyKind::Name(RenameMode::To)) => event.paths,
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {
            event.paths.into_iter().skip(1).collect()
        }
        _ => Vec::new(),
    }
}
