use std::process::ExitCode;

use crate::cli::ModelCommand;
use crate::model::silero::import_silero;
use crate::model::{export_hf, import_ct2, import_hf, ImportSummary};

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
            match export_hf(&model, &out, tokenizer.as_deref()) {
                Ok(s) => {
                    println!(
                        "exported {} → {} ({} tensors, {:.1} MB f32, {}; tokenizer from {})",
                        model.display(),
                        s.output.display(),
                        s.tensors,
                        s.bytes as f64 / 1e6,
                        if s.multilingual {
                            "multilingual"
                        } else {
                            "English-only"
                        },
                        s.tokenizer.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("hotfolderd: model export failed: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        ModelCommand::ImportSilero { file, out } => match import_silero(&file, &out) {
            Ok(n) => {
                println!(
                    "imported {} → {} ({n} tensors)",
                    file.display(),
                    out.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("hotfolderd: VAD model import failed: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

fn report_import(
    source: &std::path::Path,
    result: Result<ImportSummary, crate::model::ModelError>,
) -> ExitCode {
    match result {
        Ok(s) => {
            println!(
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
                    if s.multilingual { "multilingual" } else { "English-only" }
                );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hotfolderd: model import failed: {e}");
            ExitCode::FAILURE
        }
    }
}
