//! Training segments from a transcript: consecutive Whisper segments joined while the piece
//! stays within `max_seconds` (Whisper's 30 s window) and `max_tokens` (its 448-token
//! decoder context), cut only at segment boundaries. A segment that fails a filter (too
//! likely silence, too unsure, a repetition loop) ends the piece before it, so a piece's
//! audio never holds speech its text leaves out.

use crate::pipeline::transcript::{compression_ratio, Segment};

/// Whisper's decoder context.
pub const MAX_TOKENS: usize = 448;

#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub min_seconds: f64,
    pub max_seconds: f64,
    pub max_no_speech_prob: f32,
    /// Segments whose mean token log-probability is below this are left out.
    pub min_avg_logprob: f32,
    /// Segments whose text compresses more than this (repetition loops) are left out.
    pub max_compression_ratio: f32,
    pub max_tokens: usize,
    /// Pieces keep to one speaker, and segments with none are left out (diarized inputs).
    pub single_speaker: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    pub start: f64,
    pub end: f64,
    pub text: String,
    pub tokens: usize,
    /// Token-weighted mean of its segments' `avg_logprob`.
    pub avg_logprob: f32,
    /// The highest `no_speech_prob` of its segments.
    pub no_speech_prob: f32,
    /// The speakers of its segments, in order of appearance (empty: not diarized).
    pub speakers: Vec<String>,
}

impl Piece {
    pub fn seconds(&self) -> f64 {
        self.end - self.start
    }

    /// The compression ratio of the piece's whole text.
    pub fn compression_ratio(&self) -> f32 {
        compression_ratio(&self.text)
    }

    fn join(&mut self, s: &Segment, text: &str, tokens: usize) {
        let before = self.tokens as f32;
        self.avg_logprob =
            (self.avg_logprob * before + s.avg_logprob * tokens as f32) / (before + tokens as f32);
        self.no_speech_prob = self.no_speech_prob.max(s.no_speech_prob);
        self.end = s.end;
        self.text.push(' ');
        self.text.push_str(text);
        self.tokens += tokens;
        if let Some(who) = &s.speaker {
            if !self.speakers.contains(who) {
                self.speakers.push(who.clone());
            }
        }
    }
}

impl Rules {
    /// Whether segment `s` (its text trimmed to `text`, `tokens` long) may be trained on.
    fn usable(&self, s: &Segment, text: &str, tokens: usize) -> bool {
        !text.is_empty()
            && s.end > s.start
            && s.end - s.start <= self.max_seconds
            && s.no_speech_prob <= self.max_no_speech_prob
            && s.avg_logprob >= self.min_avg_logprob
            && s.compression_ratio <= self.max_compression_ratio
            && tokens <= self.max_tokens
            // No decode of it passed whisper's checks (a loop that would not go away).
            && s.fallback.as_ref().is_none_or(|f| f.passed)
    }
}

pub fn cut(segments: &[Segment], rules: &Rules) -> Vec<Piece> {
    cut_in(segments, rules, None)
}

/// As `cut`, keeping only segments in language `only` (when set): a segment in another
/// language ends the piece before it, like any unusable one. A piece never spans a change
/// of language (`language_per_segment` transcripts).
pub fn cut_in(segments: &[Segment], rules: &Rules, only: Option<&str>) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut open: Option<Piece> = None;
    let mut open_language: Option<&str> = None;
    let close = |p: Option<Piece>, out: &mut Vec<Piece>| {
        if let Some(p) = p.filter(|p| p.seconds() >= rules.min_seconds && !p.text.is_empty()) {
            out.push(p);
        }
    };
    for s in segments {
        let text = s.text.trim();
        let tokens = s.tokens.len().max(1);
        let language = s.language.as_deref();
        let other = |l: Option<&str>| {
            only.zip(l)
                .is_some_and(|(want, l)| !want.eq_ignore_ascii_case(l))
        };
        let speakerless = rules.single_speaker && s.speaker.is_none();
        if !rules.usable(s, text, tokens) || other(language) || speakerless {
            close(open.take(), &mut out);
            continue;
        }
        if let Some(p) = &open {
            let other_speaker = rules.single_speaker && p.speakers.first() != s.speaker.as_ref();
            if s.end - p.start > rules.max_seconds
                || p.tokens + tokens > rules.max_tokens
                || open_language != language
                || other_speaker
            {
                close(open.take(), &mut out);
            }
        }
        open_language = language;
        match &mut open {
            Some(p) => p.join(s, text, tokens),
            None => {
                open = Some(Piece {
                    start: s.start,
                    end: s.end,
                    text: text.to_string(),
                    tokens,
                    avg_logprob: s.avg_logprob,
                    no_speech_prob: s.no_speech_prob,
                    speakers: s.speaker.iter().cloned().collect(),
                })
            }
        }
    }
    close(open, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(start: f64, end: f64, text: &str, no_speech: f32) -> Segment {
        Segment {
            start,
            end,
            text: text.into(),
            no_speech_prob: no_speech,
            avg_logprob: -0.2,
            compression_ratio: compression_ratio(text),
            temperature: 0.0,
            fallback: None,
            language: None,
            channel: None,
            speaker: None,
            tokens: Vec::new(),
            words: Vec::new(),
        }
    }

    const RULES: Rules = Rules {
        min_seconds: 1.0,
        max_seconds: 30.0,
        max_no_speech_prob: 0.6,
        min_avg_logprob: -1.0,
        max_compression_ratio: 2.4,
        max_tokens: MAX_TOKENS,
        single_speaker: false,
    };

    #[test]
    fn pieces_name_their_speakers_and_keep_to_one_when_asked() {
        let who = |start: f64, name: Option<&str>| {
            let mut s = seg(start, start + 3.0, "words here", 0.1);
            s.speaker = name.map(str::to_string);
            s
        };
        let segs = vec![
            who(0.0, Some("S1")),
            who(3.0, Some("S1")),
            who(6.0, Some("S2")),
            who(9.0, None),
            who(12.0, Some("S2")),
        ];
        let mixed = cut(&segs, &RULES);
        assert_eq!(mixed.len(), 1);
        assert_eq!(mixed[0].speakers, ["S1", "S2"]);
        let single = Rules {
            single_speaker: true,
            ..RULES
        };
        let pieces = cut(&segs, &single);
        let spans: Vec<(f64, f64, Vec<String>)> = pieces
            .iter()
            .map(|p| (p.start, p.end, p.speakers.clone()))
            .collect();
        assert_eq!(
            spans,
            [
                (0.0, 6.0, vec!["S1".to_string()]),
                (6.0, 9.0, vec!["S2".to_string()]),
                (12.0, 15.0, vec!["S2".to_string()]),
            ]
        );
    }

    #[test]
    fn segments_join_up_to_thirty_seconds_at_boundaries() {
        let segs: Vec<Segment> = (0..8)
            .map(|i| seg(f64::from(i) * 10.0, f64::from(i) * 10.0 + 9.0, "words", 0.1))
            .collect();
        let pieces = cut(&segs, &RULES);
        // 0–29, 30–59, 60–79: each ends on a segment's end.
        let spans: Vec<(f64, f64)> = pieces.iter().map(|p| (p.start, p.end)).collect();
        assert_eq!(spans, vec![(0.0, 29.0), (30.0, 59.0), (60.0, 79.0)]);
        assert_eq!(pieces[0].text, "words words words");
        assert!(pieces.iter().all(|p| p.seconds() <= 30.0));
    }

    #[test]
    fn filtered_segments_split_pieces_and_short_ones_are_dropped() {
        let segs = vec![
            seg(0.0, 5.0, "one", 0.1),
            seg(5.0, 9.0, "noise", 0.9),
            seg(9.0, 12.0, "two", 0.1),
            seg(12.0, 12.5, "", 0.1),
            seg(13.0, 13.5, "short", 0.1),
            seg(14.0, 50.0, "too long for one window", 0.1),
        ];
        let pieces = cut(&segs, &RULES);
        let texts: Vec<&str> = pieces.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(texts, vec!["one", "two"]);
    }

    #[test]
    fn the_token_budget_cuts_too() {
        let mut s = seg(0.0, 2.0, "a", 0.0);
        s.tokens = vec![
            crate::pipeline::transcript::Token {
                id: 0,
                text: "a".into(),
                start: 0.0,
                end: 1.0,
                p: 1.0,
            };
            300
        ];
        let mut t = s.clone();
        t.start = 2.0;
        t.end = 4.0;
        let pieces = cut(&[s, t], &RULES);
        assert_eq!(pieces.len(), 2, "300 + 300 tokens exceed 448");
    }

    #[test]
    fn unsure_and_looping_segments_are_left_out_and_split_pieces() {
        let mut unsure = seg(3.0, 6.0, "maybe", 0.1);
        unsure.avg_logprob = -1.5;
        let looping = "I'm sorry. ".repeat(12);
        let segs = vec![
            seg(0.0, 3.0, "one", 0.1),
            unsure,
            seg(6.0, 9.0, "two", 0.1),
            seg(9.0, 20.0, &looping, 0.1),
            seg(20.0, 23.0, "three", 0.1),
        ];
        assert!(
            segs[3].compression_ratio > 2.4,
            "{}",
            segs[3].compression_ratio
        );
        let pieces = cut(&segs, &RULES);
        let texts: Vec<&str> = pieces.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(texts, vec!["one", "two", "three"]);
        let lenient = Rules {
            min_avg_logprob: -2.0,
            max_compression_ratio: 100.0,
            ..RULES
        };
        assert_eq!(
            cut(&segs, &lenient).len(),
            1,
            "all joined when nothing is filtered"
        );
    }

    #[test]
    fn pieces_keep_to_one_language() {
        let said = |start: f64, text: &str, l: &str| {
            let mut s = seg(start, start + 2.0, text, 0.1);
            s.language = Some(l.into());
            s
        };
        let segs = [
            said(0.0, "good morning", "en"),
            said(2.0, "guten morgen", "de"),
            said(4.0, "wie geht es", "de"),
            said(6.0, "fine thanks", "en"),
        ];
        let texts = |only| -> Vec<String> {
            cut_in(&segs, &RULES, only)
                .into_iter()
                .map(|p| p.text)
                .collect()
        };
        assert_eq!(
            texts(None),
            ["good morning", "guten morgen wie geht es", "fine thanks"]
        );
        assert_eq!(texts(Some("de")), ["guten morgen wie geht es"]);
        assert_eq!(texts(Some("en")), ["good morning", "fine thanks"]);
    }

    #[test]
    fn a_segment_no_decode_of_which_passed_is_not_trained_on() {
        use crate::pipeline::fallback::{Failure, Fallback};
        let mut looped = seg(4.0, 8.0, "thank you", 0.1);
        let note = |passed| Fallback {
            first: Failure::Repetition {
                phrase: "thank you".into(),
                times: 9,
            },
            attempts: 6,
            passed,
        };
        looped.fallback = Some(note(false));
        let segs = [seg(0.0, 4.0, "one", 0.1), looped.clone()];
        let texts: Vec<String> = cut(&segs, &RULES).into_iter().map(|p| p.text).collect();
        assert_eq!(texts, ["one"]);
        // Decoded again until it passed: usable.
        looped.fallback = Some(note(true));
        let segs = [seg(0.0, 4.0, "one", 0.1), looped];
        assert_eq!(cut(&segs, &RULES)[0].text, "one thank you");
    }

    #[test]
    fn a_piece_carries_its_segments_confidence() {
        let mut a = seg(0.0, 4.0, "first part", 0.1);
        a.tokens = vec![
            crate::pipeline::transcript::Token {
                id: 0,
                text: "x".into(),
                start: 0.0,
                end: 1.0,
                p: 1.0,
            };
            3
        ];
        let mut b = seg(4.0, 8.0, "second part", 0.3);
        b.avg_logprob = -0.6;
        let pieces = cut(&[a, b], &RULES);
        assert_eq!(pieces.len(), 1);
        let p = &pieces[0];
        // 3 tokens at -0.2 and 1 at -0.6.
        assert!((p.avg_logprob - (-0.3)).abs() < 1e-6, "{}", p.avg_logprob);
        assert_eq!(p.no_speech_prob, 0.3);
        assert_eq!(
            p.compression_ratio(),
            compression_ratio("first part second part")
        );
    }
}
