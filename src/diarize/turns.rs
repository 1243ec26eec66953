//! From labelled windows to who spoke when, and from that to a labelled transcript: each
//! word gets the speaker whose turn covers most of it, and a segment is cut where its words
//! change speaker.

use crate::pipeline::transcript::{Segment, Token, Word};

/// One speaker's stretch of speech.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    pub start: f64,
    pub end: f64,
    pub speaker: usize,
}

/// The name speaker `i` gets until a known voice names it: `S1`, `S2`, ….
pub fn default_name(i: usize) -> String {
    format!("S{}", i + 1)
}

/// Turns from windows (start, end) and their speakers, in time order: consecutive windows
/// of one speaker join; where windows of two speakers overlap, the change is put halfway.
pub fn turns(windows: &[(f64, f64)], speakers: &[usize]) -> Vec<Turn> {
    let mut out: Vec<Turn> = Vec::new();
    for (&(start, end), &speaker) in windows.iter().zip(speakers) {
        match out.last_mut() {
            Some(last) if last.speaker == speaker && start <= last.end + 0.01 => {
                last.end = last.end.max(end);
            }
            Some(last) if start < last.end => {
                let middle = (start + last.end) / 2.0;
                last.end = middle;
                out.push(Turn {
                    start: middle,
                    end,
                    speaker,
                });
            }
            _ => out.push(Turn {
                start,
                end,
                speaker,
            }),
        }
    }
    out
}

/// How much of `start..end` each speaker's turns cover, summed over their turns, in order
/// of first appearance. A span with no length counts 1 for the turn holding its instant.
pub(super) fn coverage(turns: &[Turn], start: f64, end: f64) -> Vec<(usize, f64)> {
    let mut totals: Vec<(usize, f64)> = Vec::new();
    let mid = (start + end) / 2.0;
    for t in turns {
        let covered = if end > start {
            (t.end.min(end) - t.start.max(start)).max(0.0)
        } else if t.start <= mid && mid < t.end {
            1.0
        } else {
            0.0
        };
        if covered > 0.0 {
            match totals.iter_mut().find(|(s, _)| *s == t.speaker) {
                Some((_, total)) => *total += covered,
                None => totals.push((t.speaker, covered)),
            }
        }
    }
    totals
}

/// The speaker whose turns cover most of `start..end` (`None`: no turn touches it); the
/// first to reach the most wins a tie.
fn speaker_of(turns: &[Turn], start: f64, end: f64) -> Option<usize> {
    coverage(turns, start, end)
        .into_iter()
        .fold(None::<(usize, f64)>, |best, (s, c)| match best {
            Some(b) if b.1 >= c => Some(b),
            _ => Some((s, c)),
        })
        .map(|b| b.0)
}

/// The speaker of the turn nearest to `start..end`, within [`NEAREST_GAP`] (speech too
/// short to have had a voice print of its own, next to a turn).
fn nearest(turns: &[Turn], start: f64, end: f64) -> Option<usize> {
    turns
        .iter()
        .map(|t| {
            let gap = (t.start - end).max(start - t.end).max(0.0);
            (gap, t.speaker)
        })
        .filter(|(gap, _)| *gap <= NEAREST_GAP)
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, s)| s)
}

/// How far (seconds) speech with no turn of its own may be from the turn it is given to.
const NEAREST_GAP: f64 = 2.0;

/// The speaker covering most of `start..end`, else the nearest turn's.
fn speaker_at(turns: &[Turn], start: f64, end: f64) -> Option<usize> {
    speaker_of(turns, start, end).or_else(|| nearest(turns, start, end))
}

/// Labels `segments` with `names[speaker]`: words by their own time, segments cut where the
/// speaker of their words changes (tokens follow their words), each piece named by its
/// words' speaker. A segment without words takes the speaker covering most of it.
pub fn label(segments: Vec<Segment>, turns: &[Turn], names: &[String]) -> Vec<Segment> {
    let name = |s: Option<usize>| s.and_then(|i| names.get(i).cloned());
    let mut out = Vec::with_capacity(segments.len());
    for seg in segments {
        if seg.words.is_empty() {
            let speaker = name(speaker_at(turns, seg.start, seg.end));
            out.push(Segment { speaker, ..seg });
            continue;
        }
        let who: Vec<Option<String>> = seg
            .words
            .iter()
            .map(|w| name(speaker_at(turns, w.start, w.end)))
            .collect();
        out.extend(cut(seg, &who));
    }
    out
}

/// Cuts `seg` before each word whose speaker differs from the word before it.
fn cut(seg: Segment, who: &[Option<String>]) -> Vec<Segment> {
    let mut pieces: Vec<(usize, usize)> = Vec::new();
    for i in 0..who.len() {
        match pieces.last_mut() {
            Some(p) if who[p.0] == who[i] => p.1 = i + 1,
            _ => pieces.push((i, i + 1)),
        }
    }
    if pieces.len() == 1 {
        let speaker = who.first().cloned().flatten();
        let words = seg
            .words
            .iter()
            .map(|w| Word {
                speaker: speaker.clone(),
                ..w.clone()
            })
            .collect();
        return vec![Segment {
            speaker,
            words,
            ..seg
        }];
    }
    let token_word = token_words(&seg.tokens, seg.words.len());
    let last = pieces.len() - 1;
    pieces
        .iter()
        .enumerate()
        .map(|(n, &(from, to))| {
            let words: Vec<Word> = seg.words[from..to]
                .iter()
                .map(|w| Word {
                    speaker: who[from].clone(),
                    ..w.clone()
                })
                .collect();
            let tokens: Vec<Token> = seg
                .tokens
                .iter()
                .zip(&token_word)
                .filter(|(_, w)| (from..to).contains(w))
                .map(|(t, _)| t.clone())
                .collect();
            let text: String = words.iter().map(|w| format!(" {}", w.word)).collect();
            Segment {
                start: if n == 0 { seg.start } else { words[0].start },
                end: if n == last {
                    seg.end
                } else {
                    words.last().map_or(seg.end, |w| w.end)
                },
                text,
                speaker: who[from].clone(),
                tokens,
                words,
                language: seg.language.clone(),
                fallback: seg.fallback.clone(),
                ..seg.clone()
            }
        })
        .collect()
}

/// The word each token belongs to, grouped as `words_from_tokens` groups them: a token
/// starting with a space starts a word, and words left empty (a lone " ") are not words, so
/// their tokens go with the word after them.
fn token_words(tokens: &[Token], words: usize) -> Vec<usize> {
    let mut raw: Vec<usize> = Vec::with_capacity(tokens.len());
    let mut raw_empty: Vec<bool> = Vec::new();
    for t in tokens {
        if t.text.starts_with(' ') || raw_empty.is_empty() {
            raw_empty.push(t.text.trim_start().is_empty());
        } else if let Some(empty) = raw_empty.last_mut() {
            *empty = *empty && t.text.is_empty();
        }
        raw.push(raw_empty.len() - 1);
    }
    let mut kept = Vec::with_capacity(raw_empty.len());
    let mut next = 0usize;
    for empty in &raw_empty {
        kept.push(next);
        if !empty {
            next += 1;
        }
    }
    let last = words.saturating_sub(1);
    raw.iter().map(|&r| kept[r].min(last)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::transcript::{segment, words_from_tokens};

    fn token(text: &str, start: f64, end: f64) -> Token {
        Token {
            text: text.into(),
            start,
            end,
            p: 0.9,
            id: 1,
        }
    }

    #[test]
    fn the_speaker_covering_most_wins_summed_over_their_turns() {
        let t = |start: f64, end: f64, speaker: usize| Turn {
            start,
            end,
            speaker,
        };
        let turns = [t(0.0, 0.4, 0), t(0.4, 0.9, 1), t(0.9, 1.3, 0)];
        assert_eq!(speaker_of(&turns, 0.0, 1.3), Some(0));
        assert_eq!(speaker_of(&turns, 0.3, 1.0), Some(1));
        assert_eq!(speaker_of(&turns, 2.0, 3.0), None);
    }

    #[test]
    fn tokens_of_a_word_left_empty_go_with_the_next_word() {
        let toks = [
            token(" Hi", 0.0, 0.2),
            token(" ", 0.2, 0.3),
            token(" there", 0.3, 0.5),
            token("!", 0.5, 0.6),
        ];
        assert_eq!(words_from_tokens(&toks).len(), 2);
        assert_eq!(token_words(&toks, 2), [0, 1, 1, 1]);
    }

    #[test]
    fn windows_become_turns_with_changes_halfway_through_overlaps() {
        let w = [
            (0.0, 1.5),
            (0.75, 2.25),
            (1.5, 3.0),
            (2.25, 3.75),
            (5.0, 6.5),
        ];
        let t = turns(&w, &[0, 0, 1, 1, 0]);
        let spans: Vec<(f64, f64, usize)> = t.iter().map(|t| (t.start, t.end, t.speaker)).collect();
        assert_eq!(spans, [(0.0, 1.875, 0), (1.875, 3.75, 1), (5.0, 6.5, 0)]);
    }

    #[test]
    fn a_segment_is_cut_where_its_words_change_speaker() {
        let tokens = vec![
            token(" Hello", 0.0, 0.4),
            token(" there", 0.4, 0.8),
            token(" hi", 1.2, 1.4),
            token(" back", 1.4, 1.7),
            token("!", 1.7, 1.8),
        ];
        let mut seg = segment(0.0, 2.0, " Hello there hi back!");
        seg.words = words_from_tokens(&tokens);
        seg.tokens = tokens;
        let turns = [
            Turn {
                start: 0.0,
                end: 1.0,
                speaker: 0,
            },
            Turn {
                start: 1.0,
                end: 2.0,
                speaker: 1,
            },
        ];
        let names = vec!["S1".to_string(), "S2".to_string()];
        let out = label(
            vec![
                seg,
                segment(3.0, 4.0, " (no words)"),
                segment(9.0, 9.5, " far"),
            ],
            &turns,
            &names,
        );
        assert_eq!(out.len(), 4);
        assert_eq!(
            (
                out[0].text.as_str(),
                out[0].speaker.as_deref(),
                out[0].start,
                out[0].end
            ),
            (" Hello there", Some("S1"), 0.0, 0.8)
        );
        assert_eq!(
            (
                out[1].text.as_str(),
                out[1].speaker.as_deref(),
                out[1].start,
                out[1].end
            ),
            (" hi back!", Some("S2"), 1.2, 2.0)
        );
        assert_eq!(out[1].tokens.len(), 3, "the '!' stays with its word");
        assert_eq!(out[0].tokens.len(), 2);
        assert!(out[1]
            .words
            .iter()
            .all(|w| w.speaker.as_deref() == Some("S2")));
        // No turn covers it: the nearest one's speaker, if it is near.
        assert_eq!(out[2].speaker.as_deref(), Some("S2"));
        assert_eq!(out[3].speaker, None);
    }
}
