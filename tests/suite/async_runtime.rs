//! Transcription never blocks the async runtime: on a single-threaded runtime, other tasks
//! keep running while whisper.cpp works.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::common::*;
use hotfolderd::pipeline::decode::AudioDecoder16k;
use hotfolderd::pipeline::transcribe::{transcribe_blocking, Transcriber, WhisperTranscriber};

#[test]
fn other_tasks_run_during_a_transcription() {
    let dir = tempfile::tempdir().unwrap();
    let speech = speak(
        dir.path(),
        "s",
        "Asynchronous code must keep running while the model works.",
        "en-us",
    );
    let transcriber: Arc<dyn Transcriber> =
        Arc::new(WhisperTranscriber::load(&model("tiny.en")).unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ticks = Arc::new(AtomicU64::new(0));
    let result = rt.block_on(async {
        let counter = ticks.clone();
        let ticker = tokio::spawn(async move {
            loop {
                counter.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        });
        let audio = Box::new(AudioDecoder16k::open_path(&speech).unwrap());
        let t = transcribe_blocking(transcriber, audio, options()).await;
        ticker.abort();
        t
    });
    let t = result.unwrap();
    assert!(
        wer(
            "Asynchronous code must keep running while the model works.",
            &t.text()
        ) <= 0.34,
        "{}",
        t.text()
    );
    // On one runtime thread, the ticker only advances if the transcription was off-thread.
    assert!(
        ticks.load(Ordering::Relaxed) > 1000,
        "ticker ran {} times",
        ticks.load(Ordering::Relaxed)
    );
}
