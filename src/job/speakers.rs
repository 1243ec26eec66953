//! The job's diarization step: the transcript labelled with who spoke when, from the
//! decoded audio the job kept, its speakers named after known voices where they match; and
//! what the journal keeps of them for later inputs of the same source.

use std::path::Path;
use std::sync::{Arc, Mutex};

use super::failure::{Failure, Stage};
use crate::dataset::pcm::PcmSpool;
use crate::diarize::names::{names, Known};
use crate::diarize::run::{diarize, talk_times, DiarizeError, DiarizeOptions, SpeakersFrom};
use crate::diarize::{model, overlap, turns};
use crate::journal::Journal;
use crate::pipeline::transcribe::DecodeOptions;
use crate::pipeline::transcript::{Overlap, SpeakerTurn, Transcript};

/// A speaker of the file as the journal keeps it: name, voice print, talk seconds.
pub type Heard = (String, Vec<f32>, f64);

/// The most prints of a source's earlier speakers compared with a new input's.
const FOLDER_PRINTS: usize = 200;

/// `transcript` with speakers on its segments and words, and their talk times; and each
/// speaker's voice print.
pub fn diarized(
    mut transcript: Transcript,
    d: &DiarizeOptions,
    spool: &Arc<Mutex<PcmSpool>>,
    pcm: &Path,
    opts: &DecodeOptions,
    spool_dir: &Path,
) -> Result<(Transcript, Vec<Heard>), Failure> {
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
    let names = names(&found.voices, &d.known, d.match_threshold);
    let segments = std::mem::take(&mut transcript.segments);
    // Words and segments go to the voice that dominates them; overlaps are told apart.
    transcript.segments = turns::label(segments, &found.turns, &names);
    let mut all_turns = found.turns.clone();
    if let Some(path) = &d.segmentation {
        let net = model::load_segmentation(path).map_err(|e| failed(DiarizeError::Model(e)))?;
        for (start, end) in overlap::overlaps(&net, pcm, &opts.cancel).map_err(failed)? {
            let who = overlap::speakers_at(&found.turns, start, end);
            // Each speaker heard in it has a turn over it: who spoke when says both.
            for &speaker in &who {
                let covered = found
                    .turns
                    .iter()
                    .any(|t| t.speaker == speaker && t.start <= start && end <= t.end);
                if !covered {
                    all_turns.push(turns::Turn {
                        start,
                        end,
                        speaker,
                    });
                }
            }
            transcript.overlaps.push(Overlap {
                start,
                end,
                speakers: who.iter().filter_map(|&s| names.get(s).cloned()).collect(),
            });
        }
        all_turns.sort_by(|a, b| a.start.total_cmp(&b.start));
    }
    transcript.speakers = talk_times(&all_turns, &names);
    transcript.turns = all_turns
        .iter()
        .map(|t| SpeakerTurn {
            start: t.start,
            end: t.end,
            speaker: names.get(t.speaker).cloned().unwrap_or_default(),
        })
        .collect();
    transcript.diarized = true;
    let heard = transcript
        .speakers
        .iter()
        .zip(found.voices)
        .map(|(s, print)| (s.name.clone(), print, s.talk_seconds))
        .collect();
    Ok((transcript, heard))
}

/// The known voices input `id` is matched against, made by the same speaker model
/// (`model_sha256`): the enrolled ones, and with `speakers_from = "folder"` the speakers of
/// its source's earlier inputs (an enrolled name wins over a folder label).
pub fn known_voices(
    journal: &Journal,
    id: i64,
    d: &DiarizeOptions,
    model_sha256: &str,
) -> Result<Vec<Known>, crate::journal::JournalError> {
    let mut known: Vec<Known> = journal
        .voices()?
        .into_iter()
        .filter(|v| v.model_sha256 == model_sha256)
        .map(|v| Known {
            name: v.name,
            print: v.print,
        })
        .collect();
    if d.speakers_from == SpeakersFrom::Folder {
        let Some(input) = journal.get(id)? else {
            return Ok(known);
        };
        // One print per label: the talk-time-weighted mean of its inputs' prints.
        let mut labels: Vec<(String, Vec<f32>)> = Vec::new();
        for h in journal.source_voices(&input.source, model_sha256, id, FOLDER_PRINTS)? {
            if known.iter().any(|k| k.name == h.label) {
                continue;
            }
            let weighted: Vec<f32> = h.print.iter().map(|v| v * h.seconds as f32).collect();
            match labels.iter_mut().find(|(l, _)| *l == h.label) {
                Some((_, sum)) => sum.iter_mut().zip(&weighted).for_each(|(s, v)| *s += v),
                None => labels.push((h.label, weighted)),
            }
        }
        known.extend(
            labels
                .into_iter()
                .map(|(name, print)| Known { name, print }),
        );
    }
    Ok(known)
}
