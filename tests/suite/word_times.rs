//! Word timestamps against speech whose word times are known: each word spoken on its own
//! by espeak-ng, trimmed of silence, and joined with pauses of known length. The error of
//! whisper's timestamp estimates and of DTW over the alignment heads (`--dtw`) is printed
//! (README's numbers come from here), and both must place the words.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use crate::common::*;
use serde_json::Value;

const WORDS: &[&str] = &[
    "Morning",
    "coffee",
    "keeps",
    "every",
    "engineer",
    "awake",
    "during",
    "long",
    "meetings",
    "about",
    "budgets",
    "and",
    "deadlines",
];
const PAUSES: &[f64] = &[0.12, 0.35, 0.7];

/// Speech with one word after another; each word's (start, end) in seconds.
fn spoken_word_by_word(d: &Path) -> (std::path::PathBuf, Vec<(f64, f64)>) {
    let mut parts = Vec::new();
    let mut times = Vec::new();
    let mut at = 0.3;
    let lead = d.join("lead.wav");
    silence_wav(&lead, 0.3);
    parts.push(lead);
    for (i, w) in WORDS.iter().enumerate() {
        let raw = speak(d, &format!("w{i}"), w, "en-us");
        let trimmed = d.join(format!("t{i}.wav"));
        sox(&[
            raw.to_str().unwrap(),
            trimmed.to_str().unwrap(),
            "silence",
            "1",
            "0.01",
            "1%",
            "reverse",
            "silence",
            "1",
            "0.01",
            "1%",
            "reverse",
        ]);
        let len = wav_seconds(&trimmed);
        times.push((at, at + len));
        at += len;
        parts.push(trimmed);
        let pause = PAUSES[i % PAUSES.len()];
        let gap = d.join(format!("g{i}.wav"));
        silence_wav(&gap, pause);
        at += pause;
        parts.push(gap);
    }
    let out = d.join("words.wav");
    let mut args: Vec<&str> = parts.iter().map(|p| p.to_str().unwrap()).collect();
    args.push(out.to_str().unwrap());
    sox(&args);
    (out, times)
}

fn wav_seconds(wav: &Path) -> f64 {
    let bytes = std::fs::metadata(wav).unwrap().len();
    (bytes - 44) as f64 / 2.0 / 16_000.0
}

fn norm(w: &str) -> String {
    w.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Mean absolute error of word starts and ends over the words found, and how many.
fn errors(json: &Value, truth: &[(f64, f64)]) -> (f64, f64, usize) {
    let words: Vec<(String, f64, f64)> = json["segments"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["words"].as_array().unwrap().clone())
        .map(|w| {
            (
                norm(w["word"].as_str().unwrap()),
                w["start"].as_f64().unwrap(),
                w["end"].as_f64().unwrap(),
            )
        })
        .collect();
    let (mut start_err, mut end_err, mut found, mut from) = (0.0, 0.0, 0, 0);
    for (w, (start, end)) in WORDS.iter().zip(truth) {
        if let Some(i) = (from..words.len().min(from + 3)).find(|&i| words[i].0 == norm(w)) {
            start_err += (words[i].1 - start).abs();
            end_err += (words[i].2 - end).abs();
            found += 1;
            from = i + 1;
        }
    }
    let n = found.max(1) as f64;
    (start_err / n, end_err / n, found)
}

#[test]
fn dtw_and_estimated_word_times_are_measured_against_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (wav, truth) = spoken_word_by_word(d);
    let run = |extra: &[&str], out: &str| transcribe_json("tiny.en", extra, &wav, &d.join(out));
    let legacy = run(&[], "legacy");
    let dtw = run(&["--dtw"], "dtw");
    assert_eq!(dtw["options"]["dtw"], true);
    let (ls, le, ln) = errors(&legacy, &truth);
    let (ds, de, dn) = errors(&dtw, &truth);
    eprintln!(
        "word times on {} words (tiny.en): estimated: start error {:.3} s, end error {:.3} s ({ln} found); DTW: start error {:.3} s, end error {:.3} s ({dn} found)",
        WORDS.len(), ls, le, ds, de
    );
    for (what, n, s) in [("estimated", ln, ls), ("dtw", dn, ds)] {
        assert!(
            n * 10 >= WORDS.len() * 7,
            "{what}: only {n} of {} words found",
            WORDS.len()
        );
        assert!(s < 0.5, "{what}: words start {s:.3} s off on average");
    }
    assert_ne!(
        legacy["segments"][0]["words"], dtw["segments"][0]["words"],
        "DTW changed nothing"
    );
}
