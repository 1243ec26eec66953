use std::process::ExitCode;

use crate::cli::ModelCommand;
use crate::model::import_ct2;
use crate::model::silero::import_silero;

pub fn run(cmd: ModelCommand) -> ExitCode {
    match cmd {
        ModelCommand::ImportCt2 { dir, out, quantize } => match import_ct2(&dir, &out, quantize) {
            Ok(s) => {
                println!(
                    "imported {} → {} ({} tensors, {:.1} MB, {}; {} encoder + {} decoder layers of width {}, {} tokens, {})",
                    dir.display(),
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
        },
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
