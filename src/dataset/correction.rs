//! Human corrections: a person's transcript of one input replaces the machine labels of that
//! input's pieces. A correction is a subtitle file (.srt, .vtt) or a json transcript (the
//! daemon's own, or any with `segments: [{start, end, text}]`), usually the daemon's output
//! with its words fixed; or plain text (.txt) for an input cut into a single piece.
//!
//! Timed text is laid onto the pieces by time: each cue goes to the piece it overlaps most,
//! so a piece's new text is what the person heard in its audio. Cues over audio the dataset
//! did not keep (left out by its filters) have no audio to pair with and are counted, not
//! used. A piece the person left empty is dropped: its audio holds no words to learn.

use serde::Deserialize;

use super::manifest::{Label, Line};

/// The file types a correction may be.
pub const EXTENSIONS: [&str; 4] = ["srt", "vtt", "json", "txt"];

/// The largest correction read: far above any transcript, and a bound on what is read.
pub const MAX_BYTES: u64 = 16 << 20;

#[derive(Debug, Clone, PartialEq)]
pub struct Cue {
    pub start: f64,
    pub end: f64,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Correction {
    Timed(Vec<Cue>),
    Plain(String),
}

/// A parsed correction and the input it names itself, if it does (a json transcript's
/// `sha256`).
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub correction: Correction,
    pub names_sha256: Option<String>,
}

/// Why a correction cannot be used. Each says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum CorrectionError {
    #[error("a correction must be one of .srt, .vtt, .json or .txt; this one is {0:?}")]
    Extension(String),
    #[error("the file is {0} bytes; a correction is at most 16 MiB")]
    TooBig(u64),
    #[error("the file is not UTF-8 text: save it as UTF-8")]
    NotUtf8,
    #[error("not a SubRip (.srt) file: {0}")]
    Srt(String),
    #[error("not a WebVTT (.vtt) file: {0}")]
    Vtt(String),
    #[error("not a json transcript with \"segments\": [{{\"start\", \"end\", \"text\"}}]: {0}")]
    Json(#[source] serde_json::Error),
    #[error("cue {index} ({start:.3} s → {end:.3} s) does not run forwards: fix its times")]
    Backwards { index: usize, start: f64, end: f64 },
    #[error("the correction has no text")]
    Empty,
    #[error(
        "plain text can only correct an input kept as one piece, and this one has {0}: \
         correct its .srt, .vtt or .json instead, which say where each sentence is"
    )]
    PlainTextForPieces(usize),
    #[error(
        "this input's manifest lines predate piece times (source_start/source_end), so timed \
         text cannot be laid onto its {0} pieces: correct it as plain text only if it has one"
    )]
    NoPieceTimes(usize),
    #[error("none of the correction's text falls on the audio the dataset kept for this input")]
    NothingOnThePieces,
}

/// Parses correction `bytes` by the extension of the file they came from.
pub fn parse(extension: &str, bytes: &[u8]) -> Result<Parsed, CorrectionError> {
    let ext = extension.to_ascii_lowercase();
    if !EXTENSIONS.contains(&ext.as_str()) {
        return Err(CorrectionError::Extension(extension.to_string()));
    }
    if bytes.len() as u64 > MAX_BYTES {
        return Err(CorrectionError::TooBig(bytes.len() as u64));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| CorrectionError::NotUtf8)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let (correction, names_sha256) = match ext.as_str() {
        "srt" => (Correction::Timed(srt(text)?), None),
        "vtt" => (Correction::Timed(vtt(text)?), None),
        "json" => {
            let doc: JsonTranscript = serde_json::from_str(text).map_err(CorrectionError::Json)?;
            let cues = doc
                .segments
                .into_iter()
                .map(|s| Cue {
                    start: s.start,
                    end: s.end,
                    text: single_spaced(&s.text),
                })
                .collect();
            (Correction::Timed(cues), doc.sha256)
        }
        _ => (Correction::Plain(single_spaced(text)), None),
    };
    match &correction {
        Correction::Plain(t) if t.is_empty() => return Err(CorrectionError::Empty),
        // No cue with words would drop every piece of the input: surely a mistake.
        Correction::Timed(cues) if cues.iter().all(|c| c.text.is_empty()) => {
            return Err(CorrectionError::Empty)
        }
        Correction::Timed(cues) => {
            for (i, c) in cues.iter().enumerate() {
                if !(c.start.is_finite() && c.end.is_finite() && c.start >= 0.0 && c.end > c.start)
                {
                    return Err(CorrectionError::Backwards {
                        index: i + 1,
                        start: c.start,
                        end: c.end,
                    });
                }
            }
        }
        Correction::Plain(_) => {}
    }
    Ok(Parsed {
        correction,
        names_sha256,
    })
}

#[derive(Deserialize)]
struct JsonTranscript {
    #[serde(default)]
    sha256: Option<String>,
    segments: Vec<JsonSegment>,
}

#[derive(Deserialize)]
struct JsonSegment {
    start: f64,
    end: f64,
    text: String,
}

fn srt(text: &str) -> Result<Vec<Cue>, CorrectionError> {
    let subs = subtp::srt::SubRip::parse(text).map_err(|e| CorrectionError::Srt(e.to_string()))?;
    Ok(subs
        .subtitles
        .into_iter()
        .map(|s| Cue {
            start: srt_seconds(&s.start),
            end: srt_seconds(&s.end),
            text: untagged(&s.text.join(" ")),
        })
        .collect())
}

fn vtt(text: &str) -> Result<Vec<Cue>, CorrectionError> {
    let doc = subtp::vtt::WebVtt::parse(text).map_err(|e| CorrectionError::Vtt(e.to_string()))?;
    Ok(doc
        .blocks
        .into_iter()
        .filter_map(|b| match b {
            subtp::vtt::VttBlock::Que(c) => Some(Cue {
                start: vtt_seconds(&c.timings.start),
                end: vtt_seconds(&c.timings.end),
                text: vtt_entities(&untagged(&c.payload.join(" "))),
            }),
            _ => None,
        })
        .collect())
}

fn srt_seconds(t: &subtp::srt::SrtTimestamp) -> f64 {
    f64::from(t.hours) * 3600.0
        + f64::from(t.minutes) * 60.0
        + f64::from(t.seconds)
        + f64::from(t.milliseconds) / 1000.0
}

fn vtt_seconds(t: &subtp::vtt::VttTimestamp) -> f64 {
    f64::from(t.hours) * 3600.0
        + f64::from(t.minutes) * 60.0
        + f64::from(t.seconds)
        + f64::from(t.milliseconds) / 1000.0
}

/// WebVTT's character references as the characters they stand for (`&amp;` last, so that
/// `&amp;lt;` stays `&lt;`).
fn vtt_entities(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", " ")
        .replace("&lrm;", "")
        .replace("&rlm;", "")
        .replace("&amp;", "&")
}

/// Subtitle cue text as training text: markup (`<i>`, `<v Speaker>`) removed, whitespace
/// single. Only subtitles carry markup: a `<` in json or plain text is the person's text.
fn untagged(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            _ if !in_tag => plain.push(c),
            _ => {}
        }
    }
    single_spaced(&plain)
}

fn single_spaced(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The input's lines with the person's text, and what could not be used.
#[derive(Debug, PartialEq)]
pub struct Relabelled {
    pub lines: Vec<Line>,
    /// Cues over audio the dataset did not keep.
    pub unused_cues: usize,
    /// Pieces the person left without words (dropped from the manifest).
    pub dropped_pieces: usize,
}

/// Lays `correction` onto `lines` (one input's manifest lines, in order).
pub fn relabel(lines: &[Line], correction: &Correction) -> Result<Relabelled, CorrectionError> {
    let human = |l: &Line, text: String| Line {
        text,
        label: Some(Label::Human),
        model_sha256: None,
        avg_logprob: None,
        no_speech_prob: None,
        compression_ratio: None,
        ..l.clone()
    };
    let texts: Vec<String> = match correction {
        Correction::Plain(text) => {
            if lines.len() != 1 {
                return Err(CorrectionError::PlainTextForPieces(lines.len()));
            }
            return Ok(Relabelled {
                lines: vec![human(&lines[0], text.clone())],
                unused_cues: 0,
                dropped_pieces: 0,
            });
        }
        Correction::Timed(cues) if lines.len() == 1 && lines[0].source_start.is_none() => {
            // One piece without times: all of the text is its text.
            vec![single_spaced(
                &cues
                    .iter()
                    .map(|c| c.text.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
            )]
        }
        Correction::Timed(cues) => {
            let spans: Vec<(f64, f64)> = lines
                .iter()
                .map(|l| l.source_start.zip(l.source_end))
                .collect::<Option<_>>()
                .ok_or(CorrectionError::NoPieceTimes(lines.len()))?;
            let mut texts = vec![Vec::new(); lines.len()];
            let mut unused = 0;
            for c in cues.iter().filter(|c| !c.text.is_empty()) {
                let overlap = |&(s, e): &(f64, f64)| (e.min(c.end) - s.max(c.start)).max(0.0);
                let best = spans
                    .iter()
                    .enumerate()
                    .map(|(i, span)| (i, overlap(span)))
                    .filter(|&(_, o)| o > 0.0)
                    .max_by(|a, b| a.1.total_cmp(&b.1));
                match best {
                    Some((i, _)) => texts[i].push(c.text.as_str()),
                    None => unused += 1,
                }
            }
            if texts.iter().all(Vec::is_empty) {
                return Err(CorrectionError::NothingOnThePieces);
            }
            let out = texts.into_iter().map(|t| t.join(" ")).collect();
            return Ok(keep_spoken(lines, out, unused, human));
        }
    };
    Ok(keep_spoken(lines, texts, 0, human))
}

fn keep_spoken(
    lines: &[Line],
    texts: Vec<String>,
    unused_cues: usize,
    human: impl Fn(&Line, String) -> Line,
) -> Relabelled {
    let mut out = Vec::with_capacity(lines.len());
    let mut dropped = 0;
    for (l, t) in lines.iter().zip(texts) {
        if t.is_empty() {
            dropped += 1;
        } else {
            out.push(human(l, t));
        }
    }
    Relabelled {
        lines: out,
        unused_cues,
        dropped_pieces: dropped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(n: usize, start: f64, end: f64) -> Line {
        Line {
            audio_filepath: format!("/d/audio/ab-{n:04}.wav"),
            duration: end - start,
            text: format!("machine words {n}"),
            source: "in/talk.wav".into(),
            sha256: "ab".into(),
            label: Some(Label::Machine),
            model_sha256: Some("cd".into()),
            avg_logprob: Some(-0.3),
            no_speech_prob: Some(0.01),
            compression_ratio: Some(1.0),
            source_start: Some(start),
            source_end: Some(end),
            ..Line::default()
        }
    }

    const SRT: &str =
        "1\n00:00:00,500 --> 00:00:04,000\nThe <i>first</i> sentence,\ncorrected.\n\n\
                       2\n00:00:04,000 --> 00:00:09,250\nThe second one.\n\n\
                       3\n00:00:31,000 --> 00:00:33,000\nSaid where the dataset kept no audio.\n\n\
                       4\n00:00:40,000 --> 00:00:44,000\nThe third, in the next piece.\n";

    #[test]
    fn srt_vtt_and_json_give_the_same_cues() {
        let srt = parse("srt", SRT.as_bytes()).unwrap();
        let Correction::Timed(cues) = &srt.correction else {
            panic!("{srt:?}")
        };
        assert_eq!(cues.len(), 4);
        assert_eq!(cues[0].text, "The first sentence, corrected.");
        assert_eq!((cues[1].start, cues[1].end), (4.0, 9.25));
        // The same cues as WebVTT: its header, and full stops in the times.
        let vtt: Vec<String> = SRT
            .lines()
            .map(|l| {
                if l.contains("-->") {
                    l.replace(',', ".")
                } else {
                    l.to_string()
                }
            })
            .collect();
        let vtt = format!("WEBVTT\n\n{}\n", vtt.join("\n"));
        let parsed = parse("VTT", vtt.as_bytes()).unwrap();
        let Correction::Timed(vcues) = &parsed.correction else {
            panic!()
        };
        assert_eq!(vcues, cues);
        assert_eq!((vcues[3].start, vcues[3].end), (40.0, 44.0));
        let json = serde_json::json!({
            "sha256": "ab",
            "segments": [{"start": 0.5, "end": 4.0, "text": " The first sentence, corrected."}],
        });
        let parsed = parse("json", json.to_string().as_bytes()).unwrap();
        assert_eq!(parsed.names_sha256.as_deref(), Some("ab"));
        assert_eq!(
            parsed.correction,
            Correction::Timed(vec![Cue {
                start: 0.5,
                end: 4.0,
                text: "The first sentence, corrected.".into()
            }])
        );
    }

    #[test]
    fn bad_corrections_say_what_is_wrong() {
        let err = |ext: &str, bytes: &[u8]| parse(ext, bytes).unwrap_err().to_string();
        assert!(err("docx", b"x").contains(".srt, .vtt, .json or .txt"));
        assert!(err("txt", b"\xff\xfe").contains("UTF-8"));
        assert!(err("txt", b"  \n").contains("no text"));
        assert!(err("json", b"{\"text\": \"x\"}").contains("segments"));
        assert!(err("srt", b"this is not a subtitle file").contains("SubRip"));
        let backwards = "1\n00:00:05,000 --> 00:00:01,000\nx\n";
        assert!(err("srt", backwards.as_bytes()).contains("cue 1"));
        // Timed files without a word would drop every piece of the input.
        assert!(err("json", b"{\"segments\": []}").contains("no text"));
        let blank = "{\"segments\": [{\"start\": 0, \"end\": 1, \"text\": \" \"}]}";
        assert!(err("json", blank.as_bytes()).contains("no text"));
        assert!(err("vtt", b"WEBVTT\n\n00:00.000 --> 00:01.000\n<i></i>\n").contains("no text"));
    }

    #[test]
    fn timed_text_goes_to_the_piece_it_falls_on() {
        let lines = [piece(0, 0.4, 9.3), piece(1, 39.8, 44.1)];
        let c = parse("srt", SRT.as_bytes()).unwrap().correction;
        let r = relabel(&lines, &c).unwrap();
        assert_eq!(r.unused_cues, 1);
        assert_eq!(r.dropped_pieces, 0);
        assert_eq!(
            r.lines[0].text,
            "The first sentence, corrected. The second one."
        );
        assert_eq!(r.lines[1].text, "The third, in the next piece.");
        for (new, old) in r.lines.iter().zip(&lines) {
            assert_eq!(new.label, Some(Label::Human));
            assert_eq!((new.model_sha256.as_ref(), new.avg_logprob), (None, None));
            assert_eq!(new.audio_filepath, old.audio_filepath);
            assert_eq!(new.duration, old.duration);
        }
        // The same correction again gives the same lines (a replay after a crash).
        assert_eq!(relabel(&r.lines, &c).unwrap().lines, r.lines);
    }

    #[test]
    fn a_piece_left_empty_is_dropped_and_plain_text_needs_one_piece() {
        let lines = [piece(0, 0.0, 9.3), piece(1, 39.8, 44.1)];
        let only_second = Correction::Timed(vec![Cue {
            start: 40.0,
            end: 43.0,
            text: "Only this was said.".into(),
        }]);
        let r = relabel(&lines, &only_second).unwrap();
        assert_eq!(r.dropped_pieces, 1);
        assert_eq!(r.lines.len(), 1);
        assert_eq!(r.lines[0].audio_filepath, lines[1].audio_filepath);
        // Only subtitles carry markup: a "<" in plain text or json is the person's.
        let heart = parse("txt", b"I <3 this, a<b and c>d").unwrap().correction;
        assert_eq!(heart, Correction::Plain("I <3 this, a<b and c>d".into()));
        let json = "{\"segments\": [{\"start\": 0, \"end\": 1, \"text\": \"x <y> z\"}]}";
        let Correction::Timed(cues) = parse("json", json.as_bytes()).unwrap().correction else {
            panic!()
        };
        assert_eq!(cues[0].text, "x <y> z");
        let plain = parse("txt", b"Hello  there,\nworld.").unwrap().correction;
        assert_eq!(plain, Correction::Plain("Hello there, world.".into()));
        assert!(matches!(
            relabel(&lines, &plain),
            Err(CorrectionError::PlainTextForPieces(2))
        ));
        let one = relabel(&lines[..1], &plain).unwrap();
        assert_eq!(one.lines[0].text, "Hello there, world.");
        let elsewhere = Correction::Timed(vec![Cue {
            start: 20.0,
            end: 25.0,
            text: "Nowhere near.".into(),
        }]);
        assert!(matches!(
            relabel(&lines, &elsewhere),
            Err(CorrectionError::NothingOnThePieces)
        ));
        // Lines written before piece times were recorded cannot take timed text, unless
        // there is only one.
        let old = Line {
            source_start: None,
            source_end: None,
            ..lines[0].clone()
        };
        assert!(matches!(
            relabel(&[old.clone(), old.clone()], &only_second),
            Err(CorrectionError::NoPieceTimes(2))
        ));
        assert_eq!(
            relabel(&[old], &only_second).unwrap().lines[0].text,
            "Only this was said."
        );
    }
}
