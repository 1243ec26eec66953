//! S3 uploads through SQS, against a real S3+SQS emulator process: the bucket's own event
//! notifications drive the daemon; SNS-wrapped and EventBridge bodies are injected into the
//! queue as those services would deliver them; bad messages and bad objects are recorded
//! with reasons; every message is deleted once its input is final.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use crate::common::moto::world;
use crate::common::*;
use hotfolderd::journal::{Journal, State};

/// The journal's failure reasons by key.
fn failures(d: &Path) -> Vec<(String, String)> {
    let j = Journal::open(&d.join("state/journal.sqlite")).unwrap();
    j.in_state(State::Failed)
        .unwrap()
        .into_iter()
        .map(|id| {
            let i = j.get(id).unwrap().unwrap();
            (i.key, i.last_error.unwrap_or_default())
        })
        .collect()
}

/// An S3 event record; `etag` is the object's (jobs read exactly that upload).
fn s3_record(bucket: &str, encoded_key: &str, size: usize, etag: &str) -> String {
    format!(
        r#"{{"Records":[{{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1","eventTime":"2026-11-23T12:00:00.000Z","eventName":"ObjectCreated:Put","s3":{{"s3SchemaVersion":"1.0","bucket":{{"name":"{bucket}","arn":"arn:aws:s3:::{bucket}"}},"object":{{"key":"{encoded_key}","size":{size},"eTag":"{etag}"}}}}}}]}}"#
    )
}

#[test]
fn uploads_become_transcripts_in_the_output_bucket_and_bad_messages_are_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let speech = std::fs::read(speak(d, "s", "An upload to the media bucket.", "en-us")).unwrap();
    let other = std::fs::read(speak(
        d,
        "o",
        "Delivered through a notification topic.",
        "en-us",
    ))
    .unwrap();
    let bridge = std::fs::read(speak(d, "b", "Routed by the event bus.", "en-us")).unwrap();
    // An M4A (AAC in MP4) may need seeking: it takes the spool-file path, the WAVs stream.
    let m4a = d.join("memo.m4a");
    ffmpeg(
        &speak(d, "m", "A phone memo in an M4A file.", "en-us"),
        &m4a,
        &["-c:a", "aac"],
    );
    let m4a = std::fs::read(m4a).unwrap();
    let w = world(&[
        ("in/sns/topic.wav", other),
        ("in/bridge/2026-11-23T12:00:00 bus.wav", bridge),
    ]);
    let config = w.config(d);
    let mut daemon = start_daemon_with(
        &config,
        Start {
            env: w.moto.env(),
            ..Start::default()
        },
    );

    // Through the bucket's own notifications: awkward keys.
    w.upload("in/team a/café + co (1).wav", speech.clone());
    w.upload(
        "in/not audio.wav",
        b"Meeting notes, not audio at all.\n".repeat(20),
    );
    w.upload("out-of-prefix/x.wav", speech.clone());
    w.upload("in/phone/memo.m4a", m4a);
    // SNS-wrapped (no raw delivery), and EventBridge, injected as those services send them.
    w.send_body(
        serde_json::json!({
            "Type": "Notification",
            "MessageId": "6f4a6c52-8d2e-5a9f-9c47-0d2b1d3f6f11",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:uploads",
            "Subject": "Amazon S3 Notification",
            "Message": s3_record("media", "in/sns/topic.wav", 10, &w.etag("in/sns/topic.wav")),
            "Timestamp": "2026-11-23T12:00:00.000Z",
            "SignatureVersion": "1",
            "Signature": "EXAMPLE",
        })
        .to_string(),
    );
    let bridge_etag = w.etag("in/bridge/2026-11-23T12:00:00 bus.wav");
    w.send_body(
        serde_json::json!({
            "version": "0", "id": "17793124-05d4-b198-2fde-7ededc63b103",
            "detail-type": "Object Created", "source": "aws.s3", "account": "123456789012",
            "time": "2026-11-23T12:00:00Z", "region": "us-east-1",
            "resources": ["arn:aws:s3:::media"],
            "detail": {"version": "0", "bucket": {"name": "media"},
                "object": {"key": "in/bridge/2026-11-23T12:00:00 bus.wav", "size": 10, "etag": bridge_etag},
                "reason": "PutObject"}
        })
        .to_string(),
    );
    // Bad messages and bad objects.
    w.send_body("this is not JSON {".into());
    w.send_body(s3_record(
        "media",
        "in/never-uploaded.wav",
        10,
        "0123456789abcdef",
    ));
    w.send_body(s3_record(
        "media",
        "in/..%2F..%2Fetc%2Fpasswd.wav",
        10,
        "0123456789abcdef",
    ));
    w.upload("in/too-big.wav", vec![0u8; 11_000_000]);

    let out = |k: &str| w.output(&format!("transcripts/{k}"));
    wait_until("transcripts and failure records", || {
        out("team a/café + co (1).txt").is_some()
            && out("phone/memo.txt").is_some()
            && out("sns/topic.txt").is_some()
            && out("bridge/2026-11-23T12:00:00 bus.txt").is_some()
            && failures(d).len() >= 5
            && w.messages_left() == (0, 0)
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(signal_daemon(&mut daemon, "TERM").success());

    let text = String::from_utf8(out("team a/café + co (1).txt").unwrap()).unwrap();
    assert!(
        wer("An upload to the media bucket.", &text) <= 0.4,
        "{text}"
    );
    let memo = String::from_utf8(out("phone/memo.txt").unwrap()).unwrap();
    assert!(wer("A phone memo in an M4A file.", &memo) <= 0.4, "{memo}");
    let json: serde_json::Value =
        serde_json::from_slice(&out("team a/café + co (1).json").unwrap()).unwrap();
    // Hashed while streaming: the same sha256 as the bytes uploaded.
    assert_eq!(
        json["sha256"],
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&speech))
    );
    assert_eq!(json["source"], "s3://media/in/team a/café + co (1).wav");
    for f in ["srt", "vtt"] {
        assert!(out(&format!("team a/café + co (1).{f}")).is_some(), "{f}");
    }
    assert!(w.output("transcripts/x.txt").is_none() && out("../out-of-prefix/x.txt").is_none());

    let failed = failures(d);
    let reason = |key_part: &str| {
        failed
            .iter()
            .find(|(k, _)| k.contains(key_part))
            .map(|(_, r)| r.clone())
            .unwrap_or_else(|| panic!("no failure for {key_part}: {failed:?}"))
    };
    assert!(reason("not audio").contains("text file"), "{failed:?}");
    assert!(
        reason("never-uploaded").contains("does not exist"),
        "{failed:?}"
    );
    assert!(reason("passwd").contains("`..`"), "{failed:?}");
    assert!(
        reason("too-big").contains("over max_object_size"),
        "{failed:?}"
    );
    let malformed = reason("message:");
    assert!(
        malformed.contains("not JSON") && malformed.contains("this is not JSON {"),
        "the raw body is kept: {malformed}"
    );
    assert_eq!(w.messages_left(), (0, 0), "messages left in the queue");
}

#[test]
fn a_deleted_input_takes_its_outputs_with_it_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = std::fs::read(speak(d, "a", "This upload will be deleted.", "en-us")).unwrap();
    let b = std::fs::read(speak(d, "b", "This upload will stay.", "en-us")).unwrap();
    let w = world(&[]);
    let config = w.config_keys(d, "30s", "", "on_removed = \"delete_outputs\"");
    // The uploads also feed a dataset kept in the results bucket.
    let mut text = std::fs::read_to_string(&config).unwrap();
    text += &format!(
        "[[dataset]]\nname = \"calls\"\nsources = [{:?}]\npath = \"s3://results/datasets/calls\"\n\
         force_path_style = true\ntrain_after_hours = 100.0\nmin_segment_seconds = 0.5\n\
         [dataset.trainer]\ncommand = [\"true\"]\n[daemon]\nbox_id = \"one\"\n",
        w.queue_url
    );
    std::fs::write(&config, text).unwrap();
    let sha = |bytes: &[u8]| hotfolderd::hash::sha256_reader(bytes).unwrap();
    let (a_sha, b_sha) = (sha(&a), sha(&b));
    // (contents in the bucket's manifest, this box's shard; audio objects of a's content)
    let dataset = || {
        let shas: Vec<String> = w
            .output("datasets/calls/manifests/one.jsonl")
            .map(|m| {
                String::from_utf8(m)
                    .unwrap()
                    .lines()
                    .map(|l| {
                        serde_json::from_str::<serde_json::Value>(l).unwrap()["sha256"]
                            .as_str()
                            .unwrap()
                            .to_string()
                    })
                    .collect()
            })
            .unwrap_or_default();
        let audio = w
            .output_keys()
            .into_iter()
            .filter(|k| k.starts_with(&format!("datasets/calls/audio/one/{}/{a_sha}", &a_sha[..2])))
            .count();
        (shas, audio)
    };
    let daemon = start_daemon_with(
        &config,
        Start {
            env: w.moto.env(),
            ..Start::default()
        },
    );
    let outputs = |stem: &str| {
        ["json", "srt", "vtt", "txt"].map(|ext| format!("transcripts/gone/{stem}.{ext}"))
    };
    w.upload("in/gone/a.wav", a.clone());
    w.upload("in/gone/b.wav", b);
    wait_until("both results, and both in the dataset's bucket", || {
        let (shas, audio) = dataset();
        outputs("a")
            .iter()
            .chain(&outputs("b"))
            .all(|k| w.output(k).is_some())
            && shas.contains(&a_sha)
            && shas.contains(&b_sha)
            && audio > 0
    });

    w.delete_input("in/gone/a.wav");
    wait_until("a's outputs to go", || {
        outputs("a").iter().all(|k| w.output(k).is_none())
    });
    assert!(outputs("b").iter().all(|k| w.output(k).is_some()));
    // Its content leaves the dataset: the manifest in the bucket, and its audio there.
    wait_until("a out of the dataset in S3", || {
        let (shas, audio) = dataset();
        !shas.contains(&a_sha) && shas.contains(&b_sha) && audio == 0
    });

    // The same bytes uploaded again are a new input, not "already done".
    w.upload("in/gone/a.wav", a);
    wait_until(
        "a's outputs again, back in the dataset, and an empty queue",
        || {
            outputs("a").iter().all(|k| w.output(k).is_some())
                && w.messages_left() == (0, 0)
                && dataset().0.contains(&a_sha)
        },
    );
    stop(daemon);
    let j = Journal::open(&d.join("state/journal.sqlite")).unwrap();
    let done = j.in_state(State::Done).unwrap();
    assert_eq!(done.len(), 3, "a, b, and a again");
    let retired: Vec<_> = done
        .iter()
        .map(|id| j.get(*id).unwrap().unwrap())
        .filter(|i| i.version.contains(" retired@"))
        .collect();
    assert_eq!(retired.len(), 1);
    assert_eq!(retired[0].key, "in/gone/a.wav");
}
