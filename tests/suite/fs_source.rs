//! The folder source on a real folder with real inotify: complete files come out once, after
//! their writers are done; temporary names, dotfiles and vanished files never do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use hotfolderd::sources::fs::{watch_folder, Candidate, FolderSpec};
use tokio::sync::{mpsc, watch};

/// Collects candidates until none has arrived for `quiet`.
async fn drain(rx: &mut mpsc::Receiver<Candidate>, quiet: Duration) -> Vec<Candidate> {
    let mut out = Vec::new();
    while let Ok(Some(c)) = tokio::time::timeout(quiet, rx.recv()).await {
        out.push(c);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_files_come_out_once_and_temporary_ones_never() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("inbox");
    std::fs::create_dir_all(root.join("nested/deeper")).unwrap();
    // Present before the watcher starts: found by the first scan.
    std::fs::write(root.join("early.wav"), b"early").unwrap();
    let (tx, mut rx) = mpsc::channel(64);
    let (stop_tx, stop_rx) = watch::channel(false);
    let spec = FolderSpec {
        root: root.clone(),
        stable_for: Duration::from_millis(300),
        rescan_every: Duration::from_secs(60),
        marker: None,
        extensions: None,
    };
    let task = tokio::spawn(watch_folder(spec, tx, stop_rx));
    tokio::time::sleep(Duration::from_millis(200)).await;

    // A slow writer: 12 chunks, 100 ms apart, with a pause longer than stable_for in the
    // middle while the file stays open (a stalled upload): only the missing close holds it.
    let slow = root.join("slow.wav");
    let writer = tokio::task::spawn_blocking(move || {
        let mut f = std::fs::File::create(&slow).unwrap();
        for i in 0..12 {
            f.write_all(&[7u8; 1000]).unwrap();
            f.flush().unwrap();
            std::thread::sleep(Duration::from_millis(if i == 5 { 900 } else { 100 }));
        }
    });
    // A browser download: *.part, then renamed to its final name.
    std::fs::write(root.join("talk.m4a.part"), b"partial").unwrap();
    std::fs::rename(root.join("talk.m4a.part"), root.join("talk.m4a")).unwrap();
    // Nested, unicode and spaces.
    std::fs::write(root.join("nested/deeper/ünï cødé ☃.ogg"), b"nested").unwrap();
    // Never inputs: dotfile, rsync temp, editor backup.
    std::fs::write(root.join(".hidden.wav"), b"x").unwrap();
    std::fs::write(root.join(".sync.wav.Ab12Cd"), b"x").unwrap();
    std::fs::write(root.join("notes.wav~"), b"x").unwrap();
    // Deleted before it was stable: no candidate.
    std::fs::write(root.join("gone.wav"), b"soon gone").unwrap();
    std::fs::remove_file(root.join("gone.wav")).unwrap();
    // Nothing may come out while the slow writer is still writing.
    let mut got = drain(&mut rx, Duration::from_millis(100)).await;
    writer.await.unwrap();
    got.extend(drain(&mut rx, Duration::from_secs(3)).await);
    stop_tx.send(true).unwrap();
    task.await.unwrap().unwrap();

    let by_name: BTreeMap<PathBuf, &Candidate> = got.iter().map(|c| (c.rel.clone(), c)).collect();
    let names: Vec<String> = by_name.keys().map(|p| p.display().to_string()).collect();
    assert_eq!(
        names,
        [
            "early.wav",
            "nested/deeper/ünï cødé ☃.ogg",
            "slow.wav",
            "talk.m4a"
        ],
        "{got:#?}"
    );
    assert_eq!(got.len(), 4, "a file came out twice: {got:#?}");
    assert_eq!(
        by_name[&PathBuf::from("slow.wav")].meta.len,
        12_000,
        "picked before the writer finished"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_marker_a_file_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("inbox");
    std::fs::create_dir_all(&root).unwrap();
    let (tx, mut rx) = mpsc::channel(64);
    let (stop_tx, stop_rx) = watch::channel(false);
    let spec = FolderSpec {
        root: root.clone(),
        stable_for: Duration::from_millis(200),
        rescan_every: Duration::from_secs(60),
        marker: Some(".done".into()),
        extensions: None,
    };
    let task = tokio::spawn(watch_folder(spec, tx, stop_rx));
    tokio::time::sleep(Duration::from_millis(200)).await;
    std::fs::write(root.join("x.wav"), b"complete long ago").unwrap();
    // Stable, but unmarked: nothing comes out.
    assert!(drain(&mut rx, Duration::from_secs(1)).await.is_empty());
    std::fs::write(root.join("x.wav.done"), b"").unwrap();
    let got = drain(&mut rx, Duration::from_secs(2)).await;
    stop_tx.send(true).unwrap();
    task.await.unwrap().unwrap();
    let names: Vec<PathBuf> = got.iter().map(|c| c.rel.clone()).collect();
    assert_eq!(names, vec![PathBuf::from("x.wav")], "{got:#?}");
}
