//! How the daemon runs its jobs: an output folder that is unwritable for a while (jobs wait
//! and retry, nothing lost), a job past its time limit, SIGTERM in the middle of a long job
//! (stopped after `shutdown_grace`, requeued, finished by the next start), and two workers
//! running at once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::*;
use hotfolderd::journal::{Journal, State};

fn config(d: &Path, asr: &str, daemon: &str) -> PathBuf {
    let config = d.join("hotfolderd.toml");
    std::fs::write(
        &config,
        format!(
            "[journal]\npath = {:?}\n[asr]\nmodel = {:?}\nthreads = 1\n{asr}\n[daemon]\n{daemon}\n\
             [[watch]]\npath = {:?}\noutput = {:?}\nstable_for = \"500ms\"\nafter = \"move\"\n",
            d.join("state/journal.sqlite"),
            model("tiny.en"),
            d.join("inbox"),
            d.join("out"),
        ),
    )
    .unwrap();
    config
}

fn journal(d: &Path) -> Journal {
    Journal::open(&d.join("state/journal.sqlite")).unwrap()
}

type Trail = Vec<(i64, String, Option<String>)>;

/// The state changes of the one input with this key: (unix ms, state, detail).
fn trail(d: &Path, key: &str) -> Trail {
    trail_if_any(d, key).unwrap_or_else(|| panic!("{key} is not in the journal"))
}

fn trail_if_any(d: &Path, key: &str) -> Option<Trail> {
    let j = journal(d);
    let ids: Vec<i64> = State::ALL
        .iter()
        .flat_map(|s| j.in_state(*s).unwrap())
        .filter(|id| j.get(*id).unwrap().unwrap().key == key)
        .collect();
    assert!(ids.len() <= 1, "{key} journaled twice: {ids:?}");
    // State changes only: notes such as "moved" follow `done` in the trail.
    ids.first().map(|id| {
        j.history(*id)
            .unwrap()
            .into_iter()
            .filter(|e| State::ALL.iter().any(|s| s.as_str() == e.1))
            .collect()
    })
}

fn set_mode(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
}

#[test]
fn an_unwritable_output_folder_delays_jobs_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (inbox, out) = (d.join("inbox"), d.join("out"));
    let config = config(d, "", "");
    let speech = speak(
        d,
        "memo",
        "The output disk was read only for a while.",
        "en-us",
    );
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    let daemon = start_daemon_with(
        &config,
        Start {
            log: None,
            unprivileged_in: Some(d),
            ..Start::default()
        },
    );
    set_mode(&out, 0o555);
    std::fs::copy(&speech, inbox.join("memo.wav")).unwrap();

    // The job fails to write, goes back to the queue with a backoff, and tries again.
    wait_until("two failed write attempts", || {
        std::fs::metadata(d.join("state/journal.sqlite")).is_ok()
            && trail_if_any(d, "memo.wav")
                .unwrap_or_default()
                .iter()
                .filter(|e| {
                    e.1 == "queued" && e.2.as_deref().is_some_and(|r| r.starts_with("write:"))
                })
                .count()
                >= 2
    });
    assert!(!out.join("memo.txt").exists() && inbox.join("memo.wav").exists());
    set_mode(&out, 0o755);
    wait_until("the output once writable", || out.join("memo.txt").exists());
    stop(daemon);

    let t = trail(d, "memo.wav");
    let states: Vec<&str> = t.iter().map(|e| e.1.as_str()).collect();
    assert_eq!(states.last(), Some(&"done"), "{t:?}");
    let reason = t
        .iter()
        .find_map(|e| e.2.clone().filter(|r| r.starts_with("write:")));
    assert!(
        reason
            .as_deref()
            .is_some_and(|r| r.contains(&out.display().to_string())),
        "the retry reason names the folder: {t:?}"
    );
    assert!(inbox.join("done/memo.wav").exists());
    let text = std::fs::read_to_string(out.join("memo.txt")).unwrap();
    assert!(
        wer("The output disk was read only for a while.", &text) <= 0.4,
        "{text}"
    );
}

#[test]
fn a_job_past_its_time_limit_is_retried_once_then_failed_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let inbox = d.join("inbox");
    let config = config(
        d,
        "job_timeout_factor = 0.0\njob_timeout_min = \"1ms\"\njob_timeout_max = \"1ms\"",
        "",
    );
    let port = free_port();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text += &format!("[http]\nlisten = \"127.0.0.1:{port}\"\n");
    std::fs::write(&config, text).unwrap();
    let speech = speak(d, "slow", "This job never gets enough time.", "en-us");
    std::fs::create_dir_all(&inbox).unwrap();
    let daemon = start_daemon(&config);
    std::fs::copy(&speech, inbox.join("slow.wav")).unwrap();
    let report = inbox.join("failed/slow.wav.error.json");
    wait_until("the timed-out job to fail", || report.exists());
    // The one retry is counted, by kind.
    let (_, metrics) = http_get(port, "/metrics", None);
    let retries =
        |kind: &str| metric_value(&metrics, "hotfolderd_job_retries_total", &[("kind", kind)]);
    assert_eq!(retries("timeout"), Some(1.0), "{metrics}");
    assert_eq!(retries("transient"), None, "{metrics}");
    stop(daemon);

    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report).unwrap()).unwrap();
    assert_eq!(report["stage"], "timeout", "{report}");
    assert_eq!(report["attempts"], 2, "{report}");
    assert!(
        report["reason"]
            .as_str()
            .unwrap()
            .contains("time limit of 1ms"),
        "{report}"
    );
    assert!(!d.join("out/slow.json").exists());
}

#[test]
fn sigterm_mid_job_stops_it_after_the_grace_and_the_next_start_finishes_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (inbox, out) = (d.join("inbox"), d.join("out"));
    let config = config(d, "", "shutdown_grace = \"1s\"");
    let text = "A long meeting recording that cannot finish before the service stops.";
    let one = speak(d, "one", text, "en-us");
    // About three minutes: several windows, far longer than the grace.
    let long = d.join("long.wav");
    sox(&[
        one.to_str().unwrap(),
        long.to_str().unwrap(),
        "repeat",
        "35",
    ]);
    std::fs::create_dir_all(&inbox).unwrap();
    let mut daemon = start_daemon(&config);
    std::fs::copy(&long, inbox.join("long.wav")).unwrap();
    wait_until("the job to start", || {
        status(&config).contains("running      1")
    });
    std::thread::sleep(Duration::from_millis(500));
    let status_code = signal_daemon(&mut daemon, "TERM");
    assert!(status_code.success(), "{status_code:?}");

    // Stopped inside whisper.cpp and requeued; or, when one encoder pass outlasts the
    // settle time (a loaded machine), left `running` for the next start to requeue.
    let t = trail(d, "long.wav");
    let last = t.last().unwrap();
    assert!(
        (last.1 == "queued" && last.2.as_deref() == Some("interrupted by shutdown; requeued"))
            || last.1 == "running",
        "{t:?}"
    );
    assert!(
        files_under(&out).is_empty(),
        "partial outputs: {:?}",
        files_under(&out)
    );

    let daemon = start_daemon(&config);
    wait_until("the requeued job to finish", || {
        out.join("long.txt").exists()
    });
    stop(daemon);
    let t = trail(d, "long.wav");
    assert_eq!(t.last().unwrap().1, "done", "{t:?}");
    assert_eq!(t.iter().filter(|e| e.1 == "running").count(), 2, "{t:?}");
    let transcript = std::fs::read_to_string(out.join("long.txt")).unwrap();
    assert!(
        transcript.to_lowercase().matches("meeting").count() >= 20,
        "{transcript}"
    );
}

#[test]
fn two_workers_run_two_jobs_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (inbox, out) = (d.join("inbox"), d.join("out"));
    let config = config(d, "workers = 2", "");
    let names = ["a", "b", "c"];
    let files: Vec<PathBuf> = names
        .iter()
        .map(|n| {
            speak(
                d,
                n,
                &format!("Worker test file {n}: several sentences of speech keep the job busy for a while, so that two of them overlap."),
                "en-us",
            )
        })
        .collect();
    std::fs::create_dir_all(&inbox).unwrap();
    // Queued together: all three in the folder before the daemon's first scan.
    for (n, f) in names.iter().zip(&files) {
        std::fs::copy(f, inbox.join(format!("{n}.wav"))).unwrap();
    }
    let daemon = start_daemon(&config);
    wait_until("all three", || {
        names.iter().all(|n| out.join(format!("{n}.txt")).exists())
    });
    stop(daemon);

    // (started, finished) of each job, from the audit trail.
    let spans: Vec<(i64, i64)> = names
        .iter()
        .map(|n| {
            let t = trail(d, &format!("{n}.wav"));
            let at = |s: &str| t.iter().find(|e| e.1 == s).unwrap().0;
            (at("running"), at("done"))
        })
        .collect();
    let overlapping = (0..3)
        .flat_map(|i| (i + 1..3).map(move |j| (i, j)))
        .any(|(i, j)| spans[i].0 < spans[j].1 && spans[j].0 < spans[i].1);
    assert!(overlapping, "no two jobs ran at the same time: {spans:?}");
    let j = journal(d);
    assert_eq!(j.in_state(State::Done).unwrap().len(), 3);
}
