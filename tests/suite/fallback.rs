//! Temperature fallback done call by call: each segment says the temperature that produced
//! it, and a stretch whose first decode was refused says why and how many decodes it took.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::*;
use serde_json::Value;

#[test]
fn segments_carry_their_temperature_and_refused_decodes_are_noted() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let wav = speak(d, "hello", "Hello from the hot folder.", "en-us");
    let run = |args: &[&str], out: &str| -> Vec<Value> {
        let json = transcribe_json("tiny.en", args, &wav, &d.join(out));
        json["segments"].as_array().unwrap().clone()
    };
    // Clear speech passes at once, at temperature 0, with no note.
    let plain = run(&[], "plain");
    assert!(!plain.is_empty());
    for s in &plain {
        assert_eq!(s["temperature"], 0.0, "{s}");
        assert!(s.get("fallback").is_none(), "{s}");
    }
    // No decode can pass a log-probability threshold of 0: every temperature of the
    // schedule (0, 0.2, … 1.0) is tried, sampling best_of candidates above 0, and the most
    // confident decode is kept with the note that none passed.
    let strict = run(&["--logprob-thold", "0", "--best-of", "2"], "strict");
    assert!(!strict.is_empty());
    for s in &strict {
        let note = &s["fallback"];
        assert_eq!(note["first"]["reason"], "low_logprob", "{s}");
        assert!(note["first"]["avg_logprob"].as_f64().unwrap() < 0.0, "{s}");
        assert_eq!(note["attempts"], 6, "{s}");
        assert_eq!(note["passed"], false, "{s}");
        let t = s["temperature"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&t), "{s}");
    }
    // Without a schedule (`--no-fallback`) the refusal is still noted, after one decode.
    let once = run(&["--logprob-thold", "0", "--no-fallback"], "once");
    for s in &once {
        assert_eq!(s["fallback"]["attempts"], 1, "{s}");
        assert_eq!(s["temperature"], 0.0, "{s}");
    }
}
