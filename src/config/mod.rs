//! Daemon configuration: TOML, unknown keys rejected, durations like "2s", common keys
//! overridable from the environment. `config/hotfolderd.toml` is the documented example.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use toml::Spanned;

use crate::pipeline::render::Format;
use crate::pipeline::vad_model;

mod dataset;
mod media;
mod notify;
mod profile;
mod s3;
pub use dataset::{DatasetConfig, GpuPolicy, Promote, TrainerConfig};
pub use notify::{webhook_url_problem, NotifyConfig, NotifyKind, EVENTS};
pub use profile::{
    is_whisper_language, language_problem, prompt_with_hotwords, Decoding, Profile, Resolved,
};
pub use s3::{parse_size, Foreign, Malformed, OnRemoved, S3After, S3Config};

pub const DEFAULT_PATH: &str = "config/hotfolderd.toml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub journal: JournalConfig,
    pub asr: AsrConfig,
    #[serde(default)]
    pub daemon: DaemonConfig,
    #[serde(default)]
    pub watch: Vec<WatchConfig>,
    #[serde(default)]
    pub s3: Vec<S3Config>,
    #[serde(default)]
    pub dataset: Vec<DatasetConfig>,
    /// Health and metrics over HTTP; off when the section is absent.
    #[serde(default)]
    pub http: Option<HttpConfig>,
    #[serde(default)]
    pub notify: Vec<NotifyConfig>,
    /// Named profiles a source chooses with `profile = "NAME"`.
    #[serde(default)]
    pub profiles: std::collections::BTreeMap<String, Profile>,
    /// How srt and vtt cues are cut and laid out.
    #[serde(default = "default_subtitles")]
    pub subtitles: Spanned<crate::pipeline::subtitles::Layout>,
}

fn default_subtitles() -> Spanned<crate::pipeline::subtitles::Layout> {
    Spanned::new(0..0, crate::pipeline::subtitles::Layout::default())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to serve on; loopback unless a `token_file` is set.
    #[serde(default = "default_listen")]
    pub listen: Spanned<String>,
    /// A file holding the bearer token every request must carry (required off loopback).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Serve the OpenAI-compatible transcription API and the jobs API (`/v1/...`).
    #[serde(default)]
    pub api: bool,
    /// A file holding the bearer token the API (`/v1/...` and the dashboard) needs, even on
    /// loopback; without it the API takes `token_file`'s rules.
    #[serde(default)]
    pub api_token_file: Option<PathBuf>,
    /// Larger uploads are refused with 413 while they arrive.
    #[serde(default = "default_max_upload_size", deserialize_with = "s3::size")]
    pub max_upload_size: Spanned<u64>,
    /// How long a transcription request waits for its result before it is answered 202
    /// with the job's id (the job goes on).
    #[serde(default = "default_sync_timeout", deserialize_with = "duration")]
    pub sync_timeout: Spanned<Duration>,
    /// Uploads arriving at once; one more is refused with 429.
    #[serde(default = "default_max_concurrent_uploads")]
    pub max_concurrent_uploads: Spanned<usize>,
    /// A file holding the HMAC-SHA256 key that signs the callbacks jobs ask for with
    /// `callback_url` (as a `[[notify]]` webhook's `secret_file`); without it, a request
    /// with a `callback_url` is refused.
    #[serde(default)]
    pub callback_secret_file: Option<PathBuf>,
    /// Path-style S3 addressing for jobs that name an object (`{"url": "s3://…"}`), for
    /// S3-compatible stores and emulators.
    #[serde(default)]
    pub force_path_style: bool,
    /// An upload that sends nothing for this long is dropped (a stalled client).
    #[serde(default = "default_upload_idle_timeout", deserialize_with = "duration")]
    pub upload_idle_timeout: Spanned<Duration>,
    /// The longest one upload may take in all (408 after that).
    #[serde(default = "default_upload_timeout", deserialize_with = "duration")]
    pub upload_timeout: Spanned<Duration>,
    /// Delete HTTP jobs' outputs (`http-outputs/`) this long after their job finished;
    /// absent: keep them.
    #[serde(default, deserialize_with = "optional_duration")]
    pub keep_outputs: Option<Duration>,
    /// Delete the uploads of jobs that failed, were quarantined or given up this long after
    /// (`hotfolderd retry` cannot bring them back then); absent: keep them.
    #[serde(default, deserialize_with = "optional_duration")]
    pub keep_failed: Option<Duration>,
}

fn default_upload_timeout() -> Spanned<Duration> {
    Spanned::new(0..0, Duration::from_secs(3600))
}

fn default_max_upload_size() -> Spanned<u64> {
    Spanned::new(0..0, 2 << 30)
}

fn default_sync_timeout() -> Spanned<Duration> {
    Spanned::new(0..0, Duration::from_secs(300))
}

fn default_max_concurrent_uploads() -> Spanned<usize> {
    Spanned::new(0..0, 4)
}

fn default_upload_idle_timeout() -> Spanned<Duration> {
    Spanned::new(0..0, Duration::from_secs(60))
}

fn default_listen() -> Spanned<String> {
    Spanned::new(0..0, "127.0.0.1:9464".into())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// On SIGTERM/SIGINT, how long running jobs may take to finish before the daemon stops
    /// them (they stay queued and are redone on the next start).
    #[serde(default = "default_shutdown_grace", deserialize_with = "duration")]
    pub shutdown_grace: Spanned<Duration>,
    /// How often retention (`keep_*`) and the clean-up of stale temporary files run.
    #[serde(default = "default_cleanup_every", deserialize_with = "duration")]
    pub cleanup_every: Spanned<Duration>,
    /// New jobs wait while the journal's or an output folder's disk has less free.
    #[serde(default, deserialize_with = "dataset::optional_size")]
    pub min_free_disk: Option<u64>,
    /// This daemon's name among several feeding one `s3://` dataset (its manifest shard,
    /// `manifests/<box_id>.jsonl`); default: the host name.
    #[serde(default)]
    pub box_id: Option<Spanned<String>>,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            shutdown_grace: default_shutdown_grace(),
            cleanup_every: default_cleanup_every(),
            min_free_disk: None,
            box_id: None,
        }
    }
}

fn default_cleanup_every() -> Spanned<Duration> {
    Spanned::new(0..0, Duration::from_secs(3600))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalConfig {
    pub path: PathBuf,
    /// The audit log (JSON lines); default: `audit.jsonl` beside the journal.
    #[serde(default)]
    pub audit_log: Option<PathBuf>,
    /// Rotate the audit log when it reaches this size.
    #[serde(default = "default_audit_max_size", deserialize_with = "s3::size")]
    pub audit_max_size: Spanned<u64>,
    /// Rotated audit logs to keep (`audit.jsonl.1` … `.N`).
    #[serde(default = "default_audit_keep")]
    pub audit_keep: u32,
    /// Trim the step-by-step events of inputs finished longer ago than this (their first
    /// and final events, and every input row, stay; the audit log keeps everything).
    #[serde(default, deserialize_with = "optional_duration")]
    pub compact_after: Option<Duration>,
}

impl JournalConfig {
    pub fn audit_path(&self) -> PathBuf {
        self.audit_log.clone().unwrap_or_else(|| {
            self.path
                .parent()
                .map_or_else(|| PathBuf::from("audit.jsonl"), |p| p.join("audit.jsonl"))
        })
    }
}

fn default_audit_max_size() -> Spanned<u64> {
    Spanned::new(0..0, 64 << 20)
}
fn default_vad() -> bool {
    true
}
fn default_true() -> bool {
    true
}
fn default_audit_keep() -> u32 {
    5
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AsrConfig {
    pub model: PathBuf,
    #[serde(default = "default_threads")]
    pub threads: Spanned<i32>,
    #[serde(default = "default_language")]
    pub language: String,
    /// Transcriptions at once (one GPU: 1).
    #[serde(default = "default_workers")]
    pub workers: Spanned<usize>,
    /// Skip non-speech with Silero VAD (default on). The model is `vad_model`, or else the
    /// one found beside `model` or in the models folders; without one a warning says so.
    #[serde(default = "default_vad")]
    pub vad: bool,
    /// Silero VAD model; when set it must exist.
    #[serde(default)]
    pub vad_model: Option<Spanned<PathBuf>>,
    /// Unload the model after this long without work (its memory, VRAM on a GPU build, is
    /// given back) and load it again for the next file; "0s": never.
    #[serde(default = "default_idle_unload", deserialize_with = "duration")]
    pub idle_unload: Spanned<Duration>,
    /// A transcription starts only with this much GPU memory free (checked with NVML;
    /// skipped without an NVIDIA GPU).
    #[serde(default, deserialize_with = "dataset::optional_size")]
    pub min_free_gpu_memory: Option<u64>,
    /// The CUDA device transcription runs on (0: the first the daemon may use), and whose
    /// free memory `min_free_gpu_memory` checks. Training runs get another, or this one.
    #[serde(default)]
    pub gpu_device: u32,
    /// Encoder context for inputs shorter than one window: "full" or "fit" (faster on short
    /// clips, a little less accurate; see `hotfolderd transcribe --help`).
    #[serde(default)]
    pub audio_ctx: crate::pipeline::transcribe::AudioCtx,
    /// Which audio track of a file with several is transcribed: "default" (the container's,
    /// or the first), an index (0 is the first audio track) or a language tag ("eng").
    #[serde(default)]
    pub audio_track: crate::pipeline::audio_track::AudioTrack,
    /// Per-job time limit: `job_timeout_min` + audio duration × `job_timeout_factor`, at most
    /// `job_timeout_max` (also the limit when the duration is unknown).
    #[serde(default = "default_timeout_factor")]
    pub job_timeout_factor: Spanned<f64>,
    #[serde(default = "default_timeout_min", deserialize_with = "duration")]
    pub job_timeout_min: Spanned<Duration>,
    #[serde(default = "default_timeout_max", deserialize_with = "duration")]
    pub job_timeout_max: Spanned<Duration>,
    /// Word timestamps by DTW over the alignment heads of every model the daemon loads
    /// (whisper.cpp's presets; flash attention off).
    #[serde(default)]
    pub dtw: bool,
    /// Flash attention (whisper-cli's default; the CLI's `--no-flash-attn` is `false`).
    #[serde(default = "default_true")]
    pub flash_attn: bool,
    /// Run on the GPU in builds with a GPU back-end (the CLI's `--no-gpu` is `false`).
    #[serde(default = "default_true")]
    pub use_gpu: bool,
    /// Models kept loaded at once, the serving one included: another profile's model is
    /// loaded when first needed, and the least recently used unloaded first.
    #[serde(default = "default_max_loaded_models")]
    pub max_loaded_models: Spanned<usize>,
    /// The other decoding options (the CLI's, by the same names), defaults for every profile.
    #[serde(flatten)]
    pub decoding: Decoding,
}

fn default_max_loaded_models() -> Spanned<usize> {
    Spanned::new(0..0, 2)
}

impl AsrConfig {
    /// How the daemon loads models: on `gpu_device`, with DTW when asked.
    pub fn model_options(&self) -> crate::pipeline::transcribe::ModelOptions {
        crate::pipeline::transcribe::ModelOptions {
            gpu_device: self.gpu_device as i32,
            dtw: self.dtw,
            flash_attn: self.flash_attn,
            use_gpu: self.use_gpu,
        }
    }

    pub fn limits(&self) -> JobLimits {
        JobLimits {
            factor: *self.job_timeout_factor.get_ref(),
            min: *self.job_timeout_min.get_ref(),
            max: *self.job_timeout_max.get_ref(),
        }
    }
}

/// The per-job time limit rule (see [`AsrConfig::job_timeout_factor`]).
#[derive(Debug, Clone, Copy)]
pub struct JobLimits {
    pub factor: f64,
    pub min: Duration,
    pub max: Duration,
}

impl JobLimits {
    /// The time limit for a job on `audio_seconds` of audio (`None`: not known up front).
    pub fn job_timeout(&self, audio_seconds: Option<f64>) -> Duration {
        let Some(secs) = audio_seconds.filter(|s| s.is_finite() && *s >= 0.0) else {
            return self.max;
        };
        let scaled = Duration::try_from_secs_f64(secs * self.factor).unwrap_or(self.max);
        (self.min + scaled).min(self.max)
    }
}

/// What happens to an input once its outputs are durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum After {
    /// Move it to `done/` under the watched folder.
    Move,
    Keep,
    Delete,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchConfig {
    pub path: Spanned<PathBuf>,
    pub output: Spanned<PathBuf>,
    #[serde(default = "default_stable_for", deserialize_with = "duration")]
    pub stable_for: Spanned<Duration>,
    /// Default: `move`, or `keep` where `output = "beside"` (a media library's files stay).
    #[serde(default)]
    pub after: Option<Spanned<After>>,
    #[serde(default = "default_formats")]
    pub formats: Spanned<Vec<Format>>,
    /// Only files with these extensions are inputs (default: every file where outputs go to
    /// a folder of their own, the media extensions where `output = "beside"`).
    #[serde(default)]
    pub extensions: Option<Spanned<Vec<String>>>,
    /// Full scan of the folder besides events (catches overflows, NFS, FUSE).
    #[serde(default = "default_rescan_every", deserialize_with = "duration")]
    pub rescan_every: Spanned<Duration>,
    /// Process `x.wav` only once `x.wav<marker>` exists (e.g. ".done").
    #[serde(default)]
    pub marker: Option<String>,
    /// Delete inputs kept in `done/` this long after they finished; absent: keep them.
    #[serde(default, deserialize_with = "optional_duration")]
    pub keep_done: Option<Duration>,
    /// Delete inputs quarantined in `failed/` (and their reports) this long after.
    #[serde(default, deserialize_with = "optional_duration")]
    pub keep_failed: Option<Duration>,
    /// Delete the transcripts in `output` this long after they were written.
    #[serde(default, deserialize_with = "optional_duration")]
    pub keep_outputs: Option<Duration>,
    /// Larger files are quarantined without being read: "4GiB", "500MB", or bytes.
    #[serde(default = "default_max_file_size", deserialize_with = "s3::size")]
    pub max_file_size: Spanned<u64>,
    /// A named profile (`[profiles.NAME]`) this folder decodes with.
    #[serde(default)]
    pub profile: Option<Spanned<String>>,
    /// This folder's own overrides of `[asr]` (and of its profile).
    #[serde(default)]
    pub asr: Option<Profile>,
}

impl WatchConfig {
    /// Its profile resolved against `[asr]`; the folder's own `formats` win when set.
    pub fn resolved(&self, config: &Config) -> Result<Resolved, String> {
        let named = self.profile.as_ref().map(|p| p.get_ref().as_str());
        let mut r = config.resolve_profile(named, self.asr.as_ref())?;
        r.formats = own_formats(&self.formats).or(r.formats);
        if self.beside() && r.formats.is_none() {
            r.formats = Some(media::DEFAULT_FORMATS.to_vec());
        }
        Ok(r)
    }

    /// `output = "beside"`: a media library, subtitles written next to each file.
    pub fn beside(&self) -> bool {
        self.output.get_ref() == Path::new(media::BESIDE)
    }

    /// `max_file_size`; a media library's films are often larger than its default, so
    /// there it has no limit unless one is set.
    pub fn max_file_size(&self) -> u64 {
        match self.max_file_size.span() == (0..0) && self.beside() {
            true => u64::MAX,
            false => *self.max_file_size.get_ref(),
        }
    }

    pub fn after(&self) -> After {
        match &self.after {
            Some(a) => *a.get_ref(),
            None if self.beside() => After::Keep,
            None => After::Move,
        }
    }

    /// The extensions (lower case, no dot) files must have to be inputs; `None`: any.
    pub fn extensions(&self) -> Option<Vec<String>> {
        match &self.extensions {
            Some(e) => Some(
                e.get_ref()
                    .iter()
                    .map(|x| media::normal_extension(x))
                    .collect(),
            ),
            None if self.beside() => Some(
                crate::sources::names::MEDIA_EXTENSIONS
                    .iter()
                    .map(|x| x.to_string())
                    .collect(),
            ),
            None => None,
        }
    }
}

/// A source's `formats` where the file sets them (the default leaves them to the profile).
fn own_formats(f: &Spanned<Vec<Format>>) -> Option<Vec<Format>> {
    (f.span() != (0..0)).then(|| f.get_ref().clone())
}

fn default_max_file_size() -> Spanned<u64> {
    Spanned::new(0..0, 4 << 30)
}

/// `p` from the working directory, as the daemon takes it (unchanged if that fails).
fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

fn optional_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(|s| Some(s.into_inner()))
}

fn default_threads() -> Spanned<i32> {
    Spanned::new(0..0, 2)
}
fn default_language() -> String {
    "en".into()
}
fn default_workers() -> Spanned<usize> {
    Spanned::new(0..0, 1)
}
fn default_timeout_factor() -> Spanned<f64> {
    Spanned::new(0..0, 3.0)
}
fn default_timeout_min() -> Spanned<Duration> {
    Spanned::new(0..0, Duration::from_secs(10 * 60))
}
fn default_timeout_max() -> Spanned<Duration> {
    Spanned::new(0..0, Duration::from_secs(12 * 3600))
}
fn default_idle_unload() -> Spanned<Duration> {
    Spanned::new(0..0, Duration::ZERO)
}
fn default_shutdown_grace() -> Spanned<Duration> {
    Spanned::new(0..0, Duration::from_secs(30))
}
fn default_stable_for() -> Spanned<Duration> {
    Spanned::new(0..0, Duration::from_secs(2))
}
fn default_formats() -> Spanned<Vec<Format>> {
    Spanned::new(0..0, Format::DEFAULT.to_vec())
}
fn default_rescan_every() -> Spanned<Duration> {
    Spanned::new(0..0, Duration::from_secs(60))
}

/// Durations as humans write them: "2s", "500ms", "1h 30m".
fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Spanned<Duration>, D::Error> {
    let s = Spanned::<String>::deserialize(d)?;
    let span = s.span();
    humantime::parse_duration(s.get_ref())
        .map(|v| Spanned::new(span, v))
        .map_err(|e| {
            serde::de::Error::custom(format!(
                "{:?} is not a duration like \"2s\" or \"500ms\": {e}",
                s.get_ref()
            ))
        })
}

/// A configuration problem, located in the file where possible.
#[derive(Debug, thiserror::Error)]
#[error("{location}: {message}")]
pub struct ConfigError {
    pub location: String,
    pub message: String,
}

/// Where an unknown key is written. serde reports an unknown key of a table with flattened
/// keys (`[asr]`, profiles) at the table's header: find the key's own line in that table.
fn unknown_key_at(
    text: &str,
    span: std::ops::Range<usize>,
    message: &str,
) -> std::ops::Range<usize> {
    let Some(key) = message
        .strip_prefix("unknown field `")
        .and_then(|r| r.split('`').next())
    else {
        return span;
    };
    let from = span.start.min(text.len());
    let mut offset = from;
    for (i, line) in text[from..].split_inclusive('\n').enumerate() {
        let trimmed = line.trim_start();
        if i > 0 && trimmed.starts_with('[') {
            break;
        }
        let is_key = trimmed
            .strip_prefix(key)
            .is_some_and(|rest| rest.trim_start().starts_with('='));
        if is_key {
            let at = offset + (line.len() - trimmed.len());
            return at..at + key.len();
        }
        offset += line.len();
    }
    span
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, Vec<ConfigError>> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            vec![ConfigError {
                location: path.display().to_string(),
                message: format!("cannot read: {e}"),
            }]
        })?;
        Self::parse(&text, &path.display().to_string(), |k| {
            std::env::var(k).ok()
        })
    }

    /// Parses, applies environment overrides (`env`), and validates; every problem found is
    /// returned, each with `file:line:column` where it has a place in the file.
    pub fn parse(
        text: &str,
        name: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, Vec<ConfigError>> {
        let at = |span: std::ops::Range<usize>| {
            if span.is_empty() && span.start == 0 {
                name.to_string()
            } else {
                let (l, c) = line_col(text, span.start);
                format!("{name}:{l}:{c}")
            }
        };
        let mut config: Config = toml::from_str(text).map_err(|e| {
            vec![ConfigError {
                location: e
                    .span()
                    .map(|span| unknown_key_at(text, span, e.message()))
                    .map_or(name.to_string(), &at),
                message: e.message().trim().to_string(),
            }]
        })?;
        let mut errors = Vec::new();
        config.apply_env(&env, &mut errors);
        config.validate(&at, &mut errors);
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(errors)
        }
    }

    fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>, errors: &mut Vec<ConfigError>) {
        let mut bad = |var: &str, value: &str, what: &str| {
            errors.push(ConfigError {
                location: format!("environment {var}"),
                message: format!("{value:?} is not {what}"),
            })
        };
        if let Some(v) = env("HOTFOLDERD_JOURNAL_PATH") {
            self.journal.path = v.into();
        }
        if let Some(v) = env("HOTFOLDERD_ASR_MODEL") {
            self.asr.model = v.into();
        }
        if let Some(v) = env("HOTFOLDERD_ASR_LANGUAGE") {
            self.asr.language = v;
        }
        if let Some(v) = env("HOTFOLDERD_ASR_THREADS") {
            match v.parse() {
                Ok(n) => self.asr.threads = Spanned::new(0..0, n),
                Err(_) => bad("HOTFOLDERD_ASR_THREADS", &v, "a number of threads"),
            }
        }
        if let Some(v) = env("HOTFOLDERD_ASR_WORKERS") {
            match v.parse() {
                Ok(n) => self.asr.workers = Spanned::new(0..0, n),
                Err(_) => bad("HOTFOLDERD_ASR_WORKERS", &v, "a number of workers"),
            }
        }
    }

    fn validate(
        &self,
        at: &dyn Fn(std::ops::Range<usize>) -> String,
        errors: &mut Vec<ConfigError>,
    ) {
        let mut err = |span: std::ops::Range<usize>, message: String| {
            errors.push(ConfigError {
                location: at(span),
                message,
            })
        };
        if self.daemon.cleanup_every.get_ref().is_zero() {
            err(
                self.daemon.cleanup_every.span(),
                "daemon.cleanup_every must be more than 0".into(),
            );
        }
        for (place, message) in self.profile_problems() {
            let span = match place {
                profile::ProfilePlace::Source(span) => span,
                profile::ProfilePlace::Asr | profile::ProfilePlace::Named => 0..0,
            };
            err(span, message);
        }
        for (key, why) in self.subtitles.get_ref().problems() {
            err(self.subtitles.span(), format!("subtitles.{key} {why}"));
        }
        if let Some(id) = &self.daemon.box_id {
            if let Err(e) = crate::dataset::shard::check_box_id(id.get_ref()) {
                err(id.span(), format!("daemon.box_id: {e}"));
            }
        }
        if *self.asr.threads.get_ref() < 1 {
            err(
                self.asr.threads.span(),
                "asr.threads must be at least 1".into(),
            );
        }
        if *self.asr.workers.get_ref() < 1 {
            err(
                self.asr.workers.span(),
                "asr.workers must be at least 1".into(),
            );
        }
        if let (true, Some(p)) = (self.asr.vad, &self.asr.vad_model) {
            if let Err(e) = vad_model::check(p.get_ref()) {
                err(p.span(), format!("asr.vad_model: {e} (asr.vad = false)"));
            }
        }
        let factor = *self.asr.job_timeout_factor.get_ref();
        if !factor.is_finite() || factor < 0.0 {
            err(
                self.asr.job_timeout_factor.span(),
                format!("asr.job_timeout_factor must be 0 or more, not {factor}"),
            );
        }
        if self.asr.job_timeout_max.get_ref() < self.asr.job_timeout_min.get_ref() {
            err(
                self.asr.job_timeout_max.span(),
                "asr.job_timeout_max is shorter than asr.job_timeout_min".into(),
            );
        }
        if !self.s3.is_empty() && *self.asr.job_timeout_max.get_ref() > s3::SQS_MAX_HIDDEN {
            err(
                self.asr.job_timeout_max.span(),
                "asr.job_timeout_max is longer than 12h, the longest SQS keeps a received message hidden: a job running longer would be delivered to another daemon and done twice; set it to 12h or less".into(),
            );
        }
        for (i, w) in self.watch.iter().enumerate() {
            let (input, output) = (w.path.get_ref(), w.output.get_ref());
            if input.as_os_str().is_empty() {
                err(w.path.span(), format!("watch[{i}].path is empty"));
            }
            for (span, message) in media::problems(i, w) {
                err(span, message);
            }
            for library in self.watch.iter().filter(|l| l.beside()) {
                if !w.beside() && absolute(output).starts_with(absolute(library.path.get_ref())) {
                    err(
                        w.output.span(),
                        format!(
                            "watch[{i}].output {} is inside the media library {}: its outputs would mix with the library's files",
                            output.display(),
                            library.path.get_ref().display()
                        ),
                    );
                }
            }
            if output.starts_with(input) && !w.beside() {
                err(
                    w.output.span(),
                    format!(
                        "watch[{i}].output {} is inside the watched folder {}: outputs would be picked up as inputs",
                        output.display(),
                        input.display()
                    ),
                );
            }
            if w.stable_for.get_ref().is_zero() {
                err(
                    w.stable_for.span(),
                    format!("watch[{i}].stable_for must be more than 0"),
                );
            }
            if w.formats.get_ref().is_empty() {
                err(
                    w.formats.span(),
                    format!("watch[{i}].formats is empty: no outputs would be written"),
                );
            }
            for (j, other) in self.watch.iter().enumerate().skip(i + 1) {
                let (a, b) = (absolute(input), absolute(other.path.get_ref()));
                let nested = a.starts_with(&b) || b.starts_with(&a);
                if nested && a != b && (w.beside() || other.beside()) {
                    err(
                        other.path.span(),
                        format!(
                            "watch[{j}].path {} and watch[{i}].path {} are one inside the other, and one is a media library (output = \"beside\"): the other folder would take, move or quarantine the library's files; watch separate folders",
                            other.path.get_ref().display(),
                            input.display()
                        ),
                    );
                }
                if other.path.get_ref() == input {
                    err(
                        other.path.span(),
                        format!(
                            "watch[{j}].path repeats watch[{i}].path {}",
                            input.display()
                        ),
                    );
                }
            }
        }
        for (i, q) in self.s3.iter().enumerate() {
            for (span, message) in q.problems(i) {
                err(span, message);
            }
            for (j, other) in self.s3.iter().enumerate().skip(i + 1) {
                if other.queue_url.get_ref() == q.queue_url.get_ref() {
                    err(
                        other.queue_url.span(),
                        format!(
                            "s3[{j}].queue_url repeats s3[{i}].queue_url {}: two pollers of one queue would each take the other's events; give each [[s3]] its own queue",
                            q.queue_url.get_ref()
                        ),
                    );
                }
            }
        }
        if let Some(h) = &self.http {
            match h.listen.get_ref().parse::<std::net::SocketAddr>() {
                Err(e) => err(
                    h.listen.span(),
                    format!("http.listen {:?} is not an address like \"127.0.0.1:9464\": {e}", h.listen.get_ref()),
                ),
                Ok(a) if !a.ip().is_loopback() && h.token_file.is_none() => err(
                    h.listen.span(),
                    format!("http.listen {a} is reachable from other machines: set http.token_file (a file with the bearer token) or listen on 127.0.0.1"),
                ),
                Ok(_) => {}
            }
            if *h.max_concurrent_uploads.get_ref() == 0 {
                err(
                    h.max_concurrent_uploads.span(),
                    "http.max_concurrent_uploads is 0: every upload would be refused; leave it out for 4".into(),
                );
            }
            if *h.max_upload_size.get_ref() == 0 {
                err(
                    h.max_upload_size.span(),
                    "http.max_upload_size is 0: every upload would be refused".into(),
                );
            }
        }
        let known: Vec<String> = self
            .watch
            .iter()
            .map(|w| w.path.get_ref().to_string_lossy().into_owned())
            .chain(self.s3.iter().map(|q| q.queue_url.get_ref().clone()))
            // Uploads to the API are the source "http".
            .chain(
                self.http
                    .iter()
                    .filter(|h| h.api)
                    .map(|_| "http".to_string()),
            )
            .collect();
        for (i, n) in self.notify.iter().enumerate() {
            for (span, message) in n.problems(i, &known) {
                err(span, message);
            }
        }
        for (i, d) in self.dataset.iter().enumerate() {
            for (span, message) in d.problems(i, &known) {
                err(span, message);
            }

            for (j, other) in self.dataset.iter().enumerate().skip(i + 1) {
                if other.name.get_ref() == d.name.get_ref() {
                    err(
                        other.name.span(),
                        format!(
                            "dataset[{j}].name repeats dataset[{i}].name {:?}",
                            d.name.get_ref()
                        ),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[journal]
path = "var/state/journal.sqlite"
[asr]
model = "var/models/ggml-tiny.en.bin"
threads = 2
language = "en"
[[watch]]
path = "var/inbox"
output = "var/out"
stable_for = "2s"
after = "move"
formats = ["json", "srt", "vtt", "txt"]
[[watch]]
path = "var/inbox-calls"
output = "var/out-calls"
stable_for = "500ms"
after = "keep"
marker = ".done"
"#;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn the_documented_shape_parses_with_defaults() {
        let c = Config::parse(GOOD, "t.toml", no_env).unwrap();
        assert_eq!(c.watch.len(), 2);
        assert_eq!(*c.watch[0].stable_for.get_ref(), Duration::from_secs(2));
        assert_eq!(*c.watch[1].stable_for.get_ref(), Duration::from_millis(500));
        assert_eq!(c.watch[1].after(), After::Keep);
        assert_eq!(c.watch[0].extensions(), None);
        assert_eq!(c.watch[1].formats.get_ref().len(), 4);
        assert_eq!(*c.watch[1].rescan_every.get_ref(), Duration::from_secs(60));
        assert_eq!(*c.asr.workers.get_ref(), 1);
        assert_eq!(*c.daemon.shutdown_grace.get_ref(), Duration::from_secs(30));
    }

    #[test]
    fn the_job_timeout_scales_with_the_audio_and_is_capped() {
        let text = GOOD.replace(
            "language = \"en\"",
            "language = \"en\"\njob_timeout_factor = 2.0\njob_timeout_min = \"1m\"\njob_timeout_max = \"1h\"",
        );
        let asr = Config::parse(&text, "t.toml", no_env).unwrap().asr.limits();
        let mins = |m: u64| Duration::from_secs(m * 60);
        assert_eq!(asr.job_timeout(Some(0.0)), mins(1));
        assert_eq!(asr.job_timeout(Some(600.0)), mins(21));
        assert_eq!(asr.job_timeout(Some(7200.0)), mins(60));
        assert_eq!(asr.job_timeout(None), mins(60));
        let bad = text.replace("\"1h\"", "\"30s\"");
        let e = Config::parse(&bad, "t.toml", no_env).unwrap_err();
        assert!(e[0].message.contains("job_timeout_max"), "{e:?}");
    }

    #[test]
    fn an_s3_source_parses_and_its_limits_are_checked() {
        let text = format!(
            "{GOOD}[[s3]]\nqueue_url = \"https://sqs.us-east-1.amazonaws.com/1/q\"\ninput_bucket = \"media\"\n\
             input_prefix = \"in/\"\noutput_bucket = \"results\"\nmax_object_size = \"2GiB\"\n"
        );
        let c = Config::parse(&text, "t.toml", no_env).unwrap();
        assert_eq!(*c.s3[0].max_object_size.get_ref(), 2 << 30);
        assert_eq!(
            *c.s3[0].visibility_timeout.get_ref(),
            Duration::from_secs(60)
        );
        let bad = text.replace(
            "\"results\"",
            "\"media\"\noutput_prefix = \"in/out/\"\nmax_messages = 11",
        );
        let e = Config::parse(&bad, "t.toml", no_env).unwrap_err();
        assert!(
            e.iter().any(|e| e.message.contains("max_messages")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|e| e.message.contains("every output would trigger")),
            "{e:?}"
        );
    }

    #[test]
    fn the_shipped_example_is_valid() {
        let text =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_PATH))
                .unwrap();
        Config::parse(&text, DEFAULT_PATH, no_env).unwrap();
    }

    #[test]
    fn unknown_keys_and_bad_values_point_at_line_and_column() {
        let text = GOOD.replace("stable_for = \"2s\"", "stabel_for = \"2s\"");
        let e = Config::parse(&text, "t.toml", no_env).unwrap_err();
        assert_eq!(e[0].location, "t.toml:11:1", "{e:?}");
        assert!(e[0].message.contains("stabel_for"), "{e:?}");
        let text = GOOD.replace("\"500ms\"", "\"soon\"");
        let e = Config::parse(&text, "t.toml", no_env).unwrap_err();
        assert!(e[0].location.starts_with("t.toml:17:"), "{e:?}");
        assert!(e[0].message.contains("not a duration"), "{e:?}");
    }

    #[test]
    fn a_media_library_keeps_its_files_and_takes_media_only() {
        let media = GOOD
            .replace("output = \"var/out-calls\"", "output = \"beside\"")
            .replace("after = \"keep\"\n", "");
        let c = Config::parse(&media, "t.toml", no_env).unwrap();
        let w = &c.watch[1];
        assert!(w.beside() && w.after() == After::Keep);
        assert!(w.extensions().unwrap().contains(&"mkv".to_string()));
        assert_eq!(
            w.resolved(&c).unwrap().formats,
            Some(vec![Format::Srt]),
            "players read srt"
        );
        let bad = media.replace(
            "marker = \".done\"",
            "marker = \".done\"\nafter = \"move\"\nkeep_outputs = \"1d\"\nextensions = [\"mkv\", \".SRT\"]",
        );
        let e = Config::parse(&bad, "t.toml", no_env).unwrap_err();
        let messages: Vec<&str> = e.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(e.len(), 3, "{messages:?}");
        assert!(messages[0].contains("\".SRT\", an extension its own outputs have"));
        assert!(messages[1].contains("watch[1].after"), "{e:?}");
        assert!(e[1].location.starts_with("t.toml:19:"), "{e:?}");
        assert!(messages[2].contains("keep_outputs"));
        assert_eq!(w.max_file_size(), u64::MAX, "films are often over 4 GiB");
        let nested = media.replace("path = \"var/inbox-calls\"", "path = \"var/inbox/films\"");
        let e = Config::parse(&nested, "t.toml", no_env).unwrap_err();
        assert!(e[0].message.contains("one inside the other"), "{e:?}");
        let empty = GOOD.replace("marker = \".done\"", "extensions = []");
        let e = Config::parse(&empty, "t.toml", no_env).unwrap_err();
        assert!(e[0].message.contains("extensions is empty"), "{e:?}");
    }

    #[test]
    fn semantic_errors_are_all_reported_with_their_place() {
        let text = GOOD
            .replace("output = \"var/out\"", "output = \"var/inbox/out\"")
            .replace("threads = 2", "threads = 0");
        let e = Config::parse(&text, "t.toml", no_env).unwrap_err();
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(
            e[0].location == "t.toml:6:11" && e[0].message.contains("threads"),
            "{e:?}"
        );
        assert!(
            e[1].location.starts_with("t.toml:10:")
                && e[1].message.contains("inside the watched folder"),
            "{e:?}"
        );
    }

    #[test]
    fn datasets_are_checked_against_the_sources_and_their_rules() {
        let good = format!(
            "{GOOD}[[dataset]]\nname = \"calls\"\nsources = [\"var/inbox\"]\npath = \"s3://b/p\"\n\
             train_after_hours = 2.5\n[dataset.trainer]\ncommand = [\"python3\", \"t.py\"]\n\
             min_free_gpu_memory = \"6GiB\"\ngpu_policy = \"shared\"\n"
        );
        let c = Config::parse(&good, "t.toml", no_env).unwrap();
        let d = &c.dataset[0];
        assert_eq!(d.trainer.min_free_gpu_memory, Some(6 << 30));
        assert_eq!(d.trainer.gpu_policy, GpuPolicy::Shared);
        assert_eq!(*d.trainer.timeout.get_ref(), Duration::from_secs(7200));
        // whisper's own thresholds for a failed decode, unless set.
        assert_eq!(*d.min_avg_logprob.get_ref(), -1.0);
        assert_eq!(*d.max_compression_ratio.get_ref(), 2.4);
        let filters = good.replace(
            "train_after_hours = 2.5\n",
            "train_after_hours = 2.5\nmin_avg_logprob = -0.5\nmax_compression_ratio = 2.0\n",
        );
        let c = Config::parse(&filters, "t.toml", no_env).unwrap();
        assert_eq!(*c.dataset[0].min_avg_logprob.get_ref(), -0.5);
        assert_eq!(*c.dataset[0].max_compression_ratio.get_ref(), 2.0);
        let e = Config::parse(
            &filters.replace("-0.5", "0.5").replace("= 2.0", "= 0.0"),
            "t.toml",
            no_env,
        )
        .unwrap_err();
        let all: Vec<&str> = e.iter().map(|e| e.message.as_str()).collect();
        assert!(
            all.iter()
                .any(|m| m.contains("min_avg_logprob must be 0 or less")),
            "{all:#?}"
        );
        assert!(
            all.iter()
                .any(|m| m.contains("max_compression_ratio must be more than 0")),
            "{all:#?}"
        );
        // A teacher model must be there (it is loaded only when the first input arrives).
        let teacher = good.replace(
            "train_after_hours = 2.5\n",
            "train_after_hours = 2.5\nteacher_model = \"/no/such/ggml-base.bin\"\n",
        );
        let e = Config::parse(&teacher, "t.toml", no_env).unwrap_err();
        assert!(
            e.len() == 1
                && e[0]
                    .message
                    .contains("teacher_model /no/such/ggml-base.bin is not a model file"),
            "{e:?}"
        );
        let here = tempfile::NamedTempFile::new().unwrap();
        let c = Config::parse(
            &teacher.replace("/no/such/ggml-base.bin", &here.path().display().to_string()),
            "t.toml",
            no_env,
        )
        .unwrap();
        assert_eq!(
            c.dataset[0].teacher_model.as_ref().unwrap().get_ref(),
            here.path()
        );
        let bad = good
            .replace("name = \"calls\"", "name = \"my calls\"")
            .replace("[\"var/inbox\"]", "[\"var/elsewhere\"]")
            .replace("2.5", "0")
            .replace("s3://b/p", "s3:///p")
            .replace("[\"python3\", \"t.py\"]", "[]");
        let e = Config::parse(&bad, "t.toml", no_env).unwrap_err();
        let all: Vec<&str> = e.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(e.len(), 5, "{all:#?}");
        for want in [
            "letters, digits",
            "var/elsewhere",
            "names no bucket",
            "train_after_hours",
            "command is empty",
        ] {
            assert!(all.iter().any(|m| m.contains(want)), "{want} in {all:#?}");
        }
    }

    #[test]
    fn a_profile_diarizes_with_the_speaker_model_and_its_counts_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let speaker = dir.path().join("speaker.safetensors");
        crate::model::safetensors::write_f32(&speaker, &[("w".into(), vec![2])], |_| {
            Ok(vec![0.5, 0.25])
        })
        .unwrap();
        // Not a safetensors file at all: refused when the config is read.
        let damaged = dir.path().join("damaged.safetensors");
        std::fs::write(&damaged, b"x").unwrap();
        let with = |keys: &str| {
            GOOD.replace(
                "marker = \".done\"",
                &format!(
                    "marker = \".done\"\nprofile = \"meetings\"\n\
                     [profiles.meetings]\ndiarize = true\nspeaker_model = {:?}\n{keys}",
                    speaker.display().to_string()
                ),
            )
        };
        let c = Config::parse(&with("max_speakers = 4\n"), "t.toml", no_env).unwrap();
        let d = c.watch[1].resolved(&c).unwrap().opts.diarize.unwrap();
        assert_eq!(d.model, speaker);
        assert_eq!((d.num_speakers, d.max_speakers), (None, Some(4)));
        assert_eq!(d.threshold, crate::diarize::run::DEFAULT_THRESHOLD);
        assert!(c.watch[0].resolved(&c).unwrap().opts.diarize.is_none());
        // It is part of what dedup compares: a diarized transcript is another output.
        let scope =
            |o: &crate::pipeline::transcribe::DecodeOptions| crate::job::dedup_scope("m", o);
        assert_ne!(
            scope(&c.watch[1].resolved(&c).unwrap().opts),
            scope(&c.watch[0].resolved(&c).unwrap().opts)
        );
        for (keys, want) in [
            (
                "min_speakers = 3\nmax_speakers = 2\n",
                "min_speakers (3) is more than max_speakers (2)",
            ),
            ("num_speakers = 0\n", "must be at least 1"),
            (
                "channels = \"split\"\n",
                "diarize tells voices apart on one channel",
            ),
        ] {
            let e = Config::parse(&with(keys), "t.toml", no_env).unwrap_err();
            assert!(
                e.iter().any(|e| e.message.contains(want)),
                "{want} in {e:#?}"
            );
        }
        let broken = with("").replace(
            &speaker.display().to_string(),
            &damaged.display().to_string(),
        );
        let e = Config::parse(&broken, "t.toml", no_env).unwrap_err();
        assert!(
            e.iter()
                .any(|e| e.message.contains("damaged.safetensors") && e.message.contains("import")),
            "{e:#?}"
        );
        let e = Config::parse(
            &with("num_speakers = 2\nmax_speakers = 3\n"),
            "t.toml",
            no_env,
        )
        .unwrap_err();
        assert!(
            e.iter()
                .any(|e| e.message.contains("num_speakers sets the count")),
            "{e:#?}"
        );
        let missing = with("").replace(&speaker.display().to_string(), "/no/speaker.st");
        let e = Config::parse(&missing, "t.toml", no_env).unwrap_err();
        assert!(
            e.iter().any(|e| e
                .message
                .contains("speaker_model /no/speaker.st is not a file")
                && e.message.contains("scripts/fetch-model.sh speaker")),
            "{e:#?}"
        );
    }

    #[test]
    fn profiles_override_asr_key_by_key_and_are_all_checked() {
        let model = tempfile::NamedTempFile::new().unwrap();
        let text = GOOD
            .replace(
                "language = \"en\"",
                "language = \"en\"\nbeam_size = 2\nprompt = \"Hi.\"",
            )
            .replace(
                "marker = \".done\"",
                &format!(
                    "marker = \".done\"\nprofile = \"calls\"\n[watch.asr]\nbeam_size = 3\n\
                     [watch.asr.subtitles]\nmax_lines = 1\n\
                     [profiles.calls]\nmodel = {:?}\nlanguages = [\"en\", \"de\"]\n\
                     hotwords = [\"Kubernetes\"]\nvad = false\nformats = [\"srt\"]\n",
                    model.path().display().to_string()
                ),
            );
        let c = Config::parse(&text, "t.toml", no_env).unwrap();
        let plain = c.watch[0].resolved(&c).unwrap();
        assert_eq!((plain.opts.beam_size, plain.model.as_ref()), (2, None));
        assert_eq!(plain.opts.prompt.as_deref(), Some("Hi."));
        assert_eq!(plain.formats.unwrap().len(), 4, "the folder's own formats");
        let calls = c.watch[1].resolved(&c).unwrap();
        assert_eq!(calls.model.as_deref(), Some(model.path()));
        assert_eq!(calls.opts.beam_size, 3, "the folder's own key wins");
        assert_eq!(calls.opts.language, "auto");
        assert_eq!(calls.opts.languages, ["en", "de"]);
        assert_eq!(calls.opts.prompt.as_deref(), Some("Kubernetes. Hi."));
        assert_eq!(calls.opts.vad_model, None);
        assert_eq!(calls.formats, Some(vec![Format::Srt]));
        assert_eq!(calls.opts.subtitles.max_lines, 1);
        assert_eq!(calls.opts.subtitles.max_line_width, 42);
        // A language set on the folder wins over the set its profile detects among.
        let german = text.replace(
            "beam_size = 3",
            "beam_size = 3\nlanguage = \"de\"\nprompt = \"Guten Tag.\"",
        );
        let c = Config::parse(&german, "t.toml", no_env).unwrap();
        let r = c.watch[1].resolved(&c).unwrap();
        assert_eq!(
            (r.opts.language.as_str(), r.opts.languages.len()),
            ("de", 0)
        );
        // Its own prompt, the profile's hotwords: each key layered on its own.
        assert_eq!(r.opts.prompt.as_deref(), Some("Kubernetes. Guten Tag."));
        // [asr] alone gives the same options as before profiles existed (dedup scopes).
        let asr = c.resolve_profile(None, None).unwrap().opts;
        assert_eq!(asr.beam_size, 2);

        let bad = text
            .replace("beam_size = 3", "beam_size = 0\nlanguage = \"xx\"")
            .replace("profile = \"calls\"", "profile = \"meetings\"")
            .replace("max_lines = 1", "max_lines = 0")
            .replace(&model.path().display().to_string(), "/no/such/model.bin")
            .replace("[\"en\", \"de\"]", "[\"en\", \"klingon\"]");
        let e = Config::parse(&bad, "t.toml", no_env).unwrap_err();
        let all: Vec<&str> = e.iter().map(|e| e.message.as_str()).collect();
        for want in [
            "watch[1].asr.beam_size must be 1 (greedy) to 16, not 0",
            "watch[1].asr.language \"xx\" is not a Whisper language code",
            "watch[1].asr.subtitles.max_lines",
            "watch[1].profile \"meetings\" is not defined (known: calls)",
            "profiles.calls.model /no/such/model.bin is not a model file",
            "profiles.calls.languages has \"klingon\"",
        ] {
            assert!(all.iter().any(|m| m.contains(want)), "{want} in {all:#?}");
        }
        // Settings that only clash once combined are found on the source.
        let clash = text.replace(
            "beam_size = 3",
            "beam_size = 3\nlanguage = \"de\"\nlanguages = []\nlanguage_per_segment = true",
        );
        let e = Config::parse(&clash, "t.toml", no_env).unwrap_err();
        assert!(
            e.iter().any(|e| e
                .message
                .contains("watch[1]: language_per_segment detects each stretch's language")),
            "{e:#?}"
        );
        // Unknown keys are refused in [asr] and in a profile alike.
        for typo in ["beam_sise = 2", "[watch.asr]\nbeam_sise = 2"] {
            let t = format!("{GOOD}{typo}\n");
            let t = if typo.starts_with("beam") {
                GOOD.replace("threads = 2", typo)
            } else {
                t
            };
            let e = Config::parse(&t, "t.toml", no_env).unwrap_err();
            assert!(e[0].message.contains("beam_sise"), "{e:?}");
            let line = t.lines().position(|l| l.starts_with("beam_sise")).unwrap() + 1;
            assert_eq!(e[0].location, format!("t.toml:{line}:1"), "{e:?}");
        }
    }

    #[test]
    fn environment_overrides_common_keys() {
        let env = |k: &str| match k {
            "HOTFOLDERD_ASR_THREADS" => Some("4".to_string()),
            "HOTFOLDERD_JOURNAL_PATH" => Some("/var/lib/hotfolderd/j.sqlite".to_string()),
            _ => None,
        };
        let c = Config::parse(GOOD, "t.toml", env).unwrap();
        assert_eq!(*c.asr.threads.get_ref(), 4);
        assert_eq!(
            c.journal.path,
            PathBuf::from("/var/lib/hotfolderd/j.sqlite")
        );
        let bad = |k: &str| (k == "HOTFOLDERD_ASR_WORKERS").then(|| "many".to_string());
        let e = Config::parse(GOOD, "t.toml", bad).unwrap_err();
        assert_eq!(e[0].location, "environment HOTFOLDERD_ASR_WORKERS");
    }
}
