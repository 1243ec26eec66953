//! GPU memory figures this test controls (a fake NVML): with `[asr] min_free_gpu_memory`, a
//! dropped file waits while too little is free on the GPU transcription runs on (another
//! GPU's memory does not count) and is transcribed once enough frees up; `/metrics` reports
//! each GPU's memory. A training run is pinned to the GPU that passed its check
//! (`CUDA_VISIBLE_DEVICES`), and under `gpu_policy = "shared"` is held to what transcription
//! leaves it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use hotfolderd::config::Config;
use hotfolderd::pipeline::transcribe::{Transcriber, WhisperTranscriber};
use hotfolderd::training::gpu::{DeviceMemory, GpuInfo};

/// Two GPUs whose free memory the test sets.
struct FakeGpu([Arc<AtomicU64>; 2]);

const TOTAL: u64 = 16 << 30;

impl GpuInfo for FakeGpu {
    fn devices(&self) -> Result<Vec<DeviceMemory>, String> {
        let device = |index: u32, free: u64| DeviceMemory {
            index,
            name: "Fake GPU".into(),
            used: TOTAL - free,
            free,
            total: TOTAL,
        };
        Ok(vec![
            device(0, self.0[0].load(Ordering::SeqCst)),
            device(1, self.0[1].load(Ordering::SeqCst)),
        ])
    }
}

fn gib(n: u64) -> Arc<AtomicU64> {
    Arc::new(AtomicU64::new(n << 30))
}

/// Runs the daemon on `text` (a config) with `gpu` until `stop` is sent.
fn daemon_with(
    text: &str,
    gpu: FakeGpu,
) -> (
    tokio::sync::oneshot::Sender<()>,
    std::thread::JoinHandle<Result<(), hotfolderd::daemon::DaemonError>>,
) {
    let config = Config::parse(text, "test", |_| None).unwrap();
    let transcriber: Arc<dyn Transcriber> =
        Arc::new(WhisperTranscriber::load(&model("tiny.en")).unwrap());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let daemon = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(hotfolderd::daemon::run_with_gpu(
            config,
            transcriber,
            Arc::new(gpu),
            async {
                let _ = stop_rx.await;
            },
        ))
    });
    (stop_tx, daemon)
}

#[test]
fn transcription_waits_for_free_gpu_memory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = write_daemon_config(d, "300ms");
    let port = free_port();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "threads = 1\n",
        "threads = 1\nmin_free_gpu_memory = \"2GiB\"\n",
    ) + &format!("[http]\nlisten = \"127.0.0.1:{port}\"\n");
    std::fs::write(&config, &text).unwrap();
    std::fs::create_dir_all(d.join("inbox")).unwrap();
    // Transcription runs on GPU 0 (`[asr] gpu_device`, default 0): GPU 1's free memory,
    // however much, does not let it start.
    let free = gib(1);
    let (stop_tx, daemon) = daemon_with(&text, FakeGpu([free.clone(), gib(15)]));

    std::fs::copy(
        speak(d, "g", "Waiting for the GPU to free up.", "en-us"),
        d.join("inbox/g.wav"),
    )
    .unwrap();
    // 1 GiB free, 2 GiB needed: journaled and queued, but not transcribed.
    wait_until("the input queued", || {
        journal_rows(d)
            .iter()
            .any(|(_, s, _)| s.as_str() == "queued")
    });
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        !d.join("out/g.json").exists(),
        "transcribed without GPU memory"
    );
    // /metrics shows each GPU's memory as the provider reports it.
    let bytes = |gib: f64| gib * f64::from(1u32 << 30);
    let (status, body) = http_get(port, "/metrics", None);
    assert_eq!(status, 200, "{body}");
    let gpu = |name: &str, index: &str| {
        metric_value(&body, name, &[("gpu", index), ("name", "Fake GPU")])
            .unwrap_or_else(|| panic!("{name} gpu={index} not in\n{body}"))
    };
    assert_eq!(gpu("hotfolderd_gpu_memory_free_bytes", "0"), bytes(1.0));
    assert_eq!(gpu("hotfolderd_gpu_memory_free_bytes", "1"), bytes(15.0));
    assert_eq!(gpu("hotfolderd_gpu_memory_used_bytes", "0"), bytes(15.0));
    assert_eq!(gpu("hotfolderd_gpu_memory_total_bytes", "1"), bytes(16.0));
    free.store(4 << 30, Ordering::SeqCst);
    wait_until("the transcript once memory is free", || {
        d.join("out/g.json").is_file()
    });
    stop_tx.send(()).unwrap();
    daemon.join().unwrap().unwrap();
}

#[test]
fn a_training_run_is_pinned_to_the_gpu_that_passed_its_check() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let inbox = d.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/script_trainer.py");
    // Transcription on GPU 1 keeps 2 GiB there; the run needs 6 GiB: only GPU 1 has them.
    let text = format!(
        "[journal]\npath = {:?}\n[asr]\nmodel = {:?}\nthreads = 1\ngpu_device = 1\n\
         min_free_gpu_memory = \"2GiB\"\n\
         [[watch]]\npath = {inbox:?}\noutput = {:?}\nstable_for = \"300ms\"\n\
         [[dataset]]\nname = \"calls\"\nsources = [{inbox:?}]\npath = {:?}\n\
         train_after_hours = 0.0005\nmin_segment_seconds = 0.5\n\
         [dataset.trainer]\ncommand = [\"python3\", {script:?}, \"env\"]\n\
         min_free_gpu_memory = \"6GiB\"\ngpu_policy = \"shared\"\n",
        d.join("state/journal.sqlite"),
        model("tiny.en"),
        d.join("out"),
        d.join("datasets/calls"),
    );
    let (stop_tx, daemon) = daemon_with(&text, FakeGpu([gib(3), gib(10)]));
    std::fs::copy(
        speak(d, "t", "A sentence to train on, on the right GPU.", "en-us"),
        inbox.join("t.wav"),
    )
    .unwrap();
    let runs = d.join("datasets/calls/runs");
    let record = || {
        files_under(&runs)
            .into_iter()
            .find(|p| p.ends_with("run.json"))
    };
    wait_until("a finished run", || record().is_some());
    stop_tx.send(()).unwrap();
    daemon.join().unwrap().unwrap();
    let folder = record().unwrap().parent().unwrap().to_path_buf();
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(folder.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(run["gpu"]["index"], 1, "{run}");
    let env: serde_json::Value =
        serde_json::from_slice(&std::fs::read(folder.join("output/env.json")).unwrap()).unwrap();
    assert_eq!(env["CUDA_VISIBLE_DEVICES"], "1", "{env}");
    assert_eq!(env["CUDA_DEVICE_ORDER"], "PCI_BUS_ID", "{env}");
    // 10 GiB free, 2 GiB kept for transcription on the same GPU.
    assert_eq!(
        env["HOTFOLDERD_GPU_MEMORY_LIMIT"],
        (8u64 << 30).to_string().as_str(),
        "{env}"
    );
    assert_eq!(run["gpu"]["memory_limit_bytes"], 8u64 << 30);
    assert_eq!(env["XLA_PYTHON_CLIENT_PREALLOCATE"], "false", "{env}");
}
