//! Diarization error rate, as NIST's md-eval and pyannote.metrics define it: missed speech,
//! false alarms and speaker confusion over the reference's speech time, with the best
//! one-to-one mapping of hypothesis speakers to reference ones, and a `collar` around each
//! reference boundary left unscored. Counted on a 10 ms grid; overlapping reference
//! speakers count each (a hypothesis with one speaker there misses the other).

/// One speaker's stretch, as the reference or the hypothesis gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub start: f64,
    pub end: f64,
    pub speaker: String,
}

/// The parts of a score, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Der {
    pub scored_speech: f64,
    pub missed: f64,
    pub false_alarm: f64,
    pub confusion: f64,
}

impl Der {
    pub fn rate(&self) -> f64 {
        if self.scored_speech > 0.0 {
            (self.missed + self.false_alarm + self.confusion) / self.scored_speech
        } else {
            0.0
        }
    }
}

const STEP: f64 = 0.01;

fn names(spans: &[Span]) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for s in spans {
        if !out.contains(&s.speaker.as_str()) {
            out.push(&s.speaker);
        }
    }
    out
}

/// Who speaks in each frame: a bit per speaker.
fn frames(spans: &[Span], speakers: &[&str], n: usize) -> Vec<u64> {
    let mut f = vec![0u64; n];
    for s in spans {
        let Some(bit) = speakers.iter().position(|x| *x == s.speaker) else {
            continue;
        };
        let (a, b) = (
            (s.start / STEP).round() as usize,
            (s.end / STEP).round() as usize,
        );
        for v in f.iter_mut().take(b.min(n)).skip(a) {
            *v |= 1 << bit.min(63);
        }
    }
    f
}

/// Scores `hypothesis` against `reference`.
pub fn score(reference: &[Span], hypothesis: &[Span], collar: f64) -> Der {
    let end = reference
        .iter()
        .chain(hypothesis)
        .map(|s| s.end)
        .fold(0.0, f64::max);
    let n = (end / STEP).ceil() as usize + 1;
    let (ref_names, hyp_names) = (names(reference), names(hypothesis));
    let (r, h) = (
        frames(reference, &ref_names, n),
        frames(hypothesis, &hyp_names, n),
    );
    let mut scored = vec![true; n];
    for s in reference {
        for edge in [s.start, s.end] {
            let a = ((edge - collar) / STEP).round().max(0.0) as usize;
            let b = (((edge + collar) / STEP).round() as usize).min(n);
            for v in scored.iter_mut().take(b).skip(a) {
                *v = false;
            }
        }
    }
    // Overlap (frames) of each hypothesis speaker with each reference one.
    let mut overlap = vec![vec![0usize; ref_names.len()]; hyp_names.len()];
    for i in (0..n).filter(|&i| scored[i]) {
        for (hi, row) in overlap.iter_mut().enumerate() {
            if h[i] & (1 << hi) != 0 {
                for (ri, cell) in row.iter_mut().enumerate() {
                    if r[i] & (1 << ri) != 0 {
                        *cell += 1;
                    }
                }
            }
        }
    }
    let mapping = best_mapping(&overlap, ref_names.len());
    let mut der = Der::default();
    for i in (0..n).filter(|&i| scored[i]) {
        let (nr, nh) = (r[i].count_ones() as usize, h[i].count_ones() as usize);
        let mapped = (0..hyp_names.len())
            .filter(|&hi| h[i] & (1 << hi) != 0)
            .filter_map(|hi| mapping[hi])
            .filter(|&ri| r[i] & (1 << ri) != 0)
            .count();
        der.scored_speech += nr as f64 * STEP;
        der.missed += nr.saturating_sub(nh) as f64 * STEP;
        der.false_alarm += nh.saturating_sub(nr) as f64 * STEP;
        der.confusion += (nr.min(nh) - mapped.min(nr.min(nh))) as f64 * STEP;
    }
    der
}

/// The one-to-one mapping (hypothesis → reference) with the most overlap: exhaustive for
/// the few speakers a recording has, greedy beyond.
fn best_mapping(overlap: &[Vec<usize>], refs: usize) -> Vec<Option<usize>> {
    fn search(
        overlap: &[Vec<usize>],
        h: usize,
        used: &mut Vec<bool>,
        current: &mut Vec<Option<usize>>,
        best: &mut (usize, Vec<Option<usize>>),
        total: usize,
    ) {
        if h == overlap.len() {
            if total > best.0 || best.1.is_empty() {
                *best = (total, current.clone());
            }
            return;
        }
        current.push(None);
        search(overlap, h + 1, used, current, best, total);
        current.pop();
        for r in 0..used.len() {
            if !used[r] {
                used[r] = true;
                current.push(Some(r));
                search(overlap, h + 1, used, current, best, total + overlap[h][r]);
                current.pop();
                used[r] = false;
            }
        }
    }
    if overlap.len() <= 7 && refs <= 7 {
        let mut best = (0, Vec::new());
        search(
            overlap,
            0,
            &mut vec![false; refs],
            &mut Vec::new(),
            &mut best,
            0,
        );
        return best.1;
    }
    let mut pairs: Vec<(usize, usize, usize)> = overlap
        .iter()
        .enumerate()
        .flat_map(|(h, row)| row.iter().enumerate().map(move |(r, &o)| (o, h, r)))
        .collect();
    pairs.sort_unstable_by(|a, b| b.cmp(a));
    let mut mapping = vec![None; overlap.len()];
    let mut used = vec![false; refs];
    for (o, h, r) in pairs {
        if o > 0 && mapping[h].is_none() && !used[r] {
            mapping[h] = Some(r);
            used[r] = true;
        }
    }
    mapping
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(start: f64, end: f64, who: &str) -> Span {
        Span {
            start,
            end,
            speaker: who.into(),
        }
    }

    #[test]
    fn a_perfect_answer_under_other_names_scores_zero() {
        let reference = [
            span(0.0, 4.0, "alice"),
            span(4.0, 9.0, "bob"),
            span(9.0, 10.0, "alice"),
        ];
        let hypothesis = [
            span(0.0, 4.0, "S2"),
            span(4.0, 9.0, "S1"),
            span(9.0, 10.0, "S2"),
        ];
        let d = score(&reference, &hypothesis, 0.25);
        assert!(d.rate() < 1e-9, "{d:?}");
        // Unscored: 0.25 s after the start and before the end, 0.5 s around each change.
        assert!((d.scored_speech - 8.5).abs() < 0.02, "{d:?}");
    }

    #[test]
    fn misses_false_alarms_and_confusion_are_counted() {
        let reference = [span(0.0, 10.0, "alice"), span(10.0, 20.0, "bob")];
        // Bob's last 4 s heard as Alice; 2 s of silence called speech; 3 s of Alice missed.
        let hypothesis = [
            span(0.0, 7.0, "A"),
            span(10.0, 16.0, "B"),
            span(16.0, 20.0, "A"),
            span(21.0, 23.0, "B"),
        ];
        let d = score(&reference, &hypothesis, 0.0);
        assert!((d.missed - 3.0).abs() < 0.02, "{d:?}");
        assert!((d.false_alarm - 2.0).abs() < 0.02, "{d:?}");
        assert!((d.confusion - 4.0).abs() < 0.02, "{d:?}");
        assert!((d.rate() - 9.0 / 20.0).abs() < 0.002, "{d:?}");
    }

    #[test]
    fn overlapping_reference_speech_counts_each_speaker() {
        let reference = [span(0.0, 6.0, "alice"), span(4.0, 10.0, "bob")];
        let hypothesis = [span(0.0, 5.0, "x"), span(5.0, 10.0, "y")];
        let d = score(&reference, &hypothesis, 0.0);
        assert!((d.scored_speech - 12.0).abs() < 0.02);
        // Two speakers for 2 s, one heard: 2 s missed.
        assert!((d.missed - 2.0).abs() < 0.02, "{d:?}");
    }
}
