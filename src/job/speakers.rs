//! The job's diarization step: the transcript labelled with who spoke when, from the
//! decoded audio the job kept.

use std::path::Path;
use std::sync::{Arc, Mutex};

use super::failure::{Failure, Stage};
use crate::dataset::pcm::PcmSpool;
use crate::diarize::run::{diarize, talk_times, DiarizeError, DiarizeOptions};
use crate::diarize::{model, turns};
use crate::pipeline::transcribe::DecodeOptions;
use crate::pipeline::transcript::{SpeakerTurn, Transcript};

/// `transcript` with speakers on its segments and words, and their talk times.
pub fn diarized(
    mut transcript: Transcript,
    d: &DiarizeOptions,
    spool: &Arc<Mutex<PcmSpool>>,
    pcm: &Path,
    opts: &DecodeOptions,
    spool_dir: &Path,
) -> Result<Transcript, Failure> {
    let failed = |e: DiarizeError| match e {
        DiarizeError::Stopped(why) => Failure::Stopped(why),
        e => Failure::transient(Stage::Diarize, e.to_string()),
    };
    spool
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .finish()
        .map_err(|e| failed(DiarizeError::Spool(e)))?;
    let network = model::load(&d.model).map_err(|e| failed(DiarizeError::Model(e)))?;
    let threads = usize::try_from(opts.threads).unwrap_or(1);
    let found = diarize(
        &network,
        pcm,
        &transcript.segments,
        d,
        threads,
        &opts.cancel,
        spool_dir,
    )
    .map_err(failed)?;
    let names: Vec<String> = (0..found.voices.len()).map(turns::default_name).collect();
    let segments = std::mem::take(&mut transcript.segments);
    transcript.segments = turns::label(segments, &found.turns, &names);
    transcript.speakers = talk_times(&found.turns, &names);
    transcript.diarized = true;
    transcript.turns = found
        .turns
        .iter()
        .map(|t| SpeakerTurn {
            start: t.start,
            end: t.end,
            speaker: names.get(t.speaker).cloned().unwrap_or_default(),
        })
        .collect();
    Ok(transcript)
}
