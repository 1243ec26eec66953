//! The result of transcribing one input: plain data shared by the ASR stage and renderers.

use serde::Serialize;

/// Serializes seconds rounded to the millisecond: `4.28`, not `4.279999999999999` (the sum
/// of a window's offset and whisper's centiseconds).
pub fn millis<S: serde::Serializer>(seconds: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(round_ms(*seconds))
}

/// As `millis`, for an optional value.
pub fn millis_opt<S: serde::Serializer>(seconds: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match seconds {
        Some(v) => s.serialize_some(&round_ms(*v)),
        None => s.serialize_none(),
    }
}

pub fn round_ms(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Token {
    pub text: String,
    /// Seconds from the start of the input.
    #[serde(serialize_with = "millis")]
    pub start: f64,
    #[serde(serialize_with = "millis")]
    pub end: f64,
    /// Probability the model gave this token.
    pub p: f32,
    /// The token's id in the model's vocabulary.
    pub id: i32,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Word {
    pub word: String,
    #[serde(serialize_with = "millis")]
    pub start: f64,
    #[serde(serialize_with = "millis")]
    pub end: f64,
    pub p: f32,
    /// Who says it, when speakers were told apart (diarization).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speaker: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Segment {
    #[serde(serialize_with = "millis")]
    pub start: f64,
    #[serde(serialize_with = "millis")]
    pub end: f64,
    pub text: String,
    pub no_speech_prob: f32,
    pub avg_logprob: f32,
    /// The text's length over its zlib-compressed length: repetition loops, whisper's
    /// typical hallucination, compress well (whisper and faster-whisper distrust > 2.4).
    pub compression_ratio: f32,
    /// The sampling temperature of the decode this segment comes from (0: the first,
    /// deterministic one; more: a fallback).
    pub temperature: f32,
    /// Set when the first decode of this stretch was refused (a repetition loop, low
    /// confidence) and it was decoded again (`fallback.rs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<super::fallback::Fallback>,
    /// The language it was decoded in (set by the transcriber; `None` in stubs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// The channel it was heard on, when channels are transcribed one by one (`channels =
    /// "split"`): 0 is the left.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<u8>,
    /// Who speaks: the channel's name (`channel_names`), or `ch0`, `ch1`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speaker: Option<String>,
    pub tokens: Vec<Token>,
    pub words: Vec<Word>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Transcript {
    pub language: String,
    /// Seconds of audio in the input.
    #[serde(serialize_with = "millis")]
    pub duration: f64,
    pub segments: Vec<Segment>,
    /// Segments dropped as non-speech (`[BLANK_AUDIO]`, `(wind howling)`, …).
    pub dropped_non_speech: usize,
    /// The languages detected, with their probabilities and seconds, the most spoken first
    /// (empty when the language was given).
    pub languages: Vec<super::languages::LanguageShare>,
    /// Seconds of speech VAD found and whisper decoded; `None` when VAD was off.
    #[serde(serialize_with = "millis_opt")]
    pub vad_speech_seconds: Option<f64>,
    /// Seconds spent decoding audio and running the model.
    pub decode_seconds: f64,
    pub asr_seconds: f64,
    /// The speakers diarization told apart, with their talk time (empty when it was off).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub speakers: Vec<SpeakerTime>,
    /// Who spoke when, from diarization (empty when it was off).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub turns: Vec<SpeakerTurn>,
    /// Where two people talk at once, and who (from diarization; empty when it was off or
    /// found none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub overlaps: Vec<Overlap>,
    /// Whether diarization ran (it may have found no speech, so no speakers).
    #[serde(skip)]
    pub diarized: bool,
}

/// A stretch where two people talk at once.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Overlap {
    #[serde(serialize_with = "millis")]
    pub start: f64,
    #[serde(serialize_with = "millis")]
    pub end: f64,
    /// The two speakers heard around it (one when only one could be placed).
    pub speakers: Vec<String>,
}

/// One stretch of one speaker's speech.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SpeakerTurn {
    #[serde(serialize_with = "millis")]
    pub start: f64,
    #[serde(serialize_with = "millis")]
    pub end: f64,
    pub speaker: String,
}

/// One speaker of a diarized file.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SpeakerTime {
    /// `S1`, `S2`, …, or the name of the enrolled voice it matched.
    pub name: String,
    /// Seconds of speech in this speaker's turns.
    #[serde(serialize_with = "millis")]
    pub talk_seconds: f64,
}

impl Transcript {
    pub fn text(&self) -> String {
        let parts: Vec<&str> = self.segments.iter().map(|s| s.text.trim()).collect();
        parts.join(" ")
    }
}

/// A segment of `text` from `start` to `end` with no tokens or words (for tests).
#[cfg(test)]
pub fn segment(start: f64, end: f64, text: &str) -> Segment {
    Segment {
        start,
        end,
        text: text.into(),
        no_speech_prob: 0.0,
        avg_logprob: 0.0,
        compression_ratio: 1.0,
        temperature: 0.0,
        fallback: None,
        language: None,
        channel: None,
        speaker: None,
        tokens: vec![],
        words: vec![],
    }
}

/// Appends `seg` so that segments never overlap or go back in time: it starts no earlier
/// than the previous one ended, and its tokens and words lie inside it. (whisper's times are
/// estimates; across two passes the first may end a little after the second begins.)
pub fn push_in_order(segments: &mut Vec<Segment>, mut seg: Segment) {
    let floor = segments.last().map_or(0.0, |s| s.end);
    seg.start = seg.start.max(floor);
    seg.end = seg.end.max(seg.start);
    let (lo, hi) = (seg.start, seg.end);
    for t in &mut seg.tokens {
        t.start = t.start.clamp(lo, hi);
        t.end = t.end.clamp(t.start, hi);
    }
    for w in &mut seg.words {
        w.start = w.start.clamp(lo, hi);
        w.end = w.end.clamp(w.start, hi);
    }
    segments.push(seg);
}

/// `text`'s UTF-8 length divided by its zlib-compressed length (level 6, as Python's
/// `zlib.compress`, which whisper and faster-whisper use); 0 for empty text.
pub fn compression_ratio(text: &str) -> f32 {
    use std::io::Write;
    if text.is_empty() {
        return 0.0;
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
    // Writing to a Vec cannot fail.
    let compressed = z.write_all(text.as_bytes()).and_then(|()| z.finish());
    match compressed {
        Ok(c) if !c.is_empty() => text.len() as f32 / c.len() as f32,
        _ => 0.0,
    }
}

/// Groups tokens into words: a token that starts with a space starts a new word.
pub fn words_from_tokens(tokens: &[Token]) -> Vec<Word> {
    let mut words: Vec<Word> = Vec::new();
    let mut p_sum = 0f32;
    let mut n = 0u32;
    for t in tokens {
        let starts_word = t.text.starts_with(' ') || words.is_empty();
        if starts_word {
            if let (Some(last), true) = (words.last_mut(), n > 0) {
                last.p = p_sum / n as f32;
            }
            words.push(Word {
                word: t.text.trim_start().to_string(),
                start: t.start,
                end: t.end,
                p: t.p,
                speaker: None,
            });
            p_sum = t.p;
            n = 1;
        } else if let Some(last) = words.last_mut() {
            last.word.push_str(&t.text);
            last.end = t.end;
            p_sum += t.p;
            n += 1;
        }
    }
    if let (Some(last), true) = (words.last_mut(), n > 0) {
        last.p = p_sum / n as f32;
    }
    words.retain(|w| !w.word.is_empty());
    words
}

/// Whisper's well-known output on non-speech: a whole segment that is only an annotation
/// such as `[BLANK_AUDIO]`, `(wind howling)`, `[Music]` or `♪`.
pub fn is_non_speech_annotation(text: &str) -> bool {
    let t = text.trim();
    if t.is_empty() {
        return true;
    }
    let only_music = t
        .chars()
        .all(|c| matches!(c, '♪' | '♫' | '♬' | ' ' | '.' | '-'));
    if only_music {
        return true;
    }
    let mut rest = t;
    // Possibly several annotations in a row: "[MUSIC] (applause)".
    while !rest.is_empty() {
        let close = match rest.chars().next() {
            Some('[') => ']',
            Some('(') => ')',
            Some('*') => '*',
            _ => return false,
        };
        match rest[1..].find(close) {
            Some(i) => rest = rest[i + 2..].trim_start_matches([' ', '.', ',']),
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(text: &str, start: f64, end: f64, p: f32) -> Token {
        Token {
            id: 0,
            text: text.into(),
            start,
            end,
            p,
        }
    }

    #[test]
    fn tokens_group_into_words() {
        let w = words_from_tokens(&[
            tok(" Hel", 0.0, 0.2, 0.8),
            tok("lo", 0.2, 0.4, 0.6),
            tok(" world", 0.5, 0.9, 0.9),
            tok(".", 0.9, 1.0, 0.5),
        ]);
        assert_eq!(w.len(), 2);
        assert_eq!(w[0].word, "Hello");
        assert_eq!((w[0].start, w[0].end), (0.0, 0.4));
        assert!((w[0].p - 0.7).abs() < 1e-6);
        assert_eq!(w[1].word, "world.");
    }

    #[test]
    fn annotations_are_non_speech_and_words_are_not() {
        for t in [
            "[BLANK_AUDIO]",
            " (wind howling)",
            "[MUSIC] (applause)",
            "♪ ♪",
            "*sighs*",
            "",
        ] {
            assert!(is_non_speech_annotation(t), "{t:?}");
        }
        for t in ["Hello (world)", "[Name] said hi", "okay", "(laughs) yes"] {
            assert!(!is_non_speech_annotation(t), "{t:?}");
        }
    }
}
