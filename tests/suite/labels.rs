//! Who labels a dataset (issue 19), with the real daemon. Human corrections: a person's
//! transcript of an input, dropped into the dataset's `corrections/` folder or handed over
//! by `hotfolderd dataset correct`, replaces the machine labels of that input's pieces
//! (`"label": "human"`), is journaled and shown by `hotfolderd history`; one naming an
//! input not yet in the dataset waits for it; a broken one is set aside with its reason
//! while the daemon goes on. A teacher model: base labels the dataset of a tiny.en daemon,
//! whose own outputs stay tiny.en's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;
use hotfolderd::dataset::manifest::{self, Label, Line};

fn config(d: &Path, dataset_extra: &str) -> PathBuf {
    let config = d.join("hotfolderd.toml");
    let inbox = d.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::write(
        &config,
        format!(
            "[journal]\npath = {:?}\n[asr]\nmodel = {:?}\nthreads = 1\n\
             [[watch]]\npath = {inbox:?}\noutput = {:?}\nstable_for = \"500ms\"\n\
             formats = [\"json\", \"srt\"]\n\
             [[dataset]]\nname = \"calls\"\nsources = [{inbox:?}]\npath = {:?}\n\
             train_after_hours = 100.0\nmin_segment_seconds = 0.5\n{dataset_extra}\n\
             [dataset.trainer]\ncommand = [\"true\"]\n",
            d.join("state/journal.sqlite"),
            model("tiny.en"),
            d.join("out"),
            d.join("datasets/calls"),
        ),
    )
    .unwrap();
    config
}

fn lines_of(d: &Path, sha: &str) -> Vec<Line> {
    manifest::read(&d.join("datasets/calls/manifest.jsonl"))
        .unwrap()
        .lines
        .into_iter()
        .filter(|l| l.sha256 == sha)
        .collect()
}

/// Speaks `text` as `name.wav` in the test folder: (path, sha256).
fn speech(d: &Path, name: &str, text: &str) -> (PathBuf, String) {
    let wav = speak(d, name, text, "en-us");
    let sha = hotfolderd::hash::sha256_file(&wav).unwrap();
    (wav, sha)
}

#[test]
fn a_persons_transcript_replaces_the_machine_labels_and_is_journaled() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = config(d, "");
    let corrections = d.join("datasets/calls/corrections");
    let log = d.join("daemon.log");
    let daemon = start_daemon_with(
        &config,
        Start {
            log: Some(&log),
            ..Start::default()
        },
    );
    let (alpha, alpha_sha) = speech(d, "alpha", "The first recording is about the weather.");
    let (bravo, bravo_sha) = speech(d, "bravo", "The second recording is about the river.");
    std::fs::copy(&alpha, d.join("inbox/alpha.wav")).unwrap();
    std::fs::copy(&bravo, d.join("inbox/bravo.wav")).unwrap();
    wait_until("both inputs in the dataset", || {
        !lines_of(d, &alpha_sha).is_empty() && !lines_of(d, &bravo_sha).is_empty()
    });
    let machine_alpha = lines_of(d, &alpha_sha);
    let machine_bravo = lines_of(d, &bravo_sha);
    for l in machine_alpha.iter().chain(&machine_bravo) {
        assert_eq!(l.label, Some(Label::Machine));
        assert!(
            l.source_start.is_some() && l.source_end > l.source_start,
            "{l:?}"
        );
    }

    // 1. The daemon's own subtitles, words fixed by a person, dropped in by the input's name
    // (written in place, as an editor saves).
    let srt = std::fs::read_to_string(d.join("out/alpha.srt")).unwrap();
    let timing = srt.lines().find(|l| l.contains("-->")).unwrap();
    let fixed = "The first recording is about the WEATHER, corrected.";
    let end = srt.lines().rfind(|l| l.contains("-->")).unwrap();
    let end = end.split("--> ").nth(1).unwrap();
    let start = timing.split(" -->").next().unwrap();
    std::fs::write(
        corrections.join("alpha.srt"),
        format!("1\n{start} --> {end}\n{fixed}\n"),
    )
    .unwrap();
    wait_until("the srt correction applied", || {
        corrections.join("done/alpha.srt").is_file()
    });
    let human = lines_of(d, &alpha_sha);
    assert_eq!(human.len(), machine_alpha.len());
    assert_eq!(
        human
            .iter()
            .map(|l| l.text.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        fixed
    );
    for (h, m) in human.iter().zip(&machine_alpha) {
        assert_eq!(h.label, Some(Label::Human));
        assert_eq!((h.model_sha256.as_ref(), h.avg_logprob), (None, None));
        assert_eq!(
            (&h.audio_filepath, h.duration),
            (&m.audio_filepath, m.duration)
        );
    }
    // The other input's lines are untouched.
    assert_eq!(lines_of(d, &bravo_sha), machine_bravo);

    // 2. Plain text through the command, naming the input by the path it was dropped at.
    let txt = d.join("bravo-fixed.txt");
    std::fs::write(&txt, "The second recording is about the RIVER.\n").unwrap();
    let said = hotfolderd(
        &[
            "dataset",
            "correct",
            d.join("inbox/bravo.wav").to_str().unwrap(),
            txt.to_str().unwrap(),
        ],
        &config,
    );
    assert!(said.contains(&bravo_sha), "{said}");
    let placed = corrections.join(format!("{bravo_sha}.txt"));
    wait_until("the command's correction applied", || {
        corrections.join(format!("done/{bravo_sha}.txt")).is_file()
    });
    assert!(!placed.exists());
    let human = lines_of(d, &bravo_sha);
    assert_eq!(human.len(), 1, "{human:?}");
    assert_eq!(human[0].text, "The second recording is about the RIVER.");
    assert_eq!(human[0].label, Some(Label::Human));

    // 3. The command refuses what cannot be used, and writes nothing.
    let docx = d.join("notes.docx");
    std::fs::write(&docx, "x").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hotfolderd"))
        .args(["dataset", "correct", &alpha_sha])
        .arg(&docx)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains(".srt, .vtt, .json or .txt"));
    let left: Vec<_> = std::fs::read_dir(&corrections)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "done" && n != "failed")
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // 4. A broken file dropped in is set aside with its reason; the daemon goes on.
    std::fs::write(
        corrections.join("bravo.vtt"),
        "this is not a subtitle file\n",
    )
    .unwrap();
    let report = corrections.join("failed/bravo.vtt.error.json");
    wait_until("the broken correction set aside", || report.is_file());
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert!(
        report["reason"].as_str().unwrap().contains("WebVTT"),
        "{report}"
    );
    assert!(corrections.join("failed/bravo.vtt").is_file());

    // 5. Corrections naming an input not in the dataset yet, by content or by file name,
    // wait for it, and are applied when it arrives.
    let (charlie, charlie_sha) = speech(d, "charlie", "The third recording is about the mountain.");
    let (echo, echo_sha) = speech(d, "echo", "The fifth recording is about the valley.");
    std::fs::write(
        corrections.join(format!("{charlie_sha}.txt")),
        "The third recording is about the MOUNTAIN.",
    )
    .unwrap();
    std::fs::write(
        corrections.join("echo.txt"),
        "The fifth recording is about the VALLEY.",
    )
    .unwrap();
    let waits = |name: &str| {
        wait_until("the daemon has seen the correction", || {
            std::fs::read_to_string(&log)
                .unwrap()
                .contains(&format!("corrections/{name}"))
        })
    };
    waits(&format!("{charlie_sha}.txt"));
    waits("echo.txt");
    for name in [format!("{charlie_sha}.txt"), "echo.txt".to_string()] {
        assert!(corrections.join(&name).is_file(), "{name} should wait");
        assert!(!corrections.join("failed").join(&name).exists(), "{name}");
    }
    std::fs::copy(&charlie, d.join("inbox/charlie.wav")).unwrap();
    std::fs::copy(&echo, d.join("inbox/echo.wav")).unwrap();
    wait_until("the waiting corrections applied", || {
        corrections
            .join(format!("done/{charlie_sha}.txt"))
            .is_file()
            && corrections.join("done/echo.txt").is_file()
    });
    assert_eq!(
        lines_of(d, &echo_sha)
            .iter()
            .map(|l| (l.text.as_str(), l.label))
            .collect::<Vec<_>>(),
        vec![(
            "The fifth recording is about the VALLEY.",
            Some(Label::Human)
        )]
    );
    let human = lines_of(d, &charlie_sha);
    assert_eq!(human.len(), 1, "{human:?}");
    assert_eq!(
        (human[0].text.as_str(), human[0].label),
        (
            "The third recording is about the MOUNTAIN.",
            Some(Label::Human)
        )
    );

    // The journal keeps each correction; history shows it with the input.
    let story = hotfolderd(
        &["history", d.join("inbox/alpha.wav").to_str().unwrap()],
        &config,
    );
    assert!(
        story.contains("corrected in dataset calls by alpha.srt"),
        "{story}"
    );
    stop(daemon);
}

#[test]
fn a_teacher_model_labels_the_dataset_while_the_serving_model_writes_the_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let base = model("base");
    let config = config(d, &format!("teacher_model = {base:?}"));
    let log = d.join("daemon.log");
    let daemon = start_daemon_with(
        &config,
        Start {
            log: Some(&log),
            ..Start::default()
        },
    );
    let (wav, sha) = speech(
        d,
        "delta",
        "The fourth recording is about the harbour lights.",
    );
    std::fs::copy(&wav, d.join("inbox/delta.wav")).unwrap();
    wait_until("the input in the dataset", || !lines_of(d, &sha).is_empty());
    let base_sha = hotfolderd::hash::sha256_file(&base).unwrap();
    let tiny_sha = hotfolderd::hash::sha256_file(&model("tiny.en")).unwrap();
    for l in lines_of(d, &sha) {
        assert_eq!(l.label, Some(Label::Machine));
        assert_eq!(l.model_sha256.as_deref(), Some(base_sha.as_str()), "{l:?}");
        assert!(l.text.to_lowercase().contains("harbo"), "{l:?}");
        assert!(l.avg_logprob.is_some());
    }
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("out/delta.json")).unwrap()).unwrap();
    assert_eq!(json["model_sha256"], tiny_sha.as_str());
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("labelled by the teacher model")
            && logged.contains(&format!("{}", base.display())),
        "{logged}"
    );
    stop(daemon);
}
