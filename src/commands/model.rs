use std::path::Path;
use std::process::ExitCode;

use crate::cli::ModelCommand;
use crate::model::silero::import_silero;
use crate::model::{export_hf, import_ct2, import_hf, ImportSummary, ModelError};

pub fn run(cmd: ModelCommand) -> ExitCode {
    match cmd {
        ModelCommand::ImportCt2 { dir, out, quantize } => {
            report_import(&dir, import_ct2(&dir, &out, quantize))
        }
        ModelCommand::ImportHf {
            dir,
            out,
            quantize,
            base,
        } => report_import(&dir, import_hf(&dir, &out, quantize, base.as_deref())),
        ModelCommand::ExportHf {
            model,
            out,
            tokenizer,
            config,
        } => {
            let model = match model {
                Some(m) => m,
                None => match super::load_config(&config) {
                    Ok(c) => c.asr.model,
                    Err(code) => return code,
                },
            };
            report(
                "model export",
                export_hf(&model, &out, tokenizer.as_deref()),
                |s| {
                    format!(
                        "exported {} → {} ({} tensors, {:.1} MB f32, {}; tokenizer from {})",
                        model.display(),
                        s.output.display(),
                        s.tensors,
                        s.bytes as f64 / 1e6,
                        language_kind(s.multilingual),
                        s.tokenizer.display()
                    )
                },
            )
        }
        ModelCommand::List { json, config } => super::registry::list(&config, json),
        ModelCommand::Promote { id, config } => super::registry::switch(&config, Some(id)),
        ModelCommand::Rollback { config } => super::registry::switch(&config, None),
        ModelCommand::ImportSpeaker { file, out } => report(
            "speaker model import",
            crate::diarize::model::import(&file, &out),
            |n| {
                format!(
                    "imported {} → {} ({n} tensors)",
                    file.display(),
                    out.display()
                )
            },
        ),
        ModelCommand::ImportSegmentation { file, out } => report(
            "segmentation model import",
            crate::diarize::model::import_segmentation(&file, &out),
            |n| {
                format!(
                    "imported {} → {} ({n} tensors)",
                    file.display(),
                    out.display()
                )
            },
        ),
        ModelCommand::ImportSilero { file, out } => {
            report("VAD model import", import_silero(&file, &out), |n| {
                format!(
                    "imported {} → {} ({n} tensors)",
                    file.display(),
                    out.display()
                )
            })
        }
    }
}

/// Prints what a model command did, or why it failed (exit 1).
fn report<T>(
    what: &str,
    result: Result<T, ModelError>,
    done: impl FnOnce(T) -> String,
) -> ExitCode {
    match result {
        Ok(v) => {
            println!("{}", done(v));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hotfolderd: {what} failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn report_import(source: &Path, result: Result<ImportSummary, ModelError>) -> ExitCode {
    report("model import", result, |s| {
        format!(
            "imported {} → {} ({} tensors, {:.1} MB, {}; {} encoder + {} decoder layers of width {}, {} tokens, {})",
            source.display(),
            s.output.display(),
            s.tensors,
            s.bytes as f64 / 1e6,
            s.weight_type,
            s.audio_layers,
            s.text_layers,
            s.state,
            s.n_vocab,
            language_kind(s.multilingual)
        )
    })
}

fn language_kind(multilingual: bool) -> &'static str {
    if multilingual {
        "multilingual"
    } else {
        "English-only"
    }
}
