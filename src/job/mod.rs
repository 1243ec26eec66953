//! The one job path, for every input wherever it came from and wherever its outputs go:
//!
//! admit → dedup → open → decode + transcribe → render → put outputs → feed datasets
//!
//! [`run`] is written once over an [`Input`] (a local file, an S3 object) and an
//! [`Output`] (a local folder, an S3 prefix). The daemon then journals how it ended
//! ([`decide`]) and finishes the input (`daemon::worker`); `hotfolderd transcribe` runs the
//! same path with no journal.

mod beside_media;
mod decide;
mod failure;
mod input;
mod local_dir;
mod local_file;
mod output;
mod output_name;
mod s3_object;
mod s3_prefix;
mod second_channel;
mod speakers;
mod upload;

pub use beside_media::BesideMedia;
pub use decide::{decide, Decision, RetryKind};
pub use failure::{Failure, Stage};
pub use input::{Body, FinishError, Finished, Input, Opened, Sha256};
pub use local_dir::LocalDir;
pub use local_file::{after_done, InFolder, LocalFile};
pub use output::{Output, Placed};
pub use output_name::output_name;
pub use s3_object::{unsafe_key, Pin, S3Object};
pub use s3_prefix::S3Prefix;
pub use upload::{Upload, QUARANTINE_DIR};

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::config::JobLimits;
use crate::dataset::pcm::{pcm_tap, PcmSpool};
use crate::dataset::{Dataset, Feed, Labelled};
use crate::journal::Journal;
use crate::pipeline::decode::AudioDecoder16k;
use crate::pipeline::render::{self, Format};
use crate::pipeline::transcribe::{DecodeOptions, TranscribeError, Transcriber};
use crate::pipeline::transcript::Transcript;
use second_channel::SecondChannel;

/// What a job runs with.
pub struct Context<'a> {
    pub transcriber: &'a Arc<dyn Transcriber>,
    pub opts: DecodeOptions,
    /// Turns the audio's declared duration into the job's time limit (`None`: no limit).
    pub limits: Option<JobLimits>,
    pub formats: &'a [Format],
    /// The daemon's journal and this input's row in it; `None` for `hotfolderd transcribe`.
    pub journal: Option<(&'a Arc<Mutex<Journal>>, i64)>,
    /// Where spool files go (downloads that need seeking, decoded audio for datasets).
    pub spool_dir: &'a Path,
    /// The datasets this input also goes to.
    pub datasets: &'a [Arc<Dataset>],
    /// The model and options, as `dedup_scope` hashes them: an earlier input is a twin only
    /// if it was transcribed with the same. `None`: no dedup.
    pub dedup_scope: Option<&'a str>,
    /// sha256 of the model file, named in the json output and in manifest lines.
    pub model_sha256: Option<&'a str>,
}

/// What besides the content decides the text: the model file's sha256 and every decoding
/// option (language, translate, prompt, beam, temperatures, thresholds, VAD…) except the
/// thread count and the per-job stop token.
pub fn dedup_scope(model_sha256: &str, opts: &DecodeOptions) -> String {
    use sha2::{Digest, Sha256 as Hasher};
    let options = serde_json::to_string(&DecodeOptions {
        threads: 0,
        ..opts.clone()
    })
    .unwrap_or_default();
    let mut h = Hasher::new();
    h.update(model_sha256.as_bytes());
    h.update(b"\n");
    h.update(options.as_bytes());
    hex::encode(h.finalize())
}

/// The key two inputs must share for one's outputs to serve the other.
fn dedup_key(content_sha256: &str, scope: &str) -> String {
    format!("{content_sha256}:{scope}")
}

/// A finished job.
#[derive(Debug)]
pub struct Done {
    /// Where each output went (paths or `s3://` URIs).
    pub outputs: Vec<String>,
    pub result: Option<JobResult>,
    /// `None` when the outputs were copied from a twin.
    pub transcript: Option<Transcript>,
    /// The journal id of the earlier input with the same content, if its outputs were reused.
    pub reused_from: Option<i64>,
    /// Whether datasets took the input in (the trainer may have new hours to look at).
    pub fed: bool,
    /// Why no outputs were written (media that already has subtitles in the language).
    pub skipped: Option<String>,
}

impl Done {
    fn skipped(why: String, result: Option<JobResult>) -> Done {
        Done {
            outputs: Vec::new(),
            result,
            transcript: None,
            reused_from: None,
            fed: false,
            skipped: Some(why),
        }
    }
}

/// What a finished transcription found, kept in the journal for notifications.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct JobResult {
    pub audio_seconds: f64,
    pub language: String,
    pub model: String,
    pub decode_seconds: f64,
    pub asr_seconds: f64,
    pub segments: usize,
    /// How many speakers diarization told apart (absent when it was off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speakers: Option<usize>,
}

impl JobResult {
    pub fn of(t: &Transcript, model: &str) -> JobResult {
        JobResult {
            audio_seconds: t.duration,
            language: t.language.clone(),
            model: model.to_string(),
            decode_seconds: t.decode_seconds,
            asr_seconds: t.asr_seconds,
            segments: t.segments.len(),
            speakers: t.diarized.then_some(t.speakers.len()),
        }
    }

    pub fn to_json(&self) -> Option<serde_json::Value> {
        serde_json::to_value(self).ok()
    }
}

/// Runs one input's job up to (not including) journaling how it ended.
pub async fn run(
    cx: &Context<'_>,
    input: &mut impl Input,
    output: &impl Output,
) -> Result<Done, Failure> {
    input.admit().await?;
    if let Some(why) = cx.opts.known_language().and_then(|l| output.declines(l)) {
        return Ok(Done::skipped(why, None));
    }
    let hashed_first = input.sha256_first(cx.spool_dir).await?;
    if let Some(sha) = &hashed_first {
        if let Some(done) = dedup(cx, input.name(), sha, output).await? {
            return Ok(done);
        }
    }
    let feeding = cx.journal.filter(|_| !cx.datasets.is_empty());
    // The decoded audio is kept for datasets to cut from, and for diarization to read.
    let keep = (feeding.is_some() || cx.opts.diarize.is_some())
        .then(|| PcmSpool::create(cx.spool_dir))
        .transpose()
        .map_err(|e| {
            let stage = match feeding {
                Some(_) => Stage::Dataset,
                None => Stage::Diarize,
            };
            Failure::transient(stage, format!("cannot create an audio spool file: {e}"))
        })?;
    let pcm = keep
        .as_ref()
        .map(|(s, path)| (s.clone(), path.to_path_buf()));
    let voices = known_voices(cx)?;
    let opened = input.open(cx.spool_dir).await?;
    let transcribed = transcribe(cx, input.name().to_string(), opened, pcm, voices.as_ref()).await;
    // A broken transfer is the transfer's failure, whatever the decoder made of it.
    input.close(transcribed.is_err()).await?;
    let t = transcribed?;
    match &hashed_first {
        // Hashed as it was read (a streamed S3 object): a later twin can still find it.
        None => record_dedup_key(cx, input.name(), &t.sha256),
        // The checksum an S3-compatible store answered is not what was read: the bytes
        // decide (a store that does not verify checksums can hold any claim).
        Some(first) if *first != t.sha256 => {
            tracing::warn!(file = %input.name(), claimed = %first, read = %t.sha256, "the object's SHA-256 checksum does not match its bytes; keyed by the bytes");
            record_dedup_key(cx, input.name(), &t.sha256);
        }
        Some(_) => {}
    }
    let language = cx
        .opts
        .known_language()
        .unwrap_or(&t.transcript.language)
        .to_string();
    if let Some(why) = output.declines(&language) {
        let result = JobResult::of(&t.transcript, &cx.transcriber.model_name());
        return Ok(Done::skipped(why, Some(result)));
    }
    let placed = Placed {
        input_sha256: &t.sha256,
        language: &language,
    };
    let mut outputs = Vec::with_capacity(t.outputs.len());
    for (format, bytes) in t.outputs {
        outputs.push(output.put(format, bytes, &placed).await?);
    }
    // Kept once the outputs are: later inputs of the source are named after these speakers.
    record_voices(cx, input.name(), voices.as_ref(), &t.heard);
    let mut transcript = t.transcript;
    if let (Some((journal, _)), Some((spool, pcm))) = (feeding, keep) {
        let (datasets, journal, spool_dir) = (
            cx.datasets.to_vec(),
            journal.clone(),
            cx.spool_dir.to_path_buf(),
        );
        let (source, sha) = (input.name().to_string(), t.sha256.clone());
        let model_sha256 = cx.model_sha256.map(str::to_string);
        // A teacher model decodes the audio again: under the job's time limit, like the job.
        let opts = match cx.limits {
            Some(l) => DecodeOptions {
                cancel: cx
                    .opts
                    .cancel
                    .limited(l.job_timeout(Some(transcript.duration))),
                ..cx.opts.clone()
            },
            None => cx.opts.clone(),
        };
        let (added, back) = tokio::task::spawn_blocking(move || {
            let kept = spool.lock().unwrap_or_else(|p| p.into_inner()).finish();
            let added = kept
                .map_err(crate::dataset::DatasetError::Spool)
                .and_then(|_| {
                    let feed = Feed {
                        datasets: &datasets,
                        journal: &journal,
                        spool_dir: &spool_dir,
                        opts: &opts,
                    };
                    let heard = second_channel::dataset_view(&transcript);
                    let labelled = Labelled {
                        source: &source,
                        sha256: &sha,
                        transcript: &heard,
                        model_sha256: model_sha256.as_deref(),
                    };
                    feed.add(&labelled, &pcm)
                });
            (added, transcript)
        })
        .await
        .map_err(|e| Failure::transient(Stage::Dataset, format!("ended abnormally: {e}")))?;
        added.map_err(|e| match e.stopped() {
            Some(why) => Failure::Stopped(why),
            None => Failure::transient(Stage::Dataset, e.to_string()),
        })?;
        transcript = back;
    }
    Ok(Done {
        outputs,
        result: Some(JobResult::of(&transcript, &cx.transcriber.model_name())),
        transcript: Some(transcript),
        reused_from: None,
        fed: feeding.is_some(),
        skipped: None,
    })
}

/// The same content finished before (under any name) with the same model and options: its
/// outputs are reused for this input, when the output can do that.
async fn dedup(
    cx: &Context<'_>,
    name: &str,
    sha: &str,
    output: &impl Output,
) -> Result<Option<Done>, Failure> {
    let (Some((journal, id)), Some(scope)) = (cx.journal, cx.dedup_scope) else {
        return Ok(None);
    };
    let key = dedup_key(sha, scope);
    let journal_failed = |e: crate::journal::JournalError| {
        Failure::transient(Stage::Hash, format!("cannot record the content hash: {e}"))
    };
    let twins = {
        let mut j = journal.lock().unwrap_or_else(|p| p.into_inner());
        j.set_dedup_key(id, sha, &key).map_err(journal_failed)?;
        j.done_with_dedup_key(&key, TWINS_TRIED)
            .map_err(journal_failed)?
    };
    // A twin whose outputs this output cannot read (in S3 for a folder, overwritten since)
    // may have a sibling whose outputs it can.
    for twin in twins.into_iter().filter(|t| t.id != id) {
        match output.reuse(cx.formats, &twin.outputs, name, sha).await {
            Some(Ok(outputs)) => {
                let result = journal
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .result(twin.id)
                    .map_err(journal_failed)?;
                return Ok(Some(Done {
                    outputs,
                    result: result.and_then(|r| serde_json::from_value(r).ok()),
                    transcript: None,
                    reused_from: Some(twin.id),
                    fed: false,
                    skipped: None,
                }));
            }
            // S3 is down: transcribing now would only fail at the same put.
            Some(Err(e @ (Failure::Unavailable { .. } | Failure::Deferred { .. }))) => {
                return Err(e)
            }
            Some(Err(e)) => {
                tracing::warn!(file = %name, reason = %e, "could not reuse outputs; transcribing");
                return Ok(None);
            }
            None => {}
        }
    }
    Ok(None)
}

/// How many earlier inputs with the same content are tried as twins.
const TWINS_TRIED: usize = 3;

/// Journals the dedup key of an input whose hash was known only once it had been read.
fn record_dedup_key(cx: &Context<'_>, name: &str, sha: &str) {
    let (Some((journal, id)), Some(scope)) = (cx.journal, cx.dedup_scope) else {
        return;
    };
    let mut j = journal.lock().unwrap_or_else(|p| p.into_inner());
    if let Err(e) = j.set_dedup_key(id, sha, &dedup_key(sha, scope)) {
        // Only later twins lose: they are transcribed instead of reusing these outputs.
        tracing::warn!(file = %name, error = %e, "cannot record the content hash for dedup");
    }
}

/// A finished transcription: the rendered outputs and what they were made from.
struct Transcribed {
    outputs: Vec<(Format, Vec<u8>)>,
    transcript: Transcript,
    sha256: String,
    /// The speakers diarization told apart (empty when it was off).
    heard: Vec<speakers::Heard>,
}

async fn transcribe(
    cx: &Context<'_>,
    name: String,
    opened: Opened,
    pcm: Option<Pcm>,
    voices: Option<&Voices>,
) -> Result<Transcribed, Failure> {
    let (transcriber, mut opts, limits) = (cx.transcriber.clone(), cx.opts.clone(), cx.limits);
    if let (Some(d), Some(v)) = (opts.diarize.as_mut(), voices) {
        d.known = v.known.clone();
    }
    let rendering = Rendering {
        formats: cx.formats.to_vec(),
        model_sha256: cx.model_sha256.map(str::to_string),
        spool_dir: cx.spool_dir.to_path_buf(),
    };
    tokio::task::spawn_blocking(move || {
        transcribe_blocking(&transcriber, opts, limits, &rendering, name, opened, pcm)
    })
    .await
    .unwrap_or_else(|e| {
        Err(Failure::transient(
            Stage::Transcribe,
            format!("worker ended abnormally: {e}"),
        ))
    })
}

/// What the outputs are rendered as, and the model they name.
struct Rendering {
    formats: Vec<Format>,
    model_sha256: Option<String>,
    /// Where a split file's second channel is kept while the first is transcribed.
    spool_dir: PathBuf,
}

/// A transcriber's error as the job's failure.
fn transcribe_failure(e: TranscribeError) -> Failure {
    match e {
        TranscribeError::Stopped(why) => Failure::Stopped(why),
        TranscribeError::Decode(e) => Failure::permanent(Stage::Decode, e.to_string()),
        e => Failure::transient(Stage::Transcribe, e.to_string()),
    }
}

/// The known voices a diarized input's speakers are named after, and the speaker model's
/// sha256 (prints of another model are not compared).
struct Voices {
    known: Vec<crate::diarize::names::Known>,
    model_sha256: String,
}

/// With diarization and a journal: the voices this input's speakers may be named after.
fn known_voices(cx: &Context<'_>) -> Result<Option<Voices>, Failure> {
    let (Some(d), Some((journal, id))) = (&cx.opts.diarize, cx.journal) else {
        return Ok(None);
    };
    let model_sha256 = crate::diarize::model::sha256(&d.model).map_err(|e| {
        Failure::transient(
            Stage::Diarize,
            format!("cannot read the speaker model {}: {e}", d.model.display()),
        )
    })?;
    let known = speakers::known_voices(
        &journal.lock().unwrap_or_else(|p| p.into_inner()),
        id,
        d,
        &model_sha256,
    )
    .map_err(|e| {
        Failure::transient(Stage::Diarize, format!("cannot read the known voices: {e}"))
    })?;
    Ok(Some(Voices {
        known,
        model_sha256,
    }))
}

/// Journals the speakers diarization told apart, for later inputs of the source to be
/// matched against (`speakers_from = "folder"`).
fn record_voices(cx: &Context<'_>, name: &str, voices: Option<&Voices>, heard: &[speakers::Heard]) {
    let (Some((journal, id)), Some(v)) = (cx.journal, voices) else {
        return;
    };
    if heard.is_empty() {
        return;
    }
    let mut j = journal.lock().unwrap_or_else(|p| p.into_inner());
    let kept = j.get(id).and_then(|input| match input {
        Some(i) => j.set_input_voices(id, &i.source, &v.model_sha256, heard),
        None => Ok(()),
    });
    if let Err(e) = kept {
        // Only later inputs lose: their speakers are not matched with these.
        tracing::warn!(file = %name, error = %e, "cannot keep the speakers' voice prints");
    }
}

/// The job's decoded audio as it is kept: the spool the decoder's tap fills, and its file.
type Pcm = (Arc<Mutex<PcmSpool>>, PathBuf);

/// Decodes, transcribes (and diarizes) and renders on the calling (blocking) thread.
fn transcribe_blocking(
    transcriber: &Arc<dyn Transcriber>,
    opts: DecodeOptions,
    limits: Option<JobLimits>,
    rendering: &Rendering,
    name: String,
    opened: Opened,
    pcm: Option<Pcm>,
) -> Result<Transcribed, Failure> {
    let started = Instant::now();
    let track = &opts.audio_track;
    let decoder = match opened.body {
        Body::File(path) => AudioDecoder16k::open_path_track(&path, track),
        Body::Opened { file, path } => AudioDecoder16k::open_file_track(file, &path, track),
        Body::Stream { reader, extension } => {
            AudioDecoder16k::open_stream_track(reader, extension.as_deref(), track)
        }
    };
    let mut decoder = decoder.map_err(|e| Failure::permanent(Stage::Decode, e.to_string()))?;
    decoder.set_tap(pcm.as_ref().map(|(s, _)| pcm_tap(s.clone())));
    let second = SecondChannel::split(&mut decoder, &opts, &rendering.spool_dir)?;
    // Split channels are transcribed one after the other: twice the audio to decode.
    let passes = if second.is_some() { 2.0 } else { 1.0 };
    opts.progress
        .set_total(decoder.info().declared_seconds.map(|s| s * passes));
    let opts = match limits {
        Some(l) => DecodeOptions {
            cancel: opts
                .cancel
                .limited(l.job_timeout(decoder.info().declared_seconds.map(|s| s * passes))),
            ..opts
        },
        None => opts,
    };
    let mut transcript = transcriber
        .transcribe(&mut decoder, &opts)
        .map_err(transcribe_failure)?;
    let info = decoder.info().clone();
    drop(decoder);
    transcript = match second {
        Some(second) => second.transcribe_and_merge(transcriber, transcript, &opts)?,
        None if opts.channels == crate::pipeline::channels::Channels::Split => {
            // One channel only: it is channel 0, labelled as such.
            crate::pipeline::channels::label(&mut transcript, 0, &opts.channel_names);
            transcript
        }
        None => transcript,
    };
    let mut heard = Vec::new();
    if let (Some(d), Some((spool, path))) = (&opts.diarize, &pcm) {
        (transcript, heard) =
            speakers::diarized(transcript, d, spool, path, &opts, &rendering.spool_dir)?;
    }
    crate::metrics::observe_job(transcript.duration, started.elapsed().as_secs_f64());
    let sha256 = opened.sha256.wait()?;
    let mut doc = render::document(
        name,
        sha256.clone(),
        transcriber.model_name(),
        &info,
        &transcript,
        &opts,
        started.elapsed().as_secs_f64(),
    );
    doc.model_sha256 = rendering.model_sha256.clone();
    let outputs = rendering
        .formats
        .iter()
        .map(|f| {
            render::render(*f, &doc)
                .map(|bytes| (*f, bytes))
                .map_err(|e| Failure::transient(Stage::Render, format!("cannot render {f:?}: {e}")))
        })
        .collect::<Result<_, _>>()?;
    Ok(Transcribed {
        outputs,
        transcript,
        sha256,
        heard,
    })
}

/// The output name of input `key` from `source` (a path or key without the format's
/// extension), as the journal decides it: see `output_name`.
pub fn journaled_output_name(
    journal: &Journal,
    source: &str,
    key: &str,
) -> Result<String, crate::journal::JournalError> {
    let family = journal.keys_starting_with(source, output_name::root_of(key))?;
    Ok(output_name(key, &family))
}

/// `<dir>/<stem>`, to which `.<format>` is appended: a file's outputs beside it or in `dir`.
pub fn output_stem(file: &Path, dir: Option<&Path>) -> Option<PathBuf> {
    let stem = file.file_stem().filter(|s| !s.is_empty())?;
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => file.parent().map(Path::to_path_buf).unwrap_or_default(),
    };
    Some(dir.join(stem))
}
