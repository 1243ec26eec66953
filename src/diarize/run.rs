//! Diarizing one transcribed file: voice prints of short windows of its speech, read from
//! the job's PCM spool (the very samples that were transcribed), clustered into speakers,
//! and the transcript labelled with who spoke when.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::campplus::CamPlus;
use super::cluster::{cluster_with_centroids, SpeakerCount};
use super::embeddings::EmbeddingSpool;
use super::fbank::{subtract_mean, Fbank, SAMPLE_RATE};
use super::names::Known;
use super::turns::{self, Turn};
use super::windows;
use crate::pipeline::cancel::{Cancel, Stopped};
use crate::pipeline::transcript::{Segment, SpeakerTime};

/// Cosine similarity below which two groups of windows are different speakers, measured on
/// the 20 generated conversations of `scripts/bench-diarization.sh` (DER with tiny.en: 0.5
/// 14.5 %, 0.6 7.4 %, 0.7 8.9 %: too low merges voices, too high splits one).
pub const DEFAULT_THRESHOLD: f32 = 0.6;
/// How alike a speaker must be to a known voice to take its name. Prints of one generated
/// voice from different sentences scored 0.95–0.98, of two different voices 0.47–0.76: a
/// wrong name is worse than a number, so the bar is high.
pub const DEFAULT_MATCH_THRESHOLD: f32 = 0.8;

/// What `diarize = true` runs with (a profile's keys; part of the dedup scope).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DiarizeOptions {
    /// The imported speaker model (`speaker-campplus.safetensors`).
    pub model: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_speakers: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_speakers: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_speakers: Option<usize>,
    pub threshold: f32,
    /// How alike (cosine) a speaker and a known voice must be for the speaker to take its
    /// name.
    pub match_threshold: f32,
    /// Which known voices name speakers.
    #[serde(skip_serializing_if = "SpeakersFrom::is_default")]
    pub speakers_from: SpeakersFrom,
    /// The segmentation model that finds two people talking at once (found beside the
    /// speaker model; without it, overlaps are not marked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segmentation: Option<PathBuf>,
    /// The known voices, loaded by the job (from the journal) just before it runs.
    #[serde(skip)]
    pub known: Vec<Known>,
}

/// Where speakers' names come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpeakersFrom {
    /// Enrolled voices (`hotfolderd speakers enroll`).
    #[default]
    Enrolled,
    /// Enrolled voices, and the speakers of the source's earlier inputs: one person keeps
    /// one label across a folder of recordings.
    Folder,
}

impl SpeakersFrom {
    pub fn is_default(&self) -> bool {
        *self == SpeakersFrom::Enrolled
    }
}

impl DiarizeOptions {
    pub fn count(&self) -> SpeakerCount {
        SpeakerCount {
            exactly: self.num_speakers,
            min: self.min_speakers,
            max: self.max_speakers,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DiarizeError {
    #[error("cannot load the speaker model: {0}")]
    Model(#[from] crate::model::ModelError),
    #[error("cannot read the decoded audio or keep voice prints: {0}")]
    Spool(#[from] std::io::Error),
    #[error("{0}")]
    Stopped(Stopped),
}

/// Who spoke when in one file.
#[derive(Debug, Clone, PartialEq)]
pub struct Diarization {
    pub turns: Vec<Turn>,
    /// Each speaker's voice print (unit length), by speaker number.
    pub voices: Vec<Vec<f32>>,
}

/// Diarizes the speech of `segments` in `pcm` (16 kHz mono 16-bit, a `PcmSpool` file),
/// embedding windows on up to `threads` threads.
pub fn diarize(
    model: &CamPlus,
    pcm: &Path,
    segments: &[Segment],
    opts: &DiarizeOptions,
    threads: usize,
    cancel: &Cancel,
    spool_dir: &Path,
) -> Result<Diarization, DiarizeError> {
    // Speech as the transcript places it, within the audio kept (times may run past it).
    let kept = std::fs::metadata(pcm)?.len() as f64 / 2.0 / SAMPLE_RATE as f64;
    let stretches: Vec<(f64, f64)> = windows::speech(segments)
        .into_iter()
        .map(|(a, b)| (a.min(kept), b.min(kept)))
        .collect();
    let candidates = windows::windows(&stretches);
    let mut windows = Vec::with_capacity(candidates.len());
    let mut spool = EmbeddingSpool::create(spool_dir, super::campplus::DIM)?;
    // Batches bound what is held at once; each batch is split across the threads.
    const BATCH: usize = 64;
    let threads = threads.clamp(1, BATCH);
    for batch in candidates.chunks(BATCH) {
        if let Some(why) = cancel.stopped() {
            return Err(DiarizeError::Stopped(why));
        }
        let per_thread = batch.len().div_ceil(threads);
        let embedded: Vec<std::io::Result<Vec<Option<Vec<f32>>>>> = std::thread::scope(|s| {
            let handles: Vec<_> = batch
                .chunks(per_thread)
                .map(|part| s.spawn(move || embed_all(model, pcm, part)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(std::io::Error::other("a voice print thread panicked"))
                    })
                })
                .collect()
        });
        let prints = embedded.into_iter().collect::<Result<Vec<_>, _>>()?;
        // A window too short for a print (never, within the audio) gives no speaker.
        for (window, print) in batch.iter().zip(prints.into_iter().flatten()) {
            if let Some(p) = print {
                spool.push(&p)?;
                windows.push(*window);
            }
        }
    }
    spool.finish()?;
    let (labels, voices) = cluster_with_centroids(&mut spool, opts.threshold, opts.count())?;
    Ok(Diarization {
        turns: turns::turns(&windows, &labels),
        voices,
    })
}

/// The voice prints of `windows`, in order (`None`: too short for one).
fn embed_all(
    model: &CamPlus,
    pcm: &Path,
    windows: &[(f64, f64)],
) -> std::io::Result<Vec<Option<Vec<f32>>>> {
    let mut file = File::open(pcm)?;
    let fbank = Fbank::new();
    let mut out = Vec::with_capacity(windows.len());
    for &(start, end) in windows {
        let audio = read_samples(&mut file, start, end)?;
        out.push(embed(model, &fbank, &audio));
    }
    Ok(out)
}

/// The voice print of `audio` (16 kHz mono), or `None` when it is too short to have one.
pub fn embed(model: &CamPlus, fbank: &Fbank, audio: &[f32]) -> Option<Vec<f32>> {
    let mut features = fbank.compute(audio);
    subtract_mean(&mut features);
    (features.len() >= 2 * super::fbank::MEL_BINS).then(|| model.embed(&features))
}

/// Samples `[start, end)` seconds of a 16-bit spool, as floats.
pub(super) fn read_samples(file: &mut File, start: f64, end: f64) -> std::io::Result<Vec<f32>> {
    let rate = SAMPLE_RATE as f64;
    let first = (start.max(0.0) * rate).round() as u64;
    let last = (end.max(start) * rate).round() as u64;
    let have = file.metadata()?.len() / 2;
    let (first, last) = (first.min(have), last.min(have));
    file.seek(SeekFrom::Start(first * 2))?;
    let mut bytes = vec![0u8; ((last - first) * 2) as usize];
    file.read_exact(&mut bytes)?;
    Ok(bytes
        .chunks_exact(2)
        .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32767.0)
        .collect())
}

/// Each speaker's talk time (the length of their turns), in speaker order.
pub fn talk_times(turns: &[Turn], names: &[String]) -> Vec<SpeakerTime> {
    names
        .iter()
        .enumerate()
        .map(|(i, name)| SpeakerTime {
            name: name.clone(),
            talk_seconds: turns
                .iter()
                .filter(|t| t.speaker == i)
                .map(|t| t.end - t.start)
                .sum(),
        })
        .collect()
}
