//! Holes in exactly-once that two job paths let in, each shut on the one job path: inputs
//! whose names differ only in their extension keep separate outputs (folder and S3, across
//! restarts); folder inputs over `max_file_size` are quarantined unread, with the reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;

use crate::common::moto::world;
use crate::common::*;
use hotfolderd::journal::State;

/// A config from `write_daemon_config` with extra keys for its `[[watch]]`.
fn config_with_watch_keys(d: &std::path::Path, keys: &str) -> std::path::PathBuf {
    let config = write_daemon_config(d, "1s");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&config)
        .unwrap();
    writeln!(f, "{keys}").unwrap();
    config
}

#[test]
fn a_file_over_max_file_size_is_quarantined_unread_and_smaller_ones_are_done() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let inbox = d.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let small = speak(d, "small", "Small enough.", "en-us");
    let big = d.join("big.wav");
    sox(&[
        small.to_str().unwrap(),
        big.to_str().unwrap(),
        "repeat",
        "9",
    ]);
    let (small_len, big_len) = (
        std::fs::metadata(&small).unwrap().len(),
        std::fs::metadata(&big).unwrap().len(),
    );
    let limit = (small_len + big_len) / 2;
    let config = config_with_watch_keys(d, &format!("max_file_size = \"{limit}\""));
    let daemon = start_daemon(&config);
    std::fs::copy(&small, inbox.join("small.wav")).unwrap();
    std::fs::copy(&big, inbox.join("big.wav")).unwrap();
    let report = inbox.join("failed/big.wav.error.json");
    wait_until("the small file done and the big one quarantined", || {
        d.join("out/small.txt").exists() && report.exists()
    });
    stop(daemon);
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["stage"], "validate", "{r}");
    let reason = r["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("is {big_len} bytes, over max_file_size {limit}")),
        "{reason}"
    );
    assert!(!d.join("out/big.txt").exists());
    let mut rows = journal_rows(d);
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        rows,
        vec![
            ("big.wav".to_string(), State::Quarantined, 1),
            ("small.wav".to_string(), State::Done, 1)
        ]
    );
}

fn text_of(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap().to_lowercase()
}

/// `a.wav` and `a.mp3` both wrote `a.json`, the second replacing the first. The first
/// journaled keeps `a.*`; the other writes `a.mp3.*`, and keeps that name after a restart.
#[test]
fn inputs_differing_only_in_extension_keep_their_own_outputs_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let inbox = d.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let wav = speak(d, "w", "The tiger sleeps in the jungle.", "en-us");
    let mp3 = d.join("m.mp3");
    ffmpeg(&speak(d, "m", "Seven bottles of milk.", "en-us"), &mp3, &[]);
    let mp3_again = d.join("m2.mp3");
    ffmpeg(
        &speak(d, "m2", "Four green windows.", "en-us"),
        &mp3_again,
        &[],
    );
    let config = write_daemon_config(d, "1s");
    let out = d.join("out");

    let daemon = start_daemon(&config);
    std::fs::copy(&wav, inbox.join("a.wav")).unwrap();
    wait_until("a.wav done", || out.join("a.txt").exists());
    std::fs::copy(&mp3, inbox.join("a.mp3")).unwrap();
    wait_until("a.mp3 done", || out.join("a.mp3.txt").exists());
    stop(daemon);
    assert!(
        text_of(&out.join("a.txt")).contains("tiger"),
        "{}",
        text_of(&out.join("a.txt"))
    );
    assert!(text_of(&out.join("a.mp3.txt")).contains("milk"));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("a.mp3.json")).unwrap()).unwrap();
    assert!(
        json["source"].as_str().unwrap().ends_with("inbox/a.mp3"),
        "{json}"
    );

    // After a restart, a new a.mp3 replaces a.mp3's outputs, not a.wav's.
    let daemon = start_daemon(&config);
    std::fs::copy(&mp3_again, inbox.join("a.mp3")).unwrap();
    wait_until("the new a.mp3 done", || {
        text_of(&out.join("a.mp3.txt")).contains("window")
    });
    stop(daemon);
    assert!(text_of(&out.join("a.txt")).contains("tiger"));
    let mut names: Vec<String> = files_under(&out)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "a.json",
            "a.mp3.json",
            "a.mp3.srt",
            "a.mp3.txt",
            "a.mp3.vtt",
            "a.srt",
            "a.txt",
            "a.vtt"
        ]
    );
}

/// The same in S3: `put_once` replaced `a.*` because the sha256 differed.
#[test]
fn s3_inputs_differing_only_in_extension_keep_their_own_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let wav = std::fs::read(speak(d, "w", "The tiger sleeps in the jungle.", "en-us")).unwrap();
    let mp3 = d.join("m.mp3");
    ffmpeg(&speak(d, "m", "Seven bottles of milk.", "en-us"), &mp3, &[]);
    let w = world(&[]);
    let daemon = start_daemon_with(
        &w.config(d),
        Start {
            env: w.moto.env(),
            ..Start::default()
        },
    );
    let text = |k: &str| {
        w.output(&format!("transcripts/{k}"))
            .map(|b| String::from_utf8_lossy(&b).to_lowercase())
    };
    w.upload("in/a.wav", wav);
    wait_until("in/a.wav done", || text("a.txt").is_some());
    w.upload("in/a.mp3", std::fs::read(&mp3).unwrap());
    wait_until("in/a.mp3 done", || {
        text("a.mp3.txt").is_some() && w.messages_left() == (0, 0)
    });
    stop(daemon);
    assert!(
        text("a.txt").unwrap().contains("tiger"),
        "{:?}",
        text("a.txt")
    );
    assert!(text("a.mp3.txt").unwrap().contains("milk"));
}
