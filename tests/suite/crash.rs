//! kill -9 at arbitrary moments — while files arrive, mid-transcription, mid-write — then a
//! restart, ten times over: every input still ends with exactly one complete set of outputs,
//! nothing half-written, the journal consistent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;

#[test]
fn kill_9_ten_times_loses_nothing_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (inbox, out) = (d.join("inbox"), d.join("out"));
    let config = write_daemon_config(d, "300ms");
    let sentences = [
        "The first file arrives before anything else.",
        "Number two is short.",
        "A third recording about the weather in spring.",
        "Apples and pears are on sale at the market.",
        "The fifth message asks for a call back.",
        "Six is the last one of the batch.",
    ];
    let sources: Vec<PathBuf> = sentences
        .iter()
        .enumerate()
        .map(|(i, s)| speak(d, &format!("src{i}"), s, "en-us"))
        .collect();
    std::fs::create_dir_all(&inbox).unwrap();

    // A fixed pseudo-random schedule, so a failure can be replayed.
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = |lo: u64, hi: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        lo + (seed >> 33) % (hi - lo)
    };
    let mut dropped = 0;
    for round in 0..10 {
        let mut daemon = start_daemon(&config);
        // Files keep arriving across the rounds.
        if dropped < sources.len() && round % 2 == 0 {
            for _ in 0..2.min(sources.len() - dropped) {
                let to = inbox.join(format!("in{dropped}.wav"));
                std::fs::copy(
                    &sources[dropped],
                    inbox.join(format!("in{dropped}.wav.part")),
                )
                .unwrap();
                std::fs::rename(inbox.join(format!("in{dropped}.wav.part")), &to).unwrap();
                dropped += 1;
            }
        }
        let wait = next(200, 2500);
        eprintln!("round {round}: kill -9 after {wait} ms");
        std::thread::sleep(Duration::from_millis(wait));
        signal_daemon(&mut daemon, "KILL");
    }
    assert_eq!(dropped, sources.len());

    // A last, undisturbed run finishes the work.
    let mut daemon = start_daemon(&config);
    let deadline = Instant::now() + Duration::from_secs(300);
    let finished = || (0..sources.len()).all(|i| inbox.join(format!("done/in{i}.wav")).exists());
    while !finished() {
        assert!(
            Instant::now() < deadline,
            "not finished: inbox {:?}",
            files_under(&inbox)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(signal_daemon(&mut daemon, "TERM").success());

    // Exactly one complete set of outputs per input, and nothing else.
    let mut expected = Vec::new();
    for i in 0..sources.len() {
        for ext in ["json", "srt", "txt", "vtt"] {
            expected.push(out.join(format!("in{i}.{ext}")));
        }
    }
    expected.sort();
    assert_eq!(
        files_under(&out),
        expected,
        "outputs (temporary or missing files?)"
    );
    for i in 0..sentences.len() {
        // Complete (it parses) and made from its own input.
        let json: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.join(format!("in{i}.json"))).unwrap(),
        )
        .unwrap();
        assert!(
            json["source"]
                .as_str()
                .unwrap()
                .ends_with(&format!("in{i}.wav")),
            "{}",
            json["source"]
        );
        assert!(
            !json["text"].as_str().unwrap().trim().is_empty(),
            "in{i}: no text"
        );
    }
    // The inbox holds only the finished inputs.
    let left: Vec<PathBuf> = files_under(&inbox)
        .into_iter()
        .filter(|p| !p.starts_with(inbox.join("done")))
        .collect();
    assert!(left.is_empty(), "left in the inbox: {left:?}");
    let status = Command::new(env!("CARGO_BIN_EXE_hotfolderd"))
        .args(["status", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    for line in [
        "seen         0",
        "stable       0",
        "queued       0",
        "running      0",
        "done         6",
        "failed       0",
        "quarantined  0",
    ] {
        assert!(status.contains(line), "{line:?} not in\n{status}");
    }
}
