//! Weights between ggml and Hugging Face transformers, with the real tiny.en: `model
//! export-hf` writes a folder transformers loads and transcribes with, `model import-hf`
//! brings it (or a PEFT LoRA adapter trained on it by the shipped recipe) back to ggml.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::common::{model, models_dir, run, speak, wer};

const SPEECH: &str = "The quick brown fox jumps over the lazy dog. Please send the report \
                      to the office by Friday.";

fn hotfolderd(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hotfolderd"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(args: &[&str]) {
    let out = hotfolderd(args);
    assert!(
        out.status.success(),
        "hotfolderd {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// `hotfolderd transcribe` with `model` on `wav`: the txt transcript.
fn transcribe_with(model: &Path, wav: &Path, out: &Path) -> String {
    ok(&[
        "transcribe",
        "-m",
        p(model),
        "-f",
        "txt",
        "--out",
        p(out),
        p(wav),
    ]);
    let name = wav.file_stem().unwrap().to_str().unwrap();
    std::fs::read_to_string(out.join(format!("{name}.txt"))).unwrap()
}

pub fn trainer_python() -> String {
    let python = std::env::var("HOTFOLDERD_TRAINER_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/trainer-venv/bin/python",
            env!("CARGO_MANIFEST_DIR")
        )
    });
    assert!(
        Path::new(&python).is_file(),
        "{python} is missing: run scripts/test.sh (scripts/trainer-venv.sh installs it)"
    );
    python
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn hf_check(args: &[&str]) -> String {
    let out = Command::new(trainer_python())
        .arg(fixture("hf_check.py"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hf_check.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// tiny.en exported into `folder`.
fn export_tiny(folder: &Path) {
    ok(&[
        "model",
        "export-hf",
        p(&model("tiny.en")),
        "--out",
        p(folder),
    ]);
}

#[test]
fn export_then_import_gives_back_the_same_model_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let folder = d.join("hf");
    export_tiny(&folder);
    for f in [
        "config.json",
        "generation_config.json",
        "preprocessor_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        assert!(folder.join(f).is_file(), "{f} missing");
    }
    let config: Value =
        serde_json::from_slice(&std::fs::read(folder.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        (
            config["d_model"].as_u64(),
            config["encoder_layers"].as_u64()
        ),
        (Some(384), Some(4))
    );
    let back = d.join("back.bin");
    ok(&["model", "import-hf", p(&folder), "--out", p(&back)]);
    assert!(
        std::fs::read(&back).unwrap() == std::fs::read(model("tiny.en")).unwrap(),
        "f16 → f32 → f16 is exact: the round trip must give the same file"
    );
    // A quantized import of the export still transcribes the speech.
    let wav = speak(d, "speech", SPEECH, "en-us");
    let q8 = d.join("q8.bin");
    ok(&[
        "model",
        "import-hf",
        p(&folder),
        "--out",
        p(&q8),
        "--quantize",
        "q8_0",
    ]);
    let text = transcribe_with(&q8, &wav, &d.join("out-q8"));
    assert!(wer(SPEECH, &text) < 0.3, "{text}");

    // Exporting into a folder that holds something refuses, and leaves it alone.
    let again = hotfolderd(&[
        "model",
        "export-hf",
        p(&model("tiny.en")),
        "--out",
        p(&folder),
    ]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));
}

#[test]
fn a_model_without_its_tokenizer_or_with_another_ones_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let alone = d.join("ggml-tiny.en.bin");
    std::fs::copy(model("tiny.en"), &alone).unwrap();
    let out = hotfolderd(&["model", "export-hf", p(&alone), "--out", p(&d.join("a"))]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("--tokenizer"),
        "{err}"
    );
    // base's tokenizer is multilingual: its tokens are not tiny.en's.
    let base_tok = models_dir().join("tokenizer-base.json");
    let out = hotfolderd(&[
        "model",
        "export-hf",
        p(&alone),
        "--out",
        p(&d.join("b")),
        "--tokenizer",
        p(&base_tok),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("does not belong"),
        "{err}"
    );
    assert!(!d.join("a").exists() && !d.join("b").exists());
    // No half-written folders left beside the target either.
    let leftovers: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".export-hf"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn transformers_loads_the_export_and_transcribes_as_hotfolderd_does() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let folder = d.join("hf");
    export_tiny(&folder);
    let wav = speak(d, "speech", SPEECH, "en-us");
    let theirs = hf_check(&["generate", p(&folder), p(&wav)]);
    let ours = transcribe_with(&model("tiny.en"), &wav, &d.join("out"));
    let (w_theirs, w_ours, between) = (
        wer(SPEECH, &theirs),
        wer(SPEECH, &ours),
        wer(&ours, &theirs),
    );
    println!("WER transformers {w_theirs:.3}, hotfolderd {w_ours:.3}, between them {between:.3}");
    assert!(w_theirs < 0.3 && w_ours < 0.3, "{theirs:?} / {ours:?}");
    // Not word for word: whisper.cpp decodes with timestamps, VAD and temperature fallback.
    assert!(
        between <= 0.25,
        "the two decoders disagree: {theirs:?} / {ours:?}"
    );
}

/// The shipped recipe trains a LoRA adapter on the exported tiny.en; import-hf merges it as
/// PEFT's own merge_and_unload does, and the merged model serves.
#[test]
fn a_lora_adapter_from_the_recipe_merges_as_peft_merges_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let base = d.join("hf");
    export_tiny(&base);
    let wav = speak(d, "speech", SPEECH, "en-us");
    let manifest = d.join("manifest.jsonl");
    std::fs::write(
        &manifest,
        format!(
            "{}\n",
            serde_json::json!({"audio_filepath": wav, "duration": 6.0, "text": SPEECH})
        ),
    )
    .unwrap();
    let recipe = Path::new(env!("CARGO_MANIFEST_DIR")).join("trainers/whisper_finetune.py");
    let out = d.join("run");
    run(Command::new(trainer_python())
        .arg(recipe)
        .args(["--manifest", p(&manifest), "--output-dir", p(&out)])
        .args([
            "--model",
            p(&base),
            "--lora-rank",
            "4",
            "--learning-rate",
            "1e-2",
        ])
        .args([
            "--lora-targets",
            "q_proj,v_proj,fc1",
            "--max-steps",
            "2",
            "--batch-size",
            "1",
        ]));
    let adapter = out.join("final");
    assert!(adapter.join("adapter_config.json").is_file());

    let ours = d.join("ours.bin");
    ok(&[
        "model",
        "import-hf",
        p(&adapter),
        "--out",
        p(&ours),
        "--quantize",
        "f32",
    ]);
    hf_check(&["merge", p(&base), p(&adapter), p(&d.join("peft"))]);
    let peft = d.join("peft.bin");
    ok(&[
        "model",
        "import-hf",
        p(&d.join("peft")),
        "--out",
        p(&peft),
        "--quantize",
        "f32",
    ]);
    // Compare as f32 weights, through export-hf (the tokenizer is the base's).
    let tok = base.join("tokenizer.json");
    for (bin, folder) in [(&ours, "ours-hf"), (&peft, "peft-hf")] {
        ok(&[
            "model",
            "export-hf",
            p(bin),
            "--out",
            p(&d.join(folder)),
            "--tokenizer",
            p(&tok),
        ]);
    }
    let max_abs = |a: &str, b: &Path| -> f64 {
        let v: Value = serde_json::from_str(&hf_check(&["diff", p(&d.join(a)), p(b)])).unwrap();
        v["max_abs"].as_f64().unwrap()
    };
    let against_peft = max_abs("ours-hf", &d.join("peft-hf"));
    let against_base = max_abs("ours-hf", &base);
    println!("max |ours - peft| = {against_peft:e}, max |ours - base| = {against_base:e}");
    assert!(against_peft < 1e-5, "{against_peft}");
    assert!(
        against_base > 1e-4,
        "the adapter changed nothing: {against_base}"
    );
    // f32 ggml files load but do not run in whisper.cpp 1.8.3 (its convolution asserts f16
    // kernels): the merged adapter serves as f16.
    let serving = d.join("serving.bin");
    ok(&["model", "import-hf", p(&adapter), "--out", p(&serving)]);
    let text = transcribe_with(&serving, &wav, &d.join("out"));
    assert!(wer(SPEECH, &text) < 0.5, "{text}");
}
