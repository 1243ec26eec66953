//! `hotfolderd transcribe FILE...`: every file is handled on its own; a bad file prints one
//! error line and the rest still run. Exit code 1 when any file failed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use crate::cli::TranscribeArgs;
use crate::hash::sha256_file;
use crate::pipeline::decode::AudioDecoder16k;
use crate::pipeline::render::{self, Format};
use crate::pipeline::transcribe::{DecodeOptions, Transcriber, WhisperTranscriber};

pub fn run(args: &TranscribeArgs) -> ExitCode {
    let opts = match args.decode.to_options(&args.model) {
        Ok((o, warning)) => {
            if let Some(w) = warning {
                eprintln!("hotfolderd: {w}");
            }
            o
        }
        Err(e) => {
            eprintln!("hotfolderd: {e}");
            return ExitCode::from(2);
        }
    };
    let transcriber = match WhisperTranscriber::load_with(&args.model, &args.model_options()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("hotfolderd: {e}");
            return ExitCode::from(2);
        }
    };
    let mut formats = args.format.clone();
    formats.sort();
    formats.dedup();
    let mut claimed: HashMap<PathBuf, PathBuf> = HashMap::new();
    let mut failed = 0usize;
    for file in &args.files {
        let result = output_stem(file, args.out.as_deref()).and_then(|stem| {
            if let Some(other) = claimed.get(&stem) {
                return Err(format!(
                    "its outputs would overwrite those of {} (same name); use --out to separate them",
                    other.display()
                ));
            }
            claimed.insert(stem.clone(), file.clone());
            transcribe_one(&transcriber, file, &stem, &formats, &opts)
        });
        match result {
            Ok(summary) => {
                if !args.quiet {
                    println!("{summary}");
                }
            }
            Err(reason) => {
                failed += 1;
                eprintln!("hotfolderd: {}: {reason}", file.display());
            }
        }
    }
    if failed > 0 {
        eprintln!("hotfolderd: {failed} of {} files failed", args.files.len());
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// `<out>/<stem>` (or next to the input), to which `.<format>` is appended.
fn output_stem(file: &Path, out: Option<&Path>) -> Result<PathBuf, String> {
    let stem = file
        .file_stem()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| "has no file name".to_string())?;
    let dir = match out {
        Some(d) => d.to_path_buf(),
        None => file.parent().map(Path::to_path_buf).unwrap_or_default(),
    };
    Ok(dir.join(stem))
}

fn transcribe_one(
    transcriber: &dyn Transcriber,
    file: &Path,
    stem: &Path,
    formats: &[Format],
    opts: &DecodeOptions,
) -> Result<String, String> {
    let started = Instant::now();
    let mut decoder = AudioDecoder16k::open_path(file).map_err(|e| e.to_string())?;
    let transcript = transcriber
        .transcribe(&mut decoder, opts)
        .map_err(|e| e.to_string())?;
    let sha256 = sha256_file(file).map_err(|e| format!("cannot hash: {e}"))?;
    let info = decoder.info().clone();
    let total = started.elapsed().as_secs_f64();
    let doc = render::document(
        file.display().to_string(),
        sha256,
        transcriber.model_name(),
        &info,
        &transcript,
        opts,
        total,
    );
    let written: Vec<String> = render::write_all(&doc, formats, |f| {
        let mut path = stem.as_os_str().to_owned();
        path.push(".");
        path.push(f.extension());
        PathBuf::from(path)
    })?
    .iter()
    .map(|p| p.display().to_string())
    .collect();
    let mut summary = format!(
        "{}: {:.1} s of {} audio in {:.1} s (×{:.2} real time) → {}",
        file.display(),
        transcript.duration,
        transcript.language,
        total,
        if total > 0.0 {
            transcript.duration / total
        } else {
            0.0
        },
        written.join(", ")
    );
    for s in &transcript.segments {
        summary.push_str(&format!(
            "\n  [{:8.2} → {:8.2}] {}",
            s.start,
            s.end,
            s.text.trim()
        ));
    }
    Ok(summary)
}
