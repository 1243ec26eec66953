//! Languages that change within a file (`language_per_segment`). With VAD, each stretch of
//! speech (a VAD span of at least `MIN_DETECT_SECONDS`) gets its own detection, and a call
//! ends before the first stretch in another language, so every call is decoded in one
//! language; without VAD each call (up to 30 s) is detected on its own. whisper.cpp
//! detects once per file, and so did hotfolderd: a German half after an English start came
//! out as invented English.

use std::collections::HashMap;

use serde::Serialize;

use super::resample::TARGET_RATE;
use super::seek::CHUNK_SAMPLES;
use super::transcribe::TranscribeError;
use super::transcript::Segment;

/// Shorter stretches ("ja", "okay") are too short to tell a language by: they take the
/// language of the stretch before them.
const MIN_DETECT_SECONDS: f64 = 1.0;

/// One detection: the language and its probability.
pub type Detected = (String, f32);

/// Detects the language of some audio.
pub type Detect<'a> = dyn FnMut(&[f32]) -> Result<Detected, TranscribeError> + 'a;

/// The languages found so far, by stretch of speech.
#[derive(Default)]
pub struct SpanLanguages {
    /// By the stretch's first sample in the input.
    by_start: HashMap<u64, Detected>,
    /// The previous call's language: a short stretch at the start of a call takes it.
    last: Option<Detected>,
}

impl SpanLanguages {
    /// Of the speech `spans` (in `buf`, which starts at input sample `buf_start`) that one
    /// call could hold, the index of the first in another language than the first span's,
    /// and the first span's language.
    pub fn first_change(
        &mut self,
        buf: &[f32],
        buf_start: u64,
        spans: &[(usize, usize)],
        detect: &mut Detect<'_>,
    ) -> Result<(Option<usize>, Option<Detected>), TranscribeError> {
        self.by_start.retain(|&start, _| start >= buf_start);
        let mut first: Option<Detected> = None;
        let mut current: Option<Detected> = self.last.clone();
        let mut held = 0usize;
        let min = (MIN_DETECT_SECONDS * f64::from(TARGET_RATE)) as usize;
        for (i, &(a, b)) in spans.iter().enumerate() {
            held += b - a;
            if i > 0 && held > CHUNK_SAMPLES {
                break;
            }
            let lang = if b - a >= min || current.is_none() {
                let key = buf_start + a as u64;
                match self.by_start.get(&key) {
                    Some(d) => d.clone(),
                    None => {
                        let d = detect(&buf[a..b])?;
                        self.by_start.insert(key, d.clone());
                        d
                    }
                }
            } else {
                current.clone().unwrap_or_default()
            };
            match &first {
                None => first = Some(lang.clone()),
                Some(f) if f.0 != lang.0 => {
                    self.last.clone_from(&first);
                    return Ok((Some(i), first));
                }
                Some(_) => {}
            }
            current = Some(lang);
        }
        // A call without speech keeps the language of the one before.
        if first.is_some() {
            self.last.clone_from(&first);
        }
        Ok((None, first))
    }
}

/// One language of a transcript: the mean probability of its detections and the seconds of
/// segments in it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LanguageShare {
    pub language: String,
    pub probability: f32,
    #[serde(serialize_with = "super::transcript::millis")]
    pub seconds: f64,
}

/// The languages detected (`detections`, in order) with the seconds of `segments` in each,
/// the most spoken first.
pub fn shares(detections: &[Detected], segments: &[Segment]) -> Vec<LanguageShare> {
    let mut out: Vec<LanguageShare> = Vec::new();
    let mut counts: Vec<usize> = Vec::new();
    for (language, p) in detections {
        match out.iter().position(|s| s.language == *language) {
            Some(i) => {
                out[i].probability += p;
                counts[i] += 1;
            }
            None => {
                out.push(LanguageShare {
                    language: language.clone(),
                    probability: *p,
                    seconds: 0.0,
                });
                counts.push(1);
            }
        }
    }
    for (s, n) in out.iter_mut().zip(&counts) {
        s.probability /= *n as f32;
        s.seconds = segments
            .iter()
            .filter(|seg| seg.language.as_deref() == Some(s.language.as_str()))
            .map(|seg| seg.end - seg.start)
            .sum();
    }
    out.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: usize = TARGET_RATE as usize;

    #[test]
    fn a_call_ends_before_the_first_stretch_in_another_language() {
        // Stretches of 2 s, 0.5 s, 2 s and 2 s; the last is "German".
        let buf = vec![0.0f32; 12 * SEC];
        let spans = [
            (0, 2 * SEC),
            (3 * SEC, 3 * SEC + SEC / 2),
            (4 * SEC, 6 * SEC),
            (8 * SEC, 10 * SEC),
        ];
        let mut asked = Vec::new();
        let mut detect = |s: &[f32]| {
            asked.push(s.len());
            let lang = if asked.len() == 3 { "de" } else { "en" };
            Ok((lang.to_string(), 0.9))
        };
        let mut langs = SpanLanguages::default();
        let (change, first) = langs.first_change(&buf, 0, &spans, &mut detect).unwrap();
        assert_eq!(change, Some(3));
        assert_eq!(first.unwrap().0, "en");
        // The short stretch took the language before it, unasked.
        assert_eq!(asked, [2 * SEC, 2 * SEC, 2 * SEC]);
        // Asked again (the next call starts at the German stretch), nothing is detected twice.
        let mut again = |_: &[f32]| -> Result<Detected, TranscribeError> {
            Err(TranscribeError::Asr("detected twice".into()))
        };
        let (change, first) = langs
            .first_change(&buf, 0, &spans[..1], &mut again)
            .unwrap();
        assert_eq!((change, first.unwrap().0.as_str()), (None, "en"));
        // A short stretch opening the next call keeps the language before it.
        let short = [(0, SEC / 2), (SEC, 3 * SEC)];
        let mut fresh = SpanLanguages {
            last: Some(("de".into(), 0.8)),
            ..SpanLanguages::default()
        };
        let mut asked = 0;
        let mut detect = |_: &[f32]| {
            asked += 1;
            Ok(("de".to_string(), 0.9))
        };
        let (change, first) = fresh.first_change(&buf, 0, &short, &mut detect).unwrap();
        assert_eq!((change, first.unwrap().0.as_str(), asked), (None, "de", 1));
    }

    #[test]
    fn shares_count_seconds_per_language_most_spoken_first() {
        let seg = |start: f64, end: f64, l: &str| {
            let mut s = crate::pipeline::transcript::segment(start, end, "x");
            s.language = Some(l.into());
            s
        };
        let segments = [
            seg(0.0, 2.0, "en"),
            seg(2.0, 7.0, "de"),
            seg(7.0, 8.0, "en"),
        ];
        let detections = [
            ("en".to_string(), 0.8),
            ("de".to_string(), 0.6),
            ("en".to_string(), 0.6),
        ];
        let s = shares(&detections, &segments);
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].language.as_str(), s[0].seconds), ("de", 5.0));
        assert_eq!(s[1].language, "en");
        assert!((s[1].probability - 0.7).abs() < 1e-6);
        assert_eq!(s[1].seconds, 3.0);
    }
}
