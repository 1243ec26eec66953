//! S3 and SQS unreachable for a minute in the middle of a run: the daemons stay up, back
//! off (without using up the jobs' attempts), and finish everything once the service is
//! back. Nothing is lost and nothing is left in the queue.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::moto::world;
use common::proxy::Proxy;
use common::*;
use hotfolderd::journal::{Journal, State};

#[test]
fn a_minute_long_outage_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let files: Vec<Vec<u8>> = (0..12)
        .map(|i| {
            std::fs::read(speak(
                d,
                &format!("f{i}"),
                &format!("Upload number {i} during an outage."),
                "en-us",
            ))
            .unwrap()
        })
        .collect();
    let w = world(&[]);
    let mut proxy = Proxy::start(w.moto.port);
    let config = w.config(d);
    let mut daemon = start_daemon_with(
        &config,
        Start {
            env: w.moto.env_at(proxy.port),
            ..Start::default()
        },
    );
    let key = |i: usize| format!("in/outage/f{i}.wav");
    for (i, f) in files.iter().enumerate().take(4) {
        w.upload(&key(i), f.clone());
    }
    wait_until("the first result", || {
        w.output("transcripts/outage/f0.txt").is_some()
    });

    // The service goes away for a minute; uploads keep arriving (straight to the emulator,
    // as other clients of a regional service would still reach it).
    proxy.cut();
    for (i, f) in files.iter().enumerate().skip(4) {
        w.upload(&key(i), f.clone());
    }
    std::thread::sleep(Duration::from_secs(60));
    assert!(
        daemon.child.try_wait().unwrap().is_none(),
        "the daemon died during the outage"
    );
    proxy.restore();

    wait_until("every result and an empty queue", || {
        (0..files.len()).all(|i| w.output(&format!("transcripts/outage/f{i}.txt")).is_some())
            && w.messages_left() == (0, 0)
    });
    assert!(daemon.child.try_wait().unwrap().is_none());
    assert!(signal_daemon(&mut daemon, "TERM").success());
    let j = Journal::open(&d.join("state/journal.sqlite")).unwrap();
    assert_eq!(j.in_state(State::Done).unwrap().len(), files.len());
    assert!(
        j.in_state(State::Failed).unwrap().is_empty(),
        "an outage failed a job"
    );
}
