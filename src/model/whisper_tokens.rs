//! Whisper's special token ids, which follow from the vocabulary size alone (as whisper.cpp
//! derives them): English-only models have 51864 tokens, multilingual ones 51865 (51866
//! with v3's hundredth language).

/// Language codes in token order (`<|en|>` first), as OpenAI's tokenizer lists them.
pub const LANGUAGES: [&str; 100] = [
    "en", "zh", "de", "es", "ru", "ko", "fr", "ja", "pt", "tr", "pl", "ca", "nl", "ar", "sv", "it",
    "id", "hi", "fi", "vi", "he", "uk", "el", "ms", "cs", "ro", "da", "hu", "ta", "no", "th", "ur",
    "hr", "bg", "lt", "la", "mi", "ml", "cy", "sk", "te", "fa", "lv", "bn", "sr", "az", "sl", "kn",
    "et", "mk", "br", "eu", "is", "hy", "ne", "mn", "bs", "kk", "sq", "sw", "gl", "mr", "pa", "si",
    "km", "sn", "yo", "so", "af", "oc", "ka", "be", "tg", "sd", "gu", "am", "yi", "lo", "uz", "fo",
    "ht", "ps", "tk", "nn", "mt", "sa", "lb", "my", "bo", "tl", "mg", "as", "tt", "haw", "ln",
    "ha", "ba", "jw", "su", "yue",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecialTokens {
    pub multilingual: bool,
    pub eot: usize,
    pub sot: usize,
    /// Language tokens are `sot + 1 ..= sot + languages`.
    pub languages: usize,
    pub translate: usize,
    pub transcribe: usize,
    pub start_of_lm: usize,
    pub start_of_prev: usize,
    pub no_speech: usize,
    pub no_timestamps: usize,
    /// `<|0.00|>`; timestamps go on in steps of 0.02 s to the end of the vocabulary.
    pub timestamp_begin: usize,
}

impl SpecialTokens {
    pub fn for_vocab(n_vocab: usize) -> Option<SpecialTokens> {
        let multilingual = n_vocab >= 51865;
        let eot = 50256 + usize::from(multilingual);
        let languages = n_vocab.checked_sub(51765 + usize::from(multilingual))?;
        if !(1..=LANGUAGES.len()).contains(&languages) {
            return None;
        }
        let sot = eot + 1;
        let translate = sot + 1 + languages;
        Some(SpecialTokens {
            multilingual,
            eot,
            sot,
            languages,
            translate,
            transcribe: translate + 1,
            start_of_lm: translate + 2,
            start_of_prev: translate + 3,
            no_speech: translate + 4,
            no_timestamps: translate + 5,
            timestamp_begin: translate + 6,
        })
    }

    /// Every special token's text and id, in id order (`<|endoftext|>` … the last timestamp).
    pub fn all(&self, n_vocab: usize) -> Vec<(String, usize)> {
        let mut out = vec![
            ("<|endoftext|>".to_string(), self.eot),
            ("<|startoftranscript|>".to_string(), self.sot),
        ];
        for (i, code) in LANGUAGES.iter().take(self.languages).enumerate() {
            out.push((format!("<|{code}|>"), self.sot + 1 + i));
        }
        for (text, id) in [
            ("<|translate|>", self.translate),
            ("<|transcribe|>", self.transcribe),
            ("<|startoflm|>", self.start_of_lm),
            ("<|startofprev|>", self.start_of_prev),
            ("<|nocaptions|>", self.no_speech),
            ("<|notimestamps|>", self.no_timestamps),
        ] {
            out.push((text.to_string(), id));
        }
        for id in self.timestamp_begin..n_vocab {
            let t = (id - self.timestamp_begin) as f64 * 0.02;
            out.push((format!("<|{t:.2}|>"), id));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_match_whisper_cpp_for_english_multilingual_and_v3() {
        let en = SpecialTokens::for_vocab(51864).unwrap();
        assert_eq!(
            (en.eot, en.sot, en.translate, en.no_timestamps),
            (50256, 50257, 50357, 50362)
        );
        assert_eq!(en.timestamp_begin, 50363);
        let multi = SpecialTokens::for_vocab(51865).unwrap();
        assert_eq!(
            (multi.eot, multi.sot, multi.transcribe),
            (50257, 50258, 50359)
        );
        assert_eq!(multi.no_timestamps, 50363);
        let v3 = SpecialTokens::for_vocab(51866).unwrap();
        assert_eq!(
            (v3.languages, v3.translate, v3.timestamp_begin),
            (100, 50359, 50365)
        );
        assert_eq!(SpecialTokens::for_vocab(1000), None);
        let all = en.all(51864);
        assert_eq!(all.last().unwrap(), &("<|30.00|>".to_string(), 51863));
    }
}
