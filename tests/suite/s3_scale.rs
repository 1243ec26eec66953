//! Three daemons on one queue, 100 uploads: competing consumers. Every object ends with one
//! complete set of outputs made from it, nothing fails, and no message is left in the queue.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::Path;

use crate::common::moto::world;
use crate::common::*;
use hotfolderd::journal::{Journal, State};

/// (key → done rows, failed rows) in one daemon's journal.
fn tally(d: &Path, into: &mut HashMap<String, (usize, usize)>) {
    let j = Journal::open(&d.join("state/journal.sqlite")).unwrap();
    for (state, slot) in [(State::Done, 0), (State::Failed, 1)] {
        for id in j.in_state(state).unwrap() {
            let key = j.get(id).unwrap().unwrap().key;
            let e = into.entry(key).or_default();
            if slot == 0 {
                e.0 += 1;
            } else {
                e.1 += 1;
            }
        }
    }
}

#[test]
fn three_daemons_share_a_queue_and_each_upload_is_done_once() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let uploads: Vec<(String, Vec<u8>)> = (0..100)
        .map(|i| {
            let p = src.join(format!("{i}.wav"));
            run(std::process::Command::new("espeak-ng")
                .args(["-v", "en-us", "-w"])
                .arg(&p)
                .arg(format!("Object number {i}.")));
            (format!("in/batch/{i:03}.wav"), std::fs::read(p).unwrap())
        })
        .collect();
    let w = world(&[]);
    let mut daemons = Vec::new();
    let homes: Vec<_> = (0..3).map(|i| dir.path().join(format!("box{i}"))).collect();
    for home in &homes {
        std::fs::create_dir_all(home).unwrap();
        // Short clips: the fitted encoder context keeps 100 of them affordable on CI.
        let config = w.config_full(home, "30s", "audio_ctx = \"fit\"");
        daemons.push(start_daemon_with(
            &config,
            Start {
                env: w.moto.env(),
                log: Some(&home.join("daemon.log")),
                ..Start::default()
            },
        ));
    }
    for (key, bytes) in &uploads {
        w.upload(key, bytes.clone());
    }
    let txt = |key: &str| {
        format!(
            "transcripts/{}",
            key.trim_start_matches("in/").replace(".wav", ".txt")
        )
    };
    wait_up_to(
        std::time::Duration::from_secs(1800),
        "all 100 results and an empty queue",
        || uploads.iter().all(|(k, _)| w.output(&txt(k)).is_some()) && w.messages_left() == (0, 0),
    );
    for d in daemons {
        stop(d);
    }

    for (key, bytes) in &uploads {
        let json_key = txt(key).replace(".txt", ".json");
        let json: serde_json::Value =
            serde_json::from_slice(&w.output(&json_key).unwrap()).unwrap();
        let sha = hex_sha256(bytes);
        assert_eq!(
            json["sha256"],
            sha.as_str(),
            "{key}: outputs of another input"
        );
        for ext in ["srt", "vtt"] {
            assert!(w
                .output(&txt(key).replace(".txt", &format!(".{ext}")))
                .is_some());
        }
    }
    let mut t = HashMap::new();
    for home in &homes {
        tally(home, &mut t);
    }
    let failed: Vec<_> = t.iter().filter(|(_, v)| v.1 > 0).collect();
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(t.len(), 100, "inputs journaled");
    // Each daemon's number of jobs, and on how many daemons each key was done.
    let mut per_box = Vec::new();
    let mut boxes_per_key: HashMap<String, usize> = HashMap::new();
    for home in &homes {
        let mut one = HashMap::new();
        tally(home, &mut one);
        per_box.push(one.len());
        for key in one.into_keys() {
            *boxes_per_key.entry(key).or_default() += 1;
        }
    }
    eprintln!("jobs per daemon: {per_box:?}");
    assert!(
        per_box.iter().filter(|n| **n > 0).count() >= 2,
        "the work was not shared: {per_box:?}"
    );
    let logs: Vec<String> = homes
        .iter()
        .map(|h| std::fs::read_to_string(h.join("daemon.log")).unwrap())
        .collect();
    // A daemon holds only what it can start soon and keeps it hidden while it does.
    for log in &logs {
        assert!(
            !log.contains("did not keep it hidden"),
            "a held message was delivered again: {log}"
        );
    }
    // SQS delivers at least once: now and then one message goes to two daemons at once (moto's
    // receive has that race too). Both transcribe, but each output object is written once:
    // the later write finds the same result there.
    let repeated: Vec<_> = boxes_per_key.iter().filter(|(_, n)| **n > 1).collect();
    eprintln!("done on more than one daemon: {repeated:?}");
    assert!(
        repeated.len() <= 3,
        "duplicated work: {per_box:?}, {repeated:?}"
    );
    for (key, boxes) in &boxes_per_key {
        let stem = txt(key).replace(".txt", ".");
        let found_there = logs
            .iter()
            .flat_map(|l| l.lines())
            .filter(|l| l.contains("already there") && l.contains(&stem))
            .count();
        assert_eq!(
            found_there,
            (boxes - 1) * 4,
            "{key}: done on {boxes} daemons, but not each of its 4 outputs written once"
        );
    }
}

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
