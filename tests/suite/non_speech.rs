//! Silence and noise produce no invented text; speech separated by long pauses keeps its
//! true timestamps, including across the windows the transcriber works in. (Without
//! VAD, whisper starts a segment that follows a long silence at the 30 s chunk boundary
//! before it, a well-known Whisper limitation; with VAD, the default, times are true.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::*;
use hotfolderd::pipeline::decode::AudioDecoder16k;
use hotfolderd::pipeline::transcribe::{DecodeOptions, WINDOW_SECONDS};

#[test]
fn silence_and_noise_yield_no_text() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let silence = d.join("silence.wav");
    let pink = d.join("pink.wav");
    let white = d.join("white.wav");
    silence_wav(&silence, 10.0);
    // -R: the same noise every run (sox seeds its generator from the clock otherwise; one
    // white noise in a few hundred made tiny.en invent a sentence, failing at random).
    sox(&[
        "-R",
        "-n",
        "-r",
        "16000",
        "-c",
        "1",
        pink.to_str().unwrap(),
        "synth",
        "10",
        "pinknoise",
        "vol",
        "0.5",
    ]);
    sox(&[
        "-R",
        "-n",
        "-r",
        "44100",
        "-c",
        "2",
        white.to_str().unwrap(),
        "synth",
        "10",
        "whitenoise",
        "vol",
        "0.3",
    ]);
    for path in [&silence, &pink, &white] {
        let vad = transcribe_file(tiny(), path, &options_vad());
        assert!(
            vad.segments.is_empty(),
            "{} with VAD: invented {:?}",
            path.display(),
            vad.text()
        );
        let t = transcribe_file(tiny(), path, &options());
        assert!(
            t.segments.is_empty(),
            "{}: invented {:?}",
            path.display(),
            t.text()
        );
        assert!((t.duration - 10.0).abs() < 0.01);
        // What whisper produced, if anything, was only annotations like [BLANK_AUDIO].
        let raw = transcribe_file(
            tiny(),
            path,
            &DecodeOptions {
                keep_annotations: true,
                ..options()
            },
        );
        assert_eq!(
            raw.segments.len(),
            t.dropped_non_speech,
            "{}",
            path.display()
        );
        for s in &raw.segments {
            assert!(
                s.text.trim().starts_with('[') || s.text.trim().starts_with('('),
                "{}: {:?}",
                path.display(),
                s.text
            );
        }
    }
}

#[test]
fn long_pauses_keep_true_timestamps_across_windows() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let phrases = [
        ("a", "Good morning, this is the first announcement."),
        ("b", "The second announcement comes after a long pause."),
        ("c", "Finally the third announcement ends the recording."),
    ];
    let gaps = [70.0, 45.0];
    let mut parts = Vec::new();
    let mut starts = Vec::new();
    let mut at = 0.0;
    for (i, (name, text)) in phrases.iter().enumerate() {
        let p = speak(d, name, text, "en-us");
        let len = AudioDecoder16k::open_path(&p)
            .unwrap()
            .info()
            .declared_seconds
            .unwrap();
        starts.push(at);
        at += len;
        parts.push(p.to_str().unwrap().to_string());
        if let Some(gap) = gaps.get(i) {
            let s = d.join(format!("gap{i}.wav"));
            sox(&[
                "-n",
                "-r",
                "16000",
                "-c",
                "1",
                s.to_str().unwrap(),
                "trim",
                "0",
                &gap.to_string(),
            ]);
            parts.push(s.to_str().unwrap().to_string());
            at += gap;
        }
    }
    let joined = d.join("joined.wav");
    let mut args: Vec<&str> = parts.iter().map(String::as_str).collect();
    args.push(joined.to_str().unwrap());
    sox(&args);
    assert!(
        at > WINDOW_SECONDS as f64,
        "the test must cross a window boundary"
    );

    let t = transcribe_file(tiny(), &joined, &options_vad());
    assert_sane_timestamps(&t);
    assert!((t.duration - at).abs() < 0.01, "{} vs {at}", t.duration);
    for ((_, text), start) in phrases.iter().zip(&starts) {
        // The segment that holds this phrase starts where the phrase does.
        let seg = t
            .segments
            .iter()
            .find(|s| wer(text, &s.text) <= 0.5)
            .unwrap_or_else(|| panic!("{text:?} not found in {:#?}", t.segments));
        assert!(
            (seg.start - start).abs() <= 1.0,
            "{text:?} at {} s, spoken at {start} s: {seg:#?}",
            seg.start
        );
    }
    // Nothing is invented in the pauses.
    assert_eq!(t.segments.len(), phrases.len(), "{:#?}", t.segments);
}
