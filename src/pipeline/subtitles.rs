//! Readable subtitles: whisper's segments (up to 30 s of text) re-cut into cues a person can
//! read, by the word timestamps. A cue ends at a sentence's end, at a pause, or before the
//! word that would break a limit (`Layout`), preferring the last comma or pause before it;
//! never inside a word. Its text is wrapped into at most `max_lines` lines of
//! `max_line_width` characters, two lines balanced. Cues never overlap and are never empty
//! in time; a short or fast cue is held on screen into the silence after it, up to the next
//! cue, to reach `min_cue_duration` and `max_chars_per_second`.

use serde::{Deserialize, Serialize};

use super::transcript::Segment;

/// The limits cues are cut and laid out by (`[subtitles]`, and the CLI's flags).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Layout {
    /// Characters per line.
    pub max_line_width: usize,
    /// Lines per cue.
    pub max_lines: usize,
    /// Seconds a cue may stay on screen.
    pub max_cue_duration: f64,
    /// Seconds a cue stays at least, where the silence after it allows.
    pub min_cue_duration: f64,
    /// Reading speed a cue is held long enough for, where the silence after it allows.
    pub max_chars_per_second: f64,
    /// Word by word: each cue is repeated for each of its words, that word underlined while
    /// it is spoken (karaoke).
    pub karaoke: bool,
}

impl Default for Layout {
    /// The usual broadcast limits (e.g. Netflix's for English): 42 characters, 2 lines,
    /// 1 to 7 s, 20 characters a second.
    fn default() -> Layout {
        Layout {
            max_line_width: 42,
            max_lines: 2,
            max_cue_duration: 7.0,
            min_cue_duration: 1.0,
            max_chars_per_second: 20.0,
            karaoke: false,
        }
    }
}

impl Layout {
    pub fn is_default(&self) -> bool {
        *self == Layout::default()
    }

    /// What is wrong with these limits: (key, why).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.max_line_width < 10 {
            out.push((
                "max_line_width",
                format!("must be at least 10, not {}", self.max_line_width),
            ));
        }
        if self.max_lines < 1 {
            out.push(("max_lines", "must be at least 1".into()));
        }
        let positive = |x: f64| x.is_finite() && x > 0.0;
        if !positive(self.max_cue_duration) {
            out.push((
                "max_cue_duration",
                format!("must be more than 0 seconds, not {}", self.max_cue_duration),
            ));
        }
        if !(self.min_cue_duration.is_finite() && self.min_cue_duration >= 0.0)
            || self.min_cue_duration > self.max_cue_duration
        {
            out.push((
                "min_cue_duration",
                format!(
                    "must be between 0 and the longest cue ({} s), not {}",
                    self.max_cue_duration, self.min_cue_duration
                ),
            ));
        }
        if !positive(self.max_chars_per_second) {
            out.push((
                "max_chars_per_second",
                format!("must be more than 0, not {}", self.max_chars_per_second),
            ));
        }
        out
    }
}

/// One subtitle.
#[derive(Debug, Clone, PartialEq)]
pub struct Cue {
    pub start: f64,
    pub end: f64,
    pub lines: Vec<String>,
    /// Its words with their times, for karaoke.
    pub words: Vec<Timed>,
}

/// A word and when it is spoken.
#[derive(Debug, Clone, PartialEq)]
pub struct Timed {
    pub text: String,
    pub start: f64,
    pub end: f64,
    /// Ends a sentence or a segment: a cue ends after it.
    hard_break: bool,
    /// Ends a clause (comma, semicolon, colon, dash): a good place to cut.
    soft_break: bool,
}

/// A pause this long between two words ends a cue.
const PAUSE: f64 = 1.0;
/// A pause this long is a good place to cut.
const SHORT_PAUSE: f64 = 0.3;

/// The words of `segments`, with where a cue may or must end. A segment without word times
/// (`--no-timestamps`) is spread over its time by characters.
fn words(segments: &[Segment]) -> Vec<Timed> {
    let mut out: Vec<Timed> = Vec::new();
    for s in segments {
        // Word times are used when whisper measured them: inside the segment, not all of
        // no length (without timestamps whisper leaves them unset).
        let measured = s.words.iter().any(|w| w.end > w.start)
            && s.words
                .iter()
                .all(|w| w.start >= s.start - 0.01 && w.end <= s.end + 0.01);
        let mut these: Vec<Timed> = Vec::new();
        if measured {
            for w in &s.words {
                let (start, end) = (w.start.clamp(s.start, s.end), w.end.clamp(s.start, s.end));
                // A "word" with a space inside stays several words: lines break at spaces.
                for part in w.word.split_whitespace() {
                    these.push(Timed {
                        text: part.to_string(),
                        start,
                        end: end.max(start),
                        hard_break: false,
                        soft_break: false,
                    });
                }
            }
        }
        if these.is_empty() {
            let parts: Vec<&str> = s.text.split_whitespace().collect();
            let chars: usize = parts.iter().map(|p| p.chars().count() + 1).sum();
            let per = (s.end - s.start).max(0.0) / chars.max(1) as f64;
            let mut at = s.start;
            for p in parts {
                let len = (p.chars().count() + 1) as f64 * per;
                these.push(Timed {
                    text: p.to_string(),
                    start: at,
                    end: at + len,
                    hard_break: false,
                    soft_break: false,
                });
                at += len;
            }
        }
        if let Some(last) = these.last_mut() {
            last.hard_break = true;
        }
        out.extend(these);
    }
    let n = out.len();
    for i in 0..n {
        let gap = match out.get(i + 1) {
            Some(next) => next.start - out[i].end,
            None => 0.0,
        };
        let ends = out[i]
            .text
            .trim_end_matches(['"', '\'', ')', ']', '»', '”']);
        let sentence = ends.ends_with(['.', '?', '!', '…', '。', '？', '！']);
        let clause = ends.ends_with([',', ';', ':', '-', '–', '—', '、', '，']);
        if sentence || gap >= PAUSE {
            out[i].hard_break = true;
        }
        if clause || gap >= SHORT_PAUSE {
            out[i].soft_break = true;
        }
    }
    out
}

fn text_len(words: &[Timed]) -> usize {
    words.iter().map(|w| w.text.chars().count()).sum::<usize>() + words.len().saturating_sub(1)
}

/// `words` in at most `max_lines` lines of `width` characters (two lines balanced, the
/// lower one the longer when they cannot be equal); `None` when they do not fit. A word
/// longer than a line stands on a line of its own.
pub fn wrap(words: &[&str], width: usize, max_lines: usize) -> Option<Vec<String>> {
    let len = |ws: &[&str]| {
        ws.iter().map(|w| w.chars().count()).sum::<usize>() + ws.len().saturating_sub(1)
    };
    if words.is_empty() {
        return Some(Vec::new());
    }
    if len(words) <= width {
        return Some(vec![words.join(" ")]);
    }
    if max_lines == 2 || (max_lines > 2 && len(words) <= 2 * width) {
        // The split that makes the longer line shortest.
        let best = (1..words.len())
            .filter(|&k| len(&words[..k]) <= width && len(&words[k..]) <= width)
            .min_by_key(|&k| {
                let (a, b) = (len(&words[..k]), len(&words[k..]));
                (a.max(b), usize::from(a > b))
            });
        if let Some(k) = best {
            return Some(vec![words[..k].join(" "), words[k..].join(" ")]);
        }
        if max_lines == 2 {
            return (words.len() <= 2).then(|| words.iter().map(|w| w.to_string()).collect());
        }
    }
    let mut lines: Vec<String> = Vec::new();
    for w in words {
        match lines.last_mut() {
            Some(l) if l.chars().count() + 1 + w.chars().count() <= width => {
                l.push(' ');
                l.push_str(w);
            }
            _ => lines.push(w.to_string()),
        }
    }
    (lines.len() <= max_lines).then_some(lines)
}

fn fits(words: &[Timed], layout: &Layout) -> bool {
    let Some((first, last)) = words.first().zip(words.last()) else {
        return true;
    };
    if words.len() > 1 && last.end - first.start > layout.max_cue_duration {
        return false;
    }
    let texts: Vec<&str> = words.iter().map(|w| w.text.as_str()).collect();
    words.len() == 1 || wrap(&texts, layout.max_line_width, layout.max_lines).is_some()
}

/// The cues of `segments` under `layout`, none held past `audio_end` seconds.
pub fn cues(segments: &[Segment], layout: &Layout, audio_end: f64) -> Vec<Cue> {
    let all = words(segments);
    let mut groups: Vec<Vec<Timed>> = Vec::new();
    let mut current: Vec<Timed> = Vec::new();
    for w in all {
        while !current.is_empty()
            && !fits(
                &[current.as_slice(), std::slice::from_ref(&w)].concat(),
                layout,
            )
        {
            // Cut at the last clause end or pause if it leaves at least half the cue
            // behind it; otherwise before this word.
            let keep = current
                .iter()
                .rposition(|x| x.soft_break)
                .map(|i| i + 1)
                .filter(|&k| {
                    k < current.len() && 2 * text_len(&current[..k]) >= text_len(&current)
                });
            match keep {
                Some(k) => {
                    let rest = current.split_off(k);
                    groups.push(std::mem::replace(&mut current, rest));
                }
                None => groups.push(std::mem::take(&mut current)),
            }
        }
        let hard = w.hard_break;
        current.push(w);
        if hard {
            groups.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        groups.push(current);
    }
    let mut out: Vec<Cue> = Vec::with_capacity(groups.len());
    for g in groups {
        let floor = out.last().map_or(0.0, |c: &Cue| c.end);
        let start = g[0].start.max(floor);
        let end = g[g.len() - 1].end.max(start);
        // Words whisper placed before the previous cue ended (segments that overlap): they
        // join that cue, where they fit, rather than make one of no length.
        if end <= start && g[0].start < floor {
            if let Some(last) = out.last_mut() {
                let texts: Vec<&str> = last
                    .words
                    .iter()
                    .chain(&g)
                    .map(|w| w.text.as_str())
                    .collect();
                if let Some(lines) = wrap(&texts, layout.max_line_width, layout.max_lines) {
                    last.lines = lines;
                    last.words.extend(g);
                    continue;
                }
            }
        }
        let texts: Vec<&str> = g.iter().map(|w| w.text.as_str()).collect();
        let lines = wrap(&texts, layout.max_line_width, layout.max_lines)
            .unwrap_or_else(|| vec![texts.join(" ")]);
        out.push(Cue {
            start,
            // Of no length (whisper's t0 = t1, or words that did not fit the cue they overlap):
            // a millisecond, lengthened below where the silence allows.
            end: if end > start { end } else { start + 0.001 },
            lines,
            words: g,
        });
    }
    // Held longer where the silence after allows, up to the next cue and the audio's end.
    for i in 0..out.len() {
        let next = out.get(i + 1).map(|c| c.start);
        let c = &mut out[i];
        let chars: usize = c.lines.iter().map(|l| l.chars().count()).sum();
        let wanted = layout
            .min_cue_duration
            .max(chars as f64 / layout.max_chars_per_second)
            .min(layout.max_cue_duration);
        let limit = next.unwrap_or(f64::INFINITY).min(audio_end.max(c.end));
        if c.end - c.start < wanted {
            c.end = (c.start + wanted).min(limit).max(c.end);
        }
    }
    out
}

/// Marks the underlined word in karaoke lines; each format writes it as its markup
/// (`<u>…</u>`) after escaping the text.
pub const UNDERLINE_ON: char = '\u{1}';
pub const UNDERLINE_OFF: char = '\u{2}';

/// The karaoke cues of `cue`: one per word, that word underlined (between `UNDERLINE_ON`
/// and `UNDERLINE_OFF`) from its start to the next word's start (the last to the cue's
/// end).
pub fn karaoke(cue: &Cue, layout: &Layout) -> Vec<(f64, f64, Vec<String>)> {
    let n = cue.words.len();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let start = if i == 0 {
            cue.start
        } else {
            cue.words[i].start.max(cue.start)
        };
        let end = match cue.words.get(i + 1) {
            Some(next) => next.start.min(cue.end),
            None => cue.end,
        };
        if end <= start {
            continue;
        }
        let texts: Vec<String> = cue
            .words
            .iter()
            .enumerate()
            .map(|(j, w)| match j == i {
                true => format!("{UNDERLINE_ON}{}{UNDERLINE_OFF}", w.text),
                false => w.text.clone(),
            })
            .collect();
        // Wrapped by the plain words, so the lines do not jump as the underline moves.
        let plain: Vec<&str> = cue.words.iter().map(|w| w.text.as_str()).collect();
        let widths: Vec<usize> = wrap(&plain, layout.max_line_width, layout.max_lines)
            .unwrap_or_else(|| vec![plain.join(" ")])
            .iter()
            .map(|l| l.split(' ').count())
            .collect();
        let mut lines = Vec::new();
        let mut at = 0;
        for count in widths {
            let end = (at + count).min(n);
            lines.push(texts.get(at..end).unwrap_or_default().join(" "));
            at = end;
        }
        out.push((start, end, lines));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::transcript::Word;

    /// A segment whose words are spoken one after another, `each` seconds apiece.
    fn spoken(text: &str, start: f64, each: f64) -> Segment {
        let words: Vec<Word> = text
            .split_whitespace()
            .enumerate()
            .map(|(i, w)| Word {
                word: format!(" {w}"),
                start: start + i as f64 * each,
                end: start + (i + 1) as f64 * each,
                p: 0.9,
                speaker: None,
            })
            .collect();
        Segment {
            start,
            end: words.last().map_or(start, |w| w.end),
            text: format!(" {text}"),
            no_speech_prob: 0.0,
            avg_logprob: 0.0,
            compression_ratio: 1.0,
            temperature: 0.0,
            fallback: None,
            language: None,
            channel: None,
            speaker: None,
            tokens: vec![],
            words,
        }
    }

    fn check(cues: &[Cue], layout: &Layout, words_in: usize) {
        let mut seen = 0;
        for (i, c) in cues.iter().enumerate() {
            assert!(c.end > c.start, "empty cue {c:?}");
            if let Some(next) = cues.get(i + 1) {
                assert!(c.end <= next.start, "overlap {c:?} {next:?}");
            }
            assert!(c.lines.len() <= layout.max_lines, "{c:?}");
            for l in &c.lines {
                assert!(l.chars().count() <= layout.max_line_width, "{l:?}");
            }
            if c.words.len() > 1 {
                assert!(c.end - c.start <= layout.max_cue_duration + 1e-9, "{c:?}");
            }
            seen += c.words.len();
        }
        assert_eq!(seen, words_in, "every word once, none split");
    }

    #[test]
    fn a_long_segment_becomes_readable_cues_cut_at_sentences_and_clauses() {
        let text = "Good morning everyone, and welcome to the quarterly review of the northern \
                    region where sales rose by twelve percent despite the weather. Next we look \
                    at costs.";
        let s = spoken(text, 10.0, 0.35);
        let layout = Layout::default();
        let cues = cues(&[s], &layout, f64::INFINITY);
        check(&cues, &layout, text.split_whitespace().count());
        // The sentence's end ends a cue, and the next sentence starts one.
        let ends: Vec<&str> = cues
            .iter()
            .map(|c| c.words.last().unwrap().text.as_str())
            .collect();
        assert!(ends.contains(&"weather."), "{ends:?}");
        assert_eq!(
            cues.last().unwrap().lines.join(" "),
            "Next we look at costs."
        );
        assert_eq!(
            cues[0].lines,
            vec![
                "Good morning everyone, and welcome to the",
                "quarterly review of the northern region"
            ]
        );
        // A cue that fills up is cut after its last comma, when that keeps most of it.
        let text = "We went through the results of the northern region in detail, and then \
                    the whole team talked about the budget";
        let cues = super::cues(&[spoken(text, 0.0, 0.2)], &layout, f64::INFINITY);
        check(&cues, &layout, text.split_whitespace().count());
        assert_eq!(cues[0].words.last().unwrap().text, "detail,", "{cues:?}");
    }

    #[test]
    fn limits_hold_for_any_layout() {
        let text = "one two three four five six seven eight nine ten eleven twelve thirteen \
                    fourteen fifteen sixteen seventeen eighteen nineteen twenty";
        for (width, lines, max_dur) in [(12, 1, 2.0), (20, 2, 3.0), (42, 3, 7.0), (10, 2, 30.0)] {
            let layout = Layout {
                max_line_width: width,
                max_lines: lines,
                max_cue_duration: max_dur,
                ..Layout::default()
            };
            let cues = cues(&[spoken(text, 0.0, 0.4)], &layout, f64::INFINITY);
            check(&cues, &layout, 20);
        }
    }

    #[test]
    fn two_lines_are_balanced_and_a_short_cue_is_held_into_the_silence() {
        assert_eq!(
            wrap(
                &["the", "quick", "brown", "fox", "jumps", "over", "the", "dog"],
                20,
                2
            ),
            Some(vec![
                "the quick brown fox".into(),
                "jumps over the dog".into()
            ])
        );
        assert_eq!(wrap(&["a"; 30], 20, 2), None);
        let layout = Layout::default();
        let cues = cues(
            &[spoken("Yes.", 1.0, 0.2), spoken("Then we go.", 5.0, 0.3)],
            &layout,
            f64::INFINITY,
        );
        assert_eq!(cues.len(), 2);
        assert!(
            (cues[0].end - 2.0).abs() < 1e-9,
            "held to min_cue_duration: {cues:?}"
        );
        // A cue that cannot be held long enough stops where the next begins.
        let close = super::cues(
            &[spoken("Yes.", 1.0, 0.2), spoken("No.", 1.5, 0.2)],
            &layout,
            f64::INFINITY,
        );
        assert!((close[0].end - 1.5).abs() < 1e-9, "{close:?}");
    }

    #[test]
    fn overlapping_segments_and_unmeasured_words_lose_no_word() {
        let layout = Layout::default();
        // Whisper's times overlap across segments: "Yes." lies inside the first.
        let segs = [
            spoken("We agreed.", 3.0, 0.75),
            spoken("Yes.", 4.0, 0.3),
            spoken("No.", 4.2, 0.2),
        ];
        let overlapping = cues(&segs, &layout, f64::INFINITY);
        check(&overlapping, &layout, 4);
        // A segment of no length after a gap keeps its own place in time.
        let mut late = spoken("Okay.", 5.0, 0.0);
        late.end = 5.0;
        let apart = cues(&[spoken("We agreed.", 1.0, 1.0), late], &layout, 9.0);
        check(&apart, &layout, 3);
        assert_eq!(apart[1].lines, vec!["Okay.".to_string()]);
        assert!(apart[1].start >= 5.0, "{apart:?}");
        // Without timestamps whisper leaves word times unset: spread over the segment.
        let mut s = spoken("one two three four five six seven eight nine ten", 0.0, 1.0);
        for w in &mut s.words {
            (w.start, w.end) = (0.0, 0.0);
        }
        s.end = 10.0;
        let spread = cues(&[s], &layout, f64::INFINITY);
        check(&spread, &layout, 10);
        assert!(spread.last().unwrap().start > 5.0, "{spread:?}");
    }

    #[test]
    fn karaoke_underlines_each_word_in_turn_without_gaps_or_overlaps() {
        let layout = Layout::default();
        let cues = cues(&[spoken("Sing along with me.", 0.0, 0.5)], &layout, 2.0);
        assert_eq!(cues.len(), 1);
        let k = karaoke(&cues[0], &layout);
        assert_eq!(k.len(), 4);
        assert_eq!(k[1].2, vec!["Sing \u{1}along\u{2} with me.".to_string()]);
        assert_eq!(k[3].1, 2.0, "held no longer than the audio");
        for pair in k.windows(2) {
            assert_eq!(pair[0].1, pair[1].0);
        }
    }
}
