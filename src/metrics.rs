//! Process-wide Prometheus metrics: what is counted as it happens (job durations, audio
//! seconds, realtime factor, S3/SQS errors). Gauges read from the journal and the sources
//! are filled in when `/metrics` is scraped (`daemon/http.rs`).

use std::sync::atomic::AtomicU64;
use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceState {
    pub source: String,
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Queue {
    pub queue: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Retry {
    pub source: String,
    /// "transient" (an error worth another attempt), "timeout", or "s3_unavailable" (an
    /// outage waited out without using an attempt).
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Op {
    pub operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Job {
    /// The input's journal id.
    pub input: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Dataset {
    pub dataset: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DatasetState {
    pub dataset: String,
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Device {
    /// NVML's index, as `nvidia-smi` numbers the GPUs.
    pub gpu: String,
    pub name: String,
}

pub type FloatGauge = Gauge<f64, AtomicU64>;

pub struct Metrics {
    pub registry: Registry,
    pub inputs: Family<SourceState, Gauge>,
    pub queue_depth: Gauge,
    pub running: Gauge,
    /// Seconds of audio done, and in all, of each running job.
    pub job_audio_done: Family<Job, FloatGauge>,
    pub job_audio_total: Family<Job, FloatGauge>,
    pub job_seconds: Histogram,
    pub audio_seconds: Histogram,
    pub realtime_factor: Histogram,
    pub sqs_receive_errors: Family<Queue, Counter>,
    pub s3_errors: Family<Op, Counter>,
    pub retries: Family<Retry, Counter>,
    pub breaker_open: Family<Queue, Gauge>,
    pub dataset_hours: Family<Dataset, FloatGauge>,
    pub dataset_new_hours: Family<Dataset, FloatGauge>,
    pub training_runs: Family<DatasetState, Gauge>,
    pub gpu_free_bytes: Family<Device, Gauge>,
    pub disk_paused: Gauge,
    pub gpu_used_bytes: Family<Device, Gauge>,
    pub gpu_total_bytes: Family<Device, Gauge>,
}

pub fn metrics() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(|| {
        let mut r = Registry::with_prefix("hotfolderd");
        let m = Metrics {
            inputs: Family::default(),
            queue_depth: Gauge::default(),
            running: Gauge::default(),
            job_audio_done: Family::default(),
            job_audio_total: Family::default(),
            job_seconds: Histogram::new(exponential_buckets(0.5, 2.0, 14)),
            audio_seconds: Histogram::new(exponential_buckets(1.0, 2.0, 16)),
            realtime_factor: Histogram::new(exponential_buckets(0.01, 2.0, 12)),
            sqs_receive_errors: Family::default(),
            s3_errors: Family::default(),
            retries: Family::default(),
            breaker_open: Family::default(),
            dataset_hours: Family::default(),
            dataset_new_hours: Family::default(),
            training_runs: Family::default(),
            gpu_free_bytes: Family::default(),
            disk_paused: Gauge::default(),
            gpu_used_bytes: Family::default(),
            gpu_total_bytes: Family::default(),
            registry: Registry::default(),
        };
        r.register(
            "inputs",
            "Inputs in the journal by source and state",
            m.inputs.clone(),
        );
        r.register(
            "queue_depth",
            "Inputs waiting for a worker",
            m.queue_depth.clone(),
        );
        r.register("running_jobs", "Jobs running now", m.running.clone());
        r.register(
            "job_audio_seconds_done",
            "Seconds of audio transcribed so far by each running job",
            m.job_audio_done.clone(),
        );
        r.register(
            "job_audio_seconds_total",
            "Seconds of audio each running job has in all (absent when the input does not say)",
            m.job_audio_total.clone(),
        );
        r.register(
            "job_duration_seconds",
            "Time to decode and transcribe one input",
            m.job_seconds.clone(),
        );
        r.register(
            "audio_seconds",
            "Audio length of each transcribed input",
            m.audio_seconds.clone(),
        );
        r.register(
            "realtime_factor",
            "Processing time over audio time per job (below 1 is faster than real time)",
            m.realtime_factor.clone(),
        );
        r.register(
            "sqs_receive_errors",
            "Failed SQS receive calls",
            m.sqs_receive_errors.clone(),
        );
        r.register(
            "s3_errors",
            "Failed S3 calls that count as an outage",
            m.s3_errors.clone(),
        );
        r.register(
            "job_retries",
            "Jobs put back in the queue to be tried again, by source and kind",
            m.retries.clone(),
        );
        r.register(
            "s3_breaker_open",
            "1 while a queue's circuit breaker keeps S3 calls back",
            m.breaker_open.clone(),
        );
        r.register(
            "dataset_hours",
            "Hours of audio in each dataset",
            m.dataset_hours.clone(),
        );
        r.register(
            "dataset_new_hours",
            "Hours added since the dataset's last successful training run",
            m.dataset_new_hours.clone(),
        );
        r.register(
            "training_runs",
            "Training runs by dataset and state",
            m.training_runs.clone(),
        );
        r.register(
            "disk_paused",
            "1 while new jobs wait because a disk is below [daemon] min_free_disk",
            m.disk_paused.clone(),
        );
        r.register(
            "gpu_memory_free_bytes",
            "Free memory per GPU (NVML); absent without a GPU",
            m.gpu_free_bytes.clone(),
        );
        r.register(
            "gpu_memory_used_bytes",
            "Used memory per GPU (NVML), by every process on it",
            m.gpu_used_bytes.clone(),
        );
        r.register(
            "gpu_memory_total_bytes",
            "Memory per GPU (NVML)",
            m.gpu_total_bytes.clone(),
        );
        Metrics { registry: r, ..m }
    })
}

/// A job goes back to the queue to be tried again.
pub fn count_retry(source: &str, kind: &str) {
    metrics()
        .retries
        .get_or_create(&Retry {
            source: source.into(),
            kind: kind.into(),
        })
        .inc();
}

/// One transcription finished: `audio` seconds of input in `took` seconds.
pub fn observe_job(audio: f64, took: f64) {
    let m = metrics();
    m.job_seconds.observe(took);
    m.audio_seconds.observe(audio);
    if audio > 0.0 {
        m.realtime_factor.observe(took / audio);
    }
}
