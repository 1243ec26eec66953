//! Temperature fallback, done here rather than inside whisper.cpp so that each segment knows
//! the temperature that produced it, a repetition loop is decoded again, and `best_of` holds
//! under fallback from beam search (whisper-rs sets whisper.cpp's `greedy.best_of` only for
//! the greedy strategy). A call is decoded at `temperature`, then at each step of
//! `temperature_inc` up to 1.0, until a decode passes the checks whisper.cpp uses (token
//! entropy, average log-probability unless it is silence) and holds no repetition loop.

use serde::Serialize;

use super::transcribe::DecodeOptions;
use super::transcript::Segment;

/// Why a decode was refused.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Failure {
    /// The same phrase said `times` times in a row: whisper's typical hallucination.
    Repetition { phrase: String, times: usize },
    /// The last 32 tokens are too uniform (whisper.cpp's `entropy_thold`).
    LowEntropy { entropy: f32 },
    /// The tokens' average log-probability is below `logprob_thold`, and it is not silence.
    LowLogprob { avg_logprob: f32 },
}

/// A stretch of audio whose first decode was refused, as its segments note it in json.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fallback {
    /// Why the first decode was refused.
    pub first: Failure,
    /// Decodes made, the first included.
    pub attempts: usize,
    /// Whether the decode kept passed the checks (else it is the best of those that failed).
    pub passed: bool,
}

/// whisper.cpp's schedule: `temperature`, then up by `temperature_inc` while ≤ 1.0.
pub fn temperatures(opts: &DecodeOptions) -> Vec<f32> {
    if opts.temperature_inc <= 0.0 {
        return vec![opts.temperature];
    }
    let mut out = Vec::new();
    let mut t = opts.temperature;
    while t < 1.0 + 1e-6 {
        out.push(t);
        t += opts.temperature_inc;
    }
    if out.is_empty() {
        out.push(opts.temperature);
    }
    out
}

/// Every token one decode produced, timestamps included, as whisper.cpp judges its
/// sequence: the ids and their log-probabilities.
#[derive(Debug, Default, Clone)]
pub struct Sequence {
    pub ids: Vec<i32>,
    pub logprobs: Vec<f32>,
}

/// What is wrong with one decode of a call: its segments (for loops in the text) and its
/// whole token sequence (entropy and average log-probability, over timestamp tokens too,
/// as whisper.cpp computes them: text tokens alone are surer, and passed decodes whisper.cpp
/// would have redone).
pub fn judge(segments: &[Segment], sequence: &Sequence, opts: &DecodeOptions) -> Option<Failure> {
    let text: String = segments.iter().map(|s| s.text.as_str()).collect();
    if let Some((phrase, times)) = repeated_phrase(&text) {
        return Some(Failure::Repetition { phrase, times });
    }
    let ids = &sequence.ids;
    if ids.len() > 32 {
        let entropy = entropy(&ids[ids.len() - 32..]);
        if entropy < opts.entropy_thold {
            return Some(Failure::LowEntropy { entropy });
        }
    }
    if sequence.logprobs.is_empty() {
        return None;
    }
    let avg_logprob = sequence.logprobs.iter().sum::<f32>() / sequence.logprobs.len() as f32;
    let no_speech = segments.first().map_or(0.0, |s| s.no_speech_prob);
    (avg_logprob < opts.logprob_thold && no_speech < opts.no_speech_thold)
        .then_some(Failure::LowLogprob { avg_logprob })
}

/// Of several failed decodes, the one to keep: any without a repetition loop before one
/// with, then the highest average log-probability (as faster-whisper chooses).
pub fn best_of_failed(attempts: &[(Vec<Segment>, Failure)]) -> usize {
    let score = |(segs, f): &(Vec<Segment>, Failure)| {
        (
            !matches!(f, Failure::Repetition { .. }),
            average_logprob(segs).unwrap_or(f32::NEG_INFINITY),
        )
    };
    (0..attempts.len())
        .max_by(|&a, &b| {
            let (sa, sb) = (score(&attempts[a]), score(&attempts[b]));
            sa.0.cmp(&sb.0).then(sa.1.total_cmp(&sb.1))
        })
        .unwrap_or(0)
}

/// The tokens' average log-probability over all segments (`None`: no tokens).
fn average_logprob(segments: &[Segment]) -> Option<f32> {
    let n: usize = segments.iter().map(|s| s.tokens.len()).sum();
    (n > 0).then(|| {
        segments
            .iter()
            .map(|s| s.avg_logprob * s.tokens.len() as f32)
            .sum::<f32>()
            / n as f32
    })
}

/// The entropy of the token ids' distribution, as whisper.cpp computes it.
fn entropy(ids: &[i32]) -> f32 {
    let mut counts = std::collections::HashMap::new();
    for id in ids {
        *counts.entry(id).or_insert(0usize) += 1;
    }
    let n = ids.len() as f64;
    -counts
        .values()
        .map(|&c| {
            let p = c as f64 / n;
            p * p.ln()
        })
        .sum::<f64>() as f32
}

/// The longest run of one phrase said again and again: a phrase of `n` words repeated at
/// least 4 times in a row, covering at least 10 words (so "no, no, no" or a refrain said
/// twice is speech, "thank you" five times is a loop).
pub fn repeated_phrase(text: &str) -> Option<(String, usize)> {
    let words: Vec<String> = text
        .split_whitespace()
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric() || *c == '\'')
                .flat_map(char::to_lowercase)
                .collect::<String>()
        })
        .filter(|w| !w.is_empty())
        .collect();
    let mut best: Option<(usize, usize, usize)> = None; // (start, n, times)
    for n in 1..=10.min(words.len() / 4) {
        let mut start = 0;
        while start + n <= words.len() {
            let mut times = 1;
            while start + (times + 1) * n <= words.len()
                && words[start..start + n] == words[start + times * n..start + (times + 1) * n]
            {
                times += 1;
            }
            let covered = n * times;
            if times >= 4 && covered >= 10 && best.is_none_or(|b| covered > b.1 * b.2) {
                best = Some((start, n, times));
            }
            start += if times > 1 { covered } else { 1 };
        }
    }
    best.map(|(start, n, times)| (words[start..start + n].join(" "), times))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::transcript::{segment, Token};

    fn with_tokens(text: &str, ids: &[i32], avg_logprob: f32, no_speech: f32) -> Segment {
        let mut s = segment(0.0, 1.0, text);
        s.avg_logprob = avg_logprob;
        s.no_speech_prob = no_speech;
        s.tokens = ids
            .iter()
            .map(|&id| Token {
                text: String::new(),
                start: 0.0,
                end: 0.0,
                p: 0.5,
                id,
            })
            .collect();
        s
    }

    #[test]
    fn loops_are_found_and_ordinary_repeats_are_speech() {
        let looped = "Thank you. Thank you. Thank you. Thank you. Thank you. Thank you.";
        assert_eq!(repeated_phrase(looped), Some(("thank you".into(), 6)));
        let long = format!(
            "We agreed.{}",
            " I will send the report on Monday.".repeat(5)
        );
        assert_eq!(
            repeated_phrase(&long),
            Some(("i will send the report on monday".into(), 5))
        );
        for speech in [
            "No, no, no, that is not what I said.",
            "Go team go team go team!",
            "The quick brown fox jumps over the lazy dog.",
            "",
        ] {
            assert_eq!(repeated_phrase(speech), None, "{speech}");
        }
    }

    /// The sequence of `segments`' tokens, each at its segment's average log-probability.
    fn sequence(segments: &[Segment]) -> Sequence {
        let mut q = Sequence::default();
        for s in segments {
            for t in &s.tokens {
                q.ids.push(t.id);
                q.logprobs.push(s.avg_logprob);
            }
        }
        q
    }

    fn judge_alone(s: &Segment, opts: &DecodeOptions) -> Option<Failure> {
        let one = std::slice::from_ref(s);
        judge(one, &sequence(one), opts)
    }

    #[test]
    fn decodes_are_judged_as_whisper_cpp_judges_them_and_loops_too() {
        let opts = DecodeOptions::default();
        let good = with_tokens(
            " A fine sentence.",
            &(0..40).collect::<Vec<_>>(),
            -0.3,
            0.01,
        );
        assert_eq!(judge_alone(&good, &opts), None);
        // Forty tokens that are the same two ids: low entropy.
        let ids: Vec<i32> = (0..40).map(|i| i % 2).collect();
        let flat = with_tokens(" la la", &ids, -0.1, 0.01);
        assert!(matches!(
            judge_alone(&flat, &opts),
            Some(Failure::LowEntropy { .. })
        ));
        let unsure = with_tokens(" mumble", &[1, 2, 3], -1.5, 0.1);
        assert_eq!(
            judge_alone(&unsure, &opts),
            Some(Failure::LowLogprob { avg_logprob: -1.5 })
        );
        // Unsure but probably silence: whisper.cpp does not fall back on it either.
        let silence = with_tokens(" mumble", &[1, 2, 3], -1.5, 0.9);
        assert_eq!(judge_alone(&silence, &opts), None);
        let looped = with_tokens(
            " Thank you. Thank you. Thank you. Thank you. Thank you.",
            &(0..10).collect::<Vec<_>>(),
            -0.2,
            0.01,
        );
        assert!(matches!(
            judge_alone(&looped, &opts),
            Some(Failure::Repetition { times: 5, .. })
        ));
        // Timestamp tokens count: sure words between unsure timestamps fail, as in whisper.cpp.
        let mut q = sequence(std::slice::from_ref(&good));
        q.ids.extend([50400, 50450]);
        q.logprobs.extend([-20.0, -20.0]);
        assert!(matches!(
            judge(std::slice::from_ref(&good), &q, &opts),
            Some(Failure::LowLogprob { .. })
        ));
        // Of failed decodes, one without a loop is kept before a more confident loop.
        let failed = vec![
            (
                vec![looped],
                Failure::Repetition {
                    phrase: "thank you".into(),
                    times: 5,
                },
            ),
            (vec![unsure], Failure::LowLogprob { avg_logprob: -1.5 }),
            (vec![good], Failure::LowLogprob { avg_logprob: -0.3 }),
        ];
        assert_eq!(best_of_failed(&failed), 2);
    }

    #[test]
    fn the_schedule_is_whisper_cpps() {
        let mut opts = DecodeOptions::default();
        let t = temperatures(&opts);
        assert_eq!(t.len(), 6, "{t:?}");
        assert!((t[5] - 1.0).abs() < 1e-5, "{t:?}");
        opts.temperature_inc = 0.0;
        assert_eq!(temperatures(&opts), [0.0]);
    }
}
