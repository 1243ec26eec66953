//! `[http]`: health, readiness and Prometheus metrics from the running daemon. The metrics
//! are read with a Prometheus text-format parser and must count what the test dropped;
//! readiness fails while the journal's folder cannot be written; off loopback a request
//! without the bearer token is refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::path::Path;

use crate::common::*;

fn config_with_http(d: &Path, http: &str) -> std::path::PathBuf {
    let config = write_daemon_config(d, "300ms");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text += &format!("[http]\n{http}\n");
    std::fs::write(&config, text).unwrap();
    std::fs::create_dir_all(d.join("inbox")).unwrap();
    config
}

fn wait_for_server(port: u16) {
    wait_until("the HTTP server", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
}

#[test]
fn metrics_count_what_was_dropped_and_readiness_follows_the_journal_disk() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    let config = config_with_http(d, &format!("listen = \"127.0.0.1:{port}\""));
    let daemon = start_daemon_with(
        &config,
        Start {
            unprivileged_in: Some(d),
            ..Start::default()
        },
    );
    wait_for_server(port);
    assert_eq!(http_get(port, "/healthz", None), (200, "ok\n".into()));
    assert_eq!(http_get(port, "/readyz", None).0, 200);

    for name in ["one", "two"] {
        let wav = speak(d, name, &format!("Metrics count file {name}."), "en-us");
        std::fs::copy(&wav, d.join("inbox").join(format!("{name}.wav"))).unwrap();
    }
    run(std::process::Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(d.join("inbox")));
    wait_until("both transcripts", || {
        d.join("out/one.json").is_file() && d.join("out/two.json").is_file()
    });
    wait_until("both inputs done in the journal", || {
        let (_, body) = http_get(port, "/metrics", None);
        body.contains("state=\"done\"} 2")
    });
    let (status, body) = http_get(port, "/metrics", None);
    assert_eq!(status, 200);
    let value = |name: &str, label: Option<(&str, &str)>| -> f64 {
        let labels: Vec<_> = label.into_iter().collect();
        metric_value(&body, name, &labels)
            .unwrap_or_else(|| panic!("{name} {label:?} not in\n{body}"))
    };
    assert_eq!(value("hotfolderd_inputs", Some(("state", "done"))), 2.0);
    assert_eq!(value("hotfolderd_queue_depth", None), 0.0);
    assert_eq!(value("hotfolderd_running_jobs", None), 0.0);
    assert_eq!(
        value("hotfolderd_job_duration_seconds", None),
        2.0,
        "{body}"
    );
    assert_eq!(value("hotfolderd_audio_seconds", None), 2.0);

    // The journal's folder turns read-only: not ready, with the reason; and back.
    let state = d.join("state");
    run(std::process::Command::new("chmod")
        .args(["0555"])
        .arg(&state));
    let (status, why) = http_get(port, "/readyz", None);
    assert_eq!(status, 503, "{why}");
    assert!(
        why.contains("journal") && why.contains("not writable"),
        "{why}"
    );
    run(std::process::Command::new("chmod")
        .args(["0755"])
        .arg(&state));
    assert_eq!(http_get(port, "/readyz", None).0, 200);
    assert_eq!(http_get(port, "/nothing-here", None).0, 404);
    stop(daemon);
}

#[test]
fn off_loopback_every_request_needs_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    // Refused without a token file.
    let config = config_with_http(d, &format!("listen = \"0.0.0.0:{port}\""));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hotfolderd"))
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("token_file")
            || String::from_utf8_lossy(&out.stderr).contains("token_file")
    );

    let token = d.join("token");
    std::fs::write(&token, "s3cret-token\n").unwrap();
    let config = config_with_http(
        d,
        &format!("listen = \"0.0.0.0:{port}\"\ntoken_file = {token:?}"),
    );
    let daemon = start_daemon(&config);
    wait_for_server(port);
    assert_eq!(http_get(port, "/metrics", None).0, 401);
    assert_eq!(http_get(port, "/metrics", Some("wrong")).0, 401);
    assert_eq!(http_get(port, "/healthz", None).0, 401);
    let (status, body) = http_get(port, "/metrics", Some("s3cret-token"));
    assert_eq!(status, 200);
    assert!(body.contains("hotfolderd_queue_depth"));
    stop(daemon);
}

#[test]
fn readiness_follows_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let w = common::moto::recorded_world(&d.join("moto-recording.jsonl"));
    let port = free_port();
    let config = w.config(d);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text += &format!("[http]\nlisten = \"127.0.0.1:{port}\"\n");
    std::fs::write(&config, text).unwrap();
    let daemon = start_daemon_with(
        &config,
        Start {
            env: w.moto.env(),
            ..Start::default()
        },
    );
    wait_for_server(port);
    wait_until("ready", || http_get(port, "/readyz", None).0 == 200);

    // The emulator dies: the next receive fails and readiness says which queue and why.
    let mut moto = w.moto;
    moto.kill();
    wait_until("not ready while SQS is down", || {
        http_get(port, "/readyz", None).0 == 503
    });
    let (_, why) = http_get(port, "/readyz", None);
    assert!(
        why.contains(&w.queue_url) && why.contains("cannot receive from the queue"),
        "{why}"
    );
    // Liveness is not readiness: the process still answers.
    assert_eq!(http_get(port, "/healthz", None).0, 200);

    moto.restart();
    wait_until("ready again once SQS answers", || {
        http_get(port, "/readyz", None).0 == 200
    });
    stop(daemon);
}
