//! What arrives in a watched folder, the ways it arrives: 200 files at once by copy,
//! `*.part` + rename, slow writers, `.done` markers, nested unicode folders — each transcribed
//! exactly once — and every kind of bad or odd input ending in `failed/` with its reason or
//! skipped with a logged one, while the good files after them still get done.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::*;
use hotfolderd::journal::State;

/// `asr` adds keys to `[asr]`.
fn config(d: &Path, asr: &str, extra_watch: &str) -> PathBuf {
    let config = d.join("hotfolderd.toml");
    std::fs::write(
        &config,
        format!(
            "[journal]\npath = {:?}\n[asr]\nmodel = {:?}\nthreads = 1\n{asr}\n\
             [[watch]]\npath = {:?}\noutput = {:?}\nstable_for = \"1s\"\nafter = \"move\"\n{extra_watch}",
            d.join("state/journal.sqlite"),
            model("tiny.en"),
            d.join("inbox"),
            d.join("out"),
        ),
    )
    .unwrap();
    config
}

#[test]
fn two_hundred_files_arriving_every_way_are_each_transcribed_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (inbox, marked) = (d.join("inbox"), d.join("marked"));
    // Short clips: the fitted encoder context makes 200 of them affordable on a CI machine.
    let config = config(
        d,
        "audio_ctx = \"fit\"",
        &format!(
            "[[watch]]\npath = {:?}\noutput = {:?}\nstable_for = \"1s\"\nafter = \"keep\"\nmarker = \".done\"\n",
            marked,
            d.join("out-marked")
        ),
    );
    // Distinct speech in every file (different words, so no two share a sha256).
    let src = d.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let made: Vec<PathBuf> = (0..200)
        .map(|i| {
            let p = src.join(format!("{i}.wav"));
            run(std::process::Command::new("espeak-ng")
                .args(["-v", "en-us", "-w"])
                .arg(&p)
                .arg(format!("Recording number {i}.")));
            p
        })
        .collect();
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::create_dir_all(&marked).unwrap();
    let mut daemon = start_daemon(&config);
    std::thread::sleep(Duration::from_millis(500));

    // (path relative to its root, which root)
    let mut expected: Vec<(String, &Path)> = Vec::new();
    let mut slow_writers = Vec::new();
    for (i, from) in made.iter().enumerate() {
        let rel = match i % 10 {
            // A browser-style download: *.part, then a rename.
            0 => {
                let rel = format!("dl {i}.wav");
                std::fs::copy(from, inbox.join(format!("{rel}.part"))).unwrap();
                std::fs::rename(inbox.join(format!("{rel}.part")), inbox.join(&rel)).unwrap();
                rel
            }
            // rsync: a hidden temporary name, then a rename.
            1 => {
                let rel = format!("sync{i}.wav");
                let tmp = inbox.join(format!(".{rel}.Xy12Zq"));
                std::fs::copy(from, &tmp).unwrap();
                std::fs::rename(&tmp, inbox.join(&rel)).unwrap();
                rel
            }
            // Nested folders with unicode and spaces.
            2 => {
                let rel = format!("équipe ☃/réunion {i}/n°{i}.wav");
                std::fs::create_dir_all(inbox.join(&rel).parent().unwrap()).unwrap();
                std::fs::copy(from, inbox.join(&rel)).unwrap();
                rel
            }
            // A slow writer (an upload in pieces, with a stall longer than stable_for
            // while the file is still open).
            3 => {
                let rel = format!("slow{i}.wav");
                let (from, to) = (from.clone(), inbox.join(&rel));
                slow_writers.push(std::thread::spawn(move || {
                    let bytes = std::fs::read(from).unwrap();
                    let mut f = std::fs::File::create(to).unwrap();
                    for (k, piece) in bytes.chunks(bytes.len() / 6 + 1).enumerate() {
                        f.write_all(piece).unwrap();
                        f.flush().unwrap();
                        std::thread::sleep(Duration::from_millis(if k == 2 { 1500 } else { 200 }));
                    }
                }));
                rel
            }
            // The folder with a marker: the file counts only once NAME.done exists.
            4 => {
                let rel = format!("m{i}.wav");
                std::fs::copy(from, marked.join(&rel)).unwrap();
                std::fs::write(marked.join(format!("{rel}.done")), b"").unwrap();
                expected.push((rel, &marked));
                continue;
            }
            _ => {
                let rel = format!("plain{i}.wav");
                std::fs::copy(from, inbox.join(&rel)).unwrap();
                rel
            }
        };
        expected.push((rel, &inbox));
    }
    // Unmarked: never taken.
    std::fs::copy(&made[0], marked.join("waiting.wav")).unwrap();
    for w in slow_writers {
        w.join().unwrap();
    }

    let out_for = |rel: &str, root: &Path, ext: &str| {
        let out = if root == marked {
            d.join("out-marked")
        } else {
            d.join("out")
        };
        out.join(Path::new(rel).with_extension(ext))
    };
    wait_up_to(
        Duration::from_secs(1800),
        "all 200 files to be transcribed",
        || {
            expected
                .iter()
                .all(|(rel, root)| out_for(rel, root, "txt").exists())
        },
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(signal_daemon(&mut daemon, "TERM").success());

    // Each output belongs to its own input: most transcripts name their file's number.
    let mut own_number = 0;
    for (rel, root) in &expected {
        for ext in ["json", "srt", "vtt", "txt"] {
            assert!(out_for(rel, root, ext).is_file(), "{rel}: no {ext}");
        }
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out_for(rel, root, "json")).unwrap()).unwrap();
        assert!(
            json["source"].as_str().unwrap().ends_with(rel.as_str()),
            "{json}"
        );
        let text = std::fs::read_to_string(out_for(rel, root, "txt")).unwrap();
        assert!(!text.trim().is_empty(), "{rel}: no text");
        let number: String = rel.chars().filter(char::is_ascii_digit).collect();
        if text.contains(&number) {
            own_number += 1;
        }
        if *root == inbox {
            assert!(inbox.join("done").join(rel).is_file(), "{rel} not moved");
        }
    }
    assert!(
        own_number >= 150,
        "only {own_number} of 200 transcripts have their number"
    );
    let runs: Vec<(String, usize)> = journal_rows(d)
        .into_iter()
        .filter(|r| r.1 == State::Done)
        .map(|r| (r.0, r.2))
        .collect();
    assert_eq!(runs.len(), 200, "done inputs in the journal");
    let rerun: Vec<_> = runs.iter().filter(|(_, n)| *n != 1).collect();
    assert!(rerun.is_empty(), "run more than once: {rerun:?}");
    assert!(!out_for("waiting.wav", &marked, "txt").exists());
    let temps: Vec<_> = files_under(&d.join("out"))
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(temps.is_empty(), "{temps:?}");
}

#[test]
fn bad_and_odd_inputs_end_with_a_reason_and_good_files_still_get_done() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let inbox = d.join("inbox");
    let config = config(d, "", "");
    let log = d.join("daemon.log");
    let outside = speak(d, "outside", "This file lives outside the folder.", "en-us");
    let good = speak(d, "good", "Good files still get done.", "en-us");
    std::fs::create_dir_all(inbox.join("folder.wav")).unwrap();
    let mut daemon = start_daemon_with(
        &config,
        Start {
            log: Some(&log),
            unprivileged_in: Some(d),
            ..Start::default()
        },
    );
    std::thread::sleep(Duration::from_millis(500));

    std::fs::write(inbox.join("zero.wav"), b"").unwrap();
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(inbox.join("truncated.wav"), &bytes[..bytes.len() / 2]).unwrap();
    let garbage: Vec<u8> = (0..40_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    std::fs::write(inbox.join("garbage.mp3"), garbage).unwrap();
    std::os::unix::fs::symlink(&outside, inbox.join("link.wav")).unwrap();
    std::fs::write(inbox.join("gone.wav"), &bytes).unwrap();
    std::fs::remove_file(inbox.join("gone.wav")).unwrap();
    // A directory named like audio is a folder: what is inside it is an input.
    std::fs::copy(&good, inbox.join("folder.wav/inner.wav")).unwrap();
    let unreadable = inbox.join("unreadable.wav");
    std::fs::write(&unreadable, &bytes).unwrap();
    std::fs::set_permissions(
        &unreadable,
        std::os::unix::fs::PermissionsExt::from_mode(0o000),
    )
    .unwrap();
    // Owned by root while the daemon runs as nobody (or by the test's user, mode 000).
    std::fs::copy(&good, inbox.join("good.wav")).unwrap();

    let failed = |name: &str| inbox.join(format!("failed/{name}.error.json"));
    let cases = [
        ("zero.wav", "empty (0 bytes)"),
        ("truncated.wav", "truncated"),
        ("garbage.mp3", "decode:"),
        ("unreadable.wav", "Permission denied"),
    ];
    wait_until("the good files and every failure report", || {
        d.join("out/good.txt").exists()
            && d.join("out/folder.wav/inner.txt").exists()
            && cases.iter().all(|(n, _)| failed(n).exists())
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(signal_daemon(&mut daemon, "TERM").success());

    for (name, why) in cases {
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(failed(name)).unwrap()).unwrap();
        let reason = format!(
            "{}: {}",
            report["stage"].as_str().unwrap(),
            report["reason"].as_str().unwrap()
        );
        assert!(reason.contains(why), "{name}: {reason}");
        assert!(
            inbox.join("failed").join(name).exists(),
            "{name} not in failed/"
        );
        let stem = Path::new(name)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(
            !d.join(format!("out/{stem}.json")).exists(),
            "{name} has outputs"
        );
    }
    let logs = std::fs::read_to_string(&log).unwrap();
    let link_lines: Vec<&str> = logs.lines().filter(|l| l.contains("link.wav")).collect();
    assert_eq!(link_lines.len(), 1, "{logs}");
    assert!(link_lines[0].contains("symbolic link"), "{logs}");
    assert!(
        !d.join("out/link.json").exists(),
        "followed a symlink out of the folder"
    );
    assert!(
        inbox.join("link.wav").is_symlink(),
        "the symlink itself was touched"
    );
    assert!(!logs.contains("gone.wav"), "{logs}");
    let s = status(&config);
    assert!(
        s.contains("done         2") && s.contains("quarantined  4"),
        "{s}"
    );
    let text = std::fs::read_to_string(d.join("out/good.txt")).unwrap();
    assert!(wer("Good files still get done.", &text) <= 0.4, "{text}");
}
