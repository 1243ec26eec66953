//! Adding one transcribed input to the datasets its source feeds: cut the transcript into
//! training pieces, write each piece's audio from the job's PCM spool, append the manifest
//! lines at the offset the journal recorded, then count the hours. An input's content
//! (sha256) is added to a dataset once, however often it arrives or is replayed.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::cut::{cut_in, Rules, MAX_TOKENS};
use super::manifest::{self, Label, Line};
use super::pcm::{wav_between, RATE};
use super::split;
use super::teacher::{Teacher, TeacherError};
use crate::config::{DatasetConfig, TrainerConfig};
use crate::journal::Journal;
use crate::pipeline::cancel::Stopped;
use crate::pipeline::transcribe::DecodeOptions;
use crate::pipeline::transcript::Segment;
use crate::pipeline::transcript::Transcript;
use crate::sinks::local::write_atomic;

/// A configured dataset, as the daemon uses it.
pub struct Dataset {
    pub name: String,
    /// The dataset's folder (for an S3 dataset, its local working copy).
    pub root: PathBuf,
    /// The S3 location it is copied to, if its `path` is `s3://…`.
    pub remote: Option<Remote>,
    /// The manifest changed since it was last copied to `remote`.
    pub manifest_dirty: std::sync::atomic::AtomicBool,
    /// An `s3://` dataset's shard found written by another daemon with this box id: this
    /// daemon copies nothing and starts no run until that is fixed.
    pub shard_refused: std::sync::atomic::AtomicBool,
    /// The shard was found free or this daemon's own since the start.
    pub shard_checked: std::sync::atomic::AtomicBool,
    /// Correction files seen whole that wait for their input (`correct`).
    pub(super) waiting_corrections: Mutex<std::collections::BTreeSet<PathBuf>>,
    pub rules: Rules,
    pub language: Option<String>,
    pub threshold_seconds: f64,
    /// The share of inputs held out for evaluation (`split::held_out`).
    pub eval_fraction: f64,
    /// What a scored run's candidate becomes (`training::promote`).
    pub promote: crate::config::Promote,
    pub min_wer_gain: f64,
    pub keep_runs: usize,
    pub keep_candidates: usize,
    pub min_interval: Duration,
    pub trainer: TrainerSpec,
    /// `teacher_model`: labels the dataset instead of the serving model.
    pub teacher: Option<Teacher>,
    /// Appends to one manifest happen one at a time.
    append: Mutex<()>,
}

#[derive(Debug, Clone)]
pub struct Remote {
    pub bucket: String,
    /// Empty or ending in `/`.
    pub prefix: String,
    pub force_path_style: bool,
    /// This daemon's name among those feeding the dataset: its manifest shard's name
    /// (`[daemon] box_id`).
    pub box_id: String,
    /// How long a run's lease holds without being renewed (`lease_ttl`).
    pub lease_ttl: Duration,
}

#[derive(Debug, Clone)]
pub struct TrainerSpec {
    pub command: Vec<String>,
    pub timeout: Duration,
    pub kill_after: Duration,
    pub min_free_gpu_memory: Option<u64>,
    pub exclusive_gpu: bool,
    pub retry_interrupted: bool,
    pub retry_after: Duration,
}

impl TrainerSpec {
    fn from_config(t: &TrainerConfig) -> TrainerSpec {
        TrainerSpec {
            command: t.command.get_ref().clone(),
            timeout: *t.timeout.get_ref(),
            kill_after: *t.kill_after.get_ref(),
            min_free_gpu_memory: t.min_free_gpu_memory,
            exclusive_gpu: t.gpu_policy == crate::config::GpuPolicy::Exclusive,
            retry_interrupted: t.retry_interrupted,
            retry_after: *t.retry_after.get_ref(),
        }
    }
}

/// Where `s3://` datasets keep their working copies: `datasets/` beside the journal.
pub fn work_dir(journal_path: &Path) -> PathBuf {
    journal_path
        .parent()
        .map_or_else(|| PathBuf::from("datasets"), |p| p.join("datasets"))
}

/// What was added.
#[derive(Debug, PartialEq)]
pub enum Added {
    Pieces {
        count: usize,
        seconds: f64,
    },
    /// This content is in the dataset already.
    AlreadyIn,
    /// The transcript's language is not the dataset's.
    OtherLanguage(String),
}

impl Dataset {
    /// `work_dir`: where an `s3://` dataset keeps its working copy (`<work_dir>/<name>`).
    pub fn from_config(c: &DatasetConfig, work_dir: &Path) -> Dataset {
        let path = c.path.get_ref();
        let remote = path.strip_prefix("s3://").map(|rest| {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let prefix = prefix.trim_end_matches('/');
            Remote {
                bucket: bucket.to_string(),
                prefix: if prefix.is_empty() {
                    String::new()
                } else {
                    format!("{prefix}/")
                },
                force_path_style: c.force_path_style,
                // Set by `with_box_id`.
                box_id: String::new(),
                lease_ttl: *c.lease_ttl.get_ref(),
            }
        });
        let root = match &remote {
            Some(_) => work_dir.join(c.name.get_ref()),
            None => PathBuf::from(path),
        };
        Dataset {
            name: c.name.get_ref().clone(),
            root: std::path::absolute(&root).unwrap_or(root),
            remote,
            manifest_dirty: std::sync::atomic::AtomicBool::new(true),
            shard_refused: std::sync::atomic::AtomicBool::new(false),
            shard_checked: std::sync::atomic::AtomicBool::new(false),
            waiting_corrections: Mutex::default(),
            rules: Rules {
                min_seconds: *c.min_segment_seconds.get_ref(),
                max_seconds: *c.max_segment_seconds.get_ref(),
                max_no_speech_prob: *c.max_no_speech_prob.get_ref(),
                min_avg_logprob: *c.min_avg_logprob.get_ref(),
                max_compression_ratio: *c.max_compression_ratio.get_ref(),
                max_tokens: MAX_TOKENS,
                single_speaker: c.single_speaker_only,
            },
            language: c.language.clone().filter(|l| !l.is_empty() && l != "auto"),
            threshold_seconds: *c.train_after_hours.get_ref() * 3600.0,
            eval_fraction: *c.eval_fraction.get_ref(),
            promote: c.promote,
            min_wer_gain: *c.min_wer_gain.get_ref(),
            keep_runs: c.keep_runs,
            keep_candidates: c.keep_candidates,
            min_interval: *c.min_interval.get_ref(),
            trainer: TrainerSpec::from_config(&c.trainer),
            teacher: c
                .teacher_model
                .as_ref()
                .map(|p| Teacher::new(p.get_ref(), Duration::ZERO, Default::default())),
            append: Mutex::new(()),
        }
    }

    /// How the teacher model is loaded: dropped after `idle` without work (zero: kept), with
    /// the daemon's model options.
    pub fn teacher_loading(
        mut self,
        idle: Duration,
        options: crate::pipeline::transcribe::ModelOptions,
    ) -> Dataset {
        self.teacher = self
            .teacher
            .map(|t| Teacher::new(&t.path, idle, options.clone()));
        self
    }

    /// Names this daemon among those feeding an `s3://` dataset (`[daemon] box_id`, or
    /// `shard::default_box_id`).
    pub fn with_box_id(mut self, box_id: Option<&str>) -> Dataset {
        let root = self.root.clone();
        if let Some(r) = self.remote.as_mut() {
            r.box_id = match box_id {
                Some(id) => id.to_string(),
                None => super::shard::default_box_id(&root),
            };
        }
        self
    }

    pub fn manifest(&self) -> PathBuf {
        self.root.join(manifest::FILE_NAME)
    }

    pub fn runs_dir(&self) -> PathBuf {
        self.root.join("runs")
    }

    /// Copies the manifest as it is now (between appends and corrections) to `train` and
    /// `eval`, each input to its side of the held-out split (see `split`).
    pub fn freeze_split(&self, train: &Path, eval: &Path) -> std::io::Result<split::Sides> {
        let _between_writes = self.lock();
        split::split(&self.manifest(), train, eval, self.eval_fraction)
    }

    /// Copies the manifest as it is now (between appends) to `to`; an empty file when
    /// there is none yet.
    pub fn copy_manifest(&self, to: &Path) -> std::io::Result<()> {
        let _between_writes = self.lock();
        match std::fs::copy(self.manifest(), to) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::write(to, b""),
            Err(e) => Err(e),
        }
    }

    /// As `freeze_split`, from `merged` (this box's manifest and the other boxes' lines,
    /// `shard::merge`), written between appends.
    pub fn freeze_split_from(
        &self,
        merged: &Path,
        train: &Path,
        eval: &Path,
    ) -> std::io::Result<split::Sides> {
        split::split(merged, train, eval, self.eval_fraction)
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, ()> {
        self.append.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds the pieces of one transcribed input (`pcm`: its decoded audio spool).
    pub fn add(
        &self,
        journal: &Mutex<Journal>,
        input: &Labelled<'_>,
        pcm: &Path,
    ) -> Result<Added, DatasetError> {
        let (source, sha256, transcript) = (input.source, input.sha256, input.transcript);
        if let Some(lang) = &self.language {
            // By segment where languages change within the input, else the input's.
            let of = |s: &Segment| {
                s.language
                    .as_deref()
                    .unwrap_or(&transcript.language)
                    .eq_ignore_ascii_case(lang)
            };
            let some_in_it = match transcript.segments.is_empty() {
                true => transcript.language.eq_ignore_ascii_case(lang),
                false => transcript.segments.iter().any(of),
            };
            if !some_in_it {
                return Ok(Added::OtherLanguage(transcript.language.clone()));
            }
        }
        // One voice per piece applies to what diarization labelled; other inputs' pieces
        // (no speakers, or split channels' names) are cut as ever.
        let rules = Rules {
            single_speaker: self.rules.single_speaker && transcript.diarized,
            ..self.rules
        };
        // Speech where two talk at once is no one voice's: it is left out like speech with
        // no speaker.
        let alone: Vec<Segment>;
        let segments = if rules.single_speaker && !transcript.overlaps.is_empty() {
            alone = transcript
                .segments
                .iter()
                .map(|s| {
                    let overlapped = transcript
                        .overlaps
                        .iter()
                        .any(|o| o.end.min(s.end) - o.start.max(s.start) > 0.1);
                    Segment {
                        speaker: if overlapped { None } else { s.speaker.clone() },
                        ..s.clone()
                    }
                })
                .collect();
            &alone
        } else {
            &transcript.segments
        };
        let pieces = cut_in(segments, &rules, self.language.as_deref());
        let _one_at_a_time = self.lock();
        let manifest = self.manifest();
        std::fs::create_dir_all(&self.root).map_err(io("create", &self.root))?;
        let offset = manifest::len(&manifest).map_err(io("read", &manifest))?;
        let go = lock(journal).dataset_begin(&self.name, sha256, offset, source)?;
        if !go {
            return Ok(Added::AlreadyIn);
        }
        let dir = self.root.join("audio").join(&sha256[..sha256.len().min(2)]);
        let mut lines = Vec::with_capacity(pieces.len());
        for (i, p) in pieces.iter().enumerate() {
            let wav =
                wav_between(pcm, p.start, p.end).map_err(io("read the decoded audio", pcm))?;
            let duration = (wav.len() - 44) as f64 / 2.0 / f64::from(RATE);
            if duration < self.rules.min_seconds {
                continue;
            }
            let path = dir.join(format!("{sha256}-{i:04}.wav"));
            write_atomic(&path, &wav)?;
            lines.push(Line {
                audio_filepath: path.display().to_string(),
                duration,
                text: p.text.clone(),
                offset: None,
                source: source.to_string(),
                sha256: sha256.to_string(),
                label: Some(Label::Machine),
                model_sha256: input.model_sha256.map(str::to_string),
                avg_logprob: Some(p.avg_logprob),
                no_speech_prob: Some(p.no_speech_prob),
                compression_ratio: Some(p.compression_ratio()),
                source_start: Some(p.start),
                source_end: Some(p.end),
                speaker: match p.speakers.as_slice() {
                    [one] => Some(one.clone()),
                    _ => None,
                },
                speakers: (p.speakers.len() > 1).then(|| p.speakers.clone()),
            });
        }
        manifest::append_at(&manifest, offset, &lines).map_err(io("append to", &manifest))?;
        let seconds: f64 = lines.iter().map(|l| l.duration).sum();
        self.manifest_dirty
            .store(true, std::sync::atomic::Ordering::SeqCst);
        lock(journal).dataset_added(&self.name, sha256, seconds, lines.len())?;
        Ok(Added::Pieces {
            count: lines.len(),
            seconds,
        })
    }

    /// Whether content `sha256` is in this dataset already (a teacher need not label it).
    fn holds(&self, journal: &Mutex<Journal>, sha256: &str) -> Result<bool, DatasetError> {
        Ok(lock(journal).dataset_holds(&self.name, sha256)?)
    }

    /// Start-up: drops the tail of an append a crash interrupted (its input is redone).
    pub fn recover(&self, journal: &Mutex<Journal>) -> Result<(), DatasetError> {
        let pending = lock(journal).dataset_pending()?;
        for (name, offset) in pending.into_iter().filter(|(n, _)| *n == self.name) {
            manifest::truncate(&self.manifest(), offset)
                .map_err(io("truncate", &self.manifest()))?;
            lock(journal).dataset_clear_pending(&name)?;
            tracing::info!(dataset = %name, offset, "removed the tail of a manifest append interrupted by the last stop");
        }
        Ok(())
    }
}

/// Why an input could not be added to a dataset.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("cannot {what} {}: {source}", .path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Write(#[from] crate::sinks::local::WriteError),
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
    #[error("cannot keep the decoded audio: {0}")]
    Spool(#[source] std::io::Error),
    #[error(transparent)]
    Teacher(#[from] TeacherError),
    #[error("dataset {name}: {source}")]
    In {
        name: String,
        #[source]
        source: Box<DatasetError>,
    },
}

impl DatasetError {
    /// Why a teacher model's transcription was stopped (time limit, shutdown), if it was:
    /// the job then ends as stopped, not as a failed dataset step.
    pub fn stopped(&self) -> Option<Stopped> {
        match self {
            DatasetError::Teacher(TeacherError::Stopped { why, .. }) => Some(*why),
            DatasetError::In { source, .. } => source.stopped(),
            _ => None,
        }
    }
}

/// An I/O error on `path`, as a `map_err` argument.
pub(super) fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> DatasetError {
    let path = path.to_path_buf();
    move |source| DatasetError::Io { what, path, source }
}

pub(super) fn lock(journal: &Mutex<Journal>) -> MutexGuard<'_, Journal> {
    journal.lock().unwrap_or_else(|p| p.into_inner())
}

/// One transcribed input as a dataset takes it: its name and content, and the machine
/// labels with the model that made them.
#[derive(Clone, Copy)]
pub struct Labelled<'a> {
    pub source: &'a str,
    pub sha256: &'a str,
    pub transcript: &'a Transcript,
    pub model_sha256: Option<&'a str>,
}

/// The datasets one job feeds, and where its audio is spooled meanwhile.
pub struct Feed<'a> {
    pub datasets: &'a [Arc<Dataset>],
    pub journal: &'a Mutex<Journal>,
    pub spool_dir: &'a Path,
    /// The job's decoding options (a teacher model decodes with them too).
    pub opts: &'a DecodeOptions,
}

impl Feed<'_> {
    pub fn add(&self, input: &Labelled<'_>, pcm: &Path) -> Result<(), DatasetError> {
        let source = input.source;
        for d in self.datasets {
            let in_dataset = |e: DatasetError| DatasetError::In {
                name: d.name.clone(),
                source: Box::new(e),
            };
            // Content already in the dataset is not labelled again (add finds it there).
            let teacher = match &d.teacher {
                Some(t) if !d.holds(self.journal, input.sha256).map_err(in_dataset)? => Some(t),
                _ => None,
            };
            let taught = match teacher {
                Some(t) => {
                    let sha = t.sha256().map_err(|e| in_dataset(e.into()))?.to_string();
                    let transcript = t.label(pcm, self.opts).map_err(|e| in_dataset(e.into()))?;
                    tracing::info!(dataset = %d.name, %source, teacher = %t.path.display(), "labelled by the teacher model");
                    Some((transcript, sha))
                }
                None => None,
            };
            let labelled = match &taught {
                Some((transcript, sha)) => Labelled {
                    transcript,
                    model_sha256: Some(sha.as_str()),
                    ..*input
                },
                None => *input,
            };
            let added = d.add(self.journal, &labelled, pcm).map_err(in_dataset)?;
            match added {
                Added::Pieces { count, seconds } => {
                    tracing::info!(dataset = %d.name, %source, pieces = count, seconds, "added to the dataset");
                    for (path, outcome) in d.apply_waiting_corrections(self.journal) {
                        super::correct::log(d, &path, &outcome);
                    }
                }
                Added::AlreadyIn => {
                    tracing::info!(dataset = %d.name, %source, "same content already in the dataset")
                }
                Added::OtherLanguage(lang) => {
                    tracing::info!(dataset = %d.name, %source, language = %lang, "not added: another language")
                }
            }
        }
        Ok(())
    }
}

/// Tests' dataset `d` in `dir/d` (`extra`: more `[[dataset]]` keys).
#[cfg(test)]
pub(crate) fn test_dataset(dir: &Path, extra: &str) -> Dataset {
    #[allow(clippy::unwrap_used)]
    let c: DatasetConfig = toml::from_str(&format!(
        "name = \"d\"\nsources = [\"x\"]\npath = {:?}\ntrain_after_hours = 1.0\n{extra}\n[trainer]\ncommand = [\"true\"]\n",
        dir.join("d")
    ))
    .unwrap();
    Dataset::from_config(&c, dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::transcript::Segment;
    use test_dataset as dataset;

    fn transcript(language: &str) -> Transcript {
        Transcript {
            language: language.into(),
            duration: 4.0,
            segments: vec![Segment {
                start: 0.0,
                end: 3.0,
                text: "three seconds of words".into(),
                no_speech_prob: 0.1,
                avg_logprob: -0.2,
                compression_ratio: 1.2,
                temperature: 0.0,
                fallback: None,
                language: None,
                channel: None,
                speaker: None,
                tokens: Vec::new(),
                words: Vec::new(),
            }],
            dropped_non_speech: 0,
            languages: Vec::new(),
            vad_speech_seconds: None,
            decode_seconds: 0.0,
            asr_seconds: 0.0,
            speakers: Vec::new(),
            turns: Vec::new(),
            diarized: false,
            overlaps: Vec::new(),
        }
    }

    #[test]
    fn the_language_filter_and_content_dedup_apply() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Mutex::new(Journal::open(&dir.path().join("j.sqlite")).unwrap());
        let (spool, pcm) = super::super::pcm::PcmSpool::create(dir.path()).unwrap();
        spool.lock().unwrap().push(&vec![0.1; 64_000]);
        spool.lock().unwrap().finish().unwrap();
        let sha = "ab".repeat(32);
        let en = transcript("en");
        let input = |source| Labelled {
            source,
            sha256: &sha,
            transcript: &en,
            model_sha256: Some("cd"),
        };
        let de = dataset(dir.path(), "language = \"de\"");
        assert_eq!(
            de.add(&journal, &input("a.wav"), &pcm).unwrap(),
            Added::OtherLanguage("en".into())
        );
        let any = dataset(dir.path(), "");
        assert_eq!(
            any.add(&journal, &input("a.wav"), &pcm).unwrap(),
            Added::Pieces {
                count: 1,
                seconds: 3.0
            }
        );
        assert_eq!(
            any.add(&journal, &input("copy of a.wav"), &pcm).unwrap(),
            Added::AlreadyIn
        );
        let lines = manifest::read(&any.manifest()).unwrap().lines;
        assert_eq!(lines.len(), 1);
        // The line says who labelled it, with which model and how sure it was.
        assert_eq!(lines[0].label, Some(Label::Machine));
        assert_eq!(lines[0].model_sha256.as_deref(), Some("cd"));
        assert_eq!(lines[0].avg_logprob, Some(-0.2));
        assert_eq!(
            lines[0].no_speech_prob,
            en.segments[0].no_speech_prob.into()
        );
        assert_eq!(
            lines[0].compression_ratio,
            Some(crate::pipeline::transcript::compression_ratio(
                en.segments[0].text.trim()
            ))
        );
        // An s3:// dataset keeps its working copy under the daemon's work folder.
        let c: DatasetConfig = toml::from_str(
            "name = \"calls\"\nsources = [\"x\"]\npath = \"s3://bucket/data/calls/\"\ntrain_after_hours = 1.0\n[trainer]\ncommand = [\"true\"]\n",
        )
        .unwrap();
        let s3 = Dataset::from_config(&c, dir.path());
        assert_eq!(s3.root, dir.path().join("calls"));
        let r = s3.remote.unwrap();
        assert_eq!(
            (r.bucket.as_str(), r.prefix.as_str()),
            ("bucket", "data/calls/")
        );
    }
}
