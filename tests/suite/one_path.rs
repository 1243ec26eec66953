//! Holes in exactly-once that two job paths let in, each shut on the one job path: inputs
//! whose names differ only in their extension keep separate outputs (folder and S3, across
//! restarts); folder inputs over `max_file_size` are quarantined unread, with the reason;
//! with `foreign = "keep"` messages for another prefix stay in the queue; content dedup
//! reuses a twin only if the same model made it, for S3 inputs too; a linked folder is not watched through;
//! an S3 job reads exactly the upload its event announced (by ETag, or by versionId in a
//! versioned bucket), and the same bytes uploaded again after others are transcribed again.
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
    let daemon = start_for(&w, d);
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

/// Messages this source does not want (another prefix, bucket or event type) were always
/// deleted, though the README said "ignored": with `foreign = "keep"` they stay for their own
/// consumer (or the DLQ).
#[test]
fn foreign_messages_are_left_in_the_queue_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let speech = std::fs::read(speak(d, "s", "Only this one is ours.", "en-us")).unwrap();
    let w = world(&[]);
    let config = w.config_keys(d, "10s", "", "foreign = \"keep\"\n");
    let daemon = start_daemon_with(
        &config,
        Start {
            env: w.moto.env(),
            ..Start::default()
        },
    );
    w.upload("elsewhere/theirs.wav", speech.clone());
    // Another bucket's event, and an event type this source does not take.
    for (bucket, name) in [
        ("other", "ObjectCreated:Put"),
        ("media", "ObjectRemoved:Delete"),
    ] {
        w.send_body(
            serde_json::json!({"Records": [{
                "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
                "eventTime": "2026-12-02T12:00:00.000Z", "eventName": name,
                "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket},
                    "object": {"key": "in/x.wav", "size": 10, "eTag": "e", "sequencer": "01"}}
            }]})
            .to_string(),
        );
    }
    w.upload("in/ours.wav", speech);
    wait_until("our upload done", || {
        w.output("transcripts/ours.txt").is_some()
    });
    std::thread::sleep(std::time::Duration::from_secs(3));
    stop(daemon);
    let (visible, hidden) = w.messages_left();
    assert_eq!(
        visible + hidden,
        3,
        "the messages for elsewhere/, bucket other and a removal stay in the queue, ours is deleted"
    );
    assert_eq!(journal_rows(d).len(), 1, "{:?}", journal_rows(d));
}

fn json_of(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Dedup matched on the content alone, so after switching to a better model the same
/// content dropped again got the old model's transcript.
#[test]
fn content_dedup_reuses_only_what_the_same_model_made() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let inbox = d.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let clip = speak(d, "c", "The same words, twice.", "en-us");
    let config = write_daemon_config(d, "1s");
    let out = d.join("out");
    let daemon = start_daemon(&config);
    std::fs::copy(&clip, inbox.join("one.wav")).unwrap();
    wait_until("one done", || out.join("one.json").exists());
    stop(daemon);

    let tiny = model("tiny.en").display().to_string();
    let base = model("base").display().to_string();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace(&tiny, &base)).unwrap();
    let daemon = start_daemon(&config);
    std::fs::copy(&clip, inbox.join("two.wav")).unwrap();
    wait_until("two done", || out.join("two.json").exists());
    std::fs::copy(&clip, inbox.join("three.wav")).unwrap();
    wait_until("three done", || out.join("three.json").exists());
    stop(daemon);

    let (one, two, three) = (
        json_of(&out.join("one.json")),
        json_of(&out.join("two.json")),
        json_of(&out.join("three.json")),
    );
    assert_eq!(one["model"], "ggml-tiny.en.bin");
    assert_eq!(
        two["model"], "ggml-base.bin",
        "two was transcribed by the new model"
    );
    assert!(two.get("deduplicated_from").is_none(), "{two}");
    assert_eq!(three["model"], "ggml-base.bin");
    assert!(
        three["deduplicated_from"]
            .as_str()
            .unwrap()
            .ends_with("inbox/two.wav"),
        "three reuses the twin the same model made: {three}"
    );
}

/// S3 inputs had no content dedup: the same recording uploaded under two keys was
/// transcribed twice. Now an upload whose SHA-256 checksum S3 checked, or a format that is
/// spooled (and so hashed) before decoding, reuses its twin's outputs; a streamed upload
/// without a checksum is hashed as it is read, so a later twin finds it.
#[test]
fn s3_content_dedup_reuses_a_twins_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let first = speak(d, "a", "Twins share one transcript.", "en-us");
    let second = speak(d, "b", "The river runs to the sea.", "en-us");
    let m4a = d.join("c.m4a");
    ffmpeg(&first, &m4a, &[]);
    let (first, second, m4a) = (
        std::fs::read(first).unwrap(),
        std::fs::read(second).unwrap(),
        std::fs::read(m4a).unwrap(),
    );
    let w = world(&[]);
    let daemon = start_for(&w, d);
    let json = |stem: &str| {
        w.output(&format!("transcripts/{stem}.json"))
            .map(|b| serde_json::from_slice::<serde_json::Value>(&b).unwrap())
    };
    let in_turn = |uploads: &[(&str, &Vec<u8>, bool)]| {
        for (key, bytes, checksum) in uploads {
            let bytes = (*bytes).clone();
            if *checksum {
                w.upload_sha256(&format!("in/{key}"), bytes);
            } else {
                w.upload(&format!("in/{key}"), bytes);
            }
            let stem = key.rsplit_once('.').unwrap().0;
            wait_until(key, || json(stem).is_some() && w.messages_left() == (0, 0));
        }
    };
    in_turn(&[
        ("one.wav", &first, true),
        ("two.wav", &first, true),
        ("three.m4a", &m4a, false),
        ("four.m4a", &m4a, false),
        ("five.wav", &second, false),
        ("six.wav", &second, true),
    ]);
    stop(daemon);
    for (twin, of) in [("two", "one"), ("four", "three"), ("six", "five")] {
        let (reused, original) = (json(twin).unwrap(), json(of).unwrap());
        assert!(original.get("deduplicated_from").is_none(), "{original}");
        assert_eq!(
            reused["deduplicated_from"], original["source"],
            "{twin} reuses {of}: {reused}"
        );
        assert_eq!(
            reused["source"],
            format!(
                "s3://media/in/{twin}.{}",
                if twin == "four" { "m4a" } else { "wav" }
            )
        );
        assert_eq!(reused["segments"], original["segments"]);
        assert_eq!(
            w.output(&format!("transcripts/{twin}.txt")),
            w.output(&format!("transcripts/{of}.txt"))
        );
    }
    let rows = journal_rows(d);
    assert_eq!(rows.len(), 6, "{rows:?}");
    assert!(rows.iter().all(|r| r.1 == State::Done), "{rows:?}");
}

/// The watcher followed a symbolic link to a folder elsewhere, and transcribed (and moved
/// away) files it found there.
#[test]
fn a_linked_folder_is_not_watched_through() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (inbox, elsewhere) = (d.join("inbox"), d.join("elsewhere"));
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, inbox.join("linked")).unwrap();
    let clip = speak(d, "c", "Not for this folder.", "en-us");
    let config = write_daemon_config(d, "1s");
    let daemon = start_daemon(&config);
    std::fs::copy(&clip, inbox.join("first.wav")).unwrap();
    wait_until("first done", || d.join("out/first.txt").exists());
    std::fs::copy(&clip, elsewhere.join("secret.wav")).unwrap();
    std::fs::copy(&clip, inbox.join("second.wav")).unwrap();
    wait_until("second done", || d.join("out/second.txt").exists());
    std::thread::sleep(std::time::Duration::from_secs(4));
    stop(daemon);
    assert!(
        elsewhere.join("secret.wav").exists(),
        "the file elsewhere stays"
    );
    assert!(!d.join("out/linked").exists());
    let mut keys: Vec<String> = journal_rows(d).into_iter().map(|r| r.0).collect();
    keys.sort();
    assert_eq!(keys, ["first.wav", "second.wav"]);
}

/// An S3 event as S3 sends it, with the object's ETag and the event's sequencer.
fn created(key: &str, etag: &str, sequencer: &str) -> String {
    created_version(key, etag, None, sequencer)
}

/// The same, naming the object's `versionId` (a versioned bucket's events do).
fn created_version(key: &str, etag: &str, version: Option<&str>, sequencer: &str) -> String {
    let mut object =
        serde_json::json!({"key": key, "size": 10, "eTag": etag, "sequencer": sequencer});
    if let Some(v) = version {
        object["versionId"] = v.into();
    }
    serde_json::json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2026-12-02T12:00:00.000Z", "eventName": "ObjectCreated:Put",
        "s3": {"s3SchemaVersion": "1.0",
            "bucket": {"name": "media", "arn": "arn:aws:s3:::media"},
            "object": object}
    }]})
    .to_string()
}

/// A daemon for `w`'s emulator, its config and journal in `d`.
fn start_for(w: &crate::common::moto::World, d: &std::path::Path) -> Daemon {
    start_daemon_with(
        &w.config(d),
        Start {
            env: w.moto.env(),
            ..Start::default()
        },
    )
}

/// The text of the outputs of `in/x.wav`, lower case; empty until there is one.
fn x_text(w: &crate::common::moto::World) -> String {
    w.output("transcripts/x.txt")
        .map(|t| String::from_utf8_lossy(&t).to_lowercase())
        .unwrap_or_default()
}

/// In a versioned bucket a job reads the version its event names (versionId), even once a
/// newer upload is the key's current object: before, HEAD and GET read whatever was current,
/// so A's event transcribed B. The newer upload's outputs stand at the end.
#[test]
fn s3_jobs_in_a_versioned_bucket_read_the_announced_version() {
    use aws_sdk_s3::primitives::ByteStream;
    use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = speak(d, "a", "The tiger sleeps in the jungle.", "en-us");
    let b = speak(d, "b", "Seven bottles of milk.", "en-us");
    let (sha_a, sha_b) = (
        hotfolderd::hash::sha256_file(&a).unwrap(),
        hotfolderd::hash::sha256_file(&b).unwrap(),
    );
    let w = world(&[]);
    w.silence_bucket();
    let put = |bytes: Vec<u8>| {
        w.rt.block_on(async {
            let r =
                w.s3.put_object()
                    .bucket("media")
                    .key("in/x.wav")
                    .body(ByteStream::from(bytes))
                    .send()
                    .await
                    .unwrap();
            (
                r.e_tag().unwrap().trim_matches('"').to_string(),
                r.version_id().unwrap().to_string(),
            )
        })
    };
    w.rt.block_on(async {
        w.s3.put_bucket_versioning()
            .bucket("media")
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    });
    let (etag_a, version_a) = put(std::fs::read(&a).unwrap());
    let (etag_b, version_b) = put(std::fs::read(&b).unwrap());
    let event = |etag: &str, version: &str, sequencer: &str| {
        created_version("in/x.wav", etag, Some(version), sequencer)
    };
    let daemon = start_for(&w, d);
    let text = || x_text(&w);
    // A's event arrives late: B is already the current object.
    w.send_body(event(&etag_a, &version_a, "0A"));
    wait_until("A transcribed", || text().contains("tiger"));
    w.send_body(event(&etag_b, &version_b, "0B"));
    wait_until("B transcribed", || {
        text().contains("milk") && w.messages_left() == (0, 0)
    });
    stop(daemon);
    let j = hotfolderd::journal::Journal::open(&d.join("state/journal.sqlite")).unwrap();
    let done: Vec<(String, Option<String>)> = j
        .in_state(State::Done)
        .unwrap()
        .into_iter()
        .map(|id| j.get(id).unwrap().unwrap())
        .map(|i| (i.version, i.sha256))
        .collect();
    assert_eq!(done.len(), 2, "{done:?}");
    let read = |version: &str| {
        done.iter()
            .find(|(v, _)| v.contains(version))
            .and_then(|(_, sha)| sha.clone())
    };
    assert_eq!(read(&version_a), Some(sha_a), "A's job read A: {done:?}");
    assert_eq!(read(&version_b), Some(sha_b), "B's job read B: {done:?}");
}

/// Upload A, then B, then A again under one key of an unversioned bucket: the third event
/// looked like the first (same ETag) and was dropped as done, leaving B's transcript. And
/// reads were not pinned: an event for an upload that has since been replaced transcribed
/// whatever was there.
#[test]
fn s3_jobs_read_exactly_the_announced_upload_and_a_b_a_ends_with_a() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = std::fs::read(speak(d, "a", "The tiger sleeps in the jungle.", "en-us")).unwrap();
    let b = std::fs::read(speak(d, "b", "Seven bottles of milk.", "en-us")).unwrap();
    let w = world(&[]);
    w.silence_bucket();
    let daemon = start_for(&w, d);
    let text = || x_text(&w);
    let etag_a = w.upload_etag("in/x.wav", a.clone());
    w.send_body(created("in/x.wav", &etag_a, "0A"));
    wait_until("A transcribed", || text().contains("tiger"));
    let etag_b = w.upload_etag("in/x.wav", b);
    w.send_body(created("in/x.wav", &etag_b, "0B"));
    wait_until("B transcribed", || text().contains("milk"));
    w.upload_etag("in/x.wav", a);
    w.send_body(created("in/x.wav", &etag_a, "0C"));
    wait_until("A again transcribed", || text().contains("tiger"));
    // An event for B, which is no longer there: nothing else is read in its place.
    w.send_body(created("in/x.wav", &etag_b, "0D"));
    wait_until("the stale event handled", || {
        journal_rows(d).len() == 4 && w.messages_left() == (0, 0)
    });
    stop(daemon);
    assert!(text().contains("tiger"), "{}", text());
    let j = hotfolderd::journal::Journal::open(&d.join("state/journal.sqlite")).unwrap();
    let failed: Vec<_> = j
        .in_state(State::Failed)
        .unwrap()
        .into_iter()
        .map(|id| j.get(id).unwrap().unwrap())
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    let why = failed[0].last_error.clone().unwrap_or_default();
    assert!(
        why.contains("changed since the upload this input is"),
        "{why}"
    );
    assert_eq!(j.in_state(State::Done).unwrap().len(), 3);
}
