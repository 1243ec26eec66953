//! A recording that goes from English to German: detected once (whisper.cpp's way) the
//! German half is decoded as English; with `--language-per-segment` each stretch of speech
//! is detected and decoded in its own language, and the json says which and how sure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::*;

#[test]
fn a_recording_that_switches_language_yields_segments_in_each() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let en = speak(
        d,
        "en",
        "Good morning everyone. Today we talk about the weather in London.",
        "en-us",
    );
    let de = speak(
        d,
        "de",
        "Ich wohne seit zehn Jahren in einer kleinen Stadt in der Nähe von München.",
        "de",
    );
    let pause = d.join("pause.wav");
    silence_wav(&pause, 1.5);
    let both = d.join("both.wav");
    sox(&[
        en.to_str().unwrap(),
        pause.to_str().unwrap(),
        de.to_str().unwrap(),
        both.to_str().unwrap(),
    ]);
    let run = |extra: &[&str], out: &str| {
        let args = [&["--language", "auto"], extra].concat();
        transcribe_json("base", &args, &both, &d.join(out))
    };

    let per_segment = run(&["--language-per-segment"], "per-segment");
    let segments = per_segment["segments"].as_array().unwrap();
    let text_in = |lang: &str| -> String {
        segments
            .iter()
            .filter(|s| s["language"] == lang)
            .map(|s| s["text"].as_str().unwrap().to_lowercase())
            .collect()
    };
    let (english, german) = (text_in("en"), text_in("de"));
    assert!(
        english.contains("morning") && english.contains("weather"),
        "{per_segment}"
    );
    assert!(german.contains("kleinen stadt"), "{per_segment}");
    assert!(
        !english.contains("stadt") && !german.contains("weather"),
        "{per_segment}"
    );
    // English first, German after it.
    let first_de = segments.iter().position(|s| s["language"] == "de").unwrap();
    assert!(
        segments[..first_de].iter().all(|s| s["language"] == "en"),
        "{per_segment}"
    );
    let languages: Vec<&str> = per_segment["languages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["language"].as_str().unwrap())
        .collect();
    assert_eq!(languages.len(), 2, "{per_segment}");
    assert!(
        languages.contains(&"en") && languages.contains(&"de"),
        "{per_segment}"
    );
    for l in per_segment["languages"].as_array().unwrap() {
        let p = l["probability"].as_f64().unwrap();
        assert!(p > 0.0 && p <= 1.0, "{l}");
        assert!(l["seconds"].as_f64().unwrap() > 1.0, "{l}");
    }

    // Detected once, as before: one language for the whole file.
    let once = run(&[], "once");
    let langs: std::collections::BTreeSet<&str> = once["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["language"].as_str().unwrap())
        .collect();
    assert_eq!(langs.len(), 1, "{once}");
}
