//! Voice prints of known people (`hotfolderd speakers enroll NAME FILE...`): the speech of
//! each file (Silero VAD where its model is found, else every window loud enough), cut into
//! the windows diarization uses, embedded, and averaged. A file whose windows disagree is
//! refused: it holds more than one voice, and would enrol a blend.

use std::path::{Path, PathBuf};

use super::campplus::{CamPlus, DIM};
use super::cluster::{cosine, normalized};
use super::fbank::{Fbank, SAMPLE_RATE};
use super::run::embed;
use super::windows;
use crate::pipeline::decode::{AudioDecoder16k, DecodeError};
use crate::pipeline::vad::Vad;

/// Audio decoded and searched for speech at a time.
const CHUNK_SECONDS: usize = 30;
/// Least speech an enrolment needs (seconds).
pub const MIN_SPEECH: f64 = 3.0;
/// A window this far from its file's average voice (cosine) is another voice.
const SAME_VOICE: f32 = 0.3;
/// More than this share of such windows: the file holds several voices.
const OTHER_VOICES_ALLOWED: f64 = 0.2;
/// Without VAD: windows quieter than this (dBFS) are silence.
const SILENCE_DBFS: f32 = -40.0;

#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("{}: {source}", .path.display())]
    Decode { path: PathBuf, source: DecodeError },
    #[error("{}: {reason}", .path.display())]
    Vad { path: PathBuf, reason: String },
    #[error("{}: only {seconds:.1} s of speech found; a voice print needs at least {MIN_SPEECH} s (give a longer recording of the person speaking)", .path.display())]
    TooLittleSpeech { path: PathBuf, seconds: f64 },
    #[error("{}: {share:.0} % of its speech does not sound like the rest: it seems to hold more than one voice. Enrol from recordings of this person alone", .path.display())]
    SeveralVoices { path: PathBuf, share: f64 },
}

/// One file's voice print.
#[derive(Debug, Clone)]
pub struct FilePrint {
    /// Unit length.
    pub print: Vec<f32>,
    /// Seconds of speech it was made from.
    pub seconds: f64,
}

/// The voice print of the one person speaking in `path`.
pub fn file_print(
    model: &CamPlus,
    path: &Path,
    mut vad: Option<&mut Vad>,
) -> Result<FilePrint, EnrollError> {
    let decode = |source| EnrollError::Decode {
        path: path.to_path_buf(),
        source,
    };
    let mut decoder = AudioDecoder16k::open_path(path).map_err(decode)?;
    let fbank = Fbank::new();
    let rate = SAMPLE_RATE as f64;
    let mut prints: Vec<Vec<f32>> = Vec::new();
    let mut seconds = 0.0;
    let mut chunk = Vec::new();
    loop {
        chunk.clear();
        if decoder
            .read(&mut chunk, CHUNK_SECONDS * SAMPLE_RATE)
            .map_err(decode)?
            == 0
        {
            break;
        }
        let spans: Vec<(f64, f64)> = match vad.as_deref_mut() {
            Some(v) => v
                .speech(&chunk)
                .map_err(|reason| EnrollError::Vad {
                    path: path.to_path_buf(),
                    reason,
                })?
                .into_iter()
                .map(|(a, b)| (a as f64 / rate, b as f64 / rate))
                .collect(),
            None => loud_stretches(&chunk),
        };
        for (start, end) in windows::windows(&spans) {
            let (a, b) = (
                (start * rate) as usize,
                ((end * rate) as usize).min(chunk.len()),
            );
            if let Some(e) = embed(model, &fbank, &chunk[a.min(b)..b]) {
                prints.push(normalized(&e));
            }
        }
        seconds += spans
            .iter()
            .map(|(a, b)| b - a)
            .filter(|d| *d >= windows::SHORTEST)
            .sum::<f64>();
    }
    if prints.is_empty() || seconds < MIN_SPEECH {
        return Err(EnrollError::TooLittleSpeech {
            path: path.to_path_buf(),
            seconds,
        });
    }
    let print = mean(&prints);
    let strays = prints
        .iter()
        .filter(|p| cosine(p, &print) < SAME_VOICE)
        .count();
    let share = strays as f64 / prints.len() as f64;
    if share > OTHER_VOICES_ALLOWED {
        return Err(EnrollError::SeveralVoices {
            path: path.to_path_buf(),
            share: 100.0 * share,
        });
    }
    Ok(FilePrint { print, seconds })
}

/// One print from several files' prints, each weighted by its seconds of speech.
pub fn combine(files: &[FilePrint]) -> Vec<f32> {
    let mut sum = vec![0f32; DIM];
    for f in files {
        for (s, v) in sum.iter_mut().zip(&f.print) {
            *s += v * f.seconds as f32;
        }
    }
    normalized(&sum)
}

/// Stretches (seconds) where 0.1 s frames are louder than [`SILENCE_DBFS`].
fn loud_stretches(samples: &[f32]) -> Vec<(f64, f64)> {
    let frame = SAMPLE_RATE / 10;
    let mut out: Vec<(f64, f64)> = Vec::new();
    for (i, f) in samples.chunks(frame).enumerate() {
        let power = f.iter().map(|s| s * s).sum::<f32>() / f.len().max(1) as f32;
        if 10.0 * power.max(1e-12).log10() < SILENCE_DBFS {
            continue;
        }
        let (start, end) = (
            i as f64 * 0.1,
            (i as f64 * 0.1 + f.len() as f64 / SAMPLE_RATE as f64),
        );
        match out.last_mut() {
            Some(last) if (start - last.1).abs() < 1e-9 => last.1 = end,
            _ => out.push((start, end)),
        }
    }
    out
}

fn mean(prints: &[Vec<f32>]) -> Vec<f32> {
    let mut sum = vec![0f32; DIM];
    for p in prints {
        for (s, v) in sum.iter_mut().zip(p) {
            *s += v;
        }
    }
    normalized(&sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loud_frames_make_stretches_and_quiet_ones_end_them() {
        let rate = SAMPLE_RATE;
        let mut s = vec![0.0f32; rate / 2];
        s.extend((0..rate).map(|i| (i as f32 * 0.05).sin() * 0.3));
        s.extend(vec![0.0f32; rate / 2]);
        let spans = loud_stretches(&s);
        assert_eq!(spans.len(), 1);
        assert!(
            (spans[0].0 - 0.5).abs() < 1e-9 && (spans[0].1 - 1.5).abs() < 1e-9,
            "{spans:?}"
        );
    }

    #[test]
    fn prints_combine_by_their_seconds() {
        let mut a = vec![0f32; DIM];
        a[0] = 1.0;
        let mut b = vec![0f32; DIM];
        b[1] = 1.0;
        let c = combine(&[
            FilePrint {
                print: a,
                seconds: 3.0,
            },
            FilePrint {
                print: b,
                seconds: 1.0,
            },
        ]);
        assert!(
            (c[0] - 0.9487).abs() < 1e-3 && (c[1] - 0.3162).abs() < 1e-3,
            "{:?}",
            &c[..2]
        );
    }
}
