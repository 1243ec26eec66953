//! The shipped unit as systemd judges it: `systemd-analyze security` scores its hardening
//! (lower is safer; 2.0 or less is asked for), and its key settings are there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

fn unit() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/hotfolderd.service")
}

#[test]
fn the_unit_scores_two_or_less_in_systemd_analyze_security() {
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(unit())
        .output()
        .expect("systemd-analyze (package systemd; scripts/deps.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| {
            panic!(
                "no score in:\n{text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let score: f64 = line
        .split(':')
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("unreadable score line: {line}"));
    println!("systemd-analyze security: {score}");
    assert!(score <= 2.0, "{line}\n{text}");
}

#[test]
fn the_unit_is_a_notify_service_with_a_watchdog_and_its_own_directories() {
    let text = std::fs::read_to_string(unit()).unwrap();
    for want in [
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "User=hotfolderd",
        "StateDirectory=hotfolderd",
        "ConfigurationDirectory=hotfolderd",
        "LogsDirectory=hotfolderd",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(text.lines().any(|l| l.starts_with(want)), "{want} missing");
    }
    // TimeoutStopSec must outlast the default drain grace (30 s) plus stopping jobs.
    let stop: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(stop > 30 + 5 + 10, "TimeoutStopSec={stop}");
    let gpu = std::fs::read_to_string(unit().with_file_name("hotfolderd-gpu.conf")).unwrap();
    assert!(gpu.contains("DeviceAllow=char-nvidia-frontend rw"));
    assert!(
        !text.contains("DeviceAllow"),
        "no devices without the GPU drop-in"
    );
}
