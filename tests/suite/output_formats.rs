//! whisper-cli's lrc, csv and json-full next to the daemon's own json, from one real
//! transcription: the same segments, at the same millisecond times, in every format.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::*;
use serde_json::Value;

#[test]
fn whisper_cli_formats_carry_the_same_segments_at_millisecond_times() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let wav = speak(
        d,
        "talk",
        "The weather is mild today. Trains leave every hour from the central station.",
        "en-us",
    );
    let out = transcribe_cli(
        "tiny.en",
        &["--format", "json,lrc,csv,json-full"],
        &wav,
        &d.join("out"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = |ext: &str| std::fs::read_to_string(d.join(format!("out/talk.{ext}"))).unwrap();
    let json: Value = serde_json::from_str(&read("json")).unwrap();
    let segments = json["segments"].as_array().unwrap();
    assert!(!segments.is_empty());
    let ms = |v: &Value| (v.as_f64().unwrap() * 1000.0).round() as u64;
    // Times are whole milliseconds in the json too.
    for s in segments {
        for t in std::iter::once(s).chain(s["words"].as_array().unwrap()) {
            for key in ["start", "end"] {
                let x = t[key].as_f64().unwrap();
                assert_eq!(x, (x * 1000.0).round() / 1000.0, "{key} {x} in {t}");
            }
        }
    }

    let csv = read("csv");
    let mut rows = csv.lines();
    assert_eq!(rows.next(), Some("start,end,text"));
    let rows: Vec<&str> = rows.collect();
    assert_eq!(rows.len(), segments.len(), "{csv}");
    for (row, s) in rows.iter().zip(segments) {
        let text = s["text"].as_str().unwrap().trim().replace('"', "\"\"");
        assert_eq!(
            *row,
            format!("{},{},\"{text}\"", ms(&s["start"]), ms(&s["end"]))
        );
    }

    let lrc = read("lrc");
    let lines: Vec<&str> = lrc.lines().collect();
    assert_eq!(lines[0], "[by:hotfolderd]");
    assert_eq!(lines.len(), segments.len() + 1, "{lrc}");
    for (line, s) in lines[1..].iter().zip(segments) {
        let t = ms(&s["start"]);
        let stamp = format!(
            "[{:02}:{:02}.{:02}]",
            t / 60_000,
            t / 1000 % 60,
            t % 1000 / 10
        );
        assert!(line.starts_with(&stamp), "{line} vs {stamp}");
        assert!(line.ends_with(s["text"].as_str().unwrap().trim()), "{line}");
    }

    let full: Value = serde_json::from_str(&read("full.json")).unwrap();
    assert_eq!(full["result"]["language"], "en");
    let transcription = full["transcription"].as_array().unwrap();
    assert_eq!(transcription.len(), segments.len());
    for (t, s) in transcription.iter().zip(segments) {
        assert_eq!(t["offsets"]["from"].as_u64().unwrap(), ms(&s["start"]));
        assert_eq!(t["offsets"]["to"].as_u64().unwrap(), ms(&s["end"]));
        assert_eq!(t["text"], s["text"]);
        let tokens = t["tokens"].as_array().unwrap();
        assert_eq!(tokens.len(), s["tokens"].as_array().unwrap().len());
        let joined: String = tokens.iter().map(|k| k["text"].as_str().unwrap()).collect();
        assert_eq!(joined.trim(), s["text"].as_str().unwrap().trim());
        for k in tokens {
            assert!(k["id"].as_i64().unwrap() >= 0, "{k}");
            assert!(
                k["offsets"]["from"].as_u64() <= k["offsets"]["to"].as_u64(),
                "{k}"
            );
        }
    }
    let words = words(&json["text"].as_str().unwrap().to_lowercase());
    assert!(words.contains(&"station".to_string()), "{words:?}");
}

/// One subtitle cue as written: (start, end, lines).
fn srt_cues(srt: &str) -> Vec<(f64, f64, Vec<String>)> {
    let secs = |t: &str| {
        let (hms, ms) = t.trim().split_once(',').unwrap();
        let p: Vec<f64> = hms.split(':').map(|x| x.parse().unwrap()).collect();
        p[0] * 3600.0 + p[1] * 60.0 + p[2] + ms.parse::<f64>().unwrap() / 1000.0
    };
    srt.split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .map(|b| {
            let mut lines = b.lines().skip(1);
            let (a, z) = lines.next().unwrap().split_once(" --> ").unwrap();
            (secs(a), secs(z), lines.map(str::to_string).collect())
        })
        .collect()
}

#[test]
fn subtitles_keep_their_limits_on_every_cue_and_never_cut_a_word() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let wav = speak(
        d,
        "story",
        "Our quarterly review starts with the northern region, where sales rose by twelve \
         percent although the winter was long and cold. The southern region kept its costs \
         flat. Next year we will open two new offices and hire forty engineers, most of them \
         in the capital. Thank you.",
        "en-us",
    );
    let run = |extra: &[&str], out: &str| {
        let args = [&["--format", "json,srt,vtt"], extra].concat();
        let status = transcribe_cli("tiny.en", &args, &wav, &d.join(out));
        assert!(
            status.status.success(),
            "{}",
            String::from_utf8_lossy(&status.stderr)
        );
        let read =
            |ext: &str| std::fs::read_to_string(d.join(format!("{out}/story.{ext}"))).unwrap();
        (read("json"), read("srt"), read("vtt"))
    };
    let (json, srt, _) = run(
        &["--max-line-width", "32", "--max-cue-duration", "4"],
        "narrow",
    );
    let json: Value = serde_json::from_str(&json).unwrap();
    let cues = srt_cues(&srt);
    let spoken: Vec<String> = json["segments"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| {
            s["text"]
                .as_str()
                .unwrap()
                .split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        cues.len() > json["segments"].as_array().unwrap().len(),
        "{srt}"
    );
    for (i, (start, end, lines)) in cues.iter().enumerate() {
        assert!(end > start, "empty cue {i}: {srt}");
        assert!(lines.len() <= 2, "cue {i}: {lines:?}");
        for l in lines {
            assert!(l.chars().count() <= 32, "cue {i}: {l:?}");
        }
        let words = lines
            .iter()
            .map(|l| l.split_whitespace().count())
            .sum::<usize>();
        if words > 1 {
            assert!(
                end - start <= 4.0 + 1e-6,
                "cue {i} lasts {}: {lines:?}",
                end - start
            );
        }
        if let Some(next) = cues.get(i + 1) {
            assert!(*end <= next.0, "cue {i} overlaps the next: {srt}");
        }
    }
    // Every word, whole and in order.
    let written: Vec<String> = cues
        .iter()
        .flat_map(|c| {
            c.2.iter()
                .flat_map(|l| l.split_whitespace().map(str::to_string))
        })
        .collect();
    assert_eq!(written, spoken);

    // Karaoke: each word of each cue underlined once, in turn, in both formats.
    let (_, srt, vtt) = run(&["--karaoke"], "karaoke");
    let cues = srt_cues(&srt);
    // One cue per word (a word whisper gives no time of its own has none), in order.
    assert!(
        cues.len() + 2 >= spoken.len() && cues.len() <= spoken.len(),
        "{srt}"
    );
    let mut rest = spoken.iter();
    for (_, _, lines) in &cues {
        let text = lines.join(" ");
        assert_eq!(text.matches("<u>").count(), 1, "{text}");
        let underlined = text
            .split("<u>")
            .nth(1)
            .unwrap()
            .split("</u>")
            .next()
            .unwrap();
        assert!(
            rest.any(|w| w == underlined),
            "{underlined} out of order: {srt}"
        );
    }
    assert_eq!(vtt.matches("<u>").count(), cues.len());
}
