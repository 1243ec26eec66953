//! `[daemon] min_free_disk` with the output folder on a real, small tmpfs (mounted by the
//! test; needs root): filled up, new jobs wait — `/readyz` says why and
//! `hotfolderd_disk_paused` is 1 — and once space returns every file is transcribed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::Duration;

use crate::common::*;

/// Unmounts the tmpfs when the test ends, passed or not.
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_output_disk_pauses_jobs_until_space_returns() {
    if !is_root() {
        eprintln!("not root: cannot mount a tmpfs; skipping");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = d.join("out");
    std::fs::create_dir_all(&out).unwrap();
    run(Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&out));
    let _mounted = Mounted(out.clone());
    let port = free_port();
    let config = write_daemon_config(d, "300ms");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[[watch]]\n",
        &format!("[daemon]\nmin_free_disk = \"2MiB\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n[[watch]]\n"),
    );
    std::fs::write(&config, text).unwrap();
    std::fs::create_dir_all(d.join("inbox")).unwrap();

    // 3 of 4 MiB taken: below the 2 MiB floor.
    let ballast = out.join("ballast");
    std::fs::write(&ballast, vec![7u8; 3 << 20]).unwrap();
    let daemon = start_daemon(&config);
    wait_until("the HTTP server", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    for (name, text) in [("a", "Waiting for disk space."), ("b", "Me too.")] {
        std::fs::copy(
            speak(d, name, text, "en-us"),
            d.join(format!("inbox/{name}.wav")),
        )
        .unwrap();
    }
    wait_until("both inputs queued", || {
        journal_rows(d)
            .iter()
            .filter(|(_, s, _)| s.as_str() == "queued")
            .count()
            == 2
    });
    let (status, why) = http_get(port, "/readyz", None);
    assert_eq!(status, 503);
    assert!(why.contains("min_free_disk"), "{why}");
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        journal_rows(d)
            .iter()
            .all(|(_, s, _)| s.as_str() == "queued"),
        "a job ran on a full disk"
    );
    let (_, metrics) = http_get(port, "/metrics", None);
    assert_eq!(
        metric_value(&metrics, "hotfolderd_disk_paused", &[]),
        Some(1.0)
    );

    std::fs::remove_file(&ballast).unwrap();
    wait_until("both transcripts", || {
        out.join("a.json").is_file() && out.join("b.json").is_file()
    });
    assert_eq!(http_get(port, "/readyz", None).0, 200);
    let (_, metrics) = http_get(port, "/metrics", None);
    assert_eq!(
        metric_value(&metrics, "hotfolderd_disk_paused", &[]),
        Some(0.0)
    );
    stop(daemon);
    let rows = journal_rows(d);
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter()
            .all(|(_, s, runs)| s.as_str() == "done" && *runs == 1),
        "{rows:?}"
    );
}
