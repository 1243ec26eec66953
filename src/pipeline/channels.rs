//! Split channels: a stereo call recording with one speaker per channel is transcribed
//! channel by channel, so two people talking at once are each heard whole instead of mixed
//! into one garbled sentence. The left channel streams through the transcriber as it is
//! decoded while the right one is kept in a spool file (32 KB per second) and transcribed
//! after; the two transcripts are merged in time order, each segment with its `channel`
//! and `speaker`.

use serde::{Deserialize, Serialize};

use super::transcript::{Segment, Transcript};

/// How the channels of a file with several are transcribed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Channels {
    /// Mixed down to one (whisper hears what a mono listener hears).
    #[default]
    Mix,
    /// Channels 0 and 1 each on their own (further channels are left out).
    Split,
}

impl Channels {
    pub fn is_default(&self) -> bool {
        *self == Channels::Mix
    }
}

/// The label of channel `c`: its name in `names`, or `ch0`, `ch1`.
pub fn speaker(c: u8, names: &[String]) -> String {
    names
        .get(usize::from(c))
        .filter(|n| !n.trim().is_empty())
        .cloned()
        .unwrap_or_else(|| format!("ch{c}"))
}

/// Marks every segment of `t` as heard on channel `c`.
pub fn label(t: &mut Transcript, c: u8, names: &[String]) {
    for s in &mut t.segments {
        s.channel = Some(c);
        s.speaker = Some(speaker(c, names));
    }
}

/// The two channels' transcripts as one: segments in time order (they may overlap: two
/// people can talk at once), durations and timings combined, languages of both.
pub fn merge(mut left: Transcript, mut right: Transcript, names: &[String]) -> Transcript {
    label(&mut left, 0, names);
    label(&mut right, 1, names);
    let mut segments: Vec<Segment> = Vec::with_capacity(left.segments.len() + right.segments.len());
    let (mut a, mut b) = (
        left.segments.into_iter().peekable(),
        right.segments.into_iter().peekable(),
    );
    loop {
        let take_left = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => x.start <= y.start,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        segments.extend(if take_left { a.next() } else { b.next() });
    }
    let mut languages = left.languages;
    for l in right.languages {
        match languages.iter_mut().find(|x| x.language == l.language) {
            Some(x) => {
                x.probability = (x.probability + l.probability) / 2.0;
                x.seconds += l.seconds;
            }
            None => languages.push(l),
        }
    }
    languages.sort_by(|x, y| y.seconds.total_cmp(&x.seconds));
    Transcript {
        language: languages
            .first()
            .map_or(left.language, |l| l.language.clone()),
        languages,
        duration: left.duration.max(right.duration),
        segments,
        dropped_non_speech: left.dropped_non_speech + right.dropped_non_speech,
        vad_speech_seconds: match (left.vad_speech_seconds, right.vad_speech_seconds) {
            (None, None) => None,
            (x, y) => Some(x.unwrap_or(0.0) + y.unwrap_or(0.0)),
        },
        decode_seconds: left.decode_seconds + right.decode_seconds,
        asr_seconds: left.asr_seconds + right.asr_seconds,
        speakers: Vec::new(),
        turns: Vec::new(),
        diarized: false,
        overlaps: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::transcript::segment;

    fn transcript(segments: Vec<Segment>, duration: f64) -> Transcript {
        Transcript {
            language: "en".into(),
            languages: Vec::new(),
            duration,
            segments,
            dropped_non_speech: 1,
            vad_speech_seconds: Some(2.0),
            decode_seconds: 0.5,
            asr_seconds: 1.0,
            speakers: Vec::new(),
            turns: Vec::new(),
            diarized: false,
            overlaps: Vec::new(),
        }
    }

    #[test]
    fn channels_merge_in_time_order_and_keep_their_overlaps() {
        let left = transcript(
            vec![
                segment(0.0, 3.0, " Hello, how can I help?"),
                segment(5.0, 7.0, " Sure."),
            ],
            8.0,
        );
        let right = transcript(vec![segment(2.0, 6.0, " My order never came.")], 7.5);
        let names = ["agent".to_string(), "customer".to_string()];
        let t = merge(left, right, &names);
        let order: Vec<(f64, Option<u8>, Option<&str>)> = t
            .segments
            .iter()
            .map(|s| (s.start, s.channel, s.speaker.as_deref()))
            .collect();
        assert_eq!(
            order,
            [
                (0.0, Some(0), Some("agent")),
                (2.0, Some(1), Some("customer")),
                (5.0, Some(0), Some("agent")),
            ]
        );
        // The overlap (2–3 s) is kept: both were speaking.
        assert!(t.segments[0].end > t.segments[1].start);
        assert_eq!(t.duration, 8.0);
        assert_eq!((t.dropped_non_speech, t.vad_speech_seconds), (2, Some(4.0)));
        assert_eq!(speaker(1, &[]), "ch1");
    }
}
