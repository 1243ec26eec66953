//! Every supported container/codec decodes and transcribes: real speech (espeak-ng) converted
//! by ffmpeg, real model (tiny.en imported from PyPI by scripts/test.sh).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use hotfolderd::pipeline::decode::AudioDecoder16k;

const TEXT: &str =
    "The quick brown fox jumps over the lazy dog. Speech recognition turns spoken words into text.";

/// tiny.en's word error rate on clean read English is about 6 % (LibriSpeech test-clean,
/// Whisper paper); espeak-ng's robotic voice is far from its training data, and lossy codecs
/// at low bitrates add errors. 25 % leaves room for that while a broken decode (wrong rate,
/// wrong channel mix, dropped or repeated audio) lands near 100 %.
const MAX_WER: f64 = 0.25;

#[test]
fn every_format_transcribes_to_the_spoken_words() {
    let dir = tempfile::tempdir().unwrap();
    let src = speak(dir.path(), "speech", TEXT, "en-us");
    // (file name, ffmpeg arguments): several sample rates and channel counts on purpose.
    let cases: &[(&str, &[&str])] = &[
        ("s16-16k.wav", &["-ar", "16000", "-ac", "1"]),
        (
            "f32-48k-stereo.wav",
            &["-ar", "48000", "-ac", "2", "-c:a", "pcm_f32le"],
        ),
        ("a.flac", &["-ar", "44100", "-ac", "2"]),
        ("a.mp3", &["-ar", "44100", "-ac", "2", "-b:a", "64k"]),
        ("vorbis.ogg", &["-ar", "22050", "-c:a", "libvorbis"]),
        (
            "opus.ogg",
            &["-ar", "48000", "-c:a", "libopus", "-b:a", "24k"],
        ),
        ("opus.webm", &["-ar", "24000", "-c:a", "libopus"]),
        ("aac.m4a", &["-ar", "44100", "-c:a", "aac"]),
        ("alac.m4a", &["-ar", "32000", "-c:a", "alac"]),
        ("flac.mkv", &["-ar", "16000", "-c:a", "flac"]),
        ("no-extension", &["-ar", "44100", "-f", "wav"]),
    ];
    let mut failures = Vec::new();
    for (name, args) in cases {
        let path = dir.path().join(name);
        ffmpeg(&src, &path, args);
        let t = transcribe_file(tiny(), &path, &options());
        assert_sane_timestamps(&t);
        let rate = wer(TEXT, &t.text());
        eprintln!("{name}: WER {:.0} %: {}", rate * 100.0, t.text());
        if rate > MAX_WER {
            failures.push(format!("{name}: WER {:.0} %: {:?}", rate * 100.0, t.text()));
        }
        // Duration comes from the decoded audio and matches the source (±0.1 s of codec padding).
        let expected = AudioDecoder16k::open_path(&src)
            .unwrap()
            .info()
            .declared_seconds
            .unwrap();
        assert!(
            (t.duration - expected).abs() < 0.1,
            "{name}: {} s vs {expected} s",
            t.duration
        );
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Telephone audio (8 kHz) has nothing above 4 kHz, so tiny.en does badly on it whoever
/// resamples it; what our decoder must do is match ffmpeg's own 16 kHz resample of the file.
#[test]
fn telephone_rate_audio_matches_ffmpegs_resample() {
    let dir = tempfile::tempdir().unwrap();
    let src = speak(dir.path(), "speech", TEXT, "en-us");
    let narrow = dir.path().join("8k.wav");
    let reference = dir.path().join("8k-ffmpeg-16k.wav");
    ffmpeg(&src, &narrow, &["-ar", "8000", "-ac", "1"]);
    ffmpeg(&narrow, &reference, &["-ar", "16000"]);
    let ours = transcribe_file(tiny(), &narrow, &options()).text();
    let theirs = transcribe_file(tiny(), &reference, &options()).text();
    let rate = wer(&theirs, &ours);
    assert!(
        rate <= 0.2,
        "ours {ours:?} vs ffmpeg-resampled {theirs:?}: {rate}"
    );
}
