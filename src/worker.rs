//! Processing one journaled input from a watched folder: decode → transcribe → outputs
//! (atomic) → journal → after-action. The input leaves its folder only after its outputs
//! are durable and journaled. Permanent failures move it to `failed/` with
//! `NAME.error.json` beside it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::After;
use crate::dataset::pcm::{pcm_tap, PcmSpool};
use crate::dataset::Feed;
use crate::hash::sha256_file;
use crate::pipeline::cancel::Stopped;
use crate::pipeline::decode::{AudioDecoder16k, Tap};
use crate::pipeline::render::{self, Format};
use crate::pipeline::transcribe::{DecodeOptions, TranscribeError, Transcriber};
use crate::pipeline::transcript::Transcript;
use crate::sinks::local::write_atomic;
use crate::sources::names::{DONE_DIR, FAILED_DIR};

/// What the worker needs to know about the folder an input came from.
#[derive(Debug, Clone)]
pub struct FolderJob {
    pub root: PathBuf,
    pub rel: PathBuf,
    pub output: PathBuf,
    pub formats: Vec<Format>,
    pub after: After,
}

/// How a job ended.
#[derive(Debug)]
pub enum Outcome {
    Done {
        outputs: Vec<String>,
        result: Option<JobResult>,
    },
    /// The input itself is bad: retrying will not help.
    Permanent { stage: &'static str, reason: String },
    /// Something around it failed (disk full, unwritable output): retry later.
    Transient { stage: &'static str, reason: String },
    /// It ran past its time limit, or the daemon is shutting down.
    Stopped(Stopped),
}

impl FolderJob {
    pub fn input(&self) -> PathBuf {
        self.root.join(&self.rel)
    }

    /// `<output>/<rel parent>/<stem>.<format>`: outputs mirror the input's place.
    fn output_path(&self, format: Format) -> PathBuf {
        let mut p = self.output.join(&self.rel);
        p.set_extension(format.extension());
        p
    }
}

/// Runs the job on the calling thread (call it from `spawn_blocking`). `sha256` is the
/// input's hash when the caller already computed it (for dedup); otherwise it is computed
/// here. `time_limit` turns the audio's declared duration into the job's time limit, which
/// joins `opts.cancel`.
/// `feed`: the datasets this input also goes to (its decoded audio is spooled meanwhile).
pub fn process(
    job: &FolderJob,
    transcriber: &Arc<dyn Transcriber>,
    opts: &DecodeOptions,
    sha256: Option<String>,
    time_limit: &dyn Fn(Option<f64>) -> Duration,
    feed: Option<&Feed<'_>>,
) -> Outcome {
    let input = job.input();
    let spool = match feed.map(|f| PcmSpool::create(f.spool_dir)).transpose() {
        Ok(s) => s,
        Err(e) => {
            return Outcome::Transient {
                stage: "dataset",
                reason: format!("cannot create an audio spool file: {e}"),
            }
        }
    };
    let tap = spool.as_ref().map(|(s, _)| pcm_tap(s.clone()));
    let source = input.display().to_string();
    let done = match transcribe_to_outputs(
        &input,
        source.clone(),
        &job.formats,
        transcriber,
        opts,
        sha256,
        time_limit,
        tap,
    ) {
        Ok(r) => r,
        Err(outcome) => return outcome,
    };
    let mut outputs = Vec::with_capacity(done.outputs.len());
    for (format, bytes) in done.outputs {
        let path = job.output_path(format);
        if let Err(e) = write_atomic(&path, &bytes) {
            return Outcome::Transient {
                stage: "write",
                reason: e.to_string(),
            };
        }
        outputs.push(path.display().to_string());
    }
    if let (Some(feed), Some((spool, pcm))) = (feed, spool) {
        let kept = spool.lock().unwrap_or_else(|p| p.into_inner()).finish();
        let added = kept
            .map_err(|e| format!("cannot keep the decoded audio: {e}"))
            .and_then(|_| feed.add(&source, &done.sha256, &done.transcript, &pcm));
        if let Err(reason) = added {
            return Outcome::Transient {
                stage: "dataset",
                reason,
            };
        }
    }
    let result = JobResult::of(&done.transcript, &transcriber.model_name());
    Outcome::Done {
        outputs,
        result: Some(result),
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
        }
    }

    pub fn to_json(&self) -> Option<serde_json::Value> {
        serde_json::to_value(self).ok()
    }
}

/// A finished transcription: the rendered outputs and what they were made from.
pub struct Transcribed {
    pub outputs: Vec<(Format, Vec<u8>)>,
    pub transcript: Transcript,
    pub sha256: String,
}

/// The bytes of each requested output format for the audio file at `input`; `source`
/// names it in the json; `tap` also gets the decoded audio. The error is how the job ends.
#[allow(clippy::too_many_arguments)]
pub fn transcribe_to_outputs(
    input: &Path,
    source: String,
    formats: &[Format],
    transcriber: &Arc<dyn Transcriber>,
    opts: &DecodeOptions,
    sha256: Option<String>,
    time_limit: &dyn Fn(Option<f64>) -> Duration,
    tap: Option<Tap>,
) -> Result<Transcribed, Outcome> {
    let mut decoder = AudioDecoder16k::open_path(input).map_err(|e| Outcome::Permanent {
        stage: "decode",
        reason: e.to_string(),
    })?;
    decoder.set_tap(tap);
    let sha = move || match sha256 {
        Some(s) => Ok(s),
        None => sha256_file(input).map_err(|e| Outcome::Transient {
            stage: "hash",
            reason: format!("cannot read {}: {e}", input.display()),
        }),
    };
    transcribe_decoder(decoder, source, formats, transcriber, opts, sha, time_limit)
}

/// The same for an opened decoder. `sha256` is asked for once the decoder is done and
/// dropped (a streamed input is hashed as it is read, so its hash is known only then).
pub fn transcribe_decoder(
    mut decoder: AudioDecoder16k,
    source: String,
    formats: &[Format],
    transcriber: &Arc<dyn Transcriber>,
    opts: &DecodeOptions,
    sha256: impl FnOnce() -> Result<String, Outcome>,
    time_limit: &dyn Fn(Option<f64>) -> Duration,
) -> Result<Transcribed, Outcome> {
    let started = Instant::now();
    let limit = time_limit(decoder.info().declared_seconds);
    let opts = &DecodeOptions {
        cancel: opts.cancel.limited(limit),
        ..opts.clone()
    };
    let transcript = match transcriber.transcribe(&mut decoder, opts) {
        Ok(t) => t,
        Err(TranscribeError::Stopped(why)) => return Err(Outcome::Stopped(why)),
        Err(TranscribeError::Decode(e)) => {
            return Err(Outcome::Permanent {
                stage: "decode",
                reason: e.to_string(),
            })
        }
        Err(e) => {
            return Err(Outcome::Transient {
                stage: "transcribe",
                reason: e.to_string(),
            })
        }
    };
    let info = decoder.info().clone();
    drop(decoder);
    crate::metrics::observe_job(transcript.duration, started.elapsed().as_secs_f64());
    let sha = sha256()?;
    let doc = render::document(
        source,
        sha.clone(),
        transcriber.model_name(),
        &info,
        &transcript,
        opts,
        started.elapsed().as_secs_f64(),
    );
    let outputs = formats
        .iter()
        .map(|f| {
            render::render(*f, &doc)
                .map(|bytes| (*f, bytes))
                .map_err(|e| Outcome::Transient {
                    stage: "render",
                    reason: format!("cannot render {f:?}: {e}"),
                })
        })
        .collect::<Result<_, _>>()?;
    Ok(Transcribed {
        outputs,
        transcript,
        sha256: sha,
    })
}

/// Produces this job's outputs from an earlier input with the same content (sha256): each of
/// the twin's output files is copied to this job's name, the json's `source` rewritten and
/// `deduplicated_from` added. `None` when the twin's outputs are no longer all there (then
/// the input is transcribed as usual).
pub fn outputs_from_twin(
    job: &FolderJob,
    twin_outputs: &[String],
) -> Option<Result<Vec<String>, String>> {
    let mut planned = Vec::new();
    for format in &job.formats {
        let from = twin_outputs
            .iter()
            .map(PathBuf::from)
            .find(|p| p.extension().is_some_and(|e| e == format.extension()))?;
        let bytes = std::fs::read(&from).ok()?;
        planned.push((*format, from, bytes));
    }
    let mut written = Vec::new();
    for (format, from, bytes) in planned {
        let bytes = if format == Format::Json {
            let Ok(mut doc) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
                return None;
            };
            doc["deduplicated_from"] = doc["source"].clone();
            doc["source"] = serde_json::Value::String(job.input().display().to_string());
            let mut v = serde_json::to_vec_pretty(&doc).unwrap_or_default();
            v.push(b'\n');
            v
        } else {
            bytes
        };
        let to = job.output_path(format);
        if let Err(e) = write_atomic(&to, &bytes) {
            return Some(Err(format!(
                "copying {} to {}: {e}",
                from.display(),
                to.display()
            )));
        }
        written.push(to.display().to_string());
    }
    Some(Ok(written))
}

/// After the outputs are journaled: move the input to `done/`, keep it, or delete it.
pub fn after_done(job: &FolderJob) -> std::io::Result<()> {
    let input = job.input();
    match job.after {
        After::Keep => Ok(()),
        After::Delete => std::fs::remove_file(&input),
        After::Move => move_under(&job.root, DONE_DIR, &job.rel).map(|_| ()),
    }
}

/// A permanent failure: the input goes to `failed/<rel>` with `<name>.error.json` beside it.
pub fn quarantine(
    job: &FolderJob,
    stage: &str,
    reason: &str,
    attempts: i64,
) -> std::io::Result<PathBuf> {
    let moved = move_under(&job.root, FAILED_DIR, &job.rel)?;
    let mut name = moved.file_name().unwrap_or_default().to_os_string();
    name.push(".error.json");
    let report = serde_json::json!({
        "input": job.input().display().to_string(),
        "stage": stage,
        "reason": reason,
        "attempts": attempts,
        "time": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        "what_to_do": "fix or replace the file, then drop it into the watched folder again",
    });
    let text = serde_json::to_vec_pretty(&report).unwrap_or_default();
    write_atomic(&moved.with_file_name(name), &text).map_err(|e| e.source)?;
    Ok(moved)
}

fn move_under(root: &Path, dir: &str, rel: &Path) -> std::io::Result<PathBuf> {
    let to = root.join(dir).join(rel);
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::rename(root.join(rel), &to)?;
    Ok(to)
}
