//! `[[dataset]]`: training data cut from the transcripts of some sources, an hours
//! threshold, and the trainer to run when it is crossed.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::duration;
use super::s3::size;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetConfig {
    /// Letters, digits, `-` and `_`: it names folders and journal rows.
    pub name: Spanned<String>,
    /// `[[watch]]` paths and/or `[[s3]]` queue URLs, as written there.
    pub sources: Spanned<Vec<String>>,
    /// Where the manifest, segment audio and runs live: a local folder, or
    /// `s3://bucket/prefix` (then a working copy is kept beside the journal).
    pub path: Spanned<String>,
    /// Path-style addressing for an `s3://` path (S3-compatible stores, emulators).
    #[serde(default)]
    pub force_path_style: bool,
    /// New hours (since the last successful run) that start a training run.
    pub train_after_hours: Spanned<f64>,
    /// At least this long between the starts of two runs.
    #[serde(default = "zero", deserialize_with = "duration")]
    pub min_interval: Spanned<Duration>,
    /// Segments shorter than this are not used.
    #[serde(default = "default_min_segment")]
    pub min_segment_seconds: Spanned<f64>,
    /// Segments longer than this are cut at segment boundaries (Whisper's window is 30 s).
    #[serde(default = "default_max_segment")]
    pub max_segment_seconds: Spanned<f64>,
    /// Segments whose no-speech probability is above this are not used.
    #[serde(default = "default_max_no_speech")]
    pub max_no_speech_prob: Spanned<f32>,
    /// Segments whose mean token log-probability is below this are not used (whisper's and
    /// faster-whisper's `log_prob_threshold`, -1.0, by default).
    #[serde(default = "default_min_avg_logprob")]
    pub min_avg_logprob: Spanned<f32>,
    /// Segments whose text compresses better than this are not used: repetition loops
    /// (whisper's and faster-whisper's `compression_ratio_threshold`, 2.4, by default).
    #[serde(default = "default_max_compression_ratio")]
    pub max_compression_ratio: Spanned<f32>,
    /// With diarized inputs: a piece never spans a change of speaker (each piece is one
    /// voice), and stretches where no speaker was found are left out.
    #[serde(default)]
    pub single_speaker_only: bool,
    /// Only transcripts in this language ("en", …); unset: any.
    #[serde(default)]
    pub language: Option<String>,
    /// A bigger model that labels this dataset instead of the serving one (e.g. base for a
    /// tiny.en student); loaded on first use, dropped after `[asr] idle_unload`.
    #[serde(default)]
    pub teacher_model: Option<Spanned<PathBuf>>,
    /// The share of inputs (chosen by content hash) that runs hold out for evaluation and
    /// never train on.
    #[serde(default = "default_eval_fraction")]
    pub eval_fraction: Spanned<f64>,
    /// What a scored run's candidate becomes: "never" promoted, promoted "if_better" (its
    /// held-out WER lower by at least `min_wer_gain`), or "always".
    #[serde(default = "default_promote")]
    pub promote: Promote,
    /// How much lower (absolute, 0.01 = one point) the candidate's WER must be.
    #[serde(default = "default_min_wer_gain")]
    pub min_wer_gain: Spanned<f64>,
    /// How many finished run folders stay on disk (the newest; 0 keeps every one). An
    /// `s3://` dataset's folder goes only once it is in the bucket.
    #[serde(default = "default_keep_runs")]
    pub keep_runs: usize,
    /// How many of this dataset's candidate models keep their files beside the journal (the
    /// newest; 0 keeps every one). The serving model and the one `model rollback` would
    /// serve always stay; a removed one stays in the registry, marked, with its lineage.
    #[serde(default = "default_keep_candidates")]
    pub keep_candidates: usize,
    /// For an `s3://` dataset fed by several daemons: a run holds the dataset's lease in the
    /// bucket, renewed every third of this; a daemon that dies leaves it to the others
    /// after this long.
    #[serde(default = "default_lease_ttl", deserialize_with = "duration")]
    pub lease_ttl: Spanned<Duration>,
    pub trainer: TrainerConfig,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainerConfig {
    /// argv, run without a shell.
    pub command: Spanned<Vec<String>>,
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Spanned<Duration>,
    /// A run starts only with this much GPU memory free (checked with NVML; skipped, with a
    /// log line, where there is no NVIDIA GPU).
    #[serde(default, deserialize_with = "optional_size")]
    pub min_free_gpu_memory: Option<u64>,
    /// While a run holds the GPU: "exclusive" (transcription waits) or "shared".
    #[serde(default = "default_gpu_policy")]
    pub gpu_policy: GpuPolicy,
    /// After SIGTERM at the timeout, how long before SIGKILL.
    #[serde(default = "default_kill_after", deserialize_with = "duration")]
    pub kill_after: Spanned<Duration>,
    /// Start a new run at start-up for a run the daemon's stop or crash interrupted.
    #[serde(default = "yes")]
    pub retry_interrupted: bool,
    /// After a failed or interrupted run, wait this long before the next one (the hours
    /// still count, so without a pause a broken trainer would run back to back).
    #[serde(default = "default_retry_after", deserialize_with = "duration")]
    pub retry_after: Spanned<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Promote {
    Never,
    IfBetter,
    Always,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GpuPolicy {
    Exclusive,
    Shared,
}

fn zero() -> Spanned<Duration> {
    Spanned::new(0..0, Duration::ZERO)
}
fn default_min_segment() -> Spanned<f64> {
    Spanned::new(0..0, 1.0)
}
fn default_max_segment() -> Spanned<f64> {
    Spanned::new(0..0, 30.0)
}
fn default_max_no_speech() -> Spanned<f32> {
    Spanned::new(0..0, 0.6)
}
fn default_min_avg_logprob() -> Spanned<f32> {
    Spanned::new(0..0, -1.0)
}
fn default_max_compression_ratio() -> Spanned<f32> {
    Spanned::new(0..0, 2.4)
}
fn default_promote() -> Promote {
    Promote::IfBetter
}
fn default_min_wer_gain() -> Spanned<f64> {
    Spanned::new(0..0, 0.0)
}
fn default_keep_runs() -> usize {
    10
}
fn default_lease_ttl() -> Spanned<Duration> {
    Spanned::new(0..0, Duration::from_secs(300))
}
fn default_keep_candidates() -> usize {
    5
}
fn default_eval_fraction() -> Spanned<f64> {
    Spanned::new(0..0, 0.1)
}
fn default_timeout() -> Spanned<Duration> {
    Spanned::new(0..0, Duration::from_secs(2 * 3600))
}
fn default_kill_after() -> Spanned<Duration> {
    Spanned::new(0..0, Duration::from_secs(10))
}
fn default_retry_after() -> Spanned<Duration> {
    Spanned::new(0..0, Duration::from_secs(10 * 60))
}
fn default_gpu_policy() -> GpuPolicy {
    GpuPolicy::Exclusive
}
fn yes() -> bool {
    true
}

pub(super) fn optional_size<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<u64>, D::Error> {
    size(d).map(|s| Some(s.into_inner()))
}

impl DatasetConfig {
    /// Problems that parse but cannot work, as (span, message). `known_sources` are the
    /// `[[watch]]` paths and `[[s3]]` queue URLs as written.
    pub fn problems(
        &self,
        i: usize,
        known_sources: &[String],
    ) -> Vec<(std::ops::Range<usize>, String)> {
        let mut out = Vec::new();
        let name = self.name.get_ref();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            out.push((
                self.name.span(),
                format!("dataset[{i}].name {name:?} must be letters, digits, '-' or '_'"),
            ));
        }
        // Renewed every third of it; a run that cannot renew it must still have time to stop
        // its trainer (`kill_after`) before it expires, clocks a few seconds apart.
        let floor = 3 * (*self.trainer.kill_after.get_ref() + Duration::from_secs(5));
        if self.path.get_ref().starts_with("s3://") && *self.lease_ttl.get_ref() < floor {
            out.push((
                self.lease_ttl.span(),
                format!(
                    "dataset[{i}].lease_ttl must be at least {} (three times the trainer's kill_after plus 5s): the lease is renewed every third of it, and a run that cannot renew it must stop before it expires",
                    humantime::format_duration(floor)
                ),
            ));
        }
        if self.sources.get_ref().is_empty() {
            out.push((
                self.sources.span(),
                format!("dataset[{i}].sources is empty: nothing would feed it"),
            ));
        }
        for s in self.sources.get_ref() {
            if !known_sources.contains(s) {
                out.push((
                    self.sources.span(),
                    format!("dataset[{i}].sources names {s:?}, which is neither a [[watch]] path nor an [[s3]] queue_url in this file"),
                ));
            }
        }
        let path = self.path.get_ref();
        if path.is_empty() {
            out.push((self.path.span(), format!("dataset[{i}].path is empty")));
        }
        if let Some(rest) = path.strip_prefix("s3://") {
            if rest.split('/').next().unwrap_or_default().is_empty() {
                out.push((
                    self.path.span(),
                    format!("dataset[{i}].path {path:?} names no bucket (s3://bucket/prefix)"),
                ));
            }
        }
        if let Some(t) = &self.teacher_model {
            if !t.get_ref().is_file() {
                let abs = std::path::absolute(t.get_ref()).unwrap_or_else(|_| t.get_ref().clone());
                out.push((
                    t.span(),
                    format!(
                        "dataset[{i}].teacher_model {} is not a model file (looked for {}; a relative path is taken from the working directory): import it with scripts/fetch-model.sh or `hotfolderd model import-ct2`",
                        t.get_ref().display(),
                        abs.display()
                    ),
                ));
            }
        }
        let hours = *self.train_after_hours.get_ref();
        if !hours.is_finite() || hours <= 0.0 {
            out.push((
                self.train_after_hours.span(),
                format!("dataset[{i}].train_after_hours must be more than 0, not {hours}"),
            ));
        }
        let (min, max) = (
            *self.min_segment_seconds.get_ref(),
            *self.max_segment_seconds.get_ref(),
        );
        if !(max > 0.0 && max <= 30.0) {
            out.push((
                self.max_segment_seconds.span(),
                format!("dataset[{i}].max_segment_seconds must be more than 0 and at most 30 (Whisper's window)"),
            ));
        }
        if !(min >= 0.0 && min < max) {
            out.push((
                self.min_segment_seconds.span(),
                format!("dataset[{i}].min_segment_seconds must be 0 or more and less than max_segment_seconds"),
            ));
        }
        let ns = *self.max_no_speech_prob.get_ref();
        if !(0.0..=1.0).contains(&ns) {
            out.push((
                self.max_no_speech_prob.span(),
                format!("dataset[{i}].max_no_speech_prob must be between 0 and 1"),
            ));
        }
        let lp = *self.min_avg_logprob.get_ref();
        if !(lp.is_finite() && lp <= 0.0) {
            out.push((
                self.min_avg_logprob.span(),
                format!(
                    "dataset[{i}].min_avg_logprob must be 0 or less (a log-probability), not {lp}"
                ),
            ));
        }
        let cr = *self.max_compression_ratio.get_ref();
        if !(cr.is_finite() && cr > 0.0) {
            out.push((
                self.max_compression_ratio.span(),
                format!("dataset[{i}].max_compression_ratio must be more than 0, not {cr}"),
            ));
        }
        let ef = *self.eval_fraction.get_ref();
        if !(0.0..=0.5).contains(&ef) {
            out.push((
                self.eval_fraction.span(),
                format!("dataset[{i}].eval_fraction must be between 0 and 0.5, not {ef}"),
            ));
        }
        let gain = *self.min_wer_gain.get_ref();
        if !(0.0..1.0).contains(&gain) {
            out.push((
                self.min_wer_gain.span(),
                format!("dataset[{i}].min_wer_gain must be 0 or more and below 1 (0.01 is one point of WER), not {gain}"),
            ));
        }
        if self.trainer.command.get_ref().is_empty() {
            out.push((
                self.trainer.command.span(),
                format!("dataset[{i}].trainer.command is empty"),
            ));
        }
        if self.trainer.timeout.get_ref().is_zero() {
            out.push((
                self.trainer.timeout.span(),
                format!("dataset[{i}].trainer.timeout must be more than 0"),
            ));
        }
        out
    }
}
