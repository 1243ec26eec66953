//! The S3+SQS emulator killed (`kill -9`) in the middle of a run and started again a minute
//! later with its state rebuilt: two daemons stay up, back off (without using up the jobs'
//! attempts), and finish everything once the service is back. Nothing is lost, nothing
//! failed, and nothing is left in the queue.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::collections::BTreeSet;
use std::time::Duration;

use crate::common::moto::recorded_world;
use crate::common::proxy::Proxy;
use crate::common::*;
use hotfolderd::journal::{Journal, State};
use hotfolderd::sinks::s3::INPUT_SHA_META;

#[test]
fn the_emulator_killed_for_a_minute_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let files: Vec<Vec<u8>> = (0..12)
        .map(|i| {
            std::fs::read(speak(
                d,
                &format!("f{i}"),
                &format!("Upload number {i} before an outage."),
                "en-us",
            ))
            .unwrap()
        })
        .collect();
    let w = recorded_world(&d.join("moto-recording.jsonl"));
    // The daemons reach the emulator through a proxy only so that they cannot see it
    // half-restored while its state is replayed; while it is dead the proxy has nothing to
    // connect to and drops every connection.
    let mut proxy = Proxy::start(w.moto.port);
    let homes = [d.join("a"), d.join("b")];
    let mut daemons: Vec<Daemon> = homes
        .iter()
        .map(|home| {
            std::fs::create_dir_all(home).unwrap();
            let log = home.join("daemon.log");
            start_daemon_with(
                &w.config(home),
                Start {
                    env: w.moto.env_at(proxy.port),
                    log: Some(&log),
                    ..Start::default()
                },
            )
        })
        .collect();
    let key = |i: usize| format!("in/outage/f{i}.wav");
    for (i, f) in files.iter().enumerate().take(4) {
        w.upload(&key(i), f.clone());
    }
    wait_until("the first result", || {
        w.output("transcripts/outage/f0.txt").is_some()
    });
    for (i, f) in files.iter().enumerate().skip(4) {
        w.upload(&key(i), f.clone());
    }

    let mut moto = w.moto;
    moto.kill();
    std::thread::sleep(Duration::from_secs(60));
    for daemon in &mut daemons {
        assert!(
            daemon.child.try_wait().unwrap().is_none(),
            "a daemon died during the outage"
        );
    }
    proxy.cut();
    moto.restart();
    proxy.restore();

    let w = common::moto::World { moto, ..w };
    let expected: BTreeSet<String> = (0..files.len())
        .flat_map(|i| {
            ["json", "srt", "vtt", "txt"].map(|ext| format!("transcripts/outage/f{i}.{ext}"))
        })
        .collect();
    // Twelve transcriptions plus redelivery after the restart: generous for a loaded machine.
    wait_up_to(
        Duration::from_secs(900),
        "every result and an empty queue",
        || expected.iter().all(|k| w.output(k).is_some()) && w.messages_left() == (0, 0),
    );
    assert_eq!(
        w.output_keys(),
        expected,
        "outputs other than the expected ones"
    );
    for (i, f) in files.iter().enumerate() {
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(f));
        for ext in ["json", "txt"] {
            assert_eq!(
                w.output_meta(&format!("transcripts/outage/f{i}.{ext}"), INPUT_SHA_META),
                Some(sha.clone()),
                "f{i}.{ext} was not made from f{i}.wav"
            );
        }
    }

    let mut done = BTreeSet::new();
    for (daemon, home) in daemons.iter_mut().zip(&homes) {
        assert!(daemon.child.try_wait().unwrap().is_none());
        assert!(signal_daemon(daemon, "TERM").success());
        let j = Journal::open(&home.join("state/journal.sqlite")).unwrap();
        assert!(
            j.in_state(State::Failed).unwrap().is_empty(),
            "the outage failed a job"
        );
        for id in j.in_state(State::Done).unwrap() {
            done.insert(j.get(id).unwrap().unwrap().key);
        }
    }
    let uploaded: BTreeSet<String> = (0..files.len()).map(key).collect();
    assert_eq!(done, uploaded);
    for home in &homes {
        let log = std::fs::read_to_string(home.join("daemon.log")).unwrap();
        assert!(
            log.contains("cannot receive from the queue") || log.contains("S3 unavailable"),
            "{} did not notice the outage:\n{log}",
            home.display()
        );
    }
}

/// A download that breaks mid-stream on every attempt, while S3 answers everything else,
/// counted as an outage: the job waited and retried forever, tripping the breaker for every
/// other job. Now each break uses an attempt, and the input fails with the reason.
#[test]
fn a_download_that_breaks_every_time_fails_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let short = speak(d, "s", "Short enough.", "en-us");
    let long = d.join("long.wav");
    sox(&[
        short.to_str().unwrap(),
        long.to_str().unwrap(),
        "repeat",
        "30",
    ]);
    let w = crate::common::moto::world(&[]);
    // Each connection is dropped after 512 KiB from the emulator: the 3 MB object never
    // arrives whole; the short one and every other answer do.
    let proxy = Proxy::truncating(w.moto.port, 512 << 10);
    let daemon = start_daemon_with(
        &w.config(d),
        Start {
            env: w.moto.env_at(proxy.port),
            ..Start::default()
        },
    );
    w.upload("in/broken.wav", std::fs::read(&long).unwrap());
    w.upload("in/fine.wav", std::fs::read(&short).unwrap());
    let failed = |d: &std::path::Path| {
        let j = Journal::open(&d.join("state/journal.sqlite")).unwrap();
        j.in_state(State::Failed)
            .unwrap()
            .into_iter()
            .filter_map(|id| j.get(id).unwrap())
            .collect::<Vec<_>>()
    };
    wait_up_to(
        Duration::from_secs(300),
        "the broken download to fail and the short one to be done",
        || w.output("transcripts/fine.txt").is_some() && !failed(d).is_empty(),
    );
    stop(daemon);
    let f = failed(d);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].key, "in/broken.wav");
    assert_eq!(f[0].attempts, 5, "{f:?}");
    let why = f[0].last_error.clone().unwrap_or_default();
    assert!(
        why.contains("fetch: s3://media/in/broken.wav") && why.contains("gave up after 5 attempts"),
        "{why}"
    );
}

/// S3 and SQS behind a listener that accepts connections and never answers (not a refused
/// port): every call times out, nothing hangs for good, and once answers come again the
/// upload made meanwhile is done.
#[test]
fn an_endpoint_that_never_answers_times_out_and_the_daemon_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let before = std::fs::read(speak(d, "a", "Before the silence.", "en-us")).unwrap();
    let during = std::fs::read(speak(d, "b", "During the silence.", "en-us")).unwrap();
    let w = crate::common::moto::world(&[]);
    let mut proxy = Proxy::start(w.moto.port);
    let mut daemon = start_daemon_with(
        &w.config(d),
        Start {
            env: w.moto.env_at(proxy.port),
            ..Start::default()
        },
    );
    w.upload("in/before.wav", before);
    wait_until("the first upload done", || {
        w.output("transcripts/before.txt").is_some()
    });
    proxy.black_hole();
    w.upload("in/during.wav", during);
    // Longer than one call attempt may last (40 s): what was sent now is never answered.
    std::thread::sleep(Duration::from_secs(45));
    assert!(
        daemon.child.try_wait().unwrap().is_none(),
        "the daemon died"
    );
    assert!(w.output("transcripts/during.txt").is_none());
    proxy.answer_again();
    wait_up_to(
        Duration::from_secs(300),
        "the upload made during the silence to be done",
        || w.output("transcripts/during.txt").is_some() && w.messages_left() == (0, 0),
    );
    assert!(signal_daemon(&mut daemon, "TERM").success());
    proxy.cut();
    let rows = journal_rows(d);
    assert!(
        rows.iter().all(|r| r.1 == State::Done && r.2 == 1),
        "{rows:?}"
    );
}
