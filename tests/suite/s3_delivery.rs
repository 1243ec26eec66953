//! At-least-once delivery made exactly-once: the same event twice gives one result; a job
//! longer than the visibility timeout is kept hidden by the heartbeat, so a second daemon on
//! the same queue never starts it; a daemon killed mid-job has its message redelivered and
//! finished by another.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use crate::common::moto::world;
use crate::common::*;
use hotfolderd::journal::{Journal, State};

/// About two and a half minutes of speech: longer to transcribe than a 10 s visibility.
fn long_speech(d: &Path) -> Vec<u8> {
    let one = speak(
        d,
        "one",
        "A long recording that keeps the worker busy for a while.",
        "en-us",
    );
    let long = d.join("long.wav");
    sox(&[
        one.to_str().unwrap(),
        long.to_str().unwrap(),
        "repeat",
        "40",
    ]);
    std::fs::read(long).unwrap()
}

/// Homes for two daemons on one queue, the long speech, and the emulator.
fn two_daemons_homes() -> (
    tempfile::TempDir,
    std::path::PathBuf,
    std::path::PathBuf,
    Vec<u8>,
    crate::common::moto::World,
) {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let speech = long_speech(dir.path());
    (dir, a, b, speech, world(&[]))
}

#[test]
fn the_same_event_twice_gives_one_result() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let speech =
        std::fs::read(speak(d, "s", "Delivered twice, transcribed once.", "en-us")).unwrap();
    let w = world(&[("in/twice.wav", speech)]);
    let config = w.config(d);
    let event = format!(
        r#"{{"Records":[{{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{{"bucket":{{"name":"media"}},"object":{{"key":"in/twice.wav","size":10,"eTag":"{}"}}}}}}]}}"#,
        w.etag("in/twice.wav")
    );
    w.send_body(event.clone());
    w.send_body(event);
    let daemon = start_daemon_with(
        &config,
        Start {
            env: w.moto.env(),
            ..Start::default()
        },
    );
    wait_until("the result and an empty queue", || {
        w.output("transcripts/twice.txt").is_some() && w.messages_left() == (0, 0)
    });
    stop(daemon);
    let rows = journal_rows(d);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0].1, rows[0].2), (State::Done, 1), "{rows:?}");
}

#[test]
fn a_long_job_stays_hidden_and_a_killed_daemons_job_is_finished_by_another() {
    let (dir, a, b, speech, w) = two_daemons_homes();
    let (config_a, config_b) = (w.config_with(&a, "10s"), w.config_with(&b, "10s"));
    let log_a = dir.path().join("a.log");
    let start = |config: &Path, log: Option<&Path>| {
        start_daemon_with(
            config,
            Start {
                env: w.moto.env(),
                log,
                ..Start::default()
            },
        )
    };

    // Heartbeat: A takes the first upload; its job outlasts the 10 s visibility, yet neither
    // B, polling the same queue, nor A itself receives the message again.
    let daemon_a = start(&config_a, Some(&log_a));
    w.upload("in/first.wav", speech.clone());
    wait_until("A to start the first job", || {
        journal_rows(&a).iter().any(|r| r.1 == State::Running)
    });
    let daemon_b = start(&config_b, None);
    wait_until("A to finish the first job", || {
        w.output("transcripts/first.txt").is_some()
    });
    assert!(
        journal_rows(&b).is_empty(),
        "B received A's message: {:?}",
        journal_rows(&b)
    );
    // The job must have outlasted the visibility timeout for this to show anything.
    let j = Journal::open(&a.join("state/journal.sqlite")).unwrap();
    let trail = j.history(1).unwrap();
    let at = |s: &str| trail.iter().find(|e| e.1 == s).unwrap().0;
    let took_ms = at("done") - at("running");
    assert!(
        took_ms > 15_000,
        "the job was too short ({took_ms} ms) to test the heartbeat"
    );
    let log = std::fs::read_to_string(&log_a).unwrap();
    assert!(!log.contains("delivered again"), "{log}");
    stop(daemon_b);

    // Redelivery: A is killed mid-job; after the visibility timeout B gets the message.
    w.upload("in/second.wav", speech);
    wait_until("A to start the second job", || {
        journal_rows(&a)
            .iter()
            .any(|r| r.0 == "in/second.wav" && r.1 == State::Running)
    });
    let mut daemon_a = daemon_a;
    signal_daemon(&mut daemon_a, "KILL");
    let daemon_b = start(&config_b, None);
    wait_until("B to finish the second job", || {
        w.output("transcripts/second.txt").is_some() && w.messages_left() == (0, 0)
    });
    std::thread::sleep(Duration::from_secs(1));
    stop(daemon_b);
    let rows_b = journal_rows(&b);
    assert_eq!(
        rows_b,
        vec![("in/second.wav".to_string(), State::Done, 1)],
        "B did the second job once"
    );
    let text = String::from_utf8(w.output("transcripts/second.txt").unwrap()).unwrap();
    assert!(
        text.to_lowercase().matches("worker").count() >= 10,
        "{text}"
    );
}

/// SIGTERM lets the running job finish within the grace period. Its message must stay
/// hidden meanwhile: the heartbeat used to stop with the sources, so after one visibility
/// timeout a second daemon on the queue received the message and did the job again.
#[test]
fn a_job_finishing_in_the_shutdown_grace_is_not_delivered_to_another_daemon() {
    let (_dir, a, b, speech, w) = two_daemons_homes();
    let grace = "[daemon]\nshutdown_grace = \"10m\"\n";
    let config_a = w.config_keys(&a, "10s", "", grace);
    let config_b = w.config_with(&b, "10s");
    let start = |config: &Path| {
        start_daemon_with(
            config,
            Start {
                env: w.moto.env(),
                ..Start::default()
            },
        )
    };
    let mut daemon_a = start(&config_a);
    w.upload("in/drained.wav", speech);
    wait_until("A to start the job", || {
        journal_rows(&a).iter().any(|r| r.1 == State::Running)
    });
    let daemon_b = start(&config_b);
    // A drains: the job finishes inside the grace period, then A exits.
    assert!(signal_daemon(&mut daemon_a, "TERM").success());
    assert_eq!(
        journal_rows(&a),
        vec![("in/drained.wav".to_string(), State::Done, 1)],
        "A finished its job while stopping"
    );
    let j = Journal::open(&a.join("state/journal.sqlite")).unwrap();
    let id = j.inputs_named(None, "in/drained.wav").unwrap()[0];
    let trail = j.history(id).unwrap();
    let at = |s: &str| trail.iter().find(|e| e.1 == s).map(|e| e.0).unwrap();
    assert!(
        at("done") - at("running") > 15_000,
        "the job was too short to outlast the visibility timeout after SIGTERM: {trail:?}"
    );
    // Longer than a visibility timeout after A's end: a message left visible would be B's.
    std::thread::sleep(Duration::from_secs(12));
    stop(daemon_b);
    assert!(
        journal_rows(&b).is_empty(),
        "B received the message of the job A finished while stopping: {:?}",
        journal_rows(&b)
    );
    assert_eq!(w.messages_left(), (0, 0));
}
