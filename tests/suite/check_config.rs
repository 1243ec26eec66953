//! `hotfolderd check-config`: each problem on its own line as file:line:column, non-zero exit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn check(text: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hotfolderd"))
        .args(["check-config", "--config"])
        .arg(&path)
        .env_remove("HOTFOLDERD_ASR_THREADS")
        .output()
        .unwrap();
    let stderr =
        String::from_utf8_lossy(&out.stderr).replace(&path.display().to_string(), "h.toml");
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

#[test]
fn reports_every_problem_with_its_place_and_fails() {
    let (code, _, stderr) = check(
        "[journal]\npath = \"j.sqlite\"\n[asr]\nmodel = \"m.bin\"\nthreads = 0\n[[watch]]\npath = \"in\"\noutput = \"in/out\"\n",
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("h.toml:5:11: asr.threads must be at least 1"),
        "{stderr}"
    );
    assert!(
        stderr.contains("h.toml:8:10: watch[0].output in/out is inside the watched folder"),
        "{stderr}"
    );
    assert!(stderr.contains("h.toml: 2 problems"), "{stderr}");
}

#[test]
fn a_typo_is_an_error_not_ignored() {
    let (code, _, stderr) =
        check("[journal]\npath = \"j\"\n[asr]\nmodel = \"m\"\nlangauge = \"en\"\n");
    assert_eq!(code, 1);
    assert!(stderr.contains("h.toml:5:1: unknown field"), "{stderr}");
}

#[test]
fn the_shipped_example_checks_clean() {
    let out = Command::new(env!("CARGO_BIN_EXE_hotfolderd"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("check-config")
        .env_remove("HOTFOLDERD_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("config/hotfolderd.toml: ok"));
}

/// Settings that would break exactly-once are refused, each with its reason: the daemon's
/// own deletes deleting fresh transcripts, two pollers on one queue, and jobs outliving
/// the longest SQS keeps a message hidden.
#[test]
fn combinations_that_would_redo_or_lose_work_are_refused() {
    let s3 = |extra: &str| {
        format!(
            "[[s3]]\nqueue_url = \"http://127.0.0.1:1/q\"\ninput_bucket = \"media\"\noutput_bucket = \"results\"\n{extra}"
        )
    };
    let (code, _, stderr) = check(&format!(
        "[journal]\npath = \"j\"\n[asr]\nmodel = \"m\"\njob_timeout_max = \"13h\"\n{}{}",
        s3("after = \"delete\"\non_removed = \"delete_outputs\"\n"),
        s3(""),
    ));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("h.toml:5:19: asr.job_timeout_max is longer than 12h"),
        "{stderr}"
    );
    assert!(
        stderr.contains("s3[0] has after = \"delete\" with on_removed = \"delete_outputs\": the daemon's own deletion"),
        "{stderr}"
    );
    assert!(
        stderr.contains("s3[1].queue_url repeats s3[0].queue_url"),
        "{stderr}"
    );
    assert!(stderr.contains("h.toml: 3 problems"), "{stderr}");
}
