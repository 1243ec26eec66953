//! Retention with a shortened clock: inputs kept in done/ and failed/ and local outputs are
//! deleted once older than keep_*, each deletion in the journal and the audit log; fresh
//! ones stay; the daemon's own stale temporary files go, while user files that merely look
//! like temporary files, or sit in done/, are never touched. HTTP jobs' outputs and
//! rejected uploads follow `[http] keep_outputs` / `keep_failed` the same way.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::Duration;

use crate::common::*;

#[test]
fn old_results_go_fresh_ones_and_user_files_stay() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = write_daemon_config(d, "300ms");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text = text.replace(
        "[[watch]]\n",
        "[daemon]\ncleanup_every = \"1s\"\n[[watch]]\nkeep_done = \"20s\"\nkeep_failed = \"20s\"\nkeep_outputs = \"20s\"\n",
    );
    let port = free_port();
    text.push_str(&format!(
        "[http]\nlisten = \"127.0.0.1:{port}\"\napi = true\nkeep_outputs = \"20s\"\nkeep_failed = \"20s\"\n"
    ));
    std::fs::write(&config, &text).unwrap();
    let (inbox, out) = (d.join("inbox"), d.join("out"));
    let (http_out, rejected) = (
        d.join("state/http-outputs"),
        d.join("state/uploads/quarantine"),
    );
    std::fs::create_dir_all(inbox.join("done")).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    // User files: look like temporaries, or sit where finished inputs go.
    let user = [
        out.join(".notes.tmp"),
        out.join(".old.json.Ab12Cd.tmp"),
        out.join("draft.hotfolderd-Ab12Cd.tmp"),
        inbox.join("done/mine.txt"),
    ];
    for f in &user {
        std::fs::write(f, b"mine").unwrap();
    }
    // A temporary file of a write a crash cut short, an hour ago.
    let orphan = out.join(".gone.json.hotfolderd-Zz9Yy8.tmp");
    std::fs::write(&orphan, b"half").unwrap();
    run(Command::new("touch")
        .args(["-d", "1 hour ago"])
        .arg(&orphan));
    for f in &user {
        run(Command::new("touch").args(["-d", "1 hour ago"]).arg(f));
    }

    let daemon = start_daemon(&config);
    let old_clip = speak(d, "old", "An old recording.", "en-us");
    std::fs::copy(&old_clip, inbox.join("old.wav")).unwrap();
    std::fs::write(inbox.join("junk.wav"), b"not audio").unwrap();
    wait_until("the HTTP server", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let old_job = post_job(port, &old_clip);
    let junk = d.join("junk.wav");
    std::fs::write(&junk, b"not audio").unwrap();
    let junk_job = post_job(port, &junk);
    // Each is noted once seen: on a slow machine the first may already be past keep_* (and
    // gone) by the time the second finishes.
    let (mut old_done, mut junk_failed) = (false, false);
    wait_until("the old inputs finished", || {
        old_done |= inbox.join("done/old.wav").is_file();
        junk_failed |= inbox.join("failed/junk.wav").is_file();
        old_done && junk_failed
    });
    let (mut old_job_done, mut junk_job_rejected) = (false, false);
    wait_until("the old HTTP jobs finished", || {
        old_job_done |= http_out.join(format!("{old_job}.json")).is_file();
        junk_job_rejected |= rejected.join(format!("{junk_job}.wav")).is_file();
        old_job_done && junk_job_rejected
    });
    wait_until("the orphaned temporary file removed", || !orphan.exists());
    std::thread::sleep(Duration::from_secs(12));
    let new_clip = speak(d, "new", "A new recording.", "en-us");
    std::fs::copy(&new_clip, inbox.join("new.wav")).unwrap();
    let new_job = post_job(port, &new_clip);
    wait_until("the new input finished", || {
        inbox.join("done/new.wav").is_file() && http_out.join(format!("{new_job}.json")).is_file()
    });
    wait_until("the old ones removed", || {
        !inbox.join("done/old.wav").exists()
            && !inbox.join("failed/junk.wav").exists()
            && !inbox.join("failed/junk.wav.error.json").exists()
            && !out.join("old.json").exists()
            && !out.join("old.txt").exists()
            && !http_out.join(format!("{old_job}.json")).exists()
            && !http_out.join(format!("{old_job}.srt")).exists()
            && !rejected.join(format!("{junk_job}.wav")).exists()
    });
    assert!(http_out.join(format!("{new_job}.txt")).is_file());
    // The API says the old job's outputs are gone, rather than failing to read them.
    let (status, body) = http_get(port, &format!("/v1/jobs/{old_job}/outputs/srt"), None);
    assert_eq!(status, 410, "{body}");
    assert!(body.contains("output_removed"), "{body}");
    // The new ones are younger than 20 s.
    assert!(inbox.join("done/new.wav").is_file());
    assert!(out.join("new.json").is_file() && out.join("new.txt").is_file());
    for f in &user {
        assert!(f.is_file(), "{} was touched", f.display());
    }
    stop(daemon);

    // Each deletion is recorded, with its policy, in the journal and the audit log.
    let audit = audit_matches_journal(d);
    assert_eq!(
        audit.iter().filter(|e| e.1 == "deleted").count(),
        5,
        "{audit:?}"
    );
    let j = hotfolderd::journal::Journal::open(&d.join("state/journal.sqlite")).unwrap();
    let junk_row = j.http_job(&junk_job).unwrap().unwrap();
    let story: Vec<String> = j
        .history(junk_row.input_id)
        .unwrap()
        .into_iter()
        .filter_map(|e| e.2)
        .collect();
    assert!(
        story
            .iter()
            .any(|e| e.starts_with("retention ([http] keep_failed = 20s): removed")),
        "{story:?}"
    );
    let old = inbox.join("done/old.wav");
    let story = hotfolderd(&["history", old.to_str().unwrap()], &config);
    assert!(
        story.contains("deleted: retention (keep_done = 20s)"),
        "{story}"
    );
    assert!(
        story.contains("deleted: retention (keep_outputs = 20s)"),
        "{story}"
    );
}

/// `POST /v1/jobs` with `file`; the job's id.
fn post_job(port: u16, file: &std::path::Path) -> String {
    let out = Command::new("curl")
        .args(["-sS", "-F"])
        .arg(format!("file=@{}", file.display()))
        .arg(format!("http://127.0.0.1:{port}/v1/jobs"))
        .output()
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    body["id"].as_str().unwrap().to_string()
}
