//! `HOTFOLDERD_LOG_FORMAT=json`: every log line the daemon writes is one JSON object.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::*;

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = write_daemon_config(d, "300ms");
    let log = d.join("daemon.log");
    let daemon = start_daemon_with(
        &config,
        Start {
            log: Some(&log),
            env: vec![("HOTFOLDERD_LOG_FORMAT".into(), "json".into())],
            ..Start::default()
        },
    );
    wait_until("the start-up line", || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("hotfolderd running"))
    });
    stop(daemon);
    let text = std::fs::read_to_string(&log).unwrap();
    let mut n = 0;
    for line in text.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v["level"].is_string() && v["fields"]["message"].is_string(),
            "{line}"
        );
        n += 1;
    }
    assert!(n >= 2, "{text}");
}
