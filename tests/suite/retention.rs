//! Retention with a shortened clock: inputs kept in done/ and failed/ and local outputs are
//! deleted once older than keep_*, each deletion in the journal and the audit log; fresh
//! ones stay; the daemon's own stale temporary files go, while user files that merely look
//! like temporary files, or sit in done/, are never touched.
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
    std::fs::write(&config, &text).unwrap();
    let (inbox, out) = (d.join("inbox"), d.join("out"));
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
    std::fs::copy(
        speak(d, "old", "An old recording.", "en-us"),
        inbox.join("old.wav"),
    )
    .unwrap();
    std::fs::write(inbox.join("junk.wav"), b"not audio").unwrap();
    // Each is noted once seen: on a slow machine the first may already be past keep_* (and
    // gone) by the time the second finishes.
    let (mut old_done, mut junk_failed) = (false, false);
    wait_until("the old inputs finished", || {
        old_done |= inbox.join("done/old.wav").is_file();
        junk_failed |= inbox.join("failed/junk.wav").is_file();
        old_done && junk_failed
    });
    wait_until("the orphaned temporary file removed", || !orphan.exists());
    std::thread::sleep(Duration::from_secs(12));
    std::fs::copy(
        speak(d, "new", "A new recording.", "en-us"),
        inbox.join("new.wav"),
    )
    .unwrap();
    wait_until("the new input finished", || {
        inbox.join("done/new.wav").is_file()
    });
    wait_until("the old ones removed", || {
        !inbox.join("done/old.wav").exists()
            && !inbox.join("failed/junk.wav").exists()
            && !inbox.join("failed/junk.wav.error.json").exists()
            && !out.join("old.json").exists()
            && !out.join("old.txt").exists()
    });
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
        3,
        "{audit:?}"
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
