//! Output formats: json (everything), srt, vtt, txt, and whisper-cli's lrc, csv and
//! json-full (`render_cli`).

use serde::Serialize;

use super::decode::AudioInfo;
use super::subtitles::{self, Layout};
use super::transcribe::DecodeOptions;
use super::transcript::{Segment, Transcript};

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    clap::ValueEnum,
    Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Json,
    Srt,
    Vtt,
    Txt,
    Lrc,
    Csv,
    /// whisper-cli's `-ojf`.
    #[serde(rename = "json-full")]
    JsonFull,
    /// Who spoke when (with diarization), as NIST's RTTM: what pyannote writes and
    /// md-eval and pyannote.metrics score.
    Rttm,
}

impl Format {
    /// What a `[[watch]]` or `[[s3]]` writes when `formats` is not set.
    pub const DEFAULT: [Format; 4] = [Format::Json, Format::Srt, Format::Vtt, Format::Txt];
    pub const ALL: [Format; 8] = [
        Format::Json,
        Format::Srt,
        Format::Vtt,
        Format::Txt,
        Format::Lrc,
        Format::Csv,
        Format::JsonFull,
        Format::Rttm,
    ];

    pub fn extension(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Srt => "srt",
            Format::Vtt => "vtt",
            Format::Txt => "txt",
            Format::Lrc => "lrc",
            Format::Rttm => "rttm",
            Format::Csv => "csv",
            Format::JsonFull => "full.json",
        }
    }

    /// The format an output path is in, by its extension (the longest that fits:
    /// `x.full.json` is json-full, not json).
    pub fn of_path(path: &str) -> Option<Format> {
        Format::ALL
            .into_iter()
            .filter(|f| path.ends_with(&format!(".{}", f.extension())))
            .max_by_key(|f| f.extension().len())
    }
}

/// Whether two output stems would write the same file: the same stem, or one the other's
/// plus `.full` (`x`'s json-full and `x.full`'s json are both `x.full.json`).
pub fn stems_clash(a: &str, b: &str) -> bool {
    a == b || a.strip_suffix(".full") == Some(b) || b.strip_suffix(".full") == Some(a)
}

/// The stem a set of one input's outputs shares: the reading of their names under which
/// the most of them are `stem.<extension of a format>` (a lone `x.full.json` is taken as
/// `x.full`'s json).
pub fn common_stem(outputs: &[String]) -> Option<String> {
    let mut best: Option<(usize, String)> = None;
    for o in outputs {
        for f in Format::ALL {
            let Some(stem) = o.strip_suffix(&format!(".{}", f.extension())) else {
                continue;
            };
            let count = outputs
                .iter()
                .filter(|p| {
                    Format::ALL
                        .iter()
                        .any(|g| **p == format!("{stem}.{}", g.extension()))
                })
                .count();
            let better = match &best {
                None => true,
                Some((n, s)) => count > *n || (count == *n && stem.len() > s.len()),
            };
            if better {
                best = Some((count, stem.to_string()));
            }
        }
    }
    best.map(|(_, s)| s)
}

/// Everything the json output records about one input.
#[derive(Debug, Serialize)]
pub struct Document<'a> {
    pub source: String,
    pub sha256: String,
    #[serde(serialize_with = "super::transcript::millis")]
    pub duration: f64,
    pub language: &'a str,
    /// The languages detected (`language = "auto"`), with probabilities and seconds.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub languages: &'a [super::languages::LanguageShare],
    pub model: String,
    /// sha256 of the model file (what dedup and the dataset's lines key on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_sha256: Option<String>,
    pub audio: &'a AudioInfo,
    pub text: String,
    pub segments: &'a [Segment],
    /// The speakers diarization told apart, with their talk time (left out when it was off).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub speakers: &'a [super::transcript::SpeakerTime],
    /// Who spoke when: each speaker's turns in time order (left out when it was off).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub turns: &'a [super::transcript::SpeakerTurn],
    /// Where two people talk at once, and who (left out when none was found).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub overlaps: &'a [super::transcript::Overlap],
    pub dropped_non_speech: usize,
    pub vad: VadReport,
    pub timings: Timings,
    pub options: &'a DecodeOptions,
    pub version: &'static str,
}

/// Whether non-speech was skipped with VAD, with which model, and how much speech it kept.
#[derive(Debug, Serialize)]
pub struct VadReport {
    pub used: bool,
    pub model: Option<String>,
    #[serde(serialize_with = "super::transcript::millis_opt")]
    pub speech_seconds: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct Timings {
    pub decode_seconds: f64,
    pub asr_seconds: f64,
    pub total_seconds: f64,
    /// Processing time divided by audio duration (below 1 is faster than real time).
    pub realtime_factor: f64,
}

pub fn render(format: Format, doc: &Document) -> Result<Vec<u8>, serde_json::Error> {
    Ok(match format {
        Format::Json => {
            let mut v = serde_json::to_vec_pretty(doc)?;
            v.push(b'\n');
            v
        }
        Format::Srt => srt(doc.segments, &doc.options.subtitles, doc.duration).into_bytes(),
        Format::Vtt => vtt(doc.segments, &doc.options.subtitles, doc.duration).into_bytes(),
        Format::Txt => txt(doc.segments).into_bytes(),
        Format::Lrc => super::render_cli::lrc(doc.segments).into_bytes(),
        Format::Csv => super::render_cli::csv(doc.segments).into_bytes(),
        Format::JsonFull => super::render_cli::json_full(doc)?,
        Format::Rttm => crate::diarize::rttm::write(&doc.source, doc.turns).into_bytes(),
    })
}

pub fn document<'a>(
    source: String,
    sha256: String,
    model: String,
    audio: &'a AudioInfo,
    t: &'a Transcript,
    options: &'a DecodeOptions,
    total_seconds: f64,
) -> Document<'a> {
    Document {
        source,
        sha256,
        duration: t.duration,
        language: &t.language,
        languages: &t.languages,
        model,
        model_sha256: None,
        audio,
        text: t.text(),
        segments: &t.segments,
        speakers: &t.speakers,
        turns: &t.turns,
        overlaps: &t.overlaps,
        dropped_non_speech: t.dropped_non_speech,
        vad: VadReport {
            used: t.vad_speech_seconds.is_some(),
            model: t
                .vad_speech_seconds
                .and(options.vad_model.as_ref())
                .map(|p| p.display().to_string()),
            speech_seconds: t.vad_speech_seconds,
        },
        timings: Timings {
            decode_seconds: t.decode_seconds,
            asr_seconds: t.asr_seconds,
            total_seconds,
            realtime_factor: if t.duration > 0.0 {
                total_seconds / t.duration
            } else {
                0.0
            },
        },
        options,
        version: env!("CARGO_PKG_VERSION"),
    }
}

fn timestamp(seconds: f64, sep: char) -> String {
    let ms = (seconds.max(0.0) * 1000.0).round() as u64;
    let (h, m, s, ms) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    format!("{h:02}:{m:02}:{s:02}{sep}{ms:03}")
}

/// One cue as rendered: its times, lines, and who speaks it (split channels).
type LaidOut = (f64, f64, Vec<String>, Option<String>);

/// Each cue, word by word when `karaoke`. With speakers (split channels), each speaker's
/// segments are cut into cues on their own, their lines narrowed by the `[name] ` prefix, and
/// the cues merged in time order: two people talking at once get two cues, not one mixed.
fn laid_out(segments: &[Segment], layout: &Layout, audio_end: f64) -> Vec<LaidOut> {
    // By channel and name: two channels given one name still get a cue stream each.
    let mut speakers: Vec<(Option<u8>, Option<&str>)> = Vec::new();
    for s in segments {
        let key = (s.channel, s.speaker.as_deref());
        if !speakers.contains(&key) {
            speakers.push(key);
        }
    }
    if speakers.iter().all(|k| k.1.is_none()) {
        return cues_of(segments, layout, audio_end, None);
    }
    let mut out: Vec<LaidOut> = Vec::new();
    for (channel, who) in speakers {
        let theirs: Vec<Segment> = segments
            .iter()
            .filter(|s| s.channel == channel && s.speaker.as_deref() == who)
            .cloned()
            .collect();
        let prefix = who.map_or(0, |w| w.chars().count() + 3);
        let narrowed = Layout {
            max_line_width: layout.max_line_width.saturating_sub(prefix).max(10),
            ..layout.clone()
        };
        out.extend(cues_of(&theirs, &narrowed, audio_end, who));
    }
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

fn cues_of(
    segments: &[Segment],
    layout: &Layout,
    audio_end: f64,
    who: Option<&str>,
) -> Vec<LaidOut> {
    let who = who.map(str::to_string);
    let cues = subtitles::cues(segments, layout, audio_end);
    match layout.karaoke {
        true => cues
            .iter()
            .flat_map(|c| subtitles::karaoke(c, layout))
            .map(|(a, b, lines)| (a, b, lines, who.clone()))
            .collect(),
        false => cues
            .into_iter()
            .map(|c| (c.start, c.end, c.lines, who.clone()))
            .collect(),
    }
}

/// `[name] ` before a speaker's text in srt, txt and lrc.
pub(super) fn prefixed(who: Option<&str>, text: &str) -> String {
    match who {
        Some(w) => format!("[{w}] {text}"),
        None => text.to_string(),
    }
}

/// Karaoke's underline marks as markup.
fn underline(text: &str) -> String {
    text.replace(subtitles::UNDERLINE_ON, "<u>")
        .replace(subtitles::UNDERLINE_OFF, "</u>")
}

fn srt(segments: &[Segment], layout: &Layout, audio_end: f64) -> String {
    let mut out = String::new();
    for (i, (start, end, lines, who)) in laid_out(segments, layout, audio_end)
        .into_iter()
        .enumerate()
    {
        out.push_str(&format!(
            "{}\n{} --> {}\n{}\n\n",
            i + 1,
            timestamp(start, ','),
            timestamp(end, ','),
            underline(&prefixed(who.as_deref(), &lines.join("\n")))
        ));
    }
    out
}

fn vtt(segments: &[Segment], layout: &Layout, audio_end: f64) -> String {
    let mut out = String::from("WEBVTT\n\n");
    // Cue text is markup in WebVTT: &, < and > are escaped ("-->" with them).
    let escape = |t: &str| {
        t.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    for (start, end, lines, who) in laid_out(segments, layout, audio_end) {
        // A voice span names the speaker (its annotation ends at '>', so none inside).
        let voice = who.map_or_else(String::new, |w| format!("<v {}>", escape(&w)));
        out.push_str(&format!(
            "{} --> {}\n{voice}{}\n\n",
            timestamp(start, '.'),
            timestamp(end, '.'),
            underline(&escape(&lines.join("\n")))
        ));
    }
    out
}

fn txt(segments: &[Segment]) -> String {
    segments
        .iter()
        .map(|s| format!("{}\n", prefixed(s.speaker.as_deref(), s.text.trim())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::pipeline::transcript::segment as seg;

    #[test]
    fn outputs_are_read_under_the_stem_most_of_them_share() {
        let v = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            common_stem(&v(&["x.full.json", "x.full.srt"])).as_deref(),
            Some("x.full")
        );
        assert_eq!(
            common_stem(&v(&["x.json", "x.full.json"])).as_deref(),
            Some("x")
        );
        assert_eq!(common_stem(&v(&["x.full.json"])).as_deref(), Some("x.full"));
        assert!(stems_clash("a/x", "a/x.full") && stems_clash("a/x.full", "a/x"));
        assert!(!stems_clash("a/x", "a/x.fully"));
    }

    #[test]
    fn an_outputs_format_is_found_by_its_longest_extension() {
        assert_eq!(Format::of_path("a/b.full.json"), Some(Format::JsonFull));
        assert_eq!(Format::of_path("a/b.json"), Some(Format::Json));
        assert_eq!(Format::of_path("s3://x/b.lrc"), Some(Format::Lrc));
        assert_eq!(Format::of_path("b.wav"), None);
    }

    #[test]
    fn json_times_are_rounded_to_the_millisecond() {
        let mut s = seg(4.279999999999999, 6.0600000000000005, " Hi.");
        s.words = vec![crate::pipeline::transcript::Word {
            word: "Hi.".into(),
            start: 4.279999999999999,
            end: 4.8100000000000005,
            p: 0.5,
            speaker: None,
        }];
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains(r#""start":4.28,"end":6.06"#), "{json}");
        assert!(json.contains(r#""start":4.28,"end":4.81"#), "{json}");
        assert!(!json.contains("0000000"), "{json}");
    }

    #[test]
    fn split_channels_get_their_own_cues_with_the_speaker_named() {
        let who = |mut s: Segment, w: &str| {
            s.speaker = Some(w.into());
            s
        };
        let s = [
            who(seg(0.0, 3.0, " Hello, how can I help?"), "agent"),
            who(seg(2.0, 4.0, " My order never came."), "customer"),
        ];
        let srt = srt(&s, &Layout::default(), 5.0);
        assert_eq!(
            srt,
            "1\n00:00:00,000 --> 00:00:03,000\n[agent] Hello, how can I help?\n\n\
             2\n00:00:02,000 --> 00:00:04,000\n[customer] My order never came.\n\n"
        );
        let vtt = vtt(&s, &Layout::default(), 5.0);
        assert!(
            vtt.contains("00:00:02.000 --> 00:00:04.000\n<v customer>My order never came."),
            "{vtt}"
        );
        assert_eq!(
            txt(&s),
            "[agent] Hello, how can I help?\n[customer] My order never came.\n"
        );
    }

    #[test]
    fn subtitles_follow_their_specs() {
        let s = [
            seg(0.0, 1.5, " Hello there."),
            seg(3661.001, 3662.25, " A --> B"),
        ];
        assert_eq!(
            srt(&s, &Layout::default(), 4000.0),
            "1\n00:00:00,000 --> 00:00:01,500\nHello there.\n\n2\n01:01:01,001 --> 01:01:02,250\nA --> B\n\n"
        );
        assert_eq!(
            vtt(&s, &Layout::default(), 4000.0),
            "WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello there.\n\n01:01:01.001 --> 01:01:02.250\nA --&gt; B\n\n"
        );
        assert_eq!(txt(&s), "Hello there.\nA --> B\n");
    }
}
