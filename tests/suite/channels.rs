//! A stereo call recording with one speaker per channel, talking over each other: mixed,
//! whisper hears one garbled voice; with `--channels split` each channel is transcribed on
//! its own and every format merges them in time order with the speaker named.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::*;
use serde_json::Value;

#[test]
fn overlapping_speakers_on_two_channels_are_each_transcribed_whole() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let agent = speak(
        d,
        "agent",
        "Thank you for calling the support line. How can I help you today?",
        "en-us",
    );
    let customer = speak(
        d,
        "customer",
        "My parcel never arrived and nobody answered my emails.",
        "en-gb+f3",
    );
    // The customer starts 1.5 s in, while the agent is still talking.
    let late = d.join("late.wav");
    sox(&[
        customer.to_str().unwrap(),
        late.to_str().unwrap(),
        "pad",
        "1.5",
    ]);
    let call = d.join("call.wav");
    sox(&[
        "-M",
        agent.to_str().unwrap(),
        late.to_str().unwrap(),
        call.to_str().unwrap(),
    ]);
    let out = d.join("out");
    let done = transcribe_cli(
        "tiny.en",
        &[
            "--format",
            "json,srt,vtt,txt",
            "--channels",
            "split",
            "--channel-names",
            "agent,customer",
        ],
        &call,
        &out,
    );
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let json: Value =
        serde_json::from_slice(&std::fs::read(out.join("call.json")).unwrap()).unwrap();
    let segments = json["segments"].as_array().unwrap();
    let said_by = |channel: u64, speaker: &str| -> String {
        segments
            .iter()
            .filter(|s| s["channel"] == channel)
            .inspect(|s| assert_eq!(s["speaker"], speaker, "{s}"))
            .map(|s| s["text"].as_str().unwrap().to_lowercase())
            .collect()
    };
    let (a, c) = (said_by(0, "agent"), said_by(1, "customer"));
    for w in ["calling", "support", "help"] {
        assert!(a.contains(w), "agent: {a}");
    }
    for w in ["parcel", "arrived", "answer"] {
        assert!(c.contains(w), "customer: {c}");
    }
    assert!(!a.contains("parcel") && !c.contains("support"), "{a} | {c}");
    // Time order, overlaps kept.
    let starts: Vec<f64> = segments
        .iter()
        .map(|s| s["start"].as_f64().unwrap())
        .collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "{starts:?}");
    let srt = std::fs::read_to_string(out.join("call.srt")).unwrap();
    assert!(
        srt.contains("[agent] ") && srt.contains("[customer] "),
        "{srt}"
    );
    let vtt = std::fs::read_to_string(out.join("call.vtt")).unwrap();
    assert!(
        vtt.contains("<v agent>") && vtt.contains("<v customer>"),
        "{vtt}"
    );
    let txt = std::fs::read_to_string(out.join("call.txt")).unwrap();
    let first_lines: Vec<&str> = txt.lines().collect();
    assert!(first_lines[0].starts_with("[agent] "), "{txt}");
    assert!(txt.lines().any(|l| l.starts_with("[customer] ")), "{txt}");
    assert_eq!(json["options"]["channels"], "split");
}
