//! Word error rate, as evaluations of speech recognition count it: words compared after
//! case and punctuation are set aside, errors (substitutions, deletions, insertions) over
//! the reference's words, summed over a whole set before dividing (so long utterances weigh
//! what their words weigh).

/// `text` as the words WER compares: lowercase, letters, digits and inner apostrophes
/// ("don't" stays one word); everything else separates words.
pub fn words(text: &str) -> Vec<String> {
    let lowered = text.to_lowercase();
    lowered
        .split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '’'))
        .map(|w| w.trim_matches(|c| c == '\'' || c == '’').replace('’', "'"))
        .filter(|w| !w.is_empty())
        .collect()
}

/// Errors and reference words over a set of utterances.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Tally {
    pub errors: usize,
    pub reference_words: usize,
}

impl Tally {
    /// Adds one utterance: what was said (`reference`) and what the model heard.
    pub fn add(&mut self, reference: &str, hypothesis: &str) {
        let (r, h) = (words(reference), words(hypothesis));
        self.errors += strsim::generic_levenshtein(&r, &h);
        self.reference_words += r.len();
    }

    /// The rate; an empty reference gives 0 with no errors and 1 with any.
    pub fn wer(&self) -> f64 {
        match (self.errors, self.reference_words) {
            (0, _) => 0.0,
            (_, 0) => 1.0,
            (e, n) => e as f64 / n as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_and_punctuation_do_not_count_but_words_do() {
        assert_eq!(
            words("Don't stop — the RIVER, 2 times!"),
            ["don't", "stop", "the", "river", "2", "times"]
        );
        assert_eq!(words("‘Quoted’ it’s"), ["quoted", "it's"]);
        let mut t = Tally::default();
        t.add("The river runs to the sea.", "the river runs to the sea");
        assert_eq!(
            t,
            Tally {
                errors: 0,
                reference_words: 6
            }
        );
        // A substitution and an insertion, then a deletion: 3 errors over 12 words.
        t.add("The weather is fine", "the whether is fine today");
        t.add("", "");
        t.add("a b", "a");
        assert_eq!((t.errors, t.reference_words), (3, 12));
        assert!((t.wer() - 0.25).abs() < 1e-12);
        let nothing_said = Tally {
            errors: 2,
            reference_words: 0,
        };
        assert_eq!(nothing_said.wer(), 1.0);
    }
}
