//! `hotfolderd history`: the full story of a file that was quarantined twice (not audio),
//! retried, fixed, and then transcribed after a second retry, across a daemon restart —
//! found by its path, and by its id.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::*;

/// The state names of the events in the story of input `id`, in order.
fn story(text: &str, id: i64) -> Vec<String> {
    text.split("\n\n")
        .find(|block| block.starts_with(&format!("#{id} ")))
        .unwrap_or_else(|| panic!("#{id} not in\n{text}"))
        .lines()
        .skip(1)
        .filter_map(|l| l.strip_prefix("  "))
        .filter(|l| !l.starts_with('(') && !l.starts_with("outputs:"))
        .map(|l| {
            l.split_whitespace()
                .nth(1)
                .unwrap()
                .trim_end_matches(':')
                .to_string()
        })
        .collect()
}

#[test]
fn history_tells_the_whole_story_of_a_twice_failed_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = write_daemon_config(d, "300ms");
    let inbox = d.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let bad = inbox.join("late.wav");
    let quarantined = |n: usize| {
        move || {
            let rows = journal_rows(d);
            rows.len() == 1 && rows[0].1.as_str() == "quarantined" && rows[0].2 == n
        }
    };

    let daemon = start_daemon(&config);
    std::fs::write(&bad, b"not audio yet").unwrap();
    wait_until("the first failure", quarantined(1));
    let j = hotfolderd::journal::Journal::open(&d.join("state/journal.sqlite")).unwrap();
    let id = j.inputs_named(None, "late.wav").unwrap()[0];
    drop(j);
    hotfolderd(&["retry", &id.to_string()], &config);
    wait_until("the second failure", quarantined(2));
    stop(daemon);

    // Fixed while the daemon is down; retried after it is back.
    let daemon = start_daemon(&config);
    std::fs::copy(
        speak(d, "late", "Third time lucky.", "en-us"),
        inbox.join("failed/late.wav"),
    )
    .unwrap();
    hotfolderd(&["retry", &id.to_string()], &config);
    wait_until("the transcript", || d.join("out/late.txt").is_file());
    wait_until("done in the journal", || {
        journal_rows(d).iter().any(|(_, s, _)| s.as_str() == "done")
    });
    stop(daemon);

    let by_path = hotfolderd(&["history", bad.to_str().unwrap()], &config);
    let by_id = hotfolderd(&["history", &id.to_string()], &config);
    assert!(
        by_path.contains(&by_id.trim_end().to_string()),
        "{by_path}\n---\n{by_id}"
    );
    let events = story(&by_path, id);
    let expected = [
        "seen",
        "stable",
        "queued",
        "running",
        "quarantined",
        "queued",
        "running",
        "quarantined",
        "queued",
        "running",
        "done",
    ];
    // Requeues after the restart (interrupted work) may add steps; the order must hold.
    let mut at = 0;
    for e in &events {
        if at < expected.len() && e == expected[at] {
            at += 1;
        }
    }
    assert_eq!(at, expected.len(), "{events:?}\n{by_path}");
    assert!(by_path.contains("retry requested"), "{by_path}");
    assert!(by_path.contains("outputs: "), "{by_path}");
    let audit = audit_matches_journal(d);
    assert!(audit.iter().filter(|e| e.1 == "quarantined").count() == 2);
    // The reason of each failure is in the story.
    assert_eq!(
        by_path.matches("quarantined: decode").count()
            + by_path.matches("quarantined: validate").count()
            + by_path.matches("quarantined: probe").count(),
        2,
        "{by_path}"
    );
}
