//! A transcription stops when its time is up or when it is cancelled — inside whisper.cpp's
//! computation (its abort callback), not only between 30 s windows.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use crate::common::*;
use hotfolderd::pipeline::cancel::{Cancel, Stopped};
use hotfolderd::pipeline::decode::{AudioDecoder16k, DecodeError};
use hotfolderd::pipeline::transcribe::{AudioSource, DecodeOptions, TranscribeError, Transcriber};

fn run(path: &std::path::Path, cancel: Cancel) -> Result<usize, TranscribeError> {
    let mut audio = AudioDecoder16k::open_path(path).unwrap();
    let opts = DecodeOptions {
        cancel,
        ..options()
    };
    tiny()
        .transcribe(&mut audio, &opts)
        .map(|t| t.segments.len())
}

/// Audio that raises the cancel flag when it runs out: after the window loop's own check,
/// before whisper.cpp starts on the window.
struct CancelAtEnd {
    audio: AudioDecoder16k,
    cancel: Cancel,
}

impl AudioSource for CancelAtEnd {
    fn read(&mut self, out: &mut Vec<f32>, max: usize) -> Result<usize, DecodeError> {
        let n = self.audio.read(out, max)?;
        if n == 0 {
            self.cancel.cancel();
        }
        Ok(n)
    }
}

#[test]
fn a_cancel_stops_the_only_window_inside_whisper() {
    let dir = tempfile::tempdir().unwrap();
    // One window (under 30 s): there is no later window boundary to stop at, so only the
    // abort callback can end it.
    let speech = speak(
        dir.path(),
        "s",
        "One window of speech that will not be finished.",
        "en-us",
    );
    let cancel = Cancel::default();
    let mut audio = CancelAtEnd {
        audio: AudioDecoder16k::open_path(&speech).unwrap(),
        cancel: cancel.clone(),
    };
    let opts = DecodeOptions {
        cancel,
        ..options()
    };
    let got = tiny()
        .transcribe(&mut audio, &opts)
        .map(|t| t.segments.len());
    assert!(
        matches!(got, Err(TranscribeError::Stopped(Stopped::Cancelled))),
        "{got:?}"
    );
    // Without it the same file transcribes.
    assert!(run(&speech, Cancel::default()).unwrap() > 0);
}

#[test]
fn an_expired_deadline_is_reported_as_a_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let speech = speak(dir.path(), "s", "Too late.", "en-us");
    let got = run(&speech, Cancel::default().limited(Duration::ZERO));
    assert!(
        matches!(got, Err(TranscribeError::Stopped(Stopped::TimedOut(d))) if d.is_zero()),
        "{got:?}"
    );
}

#[test]
fn cancelling_from_another_thread_stops_a_long_transcription() {
    let dir = tempfile::tempdir().unwrap();
    let one = speak(
        dir.path(),
        "one",
        "A long recording, cancelled part way through.",
        "en-us",
    );
    let long = dir.path().join("long.wav");
    sox(&[
        one.to_str().unwrap(),
        long.to_str().unwrap(),
        "repeat",
        "60",
    ]);
    let cancel = Cancel::default();
    let trigger = cancel.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        trigger.cancel();
    });
    let got = run(&long, cancel);
    t.join().unwrap();
    assert!(
        matches!(got, Err(TranscribeError::Stopped(Stopped::Cancelled))),
        "{got:?}"
    );
}
