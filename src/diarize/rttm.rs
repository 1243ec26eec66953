//! RTTM, the Rich Transcription Time Marked format that NIST's md-eval, pyannote and
//! pyannote.metrics read and write: one `SPEAKER` line per turn,
//! `SPEAKER <file> 1 <start> <duration> <NA> <NA> <speaker> <NA> <NA>`.

use super::der::Span;
use crate::pipeline::transcript::SpeakerTurn;

/// The turns of `file` as RTTM lines (the file id is its name without folders or
/// extension, spaces replaced: fields are space-separated).
pub fn write(file: &str, turns: &[SpeakerTurn]) -> String {
    let name = std::path::Path::new(file)
        .file_stem()
        .map(|s| s.to_string_lossy().replace(char::is_whitespace, "_"))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "audio".into());
    turns
        .iter()
        .map(|t| {
            format!(
                "SPEAKER {name} 1 {:.3} {:.3} <NA> <NA> {} <NA> <NA>\n",
                t.start,
                (t.end - t.start).max(0.0),
                t.speaker.replace(char::is_whitespace, "_")
            )
        })
        .collect()
}

#[derive(Debug, thiserror::Error)]
#[error("line {line}: {reason} (an RTTM line is `SPEAKER FILE 1 START DURATION <NA> <NA> NAME <NA> <NA>`)")]
pub struct RttmError {
    pub line: usize,
    pub reason: String,
}

/// The `SPEAKER` lines of an RTTM file as (file id, span) (other line types are skipped).
pub fn parse(text: &str) -> Result<Vec<(String, Span)>, RttmError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.first() != Some(&"SPEAKER") {
            continue;
        }
        let bad = |reason: String| RttmError {
            line: i + 1,
            reason,
        };
        if fields.len() < 8 {
            return Err(bad(format!("{} fields, 8 or more expected", fields.len())));
        }
        let number = |k: usize, what: &str| -> Result<f64, RttmError> {
            fields[k]
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| bad(format!("{what} {:?} is not a number of seconds", fields[k])))
        };
        let (start, duration) = (number(3, "start")?, number(4, "duration")?);
        out.push((
            fields[1].to_string(),
            Span {
                start,
                end: start + duration,
                speaker: fields[7].to_string(),
            },
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_written_are_read_back() {
        let turns = vec![
            SpeakerTurn {
                start: 0.5,
                end: 2.25,
                speaker: "S1".into(),
            },
            SpeakerTurn {
                start: 2.25,
                end: 4.0,
                speaker: "Ada Lovelace".into(),
            },
        ];
        let text = write("in/my talk.wav", &turns);
        assert!(text.starts_with("SPEAKER my_talk 1 0.500 1.750 <NA> <NA> S1 <NA> <NA>\n"));
        let spans = parse(&format!(";; comment\n{text}")).unwrap();
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[1].0, "my_talk");
        assert_eq!(spans[1].1.speaker, "Ada_Lovelace");
        assert!((spans[1].1.end - 4.0).abs() < 1e-9);
        let e = parse("SPEAKER f 1 x 2 <NA> <NA> a <NA> <NA>").unwrap_err();
        assert!(e.to_string().contains("line 1: start \"x\""), "{e}");
        assert!(parse("SPEAKER f 1 1").is_err());
    }
}
