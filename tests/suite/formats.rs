//! Every supported container/codec decodes and transcribes: real speech (espeak-ng) converted
//! by ffmpeg, real model (tiny.en imported from PyPI by scripts/test.sh).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::*;
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

fn decode_all(path: &std::path::Path) -> Vec<f32> {
    let mut d = AudioDecoder16k::open_path(path).unwrap();
    let mut out = Vec::new();
    while d.read(&mut out, 8192).unwrap() > 0 {}
    out
}

/// Our 16 kHz signal matches ffmpeg's resample of the same stereo file at every common rate,
/// telephone (8 kHz) included. Relative RMS error at the best alignment (±2 samples) and gain:
/// 1.3 % measured at 8 kHz, 0.7 % at the others; a wrong rate, a lost chunk or an untrimmed
/// delay gives 40 % or more.
#[test]
fn decoded_audio_matches_ffmpegs_resampler() {
    let dir = tempfile::tempdir().unwrap();
    let src = speak(dir.path(), "speech", TEXT, "en-us");
    for rate in ["8000", "22050", "32000", "44100", "48000"] {
        let input = dir.path().join(format!("{rate}.wav"));
        let reference = dir.path().join(format!("{rate}-ffmpeg16k.wav"));
        ffmpeg(&src, &input, &["-ar", rate, "-ac", "2"]);
        ffmpeg(
            &input,
            &reference,
            &["-ar", "16000", "-ac", "1", "-c:a", "pcm_f32le"],
        );
        let (ours, theirs) = (decode_all(&input), decode_all(&reference));
        assert!(
            ours.len().abs_diff(theirs.len()) <= 1,
            "{rate}: {} vs {} samples",
            ours.len(),
            theirs.len()
        );
        let n = ours.len().min(theirs.len());
        let best = (-2i64..=2)
            .map(|lag| {
                // Error left after the best gain: ffmpeg downmixes stereo at -3 dB per channel
                // (0.707 (L+R)) where we average, a level difference Whisper's log-mel
                // normalisation ignores.
                let (mut cross, mut e_ours, mut e_theirs) = (0f64, 0f64, 0f64);
                for i in 100..n - 100 {
                    let (o, t) = (
                        f64::from(ours[i]),
                        f64::from(theirs[(i as i64 + lag) as usize]),
                    );
                    cross += o * t;
                    e_ours += o * o;
                    e_theirs += t * t;
                }
                (1.0 - cross * cross / (e_ours * e_theirs)).max(0.0).sqrt()
            })
            .fold(f64::MAX, f64::min);
        eprintln!("{rate} Hz: relative error {:.2} %", best * 100.0);
        let peak = |v: &[f32]| v.iter().fold(0f32, |m, x| m.max(x.abs()));
        let level = peak(&ours) / peak(&theirs);
        assert!(
            (0.5..=1.0).contains(&level),
            "{rate} Hz: level {level} of ffmpeg's"
        );
        assert!(best < 0.03, "{rate} Hz: relative error {best}");
    }
}
