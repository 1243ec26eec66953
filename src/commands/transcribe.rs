//! `hotfolderd transcribe FILE...`: every file goes through the daemon's job path
//! (`job::run`) with no journal; a bad file prints one error line and the rest still run.
//! Exit code 1 when any file failed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use std::sync::Arc;

use crate::cli::TranscribeArgs;
use crate::job::{self, LocalDir, LocalFile};
use crate::pipeline::progress::{Progress, Seconds};
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
    if opts.diarize.is_none() && args.format.contains(&crate::pipeline::render::Format::Rttm) {
        eprintln!("hotfolderd: --format rttm writes who spoke when: it needs --diarize");
        return ExitCode::from(2);
    }
    let transcriber = match WhisperTranscriber::load_with(&args.model, &args.model_options()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("hotfolderd: {e}");
            return ExitCode::from(2);
        }
    };
    let transcriber: Arc<dyn Transcriber> = Arc::new(transcriber);
    // The model just loaded from this file, so it reads; the json names it by its hash.
    let model_sha256 = crate::hash::sha256_file(&args.model).ok();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hotfolderd: cannot start: {e}");
            return ExitCode::from(2);
        }
    };
    let mut formats = args.format.clone();
    formats.sort();
    formats.dedup();
    let cx = job::Context {
        transcriber: &transcriber,
        opts,
        limits: None,
        formats: &formats,
        journal: None,
        spool_dir: Path::new("."),
        datasets: &[],
        dedup_scope: None,
        model_sha256: model_sha256.as_deref(),
    };
    let mut claimed: HashMap<PathBuf, PathBuf> = HashMap::new();
    let mut failed = 0usize;
    for file in &args.files {
        let stem = job::output_stem(file, args.out.as_deref())
            .ok_or_else(|| "has no file name".to_string());
        let result = stem.and_then(|stem| {
            // `x` and `x.full` clash only through json-full's `.full.json`.
            let full = args.format.contains(&crate::pipeline::render::Format::JsonFull);
            let clash = claimed.iter().find(|(taken, _)| {
                **taken == stem
                    || (full
                        && crate::pipeline::render::stems_clash(
                            &taken.to_string_lossy(),
                            &stem.to_string_lossy(),
                        ))
            });
            if let Some((_, other)) = clash {
                return Err(format!(
                    "its outputs would overwrite those of {} (same name); use --out to separate them",
                    other.display()
                ));
            }
            claimed.insert(stem.clone(), file.clone());
            runtime.block_on(transcribe_one(&cx, file, stem, args.quiet))
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

/// One file through the job path (no journal: no dedup, no datasets); the summary to print.
async fn transcribe_one(
    cx: &job::Context<'_>,
    file: &Path,
    stem: PathBuf,
    quiet: bool,
) -> Result<String, String> {
    let started = Instant::now();
    let mut input = LocalFile::standalone(file);
    let progress = Progress::default();
    let cx = job::Context {
        opts: DecodeOptions {
            progress: progress.clone(),
            ..cx.opts.clone()
        },
        ..*cx
    };
    let output = LocalDir::new(stem);
    let run = job::run(&cx, &mut input, &output);
    tokio::pin!(run);
    let mut bar = ProgressBar::new(file, quiet);
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
    let done = loop {
        tokio::select! {
            done = &mut run => break done,
            _ = tick.tick() => bar.draw(progress.get()),
        }
    };
    if done.is_ok() {
        // The last stretch ends the run before a tick shows it.
        bar.draw(progress.get());
    }
    bar.finish();
    let done = done.map_err(|f| f.reason())?;
    let total = started.elapsed().as_secs_f64();
    let Some(transcript) = done.transcript else {
        return Ok(format!("{}: → {}", file.display(), done.outputs.join(", ")));
    };
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
        done.outputs.join(", ")
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

/// A file's progress on stderr: a bar redrawn in place on a terminal, else a plain line at
/// each tenth (logs and pipes get no control characters).
struct ProgressBar {
    name: String,
    terminal: bool,
    quiet: bool,
    /// Tenths already printed (plain lines), or whether a bar is on screen.
    shown: Option<u32>,
}

impl ProgressBar {
    fn new(file: &Path, quiet: bool) -> ProgressBar {
        use std::io::IsTerminal;
        ProgressBar {
            name: file.display().to_string(),
            terminal: std::io::stderr().is_terminal(),
            quiet,
            shown: None,
        }
    }

    fn draw(&mut self, at: Seconds) {
        let Some(fraction) = at.fraction().filter(|_| !self.quiet) else {
            return;
        };
        let total = at.total.unwrap_or_default();
        if self.terminal {
            const WIDTH: usize = 30;
            let filled = (fraction * WIDTH as f64).round() as usize;
            eprint!(
                "\r{} [{}{}] {:3.0}% {:.0}/{:.0} s",
                self.name,
                "#".repeat(filled),
                "-".repeat(WIDTH - filled),
                fraction * 100.0,
                at.done,
                total
            );
            self.shown = Some(0);
            return;
        }
        let tenth = (fraction * 10.0).floor() as u32;
        if tenth > 0 && self.shown.is_none_or(|s| tenth > s) {
            eprintln!(
                "{}: {}% ({:.1} of {:.1} s)",
                self.name,
                tenth * 10,
                at.done,
                total
            );
            self.shown = Some(tenth);
        }
    }

    /// Clears the bar (the summary or error line follows).
    fn finish(&mut self) {
        if self.terminal && self.shown.is_some() {
            eprint!("\r\x1b[2K");
        }
    }
}
