//! `[asr] min_free_gpu_memory` with GPU memory figures this test controls (a fake NVML):
//! a dropped file waits while too little is free and is transcribed once enough frees up;
//! `/metrics` reports each GPU's memory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use hotfolderd::config::Config;
use hotfolderd::pipeline::transcribe::{Transcriber, WhisperTranscriber};
use hotfolderd::training::gpu::{DeviceMemory, GpuInfo};

/// Two GPUs: the first stays nearly full (another process holds it); the test sets the
/// second's free memory.
struct FakeGpu(Arc<AtomicU64>);

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
            device(0, 256 << 20),
            device(1, self.0.load(Ordering::SeqCst)),
        ])
    }
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
    let config = Config::parse(&text, "test", |_| None).unwrap();
    let free = Arc::new(AtomicU64::new(1 << 30));
    let transcriber: Arc<dyn Transcriber> =
        Arc::new(WhisperTranscriber::load(&model("tiny.en")).unwrap());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let gpu = Arc::new(FakeGpu(free.clone()));
    let daemon = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(hotfolderd::daemon::run_with_gpu(
            config,
            transcriber,
            gpu,
            async {
                let _ = stop_rx.await;
            },
        ))
    });

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
    let gib = |n: f64| n * f64::from(1u32 << 30);
    let (status, body) = http_get(port, "/metrics", None);
    assert_eq!(status, 200, "{body}");
    let gpu = |name: &str, index: &str| {
        metric_value(&body, name, &[("gpu", index), ("name", "Fake GPU")])
            .unwrap_or_else(|| panic!("{name} gpu={index} not in\n{body}"))
    };
    assert_eq!(gpu("hotfolderd_gpu_memory_free_bytes", "0"), gib(0.25));
    assert_eq!(gpu("hotfolderd_gpu_memory_free_bytes", "1"), gib(1.0));
    assert_eq!(gpu("hotfolderd_gpu_memory_used_bytes", "1"), gib(15.0));
    assert_eq!(gpu("hotfolderd_gpu_memory_total_bytes", "1"), gib(16.0));
    free.store(4 << 30, Ordering::SeqCst);
    wait_until("the transcript once memory is free", || {
        d.join("out/g.json").is_file()
    });
    stop_tx.send(()).unwrap();
    daemon.join().unwrap().unwrap();
}
