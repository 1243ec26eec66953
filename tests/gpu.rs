//! `[asr] min_free_gpu_memory` with GPU memory figures this test controls (a fake NVML):
//! a dropped file waits while too little is free and is transcribed once enough frees up.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use hotfolderd::config::Config;
use hotfolderd::pipeline::transcribe::{Transcriber, WhisperTranscriber};
use hotfolderd::training::gpu::GpuInfo;

struct FakeGpu(Arc<AtomicU64>);

impl GpuInfo for FakeGpu {
    fn free_memory(&self) -> Result<Option<u64>, String> {
        Ok(Some(self.0.load(Ordering::SeqCst)))
    }
}

#[test]
fn transcription_waits_for_free_gpu_memory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = write_daemon_config(d, "300ms");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "threads = 1\n",
        "threads = 1\nmin_free_gpu_memory = \"2GiB\"\n",
    );
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
    free.store(4 << 30, Ordering::SeqCst);
    wait_until("the transcript once memory is free", || {
        d.join("out/g.json").is_file()
    });
    stop_tx.send(()).unwrap();
    daemon.join().unwrap().unwrap();
}
