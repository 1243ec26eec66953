//! The formats of whisper.cpp's `whisper-cli` that tools are written against: `lrc` (`-olrc`),
//! `csv` (`-ocsv`) and `json-full` (`-ojf`), laid out as whisper-cli lays them out.

use serde_json::{json, Value};

use super::render::Document;
use super::transcript::Segment;

fn ms(seconds: f64) -> u64 {
    (seconds.max(0.0) * 1000.0).round() as u64
}

/// `[by:hotfolderd]`, then one `[mm:ss.xx]text` line per segment (minutes past 59 go on
/// counting, as in whisper-cli).
pub fn lrc(segments: &[Segment]) -> String {
    let mut out = String::from("[by:hotfolderd]\n");
    for s in segments {
        let t = ms(s.start);
        let (min, sec, centis) = (t / 60_000, t / 1000 % 60, t % 1000 / 10);
        out.push_str(&format!(
            "[{min:02}:{sec:02}.{centis:02}]{}\n",
            super::render::prefixed(s.speaker.as_deref(), s.text.trim())
        ));
    }
    out
}

/// `start,end,text` with times in milliseconds and the text quoted (RFC 4180: a quote in it
/// doubled); with speakers (diarization, split channels) a quoted `speaker` column after.
pub fn csv(segments: &[Segment]) -> String {
    let quoted = |t: &str| format!("\"{}\"", t.replace('"', "\"\""));
    let speakers = segments.iter().any(|s| s.speaker.is_some());
    let mut out = String::from(if speakers {
        "start,end,text,speaker\n"
    } else {
        "start,end,text\n"
    });
    for s in segments {
        out.push_str(&format!(
            "{},{},{}",
            ms(s.start),
            ms(s.end),
            quoted(s.text.trim())
        ));
        if speakers {
            out.push(',');
            out.push_str(&quoted(s.speaker.as_deref().unwrap_or_default()));
        }
        out.push('\n');
    }
    out
}

/// whisper-cli's `HH:MM:SS,mmm`.
fn stamp(seconds: f64) -> String {
    let t = ms(seconds);
    format!(
        "{:02}:{:02}:{:02},{:03}",
        t / 3_600_000,
        t / 60_000 % 60,
        t / 1000 % 60,
        t % 1000
    )
}

fn times(start: f64, end: f64) -> (Value, Value) {
    (
        json!({"from": stamp(start), "to": stamp(end)}),
        json!({"from": ms(start), "to": ms(end)}),
    )
}

/// whisper-cli's full json: `systeminfo`, `params`, `result` and `transcription` with every
/// token (text, times, id, probability; `t_dtw` is -1, as whisper-cli writes it without
/// DTW). whisper-cli's `model` block (the network's dimensions) is not repeated here.
pub fn json_full(doc: &Document) -> Result<Vec<u8>, serde_json::Error> {
    let transcription: Vec<Value> = doc
        .segments
        .iter()
        .map(|s| {
            let (timestamps, offsets) = times(s.start, s.end);
            let tokens: Vec<Value> = s
                .tokens
                .iter()
                .map(|t| {
                    let (timestamps, offsets) = times(t.start, t.end);
                    json!({
                        "text": t.text,
                        "timestamps": timestamps,
                        "offsets": offsets,
                        "id": t.id,
                        "p": t.p,
                        "t_dtw": -1,
                    })
                })
                .collect();
            let mut item = json!({
                "timestamps": timestamps,
                "offsets": offsets,
                "text": s.text,
                "tokens": tokens,
            });
            if let Some(who) = &s.speaker {
                item["speaker"] = json!(who);
            }
            item
        })
        .collect();
    let full = json!({
        "systeminfo": whisper_rs::print_system_info(),
        "params": {
            "model": doc.model,
            "language": doc.options.language,
            "translate": doc.options.translate,
        },
        "result": {"language": doc.language},
        "transcription": transcription,
    });
    let mut out = serde_json::to_vec_pretty(&full)?;
    out.push(b'\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::pipeline::transcript::segment as seg;

    #[test]
    fn lrc_and_csv_are_laid_out_as_whisper_cli_lays_them_out() {
        let s = [
            seg(0.0, 1.5, " Hello there."),
            seg(3723.456, 3725.0, " She said \"go\"."),
        ];
        assert_eq!(
            lrc(&s),
            "[by:hotfolderd]\n[00:00.00]Hello there.\n[62:03.45]She said \"go\".\n"
        );
        assert_eq!(
            csv(&s),
            "start,end,text\n0,1500,\"Hello there.\"\n3723456,3725000,\"She said \"\"go\"\".\"\n"
        );
        assert_eq!(stamp(3723.456), "01:02:03,456");
    }

    #[test]
    fn speakers_are_named_in_lrc_and_csv() {
        let mut a = seg(0.0, 1.5, " Hello there.");
        a.speaker = Some("Ada".into());
        let b = seg(2.0, 3.0, " Hi.");
        assert_eq!(
            lrc(&[a.clone(), b.clone()]),
            "[by:hotfolderd]\n[00:00.00][Ada] Hello there.\n[00:02.00]Hi.\n"
        );
        assert_eq!(
            csv(&[a, b]),
            "start,end,text,speaker\n0,1500,\"Hello there.\",\"Ada\"\n2000,3000,\"Hi.\",\"\"\n"
        );
    }
}
