//! Bad input gets one clear line naming the file and the problem, a non-zero exit, and never
//! stops the other files on the same command line.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use crate::common::*;

/// A WAV header that claims three hours of 16 kHz mono audio, followed by no data.
fn wav_header_claiming_hours(path: &Path) {
    let data_len: u32 = 3 * 3600 * 16_000 * 2;
    let mut h = Vec::new();
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&(36 + data_len).to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes()); // PCM
    h.extend_from_slice(&1u16.to_le_bytes()); // mono
    h.extend_from_slice(&16_000u32.to_le_bytes());
    h.extend_from_slice(&32_000u32.to_le_bytes());
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&16u16.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&data_len.to_le_bytes());
    std::fs::write(path, h).unwrap();
}

fn truncate_half(src: &Path, dst: &Path) {
    let bytes = std::fs::read(src).unwrap();
    std::fs::write(dst, &bytes[..bytes.len() / 2]).unwrap();
}

#[test]
fn each_bad_input_gets_its_own_error_and_good_files_still_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = speak(d, "good", "Hello from the good file.", "en-us");
    let long = speak(
        d,
        "long",
        "This recording will be cut in half by a failed upload, so it is incomplete.",
        "en-us",
    );
    std::fs::write(d.join("empty.wav"), b"").unwrap();
    truncate_half(&long, &d.join("truncated.wav"));
    let flac = d.join("long.flac");
    ffmpeg(&long, &flac, &[]);
    truncate_half(&flac, &d.join("cut-short.flac"));
    let noise: Vec<u8> = (0..65_536u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(d.join("random.wav"), noise).unwrap();
    std::fs::write(
        d.join("notes.wav"),
        "Meeting notes\nThese are not audio.\n".repeat(20),
    )
    .unwrap();
    ffmpeg(&long, &d.join("ac3.mkv"), &["-c:a", "ac3"]);
    wav_header_claiming_hours(&d.join("hours.wav"));
    std::fs::create_dir(d.join("folder.wav")).unwrap();

    // (input, words its error line must contain)
    let cases: &[(&str, &str)] = &[
        ("empty.wav", "empty (0 bytes)"),
        ("truncated.wav", "truncated"),
        ("cut-short.flac", "truncated"),
        ("random.wav", "not a recognised audio file"),
        ("notes.wav", "text file"),
        (
            "ac3.mkv",
            "AC-3 (Dolby Digital) in matroska is not supported",
        ),
        (
            "hours.wav",
            "no audio samples (the header claims 10800.0 s)",
        ),
        ("folder.wav", "is a directory"),
        ("missing.wav", "no such file"),
    ];
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hotfolderd"));
    cmd.arg("transcribe")
        .arg("--model")
        .arg(model("tiny.en"))
        .args(["--threads", "1", "--out"])
        .arg(d.join("out"))
        .arg(&good);
    for (name, _) in cases {
        cmd.arg(d.join(name));
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
    assert_eq!(
        out.status.code(),
        Some(1),
        "exit code with bad files present"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    for (name, expected) in cases {
        let path = d.join(name).display().to_string();
        let prefix = format!("hotfolderd: {path}: ");
        let lines: Vec<&str> = stderr
            .lines()
            .filter_map(|l| l.strip_prefix(&prefix))
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "{name}: expected one error line, got {lines:?}"
        );
        assert!(
            lines[0].contains(expected),
            "{name}: {:?} lacks {expected:?}",
            lines[0]
        );
        // No outputs for a failed input.
        let stem = Path::new(name)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(
            !d.join("out").join(format!("{stem}.json")).exists(),
            "{name} produced output"
        );
    }
    assert!(stderr.contains(&format!(
        "{} of {} files failed",
        cases.len(),
        cases.len() + 1
    )));
    let txt = std::fs::read_to_string(d.join("out/good.txt")).unwrap();
    assert!(wer("Hello from the good file.", &txt) <= 0.25, "{txt}");
}

#[test]
fn a_missing_model_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hotfolderd"))
        .args(["transcribe", "--model"])
        .arg(dir.path().join("nope.bin"))
        .arg(dir.path().join("x.wav"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("nope.bin") && stderr.contains("scripts/setup.sh"),
        "{stderr}"
    );
}
