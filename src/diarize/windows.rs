//! Where voice prints are taken: the stretches of speech the transcript found (its words,
//! which VAD and whisper's own timestamps have already placed), cut into short overlapping
//! windows. Silence gives no window, so it cannot form a speaker of its own.

use crate::pipeline::transcript::Segment;

/// Window length and step (seconds): 1.5 s is what CAM++ was evaluated on in 3D-Speaker's
/// diarization recipe, and half a window of overlap places turn changes to ~0.4 s.
pub const WINDOW: f64 = 1.5;
pub const HOP: f64 = 0.75;
/// A stretch shorter than this gives no voice print (too little to tell voices apart); its
/// words take the nearest turn's speaker.
pub const SHORTEST: f64 = 0.4;
/// Words closer than this belong to one stretch of speech.
const JOIN_GAP: f64 = 0.5;

/// The stretches of speech `segments` cover, in time order: their words joined across short
/// gaps (a segment without words counts whole).
pub fn speech(segments: &[Segment]) -> Vec<(f64, f64)> {
    let mut spans: Vec<(f64, f64)> = segments
        .iter()
        .flat_map(|s| {
            let words: Vec<(f64, f64)> = s
                .words
                .iter()
                .filter(|w| w.end > w.start)
                .map(|w| (w.start, w.end))
                .collect();
            if words.is_empty() {
                vec![(s.start, s.end)]
            } else {
                words
            }
        })
        .filter(|(a, b)| a.is_finite() && b.is_finite() && b > a)
        .collect();
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut out: Vec<(f64, f64)> = Vec::new();
    for (start, end) in spans {
        match out.last_mut() {
            Some(last) if start <= last.1 + JOIN_GAP => last.1 = last.1.max(end),
            _ => out.push((start, end)),
        }
    }
    out
}

/// The windows of `stretches`: every `HOP` seconds a `WINDOW`-long one, the last ending at
/// the stretch's end; a stretch shorter than a window is one window.
pub fn windows(stretches: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    for &(start, end) in stretches {
        let len = end - start;
        if len < SHORTEST {
            continue;
        }
        if len <= WINDOW {
            out.push((start, end));
            continue;
        }
        let mut at = start;
        while at + WINDOW < end {
            out.push((at, at + WINDOW));
            at += HOP;
        }
        out.push((end - WINDOW, end));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::transcript::{segment, Word};

    fn word(start: f64, end: f64) -> Word {
        Word {
            word: "w".into(),
            start,
            end,
            p: 0.9,
            speaker: None,
        }
    }

    #[test]
    fn words_make_stretches_and_silence_between_them_is_left_out() {
        let mut a = segment(0.0, 10.0, "a");
        a.words = vec![word(0.5, 1.0), word(1.2, 2.0), word(6.0, 7.0)];
        let b = segment(12.0, 13.0, "b");
        assert_eq!(speech(&[a, b]), [(0.5, 2.0), (6.0, 7.0), (12.0, 13.0)]);
    }

    #[test]
    fn stretches_are_cut_into_overlapping_windows_ending_at_their_end() {
        let w = windows(&[(0.0, 3.25), (4.0, 4.2), (5.0, 6.0)]);
        assert_eq!(
            w,
            [
                (0.0, 1.5),
                (0.75, 2.25),
                (1.5, 3.0),
                (1.75, 3.25),
                (5.0, 6.0)
            ]
        );
    }
}
