//! The sd_notify protocol as systemd sees it, with a datagram socket this test owns as
//! NOTIFY_SOCKET: READY=1 with a STATUS= line, WATCHDOG=1 pings while the pipeline is
//! healthy, none while the journal cannot take a write (a wedged pipeline gets restarted),
//! pings again once it can, and STOPPING=1 on SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use crate::common::*;

/// Every message received within `for_`.
fn messages(sock: &UnixDatagram, for_: Duration) -> Vec<(Instant, String)> {
    let until = Instant::now() + for_;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 4096];
    while Instant::now() < until {
        sock.set_read_timeout(Some(until - Instant::now() + Duration::from_millis(1)))
            .unwrap();
        if let Ok(n) = sock.recv(&mut buf) {
            out.push((
                Instant::now(),
                String::from_utf8_lossy(&buf[..n]).into_owned(),
            ));
        }
    }
    out
}

#[test]
fn ready_status_and_watchdog_follow_the_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = write_daemon_config(d, "300ms");
    std::fs::create_dir_all(d.join("inbox")).unwrap();
    let path = d.join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    let mut daemon = start_daemon_with(
        &config,
        Start {
            env: vec![
                ("NOTIFY_SOCKET".into(), path.display().to_string()),
                ("WATCHDOG_USEC".into(), "2000000".into()),
            ],
            ..Start::default()
        },
    );

    let first = messages(&sock, Duration::from_secs(60))
        .into_iter()
        .next()
        .map(|(_, m)| m);
    let first = first.expect("no message from the daemon");
    assert!(first.lines().any(|l| l == "READY=1"), "{first}");
    assert!(
        first.lines().any(|l| l.starts_with("STATUS=0 queued")),
        "{first}"
    );

    std::fs::copy(
        speak(d, "s", "Status lines count this file.", "en-us"),
        d.join("inbox/s.wav"),
    )
    .unwrap();
    wait_until("the transcript", || d.join("out/s.json").is_file());
    let healthy = messages(&sock, Duration::from_secs(4));
    let pings = healthy
        .iter()
        .filter(|(_, m)| m.contains("WATCHDOG=1"))
        .count();
    assert!(pings >= 2, "pings every second: {healthy:?}");
    assert!(
        healthy
            .iter()
            .any(|(_, m)| m.contains("STATUS=0 queued, 0 running, 1 done")),
        "{healthy:?}"
    );

    // Another process holds the journal's write lock for 8 s: no pings meanwhile.
    let journal = d.join("state/journal.sqlite");
    let mut locker = std::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3,sys,time; c=sqlite3.connect(sys.argv[1], isolation_level=None); \
             c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); time.sleep(8); c.execute('ROLLBACK')",
        ])
        .arg(&journal)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(locker.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "locked");
    // A ping already on its way may still arrive; after that, silence.
    messages(&sock, Duration::from_millis(1500));
    let stalled = messages(&sock, Duration::from_secs(5));
    assert!(
        !stalled.iter().any(|(_, m)| m.contains("WATCHDOG=1")),
        "pinged while the journal was stuck: {stalled:?}"
    );
    assert!(locker.wait().unwrap().success());
    let recovered = messages(&sock, Duration::from_secs(6));
    assert!(
        recovered.iter().any(|(_, m)| m.contains("WATCHDOG=1")),
        "no pings after the journal came back: {recovered:?}"
    );

    assert!(signal_daemon(&mut daemon, "TERM").success());
    let last = messages(&sock, Duration::from_millis(500));
    assert!(
        last.iter().any(|(_, m)| m.contains("STOPPING=1")),
        "{last:?}"
    );
}
